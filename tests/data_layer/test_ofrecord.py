"""OFRecord writer and readers: byte format, round trips through OneFlow, corruption, rebuilds."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest
from oneflow.core.record import record_pb2

import model_compress  # noqa: F401  (sets up OneFlow)
from model_compress.data.loader import read_split_with_oneflow
from model_compress.data.ofrecord import (
    OFRecordError,
    StaleSplitError,
    count_records,
    encode_records,
    ensure_ofrecord_split,
    read_ofrecord_file,
    read_split,
    verify_split,
    write_ofrecord_file,
    write_split,
)
from tests.support import DOMAINS, LABELS, make_examples


def protobuf_record(row: dict) -> bytes:
    record = record_pb2.OFRecord()
    for name, value in row.items():
        value = np.atleast_1d(value)
        if value.dtype == np.float32:
            record.feature[name].float_list.value.extend(value.tolist())
        elif value.dtype == np.int64:
            record.feature[name].int64_list.value.extend(value.tolist())
        else:
            record.feature[name].int32_list.value.extend(value.tolist())
    return record.SerializeToString(deterministic=True)


def test_encoder_matches_protobuf_bytes():
    rng = np.random.default_rng(0)
    n = 50
    arrays = {
        "input_ids": rng.integers(0, 30522, (n, 16)).astype(np.int32),
        "label_ids": rng.integers(-1, 3, n).astype(np.int32),  # -1 is a 10-byte varint
        "extremes": np.array([[-(2**31), 2**31 - 1, 0, 127, 128, 16383, 16384]] * n, dtype=np.int32),
        "weights": rng.standard_normal(n).astype(np.float32),
        "i64": rng.integers(-(2**62), 2**62, (n, 2), dtype=np.int64),
    }
    encoded = encode_records(arrays)
    for i in range(n):
        row = {name: value[i] for name, value in arrays.items()}
        assert encoded[i] == protobuf_record(row)


def test_file_round_trip_python_reader(tmp_path):
    path = str(tmp_path / "x.of_record-0")
    arrays = {"a": np.arange(12, dtype=np.int32).reshape(4, 3), "w": np.array([0.5, -1, 2, 3], np.float32)}
    assert write_ofrecord_file(path, encode_records(arrays))[0] == 4
    records = list(read_ofrecord_file(path))
    assert len(records) == 4 and count_records(path) == 4
    assert records[2]["a"].tolist() == [6, 7, 8] and records[1]["w"].tolist() == [-1.0]
    assert [n for n in os.listdir(tmp_path)] == ["x.of_record-0"]  # no temp file left


def test_failed_write_leaves_nothing(tmp_path):
    path = str(tmp_path / "part-0")

    def records():
        yield b"abc"
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_ofrecord_file(path, records())
    assert os.listdir(tmp_path) == []


def test_split_round_trip_through_oneflow_and_python(tmp_path, data_tokenizer):
    examples = make_examples(11)
    info = ensure_ofrecord_split(
        examples, str(tmp_path), "train", data_tokenizer, 12, LABELS, DOMAINS, num_parts=3
    )
    assert info.directory == os.path.join(str(tmp_path), "ofrecord", "train")
    assert info.count == 11 and info.num_parts == 3
    assert info.features == [
        "input_ids",
        "input_mask",
        "segment_ids",
        "label_ids",
        "domain",
        "idxs",
        "weights",
    ]
    assert sorted(os.listdir(info.directory)) == ["meta.json"] + [f"train.of_record-{i}" for i in range(3)]
    python = read_split(info.directory)
    # chunk 4 does not divide 11: the last reader call wraps around and must be cut
    oneflow = read_split_with_oneflow(info.directory, chunk=4)
    assert set(python) == set(oneflow) == set(info.features)
    for name in info.features:
        assert python[name].dtype == oneflow[name].dtype
        np.testing.assert_array_equal(python[name], oneflow[name])
    assert python["input_ids"].shape == (11, 12) and python["label_ids"].shape == (11,)
    assert python["idxs"].tolist() == list(range(11))
    assert python["domain"].tolist() == [i % 4 for i in range(11)]
    np.testing.assert_allclose(python["weights"], [(i + 1) / 10 for i in range(11)], rtol=1e-6)
    assert python["weights"].dtype == np.float32 and python["input_mask"].dtype == np.int32
    # pair examples carry segment 1
    assert python["segment_ids"][0].max() == 1 and python["segment_ids"][1].max() == 0


def test_protobuf_written_file_reads_everywhere(tmp_path):
    """A file written by plain protobuf code (as the original tools did) reads back identically."""
    rng = np.random.default_rng(1)
    rows = [
        {
            "input_ids": rng.integers(0, 100, 8).astype(np.int32),
            "label_ids": np.int32(i % 2),
            "weights": np.float32(i / 3),
        }
        for i in range(5)
    ]
    directory = tmp_path / "ofrecord" / "dev"
    directory.mkdir(parents=True)
    with open(directory / "dev.of_record-0", "wb") as f:
        for row in rows:
            data = protobuf_record(row)
            f.write(struct.pack("<q", len(data)) + data)
    size = os.path.getsize(directory / "dev.of_record-0")
    meta = {
        "split": "dev",
        "count": 5,
        "seq_length": 8,
        "num_parts": 1,
        "part_prefix": "dev.of_record-",
        "parts": [{"file": "dev.of_record-0", "count": 5, "bytes": size}],
        "features": {
            "input_ids": {"dtype": "int32", "shape": [8]},
            "label_ids": {"dtype": "int32", "shape": [1]},
            "weights": {"dtype": "float32", "shape": [1]},
        },
    }
    (directory / "meta.json").write_text(json.dumps(meta))
    python = read_split(str(directory))
    oneflow = read_split_with_oneflow(str(directory), chunk=2)
    for name in meta["features"]:
        np.testing.assert_array_equal(python[name], oneflow[name])
    np.testing.assert_array_equal(python["input_ids"], np.stack([r["input_ids"] for r in rows]))


def test_truncated_file_names_file_and_offset(tmp_path):
    path = str(tmp_path / "t.of_record-0")
    _, size = write_ofrecord_file(path, encode_records({"a": np.arange(6, dtype=np.int32).reshape(3, 2)}))
    record_size = size // 3
    with open(path, "r+b") as f:
        f.truncate(size - 3)
    with pytest.raises(OFRecordError) as info:
        list(read_ofrecord_file(path))
    assert info.value.path == path and info.value.offset == 2 * record_size
    assert path in str(info.value) and f"byte offset {2 * record_size}" in str(info.value)
    with open(path, "r+b") as f:
        f.truncate(2 * record_size + 5)  # inside the length header
    with pytest.raises(OFRecordError, match="truncated length header"):
        count_records(path)


def test_corrupt_payload_and_length(tmp_path):
    path = str(tmp_path / "c.of_record-0")
    good = encode_records({"a": np.array([[1, 2]], dtype=np.int32)})[0]
    with open(path, "wb") as f:
        f.write(struct.pack("<q", len(good)) + good)
        f.write(struct.pack("<q", 4) + b"\xff\xff\xff\xff")
    with pytest.raises(OFRecordError, match="does not parse") as info:
        list(read_ofrecord_file(path))
    assert info.value.offset == 8 + len(good)
    with open(path, "wb") as f:
        f.write(struct.pack("<q", -5))
    with pytest.raises(OFRecordError, match="record length -5"):
        count_records(path)


def test_verify_split_catches_damage(tmp_path, data_tokenizer):
    info = ensure_ofrecord_split(make_examples(6), str(tmp_path), "dev", data_tokenizer, 10, LABELS)
    part = os.path.join(info.directory, "dev.of_record-0")
    size = os.path.getsize(part)
    with open(part, "r+b") as f:
        f.truncate(size - 1)
    with pytest.raises(OFRecordError, match="dev.of_record-0.*size"):
        verify_split(info.directory)
    os.remove(part)
    with pytest.raises(FileNotFoundError, match="part file missing"):
        verify_split(info.directory)


def test_resave_rewrites_instead_of_appending(tmp_path, data_tokenizer):
    examples = make_examples(7, weights=False)
    first = ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 10, LABELS)
    assert "weights" not in first.features and "domain" not in first.features
    for _ in range(2):
        again = ensure_ofrecord_split(
            examples, str(tmp_path), "train", data_tokenizer, 10, LABELS, resave=True
        )
        assert again.count == 7
        assert count_records(os.path.join(again.directory, "train.of_record-0")) == 7
        assert len(read_split(again.directory)["idxs"]) == 7
    left = sorted(os.listdir(os.path.join(str(tmp_path), "ofrecord")))
    assert left == [".train.lock", "train"]  # the lock file stays; no temp/old dirs left


def test_up_to_date_split_is_reused(tmp_path, data_tokenizer):
    examples = make_examples(5)
    first = ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 10, LABELS)
    part = os.path.join(first.directory, "train.of_record-0")
    inode = os.stat(part).st_ino
    second = ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 10, LABELS)
    assert os.stat(part).st_ino == inode and second.count == 5


def test_stale_split_is_rebuilt_or_reported(tmp_path, data_tokenizer):
    examples = make_examples(5)
    ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 10, LABELS)
    with pytest.raises(StaleSplitError, match="seq_length is 10, wanted 16"):
        ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 16, LABELS, on_stale="error")
    with pytest.warns(UserWarning, match="stale.*seq_length"):
        info = ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 16, LABELS)
    assert read_split(info.directory)["input_ids"].shape == (5, 16)
    # other data -> source_hash differs
    with pytest.raises(StaleSplitError, match="source_hash"):
        ensure_ofrecord_split(
            examples[:4], str(tmp_path), "train", data_tokenizer, 16, LABELS, on_stale="error"
        )
    # explicit weights change the data too, and add the weights feature
    info = ensure_ofrecord_split(
        examples,
        str(tmp_path),
        "train",
        data_tokenizer,
        16,
        LABELS,
        weights=[0.1, 0.2, 0.3, 0.4, 0.5],
        resave=True,
    )
    np.testing.assert_allclose(read_split(info.directory)["weights"], [0.1, 0.2, 0.3, 0.4, 0.5], rtol=1e-6)


def test_legacy_split_without_meta_is_rebuilt(tmp_path, data_tokenizer):
    legacy = tmp_path / "ofrecord" / "train"
    legacy.mkdir(parents=True)
    (legacy / "train.of_record-0").write_bytes(b"old appended records")
    with pytest.warns(UserWarning, match="meta.json"):
        info = ensure_ofrecord_split(make_examples(3), str(tmp_path), "train", data_tokenizer, 8, LABELS)
    assert info.count == 3 and len(read_split(info.directory)["idxs"]) == 3


def test_write_split_checks_shapes(tmp_path):
    with pytest.raises(ValueError, match="expected \\[N, 8\\]"):
        write_split({"input_ids": np.zeros((3, 4), np.int32)}, str(tmp_path), "train", seq_length=8)


_CONCURRENT_BUILDER = """
import sys, time
sys.path.insert(0, {root!r})
from model_compress.data import ofrecord
from model_compress.data.tokenization import FullTokenizer
from tests.support import LABELS, make_examples

real_write = ofrecord.write_split

def slow_write(*args, **kwargs):
    with open({marker!r}, "a") as f:
        f.write("built\\n")
    time.sleep(2.0)  # a slow build: the other job arrives while this one is still writing
    return real_write(*args, **kwargs)

ofrecord.write_split = slow_write
info = ofrecord.ensure_ofrecord_split(make_examples(7), {data!r}, "train", FullTokenizer({vocab!r}), 10, LABELS)
print(info.count)
"""


def test_concurrent_jobs_build_a_split_once(tmp_path, data_tokenizer):
    import subprocess
    import sys

    from tests.conftest import DATA_TEST_VOCAB, REPO_ROOT

    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(DATA_TEST_VOCAB) + "\n", encoding="utf-8")
    marker = tmp_path / "builds.txt"
    script = _CONCURRENT_BUILDER.format(root=REPO_ROOT, marker=str(marker), data=str(tmp_path / "task"),
                                        vocab=str(vocab))
    jobs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT)
            for _ in range(2)]
    outputs = [job.communicate(timeout=120)[0].strip() for job in jobs]
    assert [job.returncode for job in jobs] == [0, 0]
    assert outputs == ["7", "7"]
    assert marker.read_text().count("built") == 1
    assert read_split(str(tmp_path / "task" / "ofrecord" / "train"))["label_ids"].shape[0] == 7


def test_split_is_reused_where_no_lock_file_can_be_made(tmp_path, data_tokenizer):
    examples = make_examples(5)
    first = ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 10, LABELS)
    lock = tmp_path / "ofrecord" / ".train.lock"
    lock.unlink()
    lock.mkdir()  # opening it fails, as on a read-only dataset
    again = ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, 10, LABELS)
    assert again.directory == first.directory and again.meta == first.meta
