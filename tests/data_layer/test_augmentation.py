"""TinyBERT data augmentation: embedding neighbours, deterministic rows, the train_aug.tsv cache."""

from __future__ import annotations

import dataclasses
import json
import os
import random

import numpy as np
import pytest

from model_compress.data.augmentation import (
    AUG_FILE,
    AUG_META,
    AugmentSpec,
    WordNeighbours,
    augment_examples,
    augment_text,
    ensure_augmented,
    read_augmented,
)
from model_compress.data.processors import InputExample
from tests.conftest import DATA_TEST_VOCAB


@pytest.fixture()
def embeddings():
    """Vectors over DATA_TEST_VOCAB where good~great, bad~dull, book~film~kettle (and the rest far away)."""
    rs = np.random.RandomState(0)
    index = {w: i for i, w in enumerate(DATA_TEST_VOCAB)}
    matrix = rs.randn(len(DATA_TEST_VOCAB), 8).astype(np.float32) * 0.1
    axes = {"good": 0, "great": 0, "bad": 1, "dull": 1, "book": 2, "film": 2, "kettle": 2}
    for word, axis in axes.items():
        matrix[index[word], axis] += 3.0
    matrix[index["great"], 3] += 0.5  # great is a little further from good than good is from great's rivals
    matrix[index["kettle"], 4] += 1.5  # kettle the furthest of the three things
    return matrix


def examples(*texts):
    return [InputExample(f"train-{i}", t, None, str(i % 2)) for i, t in enumerate(texts)]


def test_neighbours_are_nearest_whole_words_by_cosine(data_tokenizer, embeddings):
    neighbours = WordNeighbours(embeddings, data_tokenizer, num_candidates=2)
    assert neighbours.candidates("good")[0] == "great"
    assert neighbours.candidates("bad")[0] == "dull"
    assert neighbours.candidates("book") == ["film", "kettle"]
    for word in ("good", "bad", "book"):
        found = neighbours.candidates(word)
        assert word not in found and len(found) == 2
    # never a stop word, a piece or a special token
    assert not set(neighbours.words) & {"the", "a", "not", "is", "was", "but", "very", "##s", "##ly", "[CLS]"}
    # a word the vocab splits into pieces is looked up by its pieces' mean ("books" = book + ##s)
    assert neighbours.candidates("books")[0] == "book"
    assert neighbours.candidates("zzz") == []  # no known pieces: no candidates


def test_rows_are_deterministic_and_follow_p(data_tokenizer, embeddings):
    neighbours = WordNeighbours(embeddings, data_tokenizer, num_candidates=1)
    spec = AugmentSpec(num_tries=5, num_candidates=1, replace_prob=0.5, seed=3)
    text = "the book is good but the film was bad"

    def run(s):
        return augment_text(text, data_tokenizer, neighbours, s, random.Random(s.seed))

    first = run(spec)
    assert first == run(spec) and first
    assert len(first) == len(set(first)) <= 5 and "the book is good but the film was bad" not in first
    for row in first:  # only content words change, each to its one candidate
        for old, new in zip(text.split(), row.split()):
            assert new == old or (old, new) in {("book", "film"), ("good", "great"), ("film", "book"),
                                                ("bad", "dull")}
    always = run(dataclasses.replace(spec, replace_prob=1.0))
    assert always == ["the film is great but the book was dull"]
    assert run(dataclasses.replace(spec, replace_prob=0.0)) == []
    assert augment_text("the a not", data_tokenizer, neighbours, spec, random.Random(0)) == []


def test_examples_keep_the_original_first_and_pairs_augment_each_side(data_tokenizer, embeddings):
    neighbours = WordNeighbours(embeddings, data_tokenizer, num_candidates=2)
    spec = AugmentSpec(num_tries=4, num_candidates=2, replace_prob=1.0, seed=0)
    pair = InputExample("train-1", "good book", "bad film", "1")
    rows = augment_examples([pair], data_tokenizer, neighbours, spec)
    assert rows[0] == pair
    a_side = [r for r in rows[1:] if r.guid.startswith("train-1-a")]
    b_side = [r for r in rows[1:] if r.guid.startswith("train-1-b")]
    assert a_side and b_side and len(rows) == 1 + len(a_side) + len(b_side)
    assert all(r.text_b == "bad film" and r.text_a != "good book" for r in a_side)
    assert all(r.text_a == "good book" and r.text_b != "bad film" for r in b_side)
    assert all(r.label == "1" for r in rows)


def test_cache_is_written_once_reused_and_rebuilt_on_change(tmp_path, data_tokenizer, embeddings):
    spec = AugmentSpec(num_tries=3, num_candidates=2, replace_prob=0.5, seed=1)
    source = examples("the book is good", "a bad film", "not a great kettle")
    rows, path, reused = ensure_augmented(str(tmp_path), source, data_tokenizer, embeddings, spec)
    assert not reused and path == str(tmp_path / AUG_FILE) and len(rows) > len(source)
    assert open(path).readline() == "sentence\tlabel\n"
    assert [(r.text_a, r.label) for r in read_augmented(path)] == [(r.text_a, r.label) for r in rows]
    meta = json.load(open(tmp_path / AUG_META))
    assert meta["count"] == len(rows) and meta["source_count"] == 3 and meta["num_tries"] == 3
    stamp = os.stat(path).st_mtime_ns

    again, _, reused = ensure_augmented(str(tmp_path), source, data_tokenizer, embeddings, spec)
    assert reused and os.stat(path).st_mtime_ns == stamp
    assert [r.text_a for r in again] == [r.text_a for r in rows]

    changed = examples("the book is good", "a bad film", "not a dull kettle")
    _, _, reused = ensure_augmented(str(tmp_path), changed, data_tokenizer, embeddings, spec)
    assert not reused  # the source changed
    _, _, reused = ensure_augmented(str(tmp_path), changed, data_tokenizer, embeddings,
                                    dataclasses.replace(spec, seed=2))
    assert not reused  # the spec changed
    other = embeddings.copy()
    other[5] += 1.0
    _, _, reused = ensure_augmented(str(tmp_path), changed, data_tokenizer, other, dataclasses.replace(spec, seed=2))
    assert not reused  # the embedding matrix changed
    # a damaged file under a matching key is rebuilt, not trusted
    with open(path, "a") as f:
        f.write("one more\t0\n")
    _, _, reused = ensure_augmented(str(tmp_path), changed, data_tokenizer, other, dataclasses.replace(spec, seed=2))
    assert not reused
    assert sorted(os.listdir(tmp_path)) == sorted([AUG_FILE, AUG_META])  # nothing half-written left behind


def test_pairs_round_trip_and_bad_spec(tmp_path, data_tokenizer, embeddings):
    spec = AugmentSpec(num_tries=2, num_candidates=2, replace_prob=1.0, seed=0)
    source = [InputExample("train-1", "good book", "bad film", "0")]
    rows, path, _ = ensure_augmented(str(tmp_path), source, data_tokenizer, embeddings, spec)
    back = read_augmented(path)
    assert [(r.text_a, r.text_b, r.label) for r in back] == [(r.text_a, r.text_b, r.label) for r in rows]
    for bad in (dict(num_tries=0), dict(num_candidates=0), dict(replace_prob=1.5)):
        with pytest.raises(ValueError):
            AugmentSpec(**bad)
    with pytest.raises(ValueError, match="does not cover"):
        WordNeighbours(embeddings[:5], data_tokenizer, 2)
