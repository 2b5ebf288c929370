"""BERT WordPiece tokenization, written for speed (also MPNet's: the same pieces, other special tokens).

Behaviour follows the reference BERT tokenizer:

* BasicTokenizer: drop NUL, U+FFFD and control characters, turn every whitespace character into a
  space, put spaces around CJK ideographs, optionally lower-case and strip accents (NFD, then drop
  non-spacing marks), and split punctuation (ASCII symbol ranges plus every Unicode ``P*`` category)
  into single-character tokens.
* WordpieceTokenizer: greedy longest-match-first over the vocabulary, continuation pieces prefixed
  with ``##``; a word longer than ``max_input_chars_per_word`` or one that cannot be covered becomes a
  single unknown token.

Speed comes from ``str.translate`` with per-code-point tables that fill themselves on first use (each
character is classified once per process), an ASCII fast path, and a cache of word -> ids.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import unicodedata
from collections.abc import Iterable

from model_compress.data.vocab import (
    BERT_SPECIAL_TOKENS,
    CLS_TOKEN,
    PAD_TOKEN,
    SEP_TOKEN,
    UNK_TOKEN,
    SpecialTokens,
    load_vocab,
    special_tokens_for,
)
from model_compress.files import sha256_file

# CJK Unified Ideographs blocks (and compatibility blocks) as BERT defines them. Hangul, Hiragana and
# Katakana are not in this list on purpose: they are written with spaces and handled like Latin.
_CJK_RANGES = (
    (0x4E00, 0x9FFF),
    (0x3400, 0x4DBF),
    (0x20000, 0x2A6DF),
    (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F),
    (0x2B820, 0x2CEAF),
    (0xF900, 0xFAFF),
    (0x2F800, 0x2FA1F),
)


def is_whitespace(char: str) -> bool:
    """Space, tab, newline, carriage return or any Unicode space separator (Zs)."""
    if char in " \t\n\r":
        return True
    return unicodedata.category(char) == "Zs"


def is_control(char: str) -> bool:
    """A Unicode ``C*`` character other than tab, newline and carriage return (those are whitespace)."""
    if char in "\t\n\r":
        return False
    return unicodedata.category(char).startswith("C")


def is_punctuation(char: str) -> bool:
    """BERT's punctuation: every non-alphanumeric printable ASCII character, plus Unicode ``P*``."""
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_cjk(char: str) -> bool:
    """True for a CJK ideograph (each becomes its own token)."""
    cp = ord(char)
    return any(lo <= cp <= hi for lo, hi in _CJK_RANGES)


class _CleanTable(dict):
    """``str.translate`` table: drop junk/control characters, map whitespace to a space, pad CJK."""

    def __missing__(self, cp: int) -> str | None:
        char = chr(cp)
        if cp == 0 or cp == 0xFFFD or is_control(char):
            out = None
        elif is_whitespace(char):
            out = " "
        elif is_cjk(char):
            out = f" {char} "
        else:
            out = char
        self[cp] = out
        return out


class _PunctTable(dict):
    """``str.translate`` table: put spaces around punctuation characters."""

    def __missing__(self, cp: int) -> str:
        char = chr(cp)
        out = f" {char} " if is_punctuation(char) else char
        self[cp] = out
        return out


class _MarkTable(dict):
    """``str.translate`` table: drop non-spacing marks (Mn), used after NFD for accent stripping."""

    def __missing__(self, cp: int) -> str | None:
        out = None if unicodedata.category(chr(cp)) == "Mn" else chr(cp)
        self[cp] = out
        return out


# Shared, self-filling tables (classification does not depend on any tokenizer option).
_CLEAN = _CleanTable()
_PUNCT = _PunctTable()
_MARKS = _MarkTable()


def _ascii_table(lower: bool) -> dict[int, str | None]:
    """One translate table doing cleaning, punctuation split and (optionally) lower-casing for ASCII."""
    table: dict[int, str | None] = {}
    for cp in range(128):
        char = chr(cp)
        if cp == 0 or is_control(char):
            table[cp] = None
        elif is_whitespace(char):
            table[cp] = " "
        elif is_punctuation(char):
            table[cp] = f" {char} "
        elif lower and "A" <= char <= "Z":
            table[cp] = char.lower()
    return table


_ASCII_LOWER = _ascii_table(lower=True)
_ASCII_KEEP = _ascii_table(lower=False)


class BasicTokenizer:
    """Splits raw text into words and punctuation; optionally lower-cases and strips accents."""

    def __init__(self, do_lower_case: bool = True) -> None:
        self.do_lower_case = do_lower_case
        self._ascii = _ASCII_LOWER if do_lower_case else _ASCII_KEEP

    def tokenize(self, text: str) -> list[str]:
        """Return the list of basic tokens of ``text``."""
        if text.isascii():
            return text.translate(self._ascii).split()
        text = text.translate(_CLEAN)
        if self.do_lower_case:
            text = text.lower()
            if not text.isascii():
                text = unicodedata.normalize("NFD", text).translate(_MARKS)
        return text.translate(_PUNCT).split()


class WordpieceTokenizer:
    """Greedy longest-match-first split of one basic token into vocabulary pieces."""

    def __init__(
        self,
        vocab: dict[str, int],
        unk_token: str = UNK_TOKEN,
        max_input_chars_per_word: int = 100,
    ) -> None:
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize_word(self, word: str) -> list[str]:
        """Pieces of one whitespace-free word, or ``[unk_token]`` when it cannot be covered."""
        n = len(word)
        if n > self.max_input_chars_per_word:
            return [self.unk_token]
        vocab = self.vocab
        pieces: list[str] = []
        start = 0
        while start < n:
            end = n
            prefix = "##" if start else ""
            while end > start:
                piece = prefix + word[start:end]
                if piece in vocab:
                    break
                end -= 1
            else:
                return [self.unk_token]
            pieces.append(piece)
            start = end
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of an already basic-tokenized, space separated text."""
        out: list[str] = []
        for word in text.split():
            out.extend(self.tokenize_word(word))
        return out


class FullTokenizer:
    """BasicTokenizer followed by WordpieceTokenizer, with id conversion and a word -> ids cache.

    Args:
        vocab_file: path of ``vocab.txt``.
        do_lower_case: lower-case and strip accents (use True for uncased models).
        max_input_chars_per_word: longer words become the unknown token.
        cache_size: number of distinct words whose pieces are memoised (0 disables the cache).
        special_tokens: the vocabulary's special tokens; default: found by :func:`special_tokens_for`
            (BERT's ``[CLS] [SEP] [PAD] [UNK]``, or MPNet's ``<s> </s> <pad>`` ...).
    """

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        do_lower_case: bool = True,
        max_input_chars_per_word: int = 100,
        cache_size: int = 500_000,
        special_tokens: SpecialTokens | None = None,
    ) -> None:
        self.vocab_file = os.fspath(vocab_file)
        self.vocab = load_vocab(self.vocab_file)
        self.special_tokens = special_tokens or special_tokens_for(self.vocab, self.vocab_file)
        unk = self.special_tokens.unk
        if unk not in self.vocab:
            raise ValueError(f"vocab file {self.vocab_file} has no {unk} token")
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.do_lower_case = do_lower_case
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
        self.wordpiece_tokenizer = WordpieceTokenizer(
            self.vocab, unk_token=unk, max_input_chars_per_word=max_input_chars_per_word
        )
        self.unk_id = self.vocab[unk]
        self._cache_size = cache_size
        self._piece_cache: dict[str, tuple[str, ...]] = {}
        self._id_cache: dict[str, tuple[int, ...]] = {}
        self._vocab_hash: str | None = None

    @property
    def vocab_size(self) -> int:
        return len(self.inv_vocab)

    @property
    def vocab_hash(self) -> str:
        """sha256 of the vocab file plus the casing flag (and special tokens other than BERT's): identifies
        what token ids mean."""
        if self._vocab_hash is None:
            digest = hashlib.sha256(sha256_file(self.vocab_file).encode())
            digest.update(b"lower" if self.do_lower_case else b"cased")
            if self.special_tokens != BERT_SPECIAL_TOKENS:
                digest.update(json.dumps(dataclasses.asdict(self.special_tokens), sort_keys=True).encode())
            self._vocab_hash = digest.hexdigest()
        return self._vocab_hash

    def _pieces(self, word: str) -> tuple[str, ...]:
        pieces = self._piece_cache.get(word)
        if pieces is None:
            pieces = tuple(self.wordpiece_tokenizer.tokenize_word(word))
            if len(self._piece_cache) >= self._cache_size:
                self._piece_cache.clear()
            if self._cache_size:
                self._piece_cache[word] = pieces
        return pieces

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of ``text``."""
        out: list[str] = []
        for word in self.basic_tokenizer.tokenize(text):
            out.extend(self._pieces(word))
        return out

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (same as ``convert_tokens_to_ids(tokenize(text))``, but faster)."""
        cache = self._id_cache
        vocab = self.vocab
        out: list[int] = []
        for word in self.basic_tokenizer.tokenize(text):
            ids = cache.get(word)
            if ids is None:
                ids = tuple(vocab[p] for p in self._pieces(word))
                if len(cache) >= self._cache_size:
                    cache.clear()
                if self._cache_size:
                    cache[word] = ids
            out.extend(ids)
        return out

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Vocabulary ids of tokens; an out-of-vocabulary token raises KeyError naming it."""
        vocab = self.vocab
        try:
            return [vocab[t] for t in tokens]
        except KeyError as exc:
            raise KeyError(f"token {exc.args[0]!r} is not in vocab {self.vocab_file}") from None

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Tokens of vocabulary ids; an id outside the vocabulary raises KeyError."""
        inv = self.inv_vocab
        try:
            return [inv[int(i)] for i in ids]
        except KeyError as exc:
            raise KeyError(f"id {exc.args[0]} is not in vocab {self.vocab_file}") from None

    def special_ids(self) -> dict[str, int]:
        """Ids of the classification, separator, padding and unknown tokens, keyed by BERT's names of those
        roles (``[CLS] [SEP] [PAD] [UNK]``) whatever this vocabulary calls them; a missing one raises
        ValueError."""
        out = {}
        for role, token in zip((CLS_TOKEN, SEP_TOKEN, PAD_TOKEN, UNK_TOKEN), self.special_tokens.required()):
            if token not in self.vocab:
                raise ValueError(f"vocab file {self.vocab_file} has no {token} token")
            out[role] = self.vocab[token]
        return out

