"""Teacher knowledge computed once per (teacher, dataset, settings) and reused from disk.

Two forms:
- the logits file of the EasyNLP convention: one line per training row, in file order, values
  comma separated (`write_logits_file` / `read_logits_file`);
- a cache directory of .npy arrays (logits, [CLS] states, ...) per example index, memory-mapped on
  read, keyed by a hash of the teacher snapshot, the split's content and what was asked for. The
  fingerprint of that source (`cache_source`) and the key are stored in its index.json; a cache whose
  stored key, row count or arrays no longer match is rebuilt, never read (`checked_cache`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings

import numpy as np

from model_compress.files import atomic_open, write_json_atomic
from model_compress.finite import NonFiniteError, finite_float, require_finite


class TeacherFileError(ValueError):
    """A teacher logits file that does not fit the training data."""


LOGITS_META_SUFFIX = ".meta.json"


def write_logits_file(path: str, logits: np.ndarray, source_hash: str | None = None) -> None:
    """One line per row, comma separated, written atomically.

    With `source_hash` (the fingerprint of the split the logits were computed on, from its meta.json)
    a `<path>.meta.json` beside the file records it, so `read_logits_file` can tell logits of other
    data from the right ones even when the row counts agree.
    """
    with atomic_open(path) as f:
        for row in np.asarray(logits, dtype=np.float64):
            f.write(",".join(f"{v:.7g}" for v in row) + "\n")
        if source_hash:  # installed just before the logits: a kill between the two leaves a mismatch, detected
            write_json_atomic(path + LOGITS_META_SUFFIX, {"rows": int(len(logits)), "source_hash": source_hash},
                              indent=1, sort_keys=False)


def _check_logits_source(path: str, source_hash: str | None) -> None:
    meta_path = path + LOGITS_META_SUFFIX
    if not source_hash or not os.path.isfile(meta_path):
        return
    try:
        with open(meta_path, encoding="utf-8") as f:
            stored = json.load(f).get("source_hash")
    except (OSError, ValueError, AttributeError):
        raise TeacherFileError(f"{meta_path}: unreadable (delete it or export the logits again)") from None
    if stored and stored != source_hash:
        raise TeacherFileError(f"{path}: made from other training data than --data_dir/--train_example_num "
                               f"give now (fingerprint in {os.path.basename(meta_path)} differs): export the "
                               "logits again")


def read_logits_file(path: str, expected_rows: int, num_labels: int, source_hash: str | None = None
                     ) -> np.ndarray:
    """Parse a logits file and check it has one row per training example and one value per label.

    With `source_hash`, a fingerprint stored beside the file (see `write_logits_file`) must match it.
    """
    if not os.path.isfile(path):
        raise TeacherFileError(f"{path}: teacher logits file not found (export it with --export_logits)")
    _check_logits_source(path, source_hash)
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            text = line.strip()
            if not text:
                continue
            parts = text.split(",")
            if len(parts) != num_labels:
                raise TeacherFileError(
                    f"{path}, line {number}: {len(parts)} logits but the task has {num_labels} labels"
                )
            try:
                rows.append([finite_float(p) for p in parts])
            except NonFiniteError as exc:
                raise TeacherFileError(f"{path}, line {number}: {exc} (NaN and infinity are not accepted)") from None
            except ValueError:
                raise TeacherFileError(f"{path}, line {number}: not a number in {text[:60]!r}") from None
    if len(rows) != expected_rows:
        raise TeacherFileError(
            f"{path}: {len(rows)} rows of logits but the training set has {expected_rows} examples "
            "(export the logits again for this training file and --train_example_num)"
        )
    return np.asarray(rows, dtype=np.float32)


def snapshot_fingerprint(snapshot_dir: str) -> str:
    """Identifies a snapshot's content cheaply: names, sizes and mtimes of its files."""
    entries = []
    for root, _, files in os.walk(snapshot_dir):
        for name in sorted(files):
            st = os.stat(os.path.join(root, name))
            entries.append(f"{os.path.relpath(os.path.join(root, name), snapshot_dir)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]


def cache_source(teacher_dir: str, split_meta: dict) -> dict:
    """What a teacher cache is made from: the teacher snapshot's and the training split's fingerprints."""
    return {"teacher": snapshot_fingerprint(teacher_dir), "split": split_meta.get("source_hash"),
            "seq": split_meta.get("seq_length"), "count": split_meta.get("count")}


def cache_key(teacher_dir: str, split_meta: dict, spec: dict) -> str:
    raw = json.dumps({**cache_source(teacher_dir, split_meta), "spec": spec}, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:20]


def load_cache(directory: str) -> dict[str, np.ndarray] | None:
    """Arrays of a complete cache directory (memory-mapped), or None when absent.

    Raises TeacherFileError naming the file when index.json or an array is unreadable or truncated.
    """
    index = os.path.join(directory, "index.json")
    if not os.path.isfile(index):
        return None
    try:
        with open(index, encoding="utf-8") as f:
            names = json.load(f)["arrays"]
    except (OSError, ValueError, KeyError, TypeError):
        raise TeacherFileError(f"{index}: unreadable teacher cache index") from None
    arrays = {}
    for name in names:
        path = os.path.join(directory, f"{name}.npy")
        try:
            arrays[name] = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise TeacherFileError(f"{path}: damaged or truncated teacher cache array ({exc})") from None
        try:
            require_finite(arrays[name], path, row_name="example")
        except NonFiniteError as exc:
            raise TeacherFileError(str(exc)) from None
    return arrays


def checked_cache(directory: str, key: str, count: int | None) -> dict[str, np.ndarray] | None:
    """The cache in `directory` if it was made from the source `key` identifies and holds `count` rows.

    Otherwise (absent: silently; stale or damaged: with a warning naming the directory) None, so the
    caller rebuilds it.
    """
    index = os.path.join(directory, "index.json")
    if not os.path.isfile(index):
        return None
    try:
        arrays = load_cache(directory)
        with open(index, encoding="utf-8") as f:
            stored = json.load(f).get("key")
    except TeacherFileError as exc:
        warnings.warn(f"{exc}: rebuilding it", stacklevel=2)
        return None
    rows = {len(a) for a in arrays.values()}
    if stored != key or (count is not None and rows != {count}):
        warnings.warn(f"{directory}: teacher cache made from another teacher snapshot or training split "
                      f"(stored fingerprint differs): rebuilding it", stacklevel=2)
        return None
    return arrays


def save_cache(directory: str, arrays: dict[str, np.ndarray], info: dict) -> None:
    """Write arrays + index.json into a temp dir and rename it into place (never half a cache)."""
    parent = os.path.dirname(os.path.abspath(directory))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=parent)
    try:
        for name, array in arrays.items():
            np.save(os.path.join(tmp, f"{name}.npy"), np.ascontiguousarray(array))
        with open(os.path.join(tmp, "index.json"), "w", encoding="utf-8") as f:
            json.dump({"arrays": sorted(arrays), **info}, f, indent=2)
        if os.path.isdir(directory):
            shutil.rmtree(directory)
        os.replace(tmp, directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def compute_teacher_outputs(
    teacher, source, cls_layers=(), hidden_layers=(), eager: bool = False, vocab_map=None
) -> dict[str, np.ndarray]:
    """Run the frozen teacher once over `source` (eval order) -> arrays indexed by example index."""
    from model_compress.distill.objectives import TeacherTargets
    from model_compress.training.evaluation import Predictor

    targets = TeacherTargets(teacher, cls_layers, hidden_layers, vocab_map=vocab_map)
    outputs, features, _ = Predictor(targets, eager=eager).outputs(source)
    if not isinstance(outputs, list):
        outputs = [outputs]
    order = features["idxs"].reshape(-1).astype(np.int64)
    arrays = {}
    for name, values in zip(targets.names, outputs):
        placed = np.empty_like(values)
        placed[order] = values
        arrays[name] = placed
    return arrays


def cached_teacher_outputs(
    teacher_dir: str,
    teacher,
    source,
    split_meta: dict,
    cache_root: str,
    cls_layers=(),
    hidden_layers=(),
    eager: bool = False,
    refresh: bool = False,
    vocab_map=None,
) -> tuple[dict[str, np.ndarray], str, bool]:
    """Teacher outputs for a split from `cache_root`, computing and storing them on a miss.

    Under the launcher every rank takes part in computing the outputs (the teacher is global), only
    rank 0 writes the cache, and the others read it after a barrier: two ranks replacing the same
    directory would pull it from under each other's reads.
    With `vocab_map` (the split holds a student's ids, see ``data.vocab_map``) the key includes the map.
    Returns (arrays, cache directory, whether it was a cache hit).
    """
    from model_compress.training import distributed

    spec = {"cls_layers": list(cls_layers), "hidden_layers": list(hidden_layers)}
    if vocab_map is not None:
        spec["vocab_map"] = vocab_map.fingerprint
    key = cache_key(teacher_dir, split_meta, spec)
    directory = os.path.join(cache_root, key)
    if not refresh:
        found = checked_cache(directory, key, split_meta.get("count"))
        if found is not None:
            return found, directory, True
    arrays = compute_teacher_outputs(teacher, source, cls_layers, hidden_layers, eager, vocab_map)
    for name, values in arrays.items():
        try:
            require_finite(values, f"teacher {teacher_dir}: its {name}", row_name="example")
        except NonFiniteError as exc:
            raise TeacherFileError(f"{exc}: the teacher snapshot is damaged or diverged") from None
    if distributed.rank() == 0:
        save_cache(directory, arrays, {"teacher": os.path.abspath(teacher_dir), "key": key,
                                       "source": cache_source(teacher_dir, split_meta), **spec})
    distributed.barrier()
    return load_cache(directory), directory, False
