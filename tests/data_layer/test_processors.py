"""Task processors on small fixture files, their error messages, and examples -> features."""

from __future__ import annotations

import numpy as np
import pytest

from model_compress.data.features import (
    convert_examples_to_features,
    features_to_arrays,
    truncate_pair,
)
from model_compress.data.processors import (
    DataFormatError,
    InputExample,
    get_processor,
    known_tasks,
    select_domains,
)


def write(path, lines, newline="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join(lines).encode("utf-8") + newline.encode())
    return str(path)


# ---------------------------------------------------------------------------------------------------
# GLUE
# ---------------------------------------------------------------------------------------------------
def test_sst2_glue(tmp_path):
    write(tmp_path / "train.tsv", ["sentence\tlabel", "a fine film .\t1", "dull .\t0"])
    write(tmp_path / "dev.tsv", ["sentence\tlabel", "great fun\t1"])
    write(tmp_path / "test.tsv", ["index\tsentence", "0\tunseen text"])
    p = get_processor("SST-2")
    train = p.get_train_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in train] == [("a fine film .", "1"), ("dull .", "0")]
    assert train[0].guid == "train-2"  # line number in the file
    assert [e.text_a for e in p.get_dev_examples(str(tmp_path))] == ["great fun"]
    test = p.get_test_examples(str(tmp_path))
    assert test[0].text_a == "unseen text" and test[0].label is None
    assert p.get_labels() == ["0", "1"]


def test_labelled_test_file_reads_with_labels(tmp_path):
    write(tmp_path / "train.tsv", ["sentence\tlabel", "good\t1"])
    write(tmp_path / "test.tsv", ["sentence\tlabel", "held out text\t0", "another\t1"])
    test = get_processor("sst-2").get_test_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in test] == [("held out text", "0"), ("another", "1")]
    write(tmp_path / "test.tsv", ["sentence\tlabel", "held out text\t7"])  # labels are checked as in train
    with pytest.raises(DataFormatError, match="test.tsv"):
        get_processor("sst-2").get_test_examples(str(tmp_path))


def test_sst2_reads_k_shot_csv_and_rejects_ambiguity(tmp_path):
    write(tmp_path / "train.csv", ["good one\tSST-2\t1", "bad one\tSST-2\t0"])
    train = get_processor("sst-2").get_train_examples(str(tmp_path))
    assert [(e.text_a, e.domain, e.label) for e in train] == [
        ("good one", "SST-2", "1"),
        ("bad one", "SST-2", "0"),
    ]
    write(tmp_path / "train.tsv", ["sentence\tlabel", "x\t1"])
    with pytest.raises(ValueError, match="both train.tsv"):
        get_processor("sst-2").get_train_examples(str(tmp_path))


def test_cola_has_no_header(tmp_path):
    write(
        tmp_path / "train.tsv", ["gj04\t1\t\tThe sailors rode the breeze.", "gj04\t0\t*\tThe more we study."]
    )
    examples = get_processor("cola").get_train_examples(str(tmp_path))
    assert [(e.text_a, e.label) for e in examples] == [
        ("The sailors rode the breeze.", "1"),
        ("The more we study.", "0"),
    ]


def test_mrpc_pairs(tmp_path):
    write(
        tmp_path / "train.tsv",
        ["Quality\t#1 ID\t#2 ID\t#1 String\t#2 String", "1\t1\t2\tHe said .\tHe told ."],
    )
    (e,) = get_processor("MRPC").get_train_examples(str(tmp_path))
    assert (e.text_a, e.text_b, e.label) == ("He said .", "He told .", "1")


def test_qqp(tmp_path):
    write(
        tmp_path / "dev.tsv", ["id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate", "7\t1\t2\tWhy?\tHow?\t0"]
    )
    (e,) = get_processor("qqp").get_dev_examples(str(tmp_path))
    assert (e.text_a, e.text_b, e.label) == ("Why?", "How?", "0")


@pytest.mark.parametrize("task", ["rte", "qnli"])
def test_rte_qnli(tmp_path, task):
    write(
        tmp_path / "train.tsv",
        ["index\tsentence1\tsentence2\tlabel", "0\tA man runs.\tA person moves.\tentailment"],
    )
    (e,) = get_processor(task).get_train_examples(str(tmp_path))
    assert (e.text_a, e.text_b, e.label) == ("A man runs.", "A person moves.", "entailment")
    assert get_processor(task).get_labels() == ["entailment", "not_entailment"]


def test_mnli_train_and_matched_dev(tmp_path):
    head = ["index", "promptID", "pairID", "genre", "b1", "b2", "p1", "p2", "sentence1", "sentence2"]
    write(
        tmp_path / "train.tsv",
        [
            "\t".join(head + ["label1", "gold_label"]),
            "\t".join(["0", "1", "2", "fiction", "", "", "", "", "P.", "H.", "neutral", "neutral"]),
        ],
    )
    write(
        tmp_path / "dev_matched.tsv",
        [
            "\t".join(head + ["l1", "l2", "l3", "l4", "l5", "gold_label"]),
            "\t".join(
                [
                    "0",
                    "1",
                    "2",
                    "slate",
                    "",
                    "",
                    "",
                    "",
                    "P2.",
                    "H2.",
                    "a",
                    "b",
                    "c",
                    "d",
                    "e",
                    "contradiction",
                ]
            ),
        ],
    )
    p = get_processor("MNLI")
    (train,) = p.get_train_examples(str(tmp_path))
    assert (train.text_a, train.text_b, train.label) == ("P.", "H.", "neutral")
    (dev,) = p.get_dev_examples(str(tmp_path))
    assert (dev.text_a, dev.text_b, dev.label) == ("P2.", "H2.", "contradiction")


# ---------------------------------------------------------------------------------------------------
# K-shot / MFT
# ---------------------------------------------------------------------------------------------------
def test_g1_cross_and_single_tasks(tmp_path):
    cross = tmp_path / "k-shot-cross" / "g1" / "16-42"
    write(cross / "train.csv", ["nice phone\tCR\t1", "boring film\tMR\t0", "it 's fun .\tSST-2\t1"])
    write(cross / "dev.csv", ["meh\tMR\t0"])
    p = get_processor("g1")
    assert p.get_domains() == ["SST-2", "MR", "CR"]
    train = p.get_train_examples(str(cross))
    assert [(e.domain, e.label) for e in train] == [("CR", "1"), ("MR", "0"), ("SST-2", "1")]
    for task, domain in (("mr", "MR"), ("CR", "CR")):
        single = tmp_path / "k-shot-single" / domain / "16-42"
        write(single / "test.csv", [f"text one\t{domain}\t1"])
        (e,) = get_processor(task).get_test_examples(str(single))
        assert (e.text_a, e.domain, e.label) == ("text one", domain, "1")
    # a single task refuses rows of another domain
    bad = tmp_path / "bad"
    write(bad / "train.csv", ["text\tCR\t1"])
    with pytest.raises(DataFormatError, match="domain"):
        get_processor("mr").get_train_examples(str(bad))


# ---------------------------------------------------------------------------------------------------
# Amazon multi-domain
# ---------------------------------------------------------------------------------------------------
def test_senti_with_and_without_weight(tmp_path):
    write(
        tmp_path / "train.tsv",
        [
            "guid\ttext_a\ttext_b\tlabel\tdomain\tweight",
            "g1\tGreat book.\t\tpositive\tbooks\t0.75",
            "g2\tBroke fast.\t\tnegative\tkitchen\t0.5",
        ],
        newline="\r\n",
    )
    write(tmp_path / "dev.tsv", ["guid\ttext_a\ttext_b\tlabel\tdomain", "d1\tFine dvd.\t\tpositive\tdvd"])
    p = get_processor("senti")
    train = p.get_train_examples(str(tmp_path))
    assert [(e.guid, e.text_a, e.text_b, e.label, e.domain, e.weight) for e in train] == [
        ("g1", "Great book.", None, "positive", "books", 0.75),
        ("g2", "Broke fast.", None, "negative", "kitchen", 0.5),
    ]
    (dev,) = p.get_dev_examples(str(tmp_path))
    assert dev.weight is None and dev.domain == "dvd"
    assert p.get_domains() == ["books", "dvd", "electronics", "kitchen"]
    assert p.get_labels() == ["positive", "negative"]
    assert [e.guid for e in select_domains(train, "kitchen")] == ["g2"]
    assert len(select_domains(train, "mix")) == 2


def test_senti_raw_layout_and_bom(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_bytes(b"\xef\xbb\xbfreview\tdomain\tsentiment\n Nice kettle.\tkitchen\tpositive\n")
    (e,) = get_processor("senti").get_train_examples(str(tmp_path))
    assert (e.text_a, e.domain, e.label) == (" Nice kettle.", "kitchen", "positive")


def test_senti_bad_header(tmp_path):
    path = write(tmp_path / "train.tsv", ["a\tb\tc", "x\ty\tz"])
    with pytest.raises(DataFormatError, match="header") as info:
        get_processor("senti").get_train_examples(str(tmp_path))
    assert info.value.path == path and info.value.line == 1


# ---------------------------------------------------------------------------------------------------
# Bad rows
# ---------------------------------------------------------------------------------------------------
SENTI_HEAD = "guid\ttext_a\ttext_b\tlabel\tdomain\tweight"


@pytest.mark.parametrize(
    "task,file,lines,line,field",
    [
        ("sst-2", "train.tsv", ["sentence\tlabel", "ok\t1", "too\tmany\tcols"], 3, "columns"),
        ("sst-2", "train.tsv", ["sentence\tlabel", "ok\t1", "what\t7"], 3, "label"),
        ("sst-2", "train.tsv", ["sentence\tlabel", "  \t1"], 2, "text_a"),
        ("mrpc", "train.tsv", ["h\th\th\th\th", "1\t1\t2\tA\t"], 2, "text_b"),
        ("cola", "train.tsv", ["s\t1\t\tok", "s\t1\tmissing"], 2, "columns"),
        ("g1", "train.csv", ["ok\tMR\t1", "ok\tIMDB\t1"], 2, "domain"),
        ("g1", "train.csv", ["ok\tMR\tpositive"], 1, "label"),
        ("g1", "train.csv", ["ok\tMR"], 1, "columns"),
        (
            "senti",
            "train.tsv",
            [SENTI_HEAD, "g\tText\t\tpositive\tbooks\t0.5", "g\tText\t\tneutral\tbooks\t1"],
            3,
            "label",
        ),
        ("senti", "train.tsv", [SENTI_HEAD, "g\tText\t\tpositive\ttoys\t0.5"], 2, "domain"),
        ("senti", "train.tsv", [SENTI_HEAD, "g\tText\t\tpositive\tbooks\theavy"], 2, "weight"),
        ("senti", "train.tsv", [SENTI_HEAD, "g\t\t\tpositive\tbooks\t1"], 2, "text_a"),
        ("senti", "train.tsv", [SENTI_HEAD, "g\tText\t\tpositive\tbooks"], 2, "columns"),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, task, file, lines, line, field):
    path = write(tmp_path / file, lines)
    with pytest.raises(DataFormatError) as info:
        get_processor(task).get_train_examples(str(tmp_path))
    message = str(info.value)
    assert path in message and f"line {line}" in message and f"'{field}'" in message
    assert (info.value.path, info.value.line, info.value.field) == (path, line, field)


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"fine\tMR\t1\nbad \xff\xfe text\tMR\t0\nalso fine\tCR\t0\n")
    with pytest.raises(DataFormatError) as info:
        get_processor("g1").get_train_examples(str(tmp_path))
    assert str(path) in str(info.value) and "line 2" in str(info.value) and "UTF-8" in str(info.value)
    # non-strict mode skips bad rows with a warning
    with pytest.warns(UserWarning, match="line 2"):
        examples = get_processor("g1", strict=False).get_train_examples(str(tmp_path))
    assert [e.text_a for e in examples] == ["fine", "also fine"]


def test_non_strict_skips_bad_rows(tmp_path):
    write(tmp_path / "train.tsv", ["sentence\tlabel", "ok\t1", "broken", "fine\t0"])
    with pytest.warns(UserWarning, match="skipped 1 bad rows"):
        examples = get_processor("sst-2", strict=False).get_train_examples(str(tmp_path))
    assert [e.text_a for e in examples] == ["ok", "fine"]


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="dev.tsv"):
        get_processor("rte").get_dev_examples(str(tmp_path))


def test_registry_is_case_insensitive_and_lists_tasks():
    assert type(get_processor("SeNtI")) is type(get_processor("senti"))
    assert get_processor("SST-2").name == "sst-2"
    with pytest.raises(ValueError) as info:
        get_processor("imdb")
    for task in ("sst-2", "cola", "mrpc", "qqp", "rte", "qnli", "mnli", "g1", "mr", "cr", "senti"):
        assert task in known_tasks()
        assert task in str(info.value)


# ---------------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------------
class TinyTokenizer:
    """Whitespace tokenizer over a fixed vocab (ids = positions), enough to check feature layout."""

    def __init__(self):
        self.vocab = {
            t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "b", "c", "d", "e"])
        }

    def tokenize(self, text):
        return text.split()

    def convert_tokens_to_ids(self, tokens):
        return [self.vocab.get(t, 1) for t in tokens]


def test_truncate_pair_pops_from_longer_then_b():
    a, b = list("aaaa"), list("bb")
    truncate_pair(a, b, 4)
    assert (a, b) == (list("aa"), list("bb"))
    a, b = list("aaa"), list("bbb")
    truncate_pair(a, b, 5)
    assert (a, b) == (list("aaa"), list("bb"))


def test_single_sentence_features():
    tok = TinyTokenizer()
    ex = [InputExample("x", "a b c", label="1"), InputExample("y", "a b c d e f", label=None)]
    f0, f1 = convert_examples_to_features(ex, ["0", "1"], 6, tok)
    assert f0.input_ids == [2, 4, 5, 6, 3, 0]
    assert f0.input_mask == [1, 1, 1, 1, 1, 0]
    assert f0.segment_ids == [0] * 6
    assert (f0.label_id, f0.idx, f0.weight, f0.domain_id) == (1, 0, 1.0, None)
    assert f1.input_ids == [2, 4, 5, 6, 7, 3]  # cut to seq_len - 2 tokens
    assert f1.label_id == -1 and f1.idx == 1


def test_pair_features_and_domains():
    tok = TinyTokenizer()
    ex = [InputExample("x", "a b c d", "e e", label="b", domain="kitchen", weight=0.25)]
    (f,) = convert_examples_to_features(ex, ["a", "b"], 8, tok, domain_list=["books", "kitchen"])
    # 4 + 2 tokens must fit in 8 - 3 = 5: "d" is dropped from the longer text_a
    assert f.input_ids == [2, 4, 5, 6, 3, 8, 8, 3]
    assert f.segment_ids == [0, 0, 0, 0, 0, 1, 1, 1]
    assert f.input_mask == [1] * 8
    assert (f.label_id, f.domain_id, f.weight) == (1, 1, 0.25)
    with pytest.raises(ValueError, match="domain 'toys'"):
        convert_examples_to_features(
            [InputExample("z", "a", label="a", domain="toys")], ["a", "b"], 8, tok, ["books"]
        )
    with pytest.raises(ValueError, match="label 'c'"):
        convert_examples_to_features([InputExample("z", "a", label="c")], ["a", "b"], 8, tok)


def test_features_to_arrays():
    tok = TinyTokenizer()
    ex = [InputExample(str(i), "a b", label="0", domain="d1", weight=i / 2) for i in range(3)]
    arrays = features_to_arrays(convert_examples_to_features(ex, ["0", "1"], 5, tok, ["d0", "d1"]))
    assert list(arrays) == [
        "input_ids",
        "input_mask",
        "segment_ids",
        "label_ids",
        "domain",
        "idxs",
        "weights",
    ]
    assert arrays["input_ids"].shape == (3, 5) and arrays["input_ids"].dtype == np.int32
    assert arrays["label_ids"].shape == (3,) and arrays["domain"].tolist() == [1, 1, 1]
    assert arrays["idxs"].tolist() == [0, 1, 2]
    assert arrays["weights"].dtype == np.float32 and arrays["weights"].tolist() == [0.0, 0.5, 1.0]
