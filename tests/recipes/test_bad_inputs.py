"""A catalogue of user mistakes and damaged files: each ends in one line naming the file, line or flag,
exit code 2, no traceback, and nothing half-written on disk.

Most cases call the jobs' entry functions in this process (they raise the same SystemExit an entry
script exits with); a few run the entry scripts as a user would.
"""

from __future__ import annotations

import glob
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import oneflow as flow
import pytest

from model_compress.recipes import kd as kd_recipe
from model_compress.recipes import metakd as metakd_job
from model_compress.recipes import pkd as pkd_recipe
from model_compress.recipes import teacher as teacher_job
from tests.conftest import REPO_ROOT
from tests.support import clean_success, leftovers, one_line_failure, refused, run_script

FAST = ["--seq_length", "16", "--batch_size_per_device", "8", "--eval_batch_size_per_device", "8"]


@pytest.fixture()
def teacher_args(tiny_model_dir, tiny_sst2_dir, tmp_path):
    """task_teacher.py flags on the tiny model and a small SST-2 folder (training would start)."""
    return ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--model_load_dir", tiny_model_dir,
            "--model_save_dir", str(tmp_path / "out"), "--do_train", *FAST]


# ----------------------------------------------------------------------------------------------
# text data


def _rewrite(path: str, transform) -> None:
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(transform(lines))


@pytest.mark.parametrize("transform, needles", [
    (lambda lines: lines[1:], ["train.tsv, line 1", "header"]),  # GLUE file without its header
    (lambda lines: lines[:3] + ["a fine film\t7\n"] + lines[3:], ["train.tsv, line 4", "label"]),
    (lambda lines: lines[:2] + ["only one column\n"] + lines[2:], ["train.tsv, line 3", "column"]),
    (lambda lines: lines[:2] + ["   \t1\n"] + lines[2:], ["train.tsv, line 3", "text"]),
    (lambda lines: lines[:1], ["train split has no examples"]),
], ids=["no-header", "unknown-label", "one-column", "empty-text", "header-only"])
def test_bad_glue_rows(teacher_args, tiny_sst2_dir, capsys, transform, needles):
    _rewrite(os.path.join(tiny_sst2_dir, "train.tsv"), transform)
    refused(teacher_job.main, teacher_args, capsys, *needles, root=tiny_sst2_dir)
    assert not os.path.exists(os.path.join(tiny_sst2_dir, "ofrecord", "train"))


def test_undecodable_bytes_name_the_line(teacher_args, tiny_sst2_dir, capsys):
    with open(os.path.join(tiny_sst2_dir, "train.tsv"), "ab") as f:
        f.write(b"caf\xe9 noir\t1\n")
    refused(teacher_job.main, teacher_args, capsys, "train.tsv, line 98", "UTF-8")


def test_missing_data_dir_and_unknown_task(teacher_args, tmp_path, capsys):
    args = list(teacher_args)
    args[args.index("--data_dir") + 1] = str(tmp_path / "nowhere")
    refused(teacher_job.main, args, capsys, "--data_dir", "nowhere")
    args = list(teacher_args)
    args[args.index("--task_name") + 1] = "sst-3"
    refused(teacher_job.main, args, capsys, "sst-3")


# ----------------------------------------------------------------------------------------------
# flags (all refused before any data or model is read)


@pytest.mark.parametrize("flag, value, needle", [
    ("--num_epochs", "0", "--num_epochs"),
    ("--num_epochs", "-1", "--num_epochs"),
    ("--max_steps", "-5", "--max_steps"),
    ("--learning_rate", "-1e-5", "--learning_rate"),
    ("--learning_rate", "0", "--learning_rate"),
    ("--warmup_proportion", "1.5", "--warmup_proportion"),
    ("--weight_decay_rate", "-0.1", "--weight_decay_rate"),
    ("--eval_every_step_num", "-1", "--eval_every_step_num"),
    ("--train_example_num", "-3", "--train_example_num"),
    ("--device", "gpu", "--device gpu"),
    ("--device", "cuda", "--device cuda"),
    ("--device", "tpu", "--device tpu"),
    ("--seq_length", "0", "--seq_length"),
    ("--batch_size_per_device", "0", "--batch_size_per_device"),
    ("--gradient_accumulation_steps", "0", "--gradient_accumulation_steps"),
    ("--gradient_accumulation_steps", "5", "does not split into --gradient_accumulation_steps 5"),
], ids=lambda v: str(v))
def test_bad_training_flags(teacher_args, capsys, flag, value, needle):
    refused(teacher_job.main, [*teacher_args, flag, value], capsys, needle)


@pytest.mark.parametrize("entry, argv, flag", [
    ("teacher", ["--num_ep", "2"], "--num_ep"),
    ("kd", ["--temp", "2"], "--temp"),
    ("pkd", ["--pkd_var", "original"], "--pkd_var"),
    ("metakd", ["--distill_st", "first"], "--distill_st"),
    ("mft", ["--model_load", "x"], "--model_load"),
    ("minilm", ["--input_dir", "a", "--output_dir", "b", "--teacher_model_name", "x"], "--teacher_model_name"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_abbreviated_flags_are_refused(entry, argv, flag, capsys):
    """A flag must be spelled out: `--num_ep` is not silently read as `--num_epochs`."""
    from model_compress.recipes import mft
    from model_compress.recipes import minilm as general_distill

    mains = {"teacher": teacher_job.main, "kd": kd_recipe.main, "pkd": pkd_recipe.main,
             "metakd": metakd_job.distill_main, "mft": mft.preprocess_main, "minilm": general_distill.main}
    refused(mains[entry], argv, capsys, "unrecognized arguments", flag)


def test_model_save_dir_that_is_a_file(teacher_args, tmp_path, capsys):
    target = tmp_path / "a_file"
    target.write_text("keep me")
    refused(teacher_job.main, [*teacher_args, "--model_save_dir", str(target)], capsys, "--model_save_dir",
            str(target))
    assert target.read_text() == "keep me"


def test_negative_kd_beta_and_bad_kd_weights(tiny_model_dir, tiny_sst2_dir, tmp_path, capsys):
    base = ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--teacher_model", tiny_model_dir,
            "--student_model", tiny_model_dir, "--do_train", *FAST]
    refused(pkd_recipe.main, [*base, "--kd_beta", "-1"], capsys, "--kd_beta")
    refused(pkd_recipe.main, [*base, "--kd_alpha", "1.5"], capsys, "--kd_alpha")
    kd = ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--student_model", tiny_model_dir, "--do_train", *FAST]
    refused(kd_recipe.main, [*kd, "--temperature", "0"], capsys, "--temperature")


def test_uneven_pkd_layers(tiny_model_dir, tiny_sst2_dir, tmp_path, capsys):
    """A 3-layer student of the 4-layer teacher would never learn from the top teacher layer."""
    refused(pkd_recipe.main, ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--teacher_model",
                                   tiny_model_dir, "--from_scratch", "--student_num_hidden_layers", "3",
                                   "--do_train", *FAST], capsys, "3-layer student", "4-layer teacher")


def test_seq_length_above_positions_before_any_ofrecord(teacher_args, tiny_sst2_dir, capsys):
    args = list(teacher_args)
    args[args.index("--seq_length") + 1] = "128"  # the tiny model has 64 positions
    refused(teacher_job.main, [*args, "--resave_ofrecord"], capsys, "--seq_length 128", "64 positions")
    assert not os.path.exists(os.path.join(tiny_sst2_dir, "ofrecord"))


# ----------------------------------------------------------------------------------------------
# vocab


def test_vocab_without_unk(teacher_args, tmp_path, capsys):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[CLS]\n[SEP]\nthe\n", encoding="utf-8")
    refused(teacher_job.main, [*teacher_args, "--vocab_file", str(vocab)], capsys, str(vocab), "[UNK]")


def test_vocab_larger_than_the_model(teacher_args, tiny_model_dir, tmp_path, capsys):
    vocab = tmp_path / "vocab.txt"
    with open(os.path.join(tiny_model_dir, "vocab.txt"), encoding="utf-8") as f:
        words = f.read().splitlines()
    vocab.write_text("\n".join(words + [f"extra{i}" for i in range(10)]) + "\n", encoding="utf-8")
    refused(teacher_job.main, [*teacher_args, "--vocab_file", str(vocab)], capsys, str(vocab), "embeds only")


def test_missing_vocab_file(teacher_args, tmp_path, capsys):
    refused(teacher_job.main, [*teacher_args, "--vocab_file", str(tmp_path / "none.txt")], capsys, "--vocab_file")


# ----------------------------------------------------------------------------------------------
# models


@pytest.fixture()
def model_copy(tiny_model_dir, tmp_path):
    target = tmp_path / "model"
    shutil.copytree(tiny_model_dir, target)
    return str(target)


def _with_model(args, model):
    args = list(args)
    args[args.index("--model_load_dir") + 1] = model
    return args


def test_missing_model_dir(teacher_args, tmp_path, capsys):
    refused(teacher_job.main, _with_model(teacher_args, str(tmp_path / "nope")), capsys, "nope")


def test_truncated_snapshot_tensor(teacher_args, model_copy, capsys):
    # flow.save numbers its tensor folders by a process-wide counter: take the largest tensor file
    tensors = glob.glob(os.path.join(model_copy, "tensor_*", "out"))
    assert tensors
    tensor = max(tensors, key=os.path.getsize)
    with open(tensor, "r+b") as f:
        f.truncate(os.path.getsize(tensor) // 2)
    refused(teacher_job.main, _with_model(teacher_args, model_copy), capsys, model_copy, "damaged or truncated")


def test_truncated_pickled_data(teacher_args, model_copy, capsys):
    path = os.path.join(model_copy, "pickled_data")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    refused(teacher_job.main, _with_model(teacher_args, model_copy), capsys, model_copy)


def test_config_that_does_not_match_the_weights(teacher_args, model_copy, capsys):
    info_path = os.path.join(model_copy, "snapshot.json")
    info = json.loads(open(info_path).read())
    info["config"]["intermediate_size"] = 96
    open(info_path, "w").write(json.dumps(info))
    refused(teacher_job.main, _with_model(teacher_args, model_copy), capsys, model_copy, "does not match")


def test_snapshot_json_not_json(teacher_args, model_copy, capsys):
    with open(os.path.join(model_copy, "snapshot.json"), "w") as f:
        f.write("{not json")
    refused(teacher_job.main, _with_model(teacher_args, model_copy), capsys, "snapshot.json")


def _legacy_pair(tmp_path, tiny_model_dir):
    """A legacy snapshot holding the 4-layer teacher (bert-*) and a 2-layer student (student-bert-*)."""
    from model_compress.modeling.checkpoint import load_snapshot, write_legacy_snapshot
    from model_compress.modeling.slicing import slice_layers

    state, config, _ = load_snapshot(tiny_model_dir)
    target = tmp_path / "legacy"
    write_legacy_snapshot(state, str(target))
    student, s_config = slice_layers(state, config, "1,3")
    student = {k: v + 1.0 for k, v in student.items()}  # tell the two apart
    write_legacy_snapshot(student, str(tmp_path / "student_only"), prefix="student-")
    for name in os.listdir(tmp_path / "student_only"):
        os.rename(tmp_path / "student_only" / name, target / name)
    return str(target), state, student


def test_legacy_snapshot_with_teacher_and_student(tiny_model_dir, tmp_path, capsys):
    from model_compress.recipes.common import load_classifier

    path, teacher_state, student_state = _legacy_pair(tmp_path, tiny_model_dir)
    model, config, _ = load_classifier(path, 2, student=True, verbose=False)
    assert config.num_hidden_layers == 2
    word = "bert.embeddings.word_embeddings.weight"
    np.testing.assert_allclose(model.state_dict()[word].numpy(), student_state[word], rtol=1e-6)
    assert "taking the student (student-bert-*)" in capsys.readouterr().err
    model, config, _ = load_classifier(path, 2, verbose=False)
    assert config.num_hidden_layers == 4
    assert "taking the teacher (bert-*)" in capsys.readouterr().err


def test_legacy_embedding_shorter_than_vocab(teacher_args, tiny_model_dir, tmp_path, capsys):
    from model_compress.modeling.checkpoint import load_snapshot, write_legacy_snapshot

    state, _, _ = load_snapshot(tiny_model_dir)
    word = "bert.embeddings.word_embeddings.weight"
    state[word] = state[word][:1000]
    target = str(tmp_path / "short")
    write_legacy_snapshot(state, target)
    shutil.copyfile(os.path.join(tiny_model_dir, "vocab.txt"), os.path.join(target, "vocab.txt"))
    refused(teacher_job.main, _with_model(teacher_args, target), capsys, "embeds only 1000")


# ----------------------------------------------------------------------------------------------
# OFRecord splits and teacher files


@pytest.fixture()
def built_split(tiny_sst2_dir, tiny_model_dir):
    from model_compress.data.ofrecord import ensure_ofrecord_split
    from model_compress.data.processors import get_processor
    from model_compress.data.tokenization import FullTokenizer

    processor = get_processor("sst-2")
    examples = processor.get_examples(tiny_sst2_dir, "train")
    tokenizer = FullTokenizer(os.path.join(tiny_model_dir, "vocab.txt"))
    info = ensure_ofrecord_split(examples, tiny_sst2_dir, "train", tokenizer, 16, processor.get_labels())
    return info.directory


def _part(directory):
    return os.path.join(directory, "train.of_record-0")


def test_damaged_record_mid_part_is_found_before_oneflow(built_split):
    from model_compress.data.loader import OFRecordLoader
    from model_compress.data.ofrecord import OFRecordError

    part = _part(built_split)
    with open(part, "r+b") as f:  # same size, meta.json still matches the size and count
        f.seek(os.path.getsize(part) // 2)
        f.write(b"\xff" * 16)
    with pytest.raises(OFRecordError, match=re.escape(part)):
        OFRecordLoader(built_split, 8)


def test_damaged_split_in_a_job_is_rebuilt_from_the_text(built_split, tiny_sst2_dir, tiny_model_dir):
    from model_compress.recipes.common import load_task_data
    from model_compress.recipes.settings import DataSettings

    part = _part(built_split)
    with open(part, "r+b") as f:
        f.seek(os.path.getsize(part) // 2)
        f.write(b"\xff" * 16)
    data = load_task_data(DataSettings("sst-2", tiny_sst2_dir, 16), os.path.join(tiny_model_dir, "vocab.txt"))
    with pytest.warns(UserWarning, match=re.escape(part) + ".*rebuilding it"):
        loader = data.loader("train", 8, train=False, seed=0)
    assert loader.num_records == 96 and loader.arrays["input_ids"].shape == (96, 16)


def test_truncated_part_and_bad_meta(built_split):
    from model_compress.data.loader import OFRecordLoader
    from model_compress.data.ofrecord import OFRecordError

    part = _part(built_split)
    with open(part, "r+b") as f:
        f.truncate(os.path.getsize(part) - 7)
    with pytest.raises(OFRecordError, match="truncated"):
        OFRecordLoader(built_split, 8)
    with open(os.path.join(built_split, "meta.json"), "w") as f:
        f.write("{")
    with pytest.raises(ValueError, match="meta.json"):
        OFRecordLoader(built_split, 8)


def test_split_fingerprint_detects_changed_text(built_split, tiny_sst2_dir, tiny_model_dir):
    """Same row count, other content: the stored source fingerprint, not the count, finds it stale."""
    from model_compress.data.ofrecord import StaleSplitError, ensure_ofrecord_split
    from model_compress.data.processors import get_processor
    from model_compress.data.tokenization import FullTokenizer

    _rewrite(os.path.join(tiny_sst2_dir, "train.tsv"),
             lambda lines: lines[:1] + [lines[1].replace("\t", " changed\t", 1)] + lines[2:])
    processor = get_processor("sst-2")
    examples = processor.get_examples(tiny_sst2_dir, "train")
    tokenizer = FullTokenizer(os.path.join(tiny_model_dir, "vocab.txt"))
    with pytest.raises(StaleSplitError, match="source_hash differs"):
        ensure_ofrecord_split(examples, tiny_sst2_dir, "train", tokenizer, 16, processor.get_labels(),
                              on_stale="error")


@pytest.mark.parametrize("content, needle", [
    ("0.1,0.2\n" * 5, "5 rows"),
    ("0.1,zero\n" * 96, "line 1"),
    ("0.1,0.2,0.3\n" * 96, "line 1"),
], ids=["rows", "not-a-number", "columns"])
def test_bad_teacher_logits_file(tiny_model_dir, tiny_sst2_dir, tmp_path, capsys, content, needle):
    logits = tmp_path / "logits.tsv"
    logits.write_text(content)
    refused(kd_recipe.main, ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--student_model",
                                  tiny_model_dir, "--teacher_logits", str(logits), "--do_train", *FAST],
            capsys, str(logits), needle)


# ----------------------------------------------------------------------------------------------
# Meta-KD stage 2 and concurrency / kill -9


def test_second_stage_without_a_first_stage_student(tiny_model_dir, tmp_path, capsys):
    base = ["--teacher_model", tiny_model_dir, "--distill_stage", "second", "--model_save_dir", str(tmp_path)]
    refused(metakd_job.distill_main, base, capsys, "--distill_stage second", "stage-1 student")
    refused(metakd_job.distill_main, [*base, "--student_model", tiny_model_dir], capsys, "--student_model",
            "is not one")


def test_teacher_cache_that_no_longer_matches_its_source_is_rebuilt(tiny_sst2_dir, model_copy, tmp_path):
    """The cache stores its source's fingerprint (split + teacher snapshot); stale or damaged: rebuilt."""
    from model_compress.distill.teacher_cache import cached_teacher_outputs
    from model_compress.recipes.common import load_classifier, load_task_data
    from model_compress.recipes.settings import DataSettings

    data = load_task_data(DataSettings("sst-2", tiny_sst2_dir, 16), os.path.join(model_copy, "vocab.txt"))
    source = data.loader("train", 32, train=False, seed=0, rank=0, world_size=1)
    teacher, _, _ = load_classifier(model_copy, 2, verbose=False)
    root = str(tmp_path / "cache")

    def run():
        return cached_teacher_outputs(model_copy, teacher, source, source.meta, root, cls_layers=[2])

    first, where, hit = run()
    assert not hit and first["teacher_logits"].shape == (96, 2)
    index = json.loads(open(os.path.join(where, "index.json")).read())
    assert index["source"]["split"] == source.meta["source_hash"] and index["source"]["count"] == 96
    assert index["source"]["teacher"] and index["key"] == os.path.basename(where)
    assert run()[2]  # reused
    index["key"] = "0" * 20  # a cache whose stored fingerprint is of another source
    open(os.path.join(where, "index.json"), "w").write(json.dumps(index))
    with pytest.warns(UserWarning, match="another teacher snapshot or training split.*rebuilding"):
        again, _, hit = run()
    assert not hit and json.loads(open(os.path.join(where, "index.json")).read())["key"] == os.path.basename(where)
    np.testing.assert_allclose(again["teacher_logits"], first["teacher_logits"], rtol=1e-5)
    logits = os.path.join(where, "teacher_logits.npy")
    with open(logits, "r+b") as f:
        f.truncate(os.path.getsize(logits) - 40)
    with pytest.warns(UserWarning, match=re.escape(logits) + ".*truncated.*rebuilding"):
        assert not run()[2]
    os.utime(os.path.join(model_copy, "snapshot.json"), ns=(1, 1))  # the teacher snapshot changed
    assert run()[1] != where and leftovers(root) == []


def test_teacher_cache_is_written_by_rank_zero_alone(tiny_sst2_dir, model_copy, tmp_path, monkeypatch):
    """Another rank computes the outputs with rank 0 but never replaces the cache directory: it reads what
    rank 0 wrote once the barrier has passed (two writers pulled the directory from under a reader)."""
    from model_compress.distill import teacher_cache
    from model_compress.recipes.common import load_classifier, load_task_data
    from model_compress.recipes.settings import DataSettings
    from model_compress.training import distributed

    data = load_task_data(DataSettings("sst-2", tiny_sst2_dir, 16), os.path.join(model_copy, "vocab.txt"))
    source = data.loader("train", 32, train=False, seed=0, rank=0, world_size=1)
    teacher, _, _ = load_classifier(model_copy, 2, verbose=False)
    root = str(tmp_path / "cache")
    written = []
    real_save = teacher_cache.save_cache

    def rank_zero_writes(directory, arrays, info):  # what rank 0 does while this rank waits at the barrier
        written.append(directory)
        real_save(directory, {name: value + 1 for name, value in arrays.items()}, info)

    monkeypatch.setattr(distributed, "rank", lambda: 1)
    monkeypatch.setattr(teacher_cache, "save_cache", lambda *a: pytest.fail("rank 1 wrote the cache"))
    monkeypatch.setattr(distributed, "barrier", lambda: rank_zero_writes(*saved))
    saved = []
    computed = teacher_cache.compute_teacher_outputs(teacher, source)
    key = teacher_cache.cache_key(model_copy, source.meta, {"cls_layers": [], "hidden_layers": []})
    saved[:] = [os.path.join(root, key), computed, {"key": key}]
    arrays, where, hit = teacher_cache.cached_teacher_outputs(model_copy, teacher, source, source.meta, root)
    assert not hit and written == [where]
    np.testing.assert_allclose(arrays["teacher_logits"], computed["teacher_logits"] + 1, rtol=1e-6)


def test_stale_temporary_snapshots_of_killed_runs_are_cleaned(tmp_path, tiny_model_dir):
    from model_compress.modeling.checkpoint import load_snapshot, save_snapshot

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".snapshot_best_0.5.tmp-{dead.pid}-0123abcd"
    stale.mkdir()
    (stale / "pickled_data").write_bytes(b"half")
    alive = tmp_path / f".snapshot_best_0.6.tmp-{os.getppid()}-89abcdef"  # a running writer: kept
    alive.mkdir()
    state, config, _ = load_snapshot(tiny_model_dir)
    save_snapshot(state, str(tmp_path / "snapshot_best_0.7"), config=config)
    assert not stale.exists() and alive.exists()


def test_best_snapshot_replacement_keeps_one_best(tmp_path):
    """The loop retires the previous best by renaming it aside: never two bests, never half of one."""
    from model_compress.modeling.checkpoint.atomic import retire_dir

    old = tmp_path / "snapshot_best_dev_0.5"
    old.mkdir()
    (old / "tensor").write_bytes(b"x" * 10)
    retire_dir(str(old))
    assert os.listdir(tmp_path) == []


def _loop_script(model: str, out: str, kill: bool) -> str:
    """A real training loop whose evaluations improve (0.5 then 0.6); `kill`: SIGKILL right after the new
    best is saved, before the old one is retired."""
    return (
        "import os, signal, numpy as np\n"
        "import model_compress.training.loop as loop\n"
        "from model_compress.recipes.common import load_classifier, save_classifier\n"
        "from model_compress.training.objectives import ClassificationObjective\n"
        "from model_compress.training.sources import ArrayBatches\n"
        f"model, config, _ = load_classifier({model!r}, 2, verbose=False)\n"
        "rs = np.random.RandomState(0)\n"
        "arrays = {'input_ids': rs.randint(5, 100, (16, 8)).astype(np.int32), 'input_mask': np.ones((16, 8), np.int32),"
        " 'segment_ids': np.zeros((16, 8), np.int32), 'label_ids': rs.randint(0, 2, 16).astype(np.int32)}\n"
        "scores = iter([0.5, 0.6])\n"
        + ("loop.finish_retirement = lambda plan: os.kill(os.getpid(), signal.SIGKILL)\n" if kill else "")
        + f"save = lambda path, m: save_classifier(model, path, config, os.path.join({model!r}, 'vocab.txt'), m)\n"
        "loop.train(ClassificationObjective(model), ArrayBatches(arrays, 8), lambda: {'accuracy': next(scores)}, save,"
        " lambda m: f\"snapshot_best_dev_{m['accuracy']}\","
        f" loop.LoopConfig(num_epochs=2, output_dir={out!r}, show_progress=False, eager=True))\n"
    )


def _bests(out) -> list[str]:
    return sorted(n for n in os.listdir(out) if n.startswith("snapshot_best"))


def test_kill_between_new_best_and_retiring_the_old_one(tiny_model_dir, tmp_path):
    """kill -9 after the new best is saved and before the old one is retired: the next run resolves it."""
    out = str(tmp_path / "out")
    done = subprocess.run([sys.executable, "-c", _loop_script(tiny_model_dir, out, kill=True)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert _bests(out) == ["snapshot_best_dev_0.5", "snapshot_best_dev_0.6"]  # what the kill left
    done = subprocess.run([sys.executable, "-c", _loop_script(tiny_model_dir, out, kill=False)],
                          capture_output=True, text=True, timeout=300)
    clean_success(done)
    assert _bests(out) == ["snapshot_best_dev_0.6"] and leftovers(out) == []
    assert not [n for n in os.listdir(out) if n.startswith(".retire-")]


def test_killed_run_is_resolved_before_the_next_run_saves(tiny_model_dir, tmp_path):
    """The planned retirement keeps the newer complete best, and only it (no later save needed)."""
    from model_compress.modeling.checkpoint.atomic import clean_leftovers

    out = str(tmp_path / "out")
    subprocess.run([sys.executable, "-c", _loop_script(tiny_model_dir, out, kill=True)], capture_output=True,
                   timeout=300)
    assert len(_bests(out)) == 2
    clean_leftovers(out)  # what the next run (or any save into the folder) does first
    assert _bests(out) == ["snapshot_best_dev_0.6"]
    from model_compress.modeling.checkpoint import load_snapshot

    assert load_snapshot(os.path.join(out, "snapshot_best_dev_0.6"))[2]["accuracy"] == 0.6


def test_killed_split_write_leaves_nothing_visible(tiny_sst2_dir, tiny_model_dir, tmp_path):
    """kill -9 in the middle of writing OFRecords: no split appears, the next run cleans the leftovers."""
    code = (
        "import os, signal, model_compress\n"
        "from model_compress.data import ofrecord_codec\n"
        "real = ofrecord_codec.write_ofrecord_file\n"
        "def dying(path, records):\n"
        "    for i, _ in enumerate(records):\n"
        "        if i == 3: os.kill(os.getpid(), signal.SIGKILL)\n"
        "import model_compress.data.ofrecord_split as s\n"
        "s.write_ofrecord_file = dying\n"
        "from model_compress.recipes import teacher\n"
        f"teacher.main(['--task_name', 'sst-2', '--data_dir', {tiny_sst2_dir!r}, '--model_load_dir', "
        f"{tiny_model_dir!r}, '--do_eval', '--seq_length', '16'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    ofrecord = os.path.join(tiny_sst2_dir, "ofrecord")
    assert not os.path.exists(os.path.join(ofrecord, "train")) and not os.path.exists(os.path.join(ofrecord, "dev"))
    assert leftovers(ofrecord)  # what the killed process left, hidden
    from model_compress.data.ofrecord_split import write_split

    for split in ("train", "dev"):
        write_split({"label_ids": np.zeros(2, np.int32)}, tiny_sst2_dir, split, 16)
    assert leftovers(ofrecord) == []


def test_full_disk_while_writing_ofrecords(tiny_sst2_dir, tiny_model_dir):
    """A write that fails for lack of space ends in one line naming the file, and leaves nothing behind."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4000, 4000))

    done = run_script("distil/task_teacher.py", ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir,
                                                 "--model_load_dir", tiny_model_dir, "--do_eval",
                                                 "--seq_length", "64"], preexec_fn=limit)
    one_line_failure(done, "of_record")
    assert leftovers(os.path.join(tiny_sst2_dir, "ofrecord")) == []
    assert not os.path.exists(os.path.join(tiny_sst2_dir, "ofrecord", "dev"))


def test_two_jobs_with_different_dev_sizes_at_once(tiny_sst2_dir, tiny_model_dir, tmp_path):
    """The split lock covers building and reading: each job evaluates exactly the rows it asked for."""
    jobs = []
    for count in (16, 40):
        out = tmp_path / f"eval{count}"
        args = ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--model_load_dir", tiny_model_dir,
                "--do_eval", "--seq_length", "16", "--eval_batch_size_per_device", "8", "--dev_example_num",
                str(count), "--model_save_dir", str(out)]
        jobs.append((count, out, subprocess.Popen(
            [sys.executable, os.path.join(REPO_ROOT, "model_compress", "distil", "task_teacher.py"), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    for count, out, proc in jobs:
        _, err = proc.communicate(timeout=300)
        clean_success(subprocess.CompletedProcess(proc.args, proc.returncode, "", err))
        assert json.loads((out / "results_eval.json").read_text())["num_examples"] == count


def test_full_disk_while_writing_a_snapshot(tiny_sst2_dir, tiny_model_dir, tmp_path):
    """The snapshot's word-embedding tensor does not fit: one line naming the file, exit 2, no snapshot."""
    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))  # OFRecords fit, the 3.9 MB table not

    out = tmp_path / "out"
    done = run_script("distil/task_teacher.py", ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir,
                                                 "--model_load_dir", tiny_model_dir, "--do_train", "--max_steps",
                                                 "1", "--model_save_dir", str(out), "--eager", *FAST],
                      preexec_fn=limit)
    line = one_line_failure(done, str(out))
    assert "File too large" in line or "No space" in line, line
    assert os.listdir(out) == [] and leftovers(tiny_sst2_dir) == []


def test_gpu_device_from_the_entry_script():
    done = run_script("distil/task_teacher.py", ["--device", "gpu", "--do_eval"])
    one_line_failure(done, "--device gpu")


# ----------------------------------------------------------------------------------------------
# NaN and infinity: refused in every float a user hands in, in caches, in snapshots and in the loss


@pytest.mark.parametrize("bad", ["nan", "inf", "-Infinity"])
def test_teacher_logits_file_with_non_finite_values(tiny_model_dir, tiny_sst2_dir, tmp_path, capsys, bad):
    logits = tmp_path / "logits.tsv"
    logits.write_text("0.1,0.2\n" * 40 + f"0.3,{bad}\n" + "0.1,0.2\n" * 55)
    out = tmp_path / "student"
    refused(kd_recipe.main, ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--student_model",
                                  tiny_model_dir, "--teacher_logits", str(logits), "--do_train",
                                  "--model_save_dir", str(out), *FAST],
            capsys, str(logits), "line 41", "not a finite number")
    assert not out.exists() or not os.listdir(out)


@pytest.mark.parametrize("flag", ["--learning_rate", "--temperature", "--alpha"])
def test_float_flags_refuse_nan(tiny_model_dir, tiny_sst2_dir, capsys, flag):
    refused(kd_recipe.main, ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--student_model",
                                  tiny_model_dir, "--teacher_logits", "x", "--do_train", flag, "nan", *FAST],
            capsys, flag, "not a finite number")


def test_easynlp_tables_with_non_finite_logits_and_weights(tmp_path):
    from model_compress.easynlp.flags import UsageError
    from model_compress.easynlp.schema import make_spec, parse_schema, read_table

    spec = make_spec(parse_schema("sent:str:1,label:str:1,logits:float:2"), "sent", None, "label", ["0", "1"],
                     logits_name="logits")
    path = tmp_path / "train.tsv"
    path.write_text("a fine film\t1\t0.5,-0.5\na dull film\t0\tnan,0.1\n")
    with pytest.raises(UsageError, match=r"train.tsv, line 2: column 'logits'.*'nan' is not a finite number"):
        read_table(str(path), spec)
    spec = make_spec(parse_schema("sent:str:1,label:str:1,weight:float:1"), "sent", None, "label", ["0", "1"],
                     weight_name="weight")
    path.write_text("a fine film\t1\t0.5\na dull film\t0\tinf\n")
    with pytest.raises(UsageError, match=r"train.tsv, line 2: column 'weight'.*'inf' is not a finite number"):
        read_table(str(path), spec)


def test_meta_kd_table_weight_that_is_nan(tmp_path):
    from model_compress.data.processors import DataFormatError, get_processor

    (tmp_path / "train.tsv").write_text("guid\ttext_a\ttext_b\tlabel\tdomain\tweight\n"
                                        "g1\tFine.\t\tpositive\tbooks\t0.5\ng2\tBad.\t\tnegative\tdvd\tnan\n")
    with pytest.raises(DataFormatError, match=r"train.tsv, line 3.*weight.*'nan' is not a finite number"):
        get_processor("senti").get_examples(str(tmp_path), "train")


def test_mft_scores_file_with_nan(tmp_path):
    from model_compress.errors import RecipeError
    from model_compress.recipes.mft import load_weights, weight_path

    path = weight_path(str(tmp_path))
    os.makedirs(os.path.dirname(path))
    np.save(path, np.array([0.5, 0.7, np.nan, 0.2], dtype=np.float32))
    with pytest.raises(RecipeError, match=f"{re.escape(path)}: example 2 is nan"):
        load_weights(str(tmp_path), 4)


def test_teacher_cache_and_dump_with_non_finite_arrays(tmp_path):
    """A cache array holding NaN/inf is named with the example and column; the lookup rebuilds it."""
    from model_compress.distill.teacher_cache import TeacherFileError, checked_cache, load_cache, save_cache

    hidden = np.zeros((5, 4, 3), dtype=np.float32)
    hidden[3, 1, 2] = np.inf
    save_cache(str(tmp_path / "c"), {"teacher_logits": np.zeros((5, 2), np.float32), "hidden_0": hidden},
               {"key": "k"})
    where = os.path.join(str(tmp_path / "c"), "hidden_0.npy")
    with pytest.raises(TeacherFileError, match=re.escape(where) + r": example 3, column 2, index \[2\] is inf"):
        load_cache(str(tmp_path / "c"))
    with pytest.warns(UserWarning, match="example 3.*rebuilding"):
        assert checked_cache(str(tmp_path / "c"), "k", 5) is None


def test_snapshot_with_nan_weights_is_refused(teacher_args, tiny_model_dir, tmp_path, capsys):
    from model_compress.modeling.checkpoint import load_snapshot, save_snapshot

    state, config, meta = load_snapshot(tiny_model_dir)
    state["bert.encoder.layer.1.output.dense.weight"][3, 5] = np.nan
    damaged = str(tmp_path / "diverged")
    save_snapshot({k: flow.tensor(v) for k, v in state.items()}, damaged, config, meta,
                  extra_files={"vocab.txt": os.path.join(tiny_model_dir, "vocab.txt")})
    refused(teacher_job.main, _with_model(teacher_args, damaged), capsys, damaged,
            "weight bert.encoder.layer.1.output.dense.weight", "index 3, column 6 is nan")


class LossScaledByWeights(flow.nn.Module):
    """A linear model whose loss is scaled by the batch's mean ``weights``: a NaN there makes the loss NaN."""

    input_names = ("input_ids", "weights")

    def __init__(self):
        super().__init__()
        self.linear = flow.nn.Linear(4, 2)

    def forward(self, input_ids, weights):
        return ((self.linear(input_ids.float()) ** 2).mean() * weights.mean(),)


class Batches:
    """Four fixed batches; the third one's weights are NaN."""

    def __init__(self):
        rs = np.random.RandomState(0)
        self.batches = [{"input_ids": flow.tensor(rs.randint(0, 5, (8, 4)).astype(np.int32)),
                         "weights": flow.tensor(np.full(8, np.nan if i == 2 else 1.0, np.float32))} for i in range(4)]

    def __len__(self):
        return len(self.batches)

    def set_epoch(self, epoch):
        pass

    def __iter__(self):
        return iter(self.batches)


@pytest.mark.parametrize("eager", [False, True], ids=["graph", "eager"])
def test_nan_loss_stops_training_and_keeps_the_last_good_snapshot(tmp_path, eager):
    from model_compress.training.loop import LoopConfig, train
    from model_compress.training.nonfinite import NonFiniteLoss

    objective = LossScaledByWeights()
    saved = []

    def save(path, metrics):
        os.makedirs(path)
        flow.save(objective.state_dict(), os.path.join(path, "state"))
        saved.append(path)

    scores = iter([0.5, 0.6, 0.7, 0.8])
    config = LoopConfig(num_epochs=1, learning_rate=0.1, eval_every_step_num=1, output_dir=str(tmp_path),
                        show_progress=False, eager=eager)
    with pytest.raises(NonFiniteLoss, match=r"the loss became nan at step 3: training stopped.*best snapshot so far "
                                            r"is kept: .*best-2"):
        train(objective, Batches(), lambda: {"accuracy": next(scores)}, save,
              lambda metrics: f"best-{len(saved) + 1}", config)
    assert [os.path.basename(p) for p in saved] == ["best-1", "best-2"]
    assert sorted(os.listdir(tmp_path)) == ["best-2"]  # the older best retired, nothing written after the NaN
    state = flow.load(os.path.join(tmp_path, "best-2", "state"))
    assert all(np.isfinite(v.numpy()).all() for v in state.values())


def test_nan_loss_found_one_step_late_still_names_its_step_and_writes_nothing(tmp_path):
    """Without an evaluation after every step the NaN of step 3 is read while step 4 runs: the error still
    names step 3, and the end-of-training evaluation (and its snapshot) never happens."""
    from model_compress.training.loop import LoopConfig, train
    from model_compress.training.nonfinite import NonFiniteLoss

    evaluated = []
    config = LoopConfig(num_epochs=1, learning_rate=0.1, output_dir=str(tmp_path), show_progress=False)
    with pytest.raises(NonFiniteLoss, match=r"the loss became nan at step 3: .*no snapshot was written"):
        train(LossScaledByWeights(), Batches(), lambda: evaluated.append(1) or {"accuracy": 1.0},
              lambda path, metrics: os.makedirs(path), lambda metrics: "best", config)
    assert evaluated == [] and os.listdir(tmp_path) == []


def test_step_counted_training_never_saves_after_a_nan_step(tmp_path):
    """run_steps (PP-MiniLM's loop) checks a step's loss before saving at it: with saves at steps 3 and 4, a
    NaN at step 3 stops the run before its first save."""
    from model_compress.training.nonfinite import NonFiniteLoss
    from model_compress.training.steps import StepConfig, build_step, run_steps

    objective = LossScaledByWeights()
    config = StepConfig(max_steps=4, learning_rate=0.1, logging_steps=10, save_steps=3)
    saved = []
    batches = iter([{k: v.numpy() for k, v in b.items()} for b in Batches().batches])
    with pytest.raises(NonFiniteLoss, match=r"the loss became nan at step 3: .*no snapshot was written"):
        run_steps(build_step(objective, config, 0), list(objective.input_names), batches, 0,
                  lambda step, loss: saved.append(step) or f"model_{step}", config)
    assert saved == []


def test_loss_check_reads_each_loss_one_step_late():
    from model_compress.training.nonfinite import LossCheck, NonFiniteLoss

    check = LossCheck(lambda: "kept-snapshot")
    check.push(1, flow.tensor(0.5))
    assert check.step == 0  # nothing read yet: step 1 may still be running
    check.push(2, flow.tensor(float("inf")))
    assert (check.step, check.value) == (1, 0.5)
    with pytest.raises(NonFiniteLoss, match="became inf at step 2: .*kept: kept-snapshot"):
        check.flush()
    assert check.flush() == 0.5  # nothing queued any more


def test_export_and_predict_resolve_model_names_like_training(tmp_path, capsys):
    """`default` means the shipped model for export too (refused for its missing head, not as a missing path);
    an unknown name is one line naming the flag."""
    from model_compress.commands import export_model as export_job
    from model_compress.commands import predict_tables as predict_job

    line = refused(export_job.main, ["--model_dir", "default", "--format", "onnx", "--output_dir",
                                     str(tmp_path / "x")], capsys, "all-MiniLM-L6-v2", "no classification head")
    assert "does not exist" not in line
    refused(export_job.main, ["--model_dir", "no-such-model", "--format", "onnx", "--output_dir",
                              str(tmp_path / "x")], capsys, "--model_dir no-such-model", "does not exist")
    table = tmp_path / "in.tsv"
    table.write_text("sentence\na fine film\n")
    refused(predict_job.main, ["--tables", str(table), "--outputs", str(tmp_path / "out.tsv"), "--checkpoint_path",
                               "no-such-model"], capsys, "--checkpoint_path no-such-model", "does not exist")
    assert not (tmp_path / "x").exists() and not (tmp_path / "out.tsv").exists()


def test_run_directory_resolves_to_its_one_snapshot(tiny_model_dir, tmp_path):
    from model_compress.modeling.resolve import ModelNotFoundError, resolve_model

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shutil.copytree(tiny_model_dir, run_dir / "snapshot_best")
    assert resolve_model(str(run_dir)) == str(run_dir / "snapshot_best")
    shutil.copytree(tiny_model_dir, run_dir / "snapshot_other")
    with pytest.raises(ModelNotFoundError, match="several snapshot_"):
        resolve_model(str(run_dir), "--checkpoint_path")


NOISE = ("libibverbs not available", "CUDA driver version is insufficient", "Setting OMP_NUM_THREADS")


def test_no_cpu_machine_noise_under_the_launcher(tmp_path):
    """Two ranks started by the toolkit's launcher print none of OneFlow's CPU-machine messages; with
    MODEL_COMPRESS_VERBOSE=1 the import messages come back where a bare `import oneflow` prints them."""
    script = tmp_path / "touch.py"
    script.write_text("import model_compress  # noqa\nimport oneflow as flow\nprint(float(flow.ones(2).sum()))\n")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    env.pop("OMP_NUM_THREADS", None)
    env.pop("MODEL_COMPRESS_VERBOSE", None)
    launch = [sys.executable, "-m", "model_compress.launch", "--nproc_per_node", "2", "--master_port", "29763",
              str(script)]
    done = subprocess.run(launch, capture_output=True, text=True, timeout=300, env=env, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2.0", "2.0"]
    assert not [n for n in NOISE if n in done.stdout + done.stderr], done.stdout + done.stderr
    bare = subprocess.run([sys.executable, "-c", "import oneflow"], capture_output=True, text=True, timeout=300,
                          env=env, cwd=str(tmp_path))
    if "libibverbs not available" in bare.stderr:
        verbose = subprocess.run([sys.executable, "-c", "import model_compress"], capture_output=True, text=True,
                                 timeout=300, env={**env, "MODEL_COMPRESS_VERBOSE": "1"}, cwd=str(tmp_path))
        assert "libibverbs not available" in verbose.stderr


def test_student_with_another_vocabulary_than_the_teacher(tiny_model_dir, tiny_sst2_dir, model_copy, capsys):
    """A student vocabulary is mapped onto the teacher's by token string; one with a token the teacher lacks
    is refused."""
    vocab = os.path.join(model_copy, "vocab.txt")
    lines = open(vocab, encoding="utf-8").read().splitlines()
    lines[1000] = "qqqzz-not-a-piece"
    open(vocab, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    refused(pkd_recipe.main, ["--task_name", "sst-2", "--data_dir", tiny_sst2_dir, "--teacher_model",
                                   tiny_model_dir, "--student_model", model_copy, "--do_train", *FAST],
            capsys, vocab, "'qqqzz-not-a-piece' (id 1000) has no equivalent", "cannot be mapped")
