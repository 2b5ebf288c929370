"""Synthetic default data: deterministic, laid out like the real datasets, balanced, not trivial."""

from __future__ import annotations

import collections
import filecmp
import os
import re

import pytest

from model_compress.data import synthetic
from model_compress.data.kshot import sample_k_shot
from model_compress.data.processors import InputExample, get_processor

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("synthetic")
    counts = synthetic.make_all(str(out))
    return str(out), counts


def all_files(root):
    found = []
    for base, _, files in os.walk(root):
        found.extend(os.path.relpath(os.path.join(base, f), root) for f in files)
    return sorted(found)


def test_generator_is_deterministic(generated, tmp_path):
    out, _ = generated
    synthetic.make_all(str(tmp_path))
    files = all_files(out)
    assert files == all_files(str(tmp_path))
    match, mismatch, errors = filecmp.cmpfiles(out, str(tmp_path), files, shallow=False)
    assert not mismatch and not errors and len(match) == len(files)


def test_layout_and_sizes(generated):
    out, counts = generated
    assert counts["SENTI/train.tsv"] == 1600 and counts["SENTI/dev.tsv"] == 400
    assert counts["glue_data/SST-2/train.tsv"] == 1200 and counts["glue_data/SST-2/dev.tsv"] == 300
    for seed in (42, 21, 12):
        assert counts[f"k-shot-cross/g1/16-{seed}/train.csv"] == 96
        assert counts[f"k-shot-cross/g1/16-{seed}/dev.csv"] == 96
        for domain in ("SST-2", "MR", "CR"):
            assert counts[f"k-shot-single/{domain}/16-{seed}/train.csv"] == 32
            assert counts[f"k-shot-single/{domain}/16-{seed}/test.csv"] == 200
    for path in counts:
        assert os.path.isfile(os.path.join(out, path))


def test_processors_read_everything_with_both_labels_per_domain(generated):
    out, _ = generated
    senti = get_processor("senti")
    for split in ("train", "dev"):
        examples = senti.get_examples(os.path.join(out, "SENTI"), split)
        by_domain = collections.Counter((e.domain, e.label) for e in examples)
        for domain in senti.get_domains():
            for label in senti.get_labels():
                # balanced before 3% label noise
                assert abs(by_domain[(domain, label)] - len(examples) / 8) < len(examples) / 40
    sst = get_processor("sst-2").get_train_examples(os.path.join(out, "glue_data", "SST-2"))
    assert collections.Counter(e.label for e in sst).keys() == {"0", "1"}
    assert all(8 <= len(e.text_a.split()) <= 30 for e in sst)
    g1 = get_processor("g1").get_train_examples(os.path.join(out, "k-shot-cross", "g1", "16-42"))
    counts = collections.Counter((e.domain, e.label) for e in g1)
    assert counts == {(d, lab): 16 for d in ("SST-2", "MR", "CR") for lab in ("0", "1")}
    for task, domain in (("sst-2", "SST-2"), ("mr", "MR"), ("cr", "CR")):
        folder = os.path.join(out, "k-shot-single", domain, "16-21")
        for split in ("train", "dev", "test"):
            examples = get_processor(task).get_examples(folder, split)
            assert {e.label for e in examples} == {"0", "1"}


def test_splits_are_disjoint(generated):
    out, _ = generated
    senti = get_processor("senti")
    train = {e.text_a for e in senti.get_train_examples(os.path.join(out, "SENTI"))}
    dev = {e.text_a for e in senti.get_dev_examples(os.path.join(out, "SENTI"))}
    assert len(train) == 1600 and not train & dev
    single = os.path.join(out, "k-shot-single", "MR", "16-42")
    mr = get_processor("mr")
    sets = [{e.text_a for e in mr.get_examples(single, s)} for s in ("train", "dev", "test")]
    assert not sets[0] & sets[1] and not sets[0] & sets[2] and not sets[1] & sets[2]


def test_single_folders_match_the_cross_folder(generated):
    out, _ = generated
    cross = get_processor("g1").get_train_examples(os.path.join(out, "k-shot-cross", "g1", "16-12"))
    single = get_processor("cr").get_train_examples(os.path.join(out, "k-shot-single", "CR", "16-12"))
    assert [e.text_a for e in cross if e.domain == "CR"] == [e.text_a for e in single]


def test_words_do_not_give_the_label_away(generated):
    """Sentiment words occur in both classes (negation, contrast), so single words are not enough."""
    out, _ = generated
    examples = get_processor("senti").get_train_examples(os.path.join(out, "SENTI"))
    for word in ("great", "terrible", "not", "but"):
        labels = {e.label for e in examples if word in re.findall(r"[a-z']+", e.text_a.lower())}
        assert labels == {"positive", "negative"}, word


def test_sample_k_shot():
    pool = [
        InputExample(f"{d}{i}", f"text {d} {i}", label=str(i % 2), domain=d) for d in "ab" for i in range(40)
    ]
    train, dev = sample_k_shot(pool, 4, seed=3)
    assert len(train) == len(dev) == 16
    groups = collections.Counter((e.domain, e.label) for e in train)
    assert groups == {(d, lab): 4 for d in "ab" for lab in "01"}
    assert not {e.guid for e in train} & {e.guid for e in dev}
    assert [e.guid for e in sample_k_shot(pool, 4, seed=3)[0]] == [e.guid for e in train]
    assert [e.guid for e in sample_k_shot(pool, 4, seed=4)[0]] != [e.guid for e in train]
    with pytest.raises(ValueError, match="needed"):
        sample_k_shot(pool, 25, seed=0)


SHIPPED = os.path.isfile(os.path.join(ROOT, "data", "SENTI", "train.tsv"))


@pytest.mark.skipif(not SHIPPED, reason="no shipped data")
def test_shipped_data_is_the_generator_output(generated):
    out, counts = generated
    for path in counts:
        assert filecmp.cmp(
            os.path.join(out, path), os.path.join(ROOT, "data", path), shallow=False
        ), f"data/{path} differs from the generator output: run run_scripts/make_default_data.sh"
