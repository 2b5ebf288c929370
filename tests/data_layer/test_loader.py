"""Batch loader over OneFlow's OFRecordReader: epochs, shuffling, partial batches, sharding."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import oneflow as flow
import pytest

import model_compress  # noqa: F401  (sets up OneFlow)
from model_compress.data.loader import OFRecordLoader, shard_indices
from model_compress.data.ofrecord import OFRecordError, ensure_ofrecord_split, read_split
from model_compress.data.processors import InputExample

LABELS = ["negative", "positive"]
DOMAINS = ["books", "dvd"]
N = 23


@pytest.fixture()
def split(tmp_path, data_tokenizer):
    words = ["good", "bad", "the", "book", "film", "very", "not", "great", "dull", "kettle"]
    examples = [
        InputExample(
            f"g{i}",
            " ".join(words[(i + j) % 10] for j in range(1 + i % 7)),
            None,
            LABELS[i % 2],
            DOMAINS[i % 2],
            1.0 + i,
        )
        for i in range(N)
    ]
    return ensure_ofrecord_split(
        examples, str(tmp_path), "train", data_tokenizer, 9, LABELS, DOMAINS, num_parts=2
    )


def collect(loader):
    return [batch for batch in loader]


def test_eval_loader_yields_every_record_once_with_partial_last_batch(split):
    loader = OFRecordLoader(split.directory, batch_size=5, train=False, read_chunk=4)
    assert len(loader) == 5  # 23 records: 4 full batches and one of 3
    batches = collect(loader)
    assert [len(b["idxs"]) for b in batches] == [5, 5, 5, 5, 3]
    idxs = np.concatenate([b["idxs"].numpy() for b in batches])
    assert idxs.tolist() == list(range(N))
    # values equal the python reader's
    reference = read_split(split.directory)
    for name in split.features:
        got = np.concatenate([b[name].numpy() for b in batches])
        np.testing.assert_array_equal(got, reference[name])
    # a second pass gives the same batches
    again = collect(loader)
    assert np.concatenate([b["idxs"].numpy() for b in again]).tolist() == list(range(N))


def test_batch_dtypes_and_shapes(split):
    batch = next(iter(OFRecordLoader(split.directory, batch_size=4)))
    assert list(batch) == ["input_ids", "input_mask", "segment_ids", "label_ids", "domain", "idxs", "weights"]
    for name in ("input_ids", "input_mask", "segment_ids"):
        assert isinstance(batch[name], flow.Tensor)
        assert batch[name].dtype == flow.int32 and tuple(batch[name].shape) == (4, 9)
    for name in ("label_ids", "domain", "idxs"):
        assert batch[name].dtype == flow.int32 and tuple(batch[name].shape) == (4,)
    assert batch["weights"].dtype == flow.float32 and tuple(batch["weights"].shape) == (4,)
    assert batch["weights"].numpy().tolist() == [1.0, 2.0, 3.0, 4.0]


def test_train_loader_shuffles_per_epoch_with_fixed_seed(split):
    loader = OFRecordLoader(split.directory, batch_size=5, train=True, seed=7)
    assert len(loader) == 4  # drop_last: 23 // 5
    epochs = [np.concatenate([b["idxs"].numpy() for b in loader]) for _ in range(3)]
    for order in epochs:
        assert len(order) == 20 and len(set(order.tolist())) == 20  # no record twice in an epoch
    assert epochs[0].tolist() != epochs[1].tolist()
    assert epochs[0].tolist() != list(range(20))
    # the same seed and epoch give the same order
    other = OFRecordLoader(split.directory, batch_size=5, train=True, seed=7)
    assert np.concatenate([b["idxs"].numpy() for b in other]).tolist() == epochs[0].tolist()
    other.set_epoch(2)
    assert np.concatenate([b["idxs"].numpy() for b in other]).tolist() == epochs[2].tolist()
    # rows stay aligned with their idxs
    reference = read_split(split.directory)
    batch = next(iter(OFRecordLoader(split.directory, batch_size=5, train=True, seed=3)))
    np.testing.assert_array_equal(batch["input_ids"].numpy(), reference["input_ids"][batch["idxs"].numpy()])


def test_two_rank_eval_shards_are_disjoint_and_complete(split):
    seen = []
    for rank in range(2):
        loader = OFRecordLoader(split.directory, batch_size=4, rank=rank, world_size=2)
        seen.append(np.concatenate([b["idxs"].numpy() for b in loader]).tolist())
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(N))
    assert (len(seen[0]), len(seen[1])) == (12, 11)


def test_two_rank_train_shards_are_disjoint_and_equal(split):
    for epoch in range(2):
        shards = []
        for rank in range(2):
            loader = OFRecordLoader(
                split.directory, batch_size=3, train=True, seed=5, rank=rank, world_size=2
            )
            loader.set_epoch(epoch)
            shards.append(np.concatenate([b["idxs"].numpy() for b in loader]).tolist())
        assert len(shards[0]) == len(shards[1]) == 9  # 11 per rank, 3 full batches
        assert not set(shards[0]) & set(shards[1])


def test_shard_indices_cover_everything():
    for world in (1, 2, 3, 4):
        parts = [
            shard_indices(10, r, world, shuffle=True, seed=1, epoch=0, equal_shards=False)
            for r in range(world)
        ]
        assert sorted(np.concatenate(parts).tolist()) == list(range(10))
        equal = [
            shard_indices(10, r, world, shuffle=True, seed=1, epoch=0, equal_shards=True)
            for r in range(world)
        ]
        assert len({len(p) for p in equal}) == 1
    with pytest.raises(ValueError, match="rank 2"):
        shard_indices(10, 2, 2, False, 0, 0, False)


def test_numpy_mode_and_feature_subset(split):
    loader = OFRecordLoader(
        split.directory, batch_size=10, features=["input_ids", "label_ids"], as_numpy=True
    )
    batch = next(iter(loader))
    assert set(batch) == {"input_ids", "label_ids"}
    assert batch["input_ids"].dtype == np.int32 and batch["label_ids"].tolist() == [i % 2 for i in range(10)]
    with pytest.raises(KeyError, match="no feature 'logits'"):
        OFRecordLoader(split.directory, batch_size=2, features=["logits"])


def test_batch_larger_than_shard_with_drop_last(split):
    with pytest.raises(ValueError, match="fewer than one batch"):
        OFRecordLoader(split.directory, batch_size=64, train=True)
    assert len(OFRecordLoader(split.directory, batch_size=64, train=False)) == 1


def test_damaged_split_raises_instead_of_aborting(split):
    part = os.path.join(split.directory, "train.of_record-1")
    with open(part, "r+b") as f:
        f.truncate(os.path.getsize(part) - 10)
    with pytest.raises(OFRecordError, match="train.of_record-1"):
        OFRecordLoader(split.directory, batch_size=4)


def test_missing_split_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no prepared split"):
        OFRecordLoader(str(tmp_path / "ofrecord" / "dev"), batch_size=4)


@pytest.mark.slow
def test_launcher_ranks_get_disjoint_shards(split, tmp_path):
    """Two real processes started by OneFlow's launcher pick their rank from the environment."""
    script = tmp_path / "shard.py"
    script.write_text(
        textwrap.dedent(f"""
        import model_compress, json, oneflow as flow
        from model_compress.data.loader import OFRecordLoader
        loader = OFRecordLoader({split.directory!r}, batch_size=4)
        idxs = [int(i) for b in loader for i in b["idxs"].numpy()]
        with open({str(tmp_path)!r} + f"/rank{{flow.env.get_rank()}}.json", "w") as f:
            json.dump(idxs, f)
    """)
    )
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root)
    subprocess.run(
        [sys.executable, "-m", "oneflow.distributed.launch", "--nproc_per_node", "2", str(script)],
        check=True,
        env=env,
        timeout=300,
    )
    import json

    shards = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(N))
