"""Meta-KD: mappings, per-example weighted losses against numpy, the teacher dump, and the pipeline end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill import metakd
from model_compress.distill.meta import domain_expertise_weight
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.config import BertConfig
from tests.conftest import REPO_ROOT, TINY_BERT


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def np_expertise(teacher_logits, labels, proto):
    p = np.exp(np_log_softmax(teacher_logits))[np.arange(len(labels)), labels]
    return (1 + proto) / (np.exp((1 - p) ** 2) + 1)


# ----------------------------------------------------------------------------------------------
# mappings and weights


def test_layer_mappings():
    assert metakd.attention_mapping(3, 12) == [(0, 3), (1, 7), (2, 11)]
    assert metakd.attention_mapping(3, 6) == [(0, 1), (1, 3), (2, 5)]
    assert metakd.hidden_mapping(3, 6) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert metakd.hidden_mapping(4, 12) == [(0, 0), (1, 3), (2, 6), (3, 9), (4, 12)]
    assert metakd.student_init_layers(2, 4) == [1, 3]
    with pytest.raises(ValueError, match="cannot map"):
        metakd.attention_mapping(5, 4)


def test_expertise_weight_from_logits_matches_numpy():
    rs = np.random.RandomState(0)
    z = rs.randn(6, 3).astype(np.float32) * 2
    y = np.array([0, 1, 2, 2, 1, 0], np.int32)
    w = np.array([0.9, -0.2, 0.0, 0.5, 1.0, -1.0], np.float32)
    got = metakd.expertise_weights(flow.tensor(z), flow.tensor(y), flow.tensor(w)).numpy()
    np.testing.assert_allclose(got, np_expertise(z, y, w), rtol=1e-5)
    # the shared formula: a confident, correct teacher on a typical example weighs (1 + w) / 2
    assert domain_expertise_weight(1.0, 0.5) == pytest.approx(0.75)


# ----------------------------------------------------------------------------------------------
# stage losses against numpy


def _tiny_pair(seed=0):
    flow.manual_seed(seed)
    student = BertForSequenceClassification(BertConfig(vocab_size=120, **{**TINY_BERT, "num_hidden_layers": 2}))
    return student.eval()


def _batch(rs, batch=5, seq=8, vocab=120):
    mask = np.ones((batch, seq), np.int32)
    mask[1, 5:] = 0
    mask[-1, 3:] = 0
    return {
        "input_ids": (rs.randint(5, vocab, (batch, seq)) * mask).astype(np.int32),
        "input_mask": mask,
        "segment_ids": np.zeros((batch, seq), np.int32),
        "label_ids": rs.randint(0, 2, batch).astype(np.int32),
        "domain": np.array([0, 1, 2, 3, 1], np.int32)[:batch],
        "weights": np.array([0.8, -0.3, 0.1, 0.6, 0.95], np.float32)[:batch],
    }


def _teacher_arrays(rs, batch, seq, heads=4, hidden=48, layers=2, mask=None):
    attention = rs.randn(batch, layers, heads, seq, seq).astype(np.float32)
    if mask is not None:  # masked keys carry BERT's -10000 as in a real forward
        attention = attention + ((1 - mask[:, None, None, None, :]) * -10000.0).astype(np.float32)
    return {
        "teacher_logits": rs.randn(batch, 2).astype(np.float32) * 2,
        "teacher_attention": attention,
        "teacher_hidden": rs.randn(batch, layers + 1, seq, hidden).astype(np.float32),
        "teacher_domain": rs.randn(batch, hidden).astype(np.float32),
    }


def _np_softmax(a):
    return np.exp(np_log_softmax(a))


@pytest.mark.parametrize("attention", ["probs", "scores"])
def test_first_stage_loss_matches_numpy_per_example_weighting(attention):
    rs = np.random.RandomState(1)
    student = _tiny_pair()
    batch = _batch(rs)
    batch.update(_teacher_arrays(rs, 5, 8, mask=batch["input_mask"]))
    if attention == "probs":  # what a teacher dump of probabilities holds
        batch["teacher_attention"] = _np_softmax(batch["teacher_attention"]).astype(np.float32)
    objective = metakd.MetaDistillFirstStage(student, 48, 4, [1, 3], [0, 2, 4], domain_loss_weight=0.5,
                                             attention=attention).eval()
    out = objective(*[flow.tensor(batch[n]) for n in objective.input_names])

    _, enc = student(flow.tensor(batch["input_ids"]), flow.tensor(batch["segment_ids"]),
                     flow.tensor(batch["input_mask"]), output_hidden_states=True, output_attentions=True)
    # the student's own maps, recomputed in numpy from its raw scores
    raw = np.stack([a.numpy() for a in enc.attention_scores], 1)
    s_att = _np_softmax(raw) if attention == "probs" else raw
    s_hid = np.stack([h.numpy() for h in enc.hidden_states], 1)
    W, b = objective.fit_dense.weight.numpy(), objective.fit_dense.bias.numpy()
    Wd, bd = objective.domain_proj.weight.numpy(), objective.domain_proj.bias.numpy()
    E = objective.domain_embeddings.weight.numpy()
    mask = batch["input_mask"].astype(np.float32)

    def zero_masked(a):
        return np.where(a <= -100, 0.0, a) if attention == "scores" else a

    pairs = np.broadcast_to((mask[:, :, None] * mask[:, None, :])[:, None, None], s_att.shape)  # real query x key
    att = (((zero_masked(s_att) - zero_masked(batch["teacher_attention"])) ** 2 * pairs).sum((2, 3, 4))
           / pairs.sum((2, 3, 4))).sum(1)
    tokens = np.broadcast_to(mask[:, None, :, None], batch["teacher_hidden"].shape)  # real tokens only
    hid = (((s_hid @ W.T + b - batch["teacher_hidden"]) ** 2 * tokens).sum((2, 3)) / tokens.sum((2, 3))).sum(1)
    pooled = (s_hid[:, -1] * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    dom = (((pooled + E[batch["domain"]]) @ Wd.T + bd - batch["teacher_domain"]) ** 2).mean(-1)
    per_example = att + hid + 0.5 * dom
    u = np_expertise(batch["teacher_logits"], batch["label_ids"], batch["weights"])
    expected = (u * per_example).mean()

    assert float(out[0].numpy()) == pytest.approx(expected, rel=1e-4)
    assert float(out[2].numpy()) == pytest.approx(att.mean(), rel=1e-4)
    assert float(out[3].numpy()) == pytest.approx(hid.mean(), rel=1e-4)
    assert float(out[4].numpy()) == pytest.approx(dom.mean(), rel=1e-4)
    # weighting happens per example: not the product of the batch means
    assert expected != pytest.approx(u.mean() * per_example.mean(), rel=1e-3)
    # the masked teacher scores (-10000) do not dominate the attention term
    assert att.max() < 100

    objective.use_sample_weights = False
    plain = objective(*[flow.tensor(batch[n]) for n in objective.input_names])
    assert float(plain[0].numpy()) == pytest.approx(per_example.mean(), rel=1e-4)


def test_first_stage_gradient_vanishes_for_zero_weight_example():
    rs = np.random.RandomState(2)
    student = _tiny_pair(1)
    batch = _batch(rs, batch=2)
    batch.update(_teacher_arrays(rs, 2, 8, mask=batch["input_mask"]))
    batch["weights"] = np.array([0.4, -1.0], np.float32)  # (1 + w) = 0: example 1 must not count
    objective = metakd.MetaDistillFirstStage(student, 48, 4, [1, 3], [0, 2, 4]).eval()

    def loss_of(b):
        return float(objective(*[flow.tensor(b[n]) for n in objective.input_names])[0].numpy())

    base = loss_of(batch)
    changed = {k: v.copy() for k, v in batch.items()}
    changed["teacher_hidden"][1] += 5.0
    changed["teacher_domain"][1] -= 3.0
    assert loss_of(changed) == pytest.approx(base, rel=1e-6)
    changed["teacher_hidden"][0] += 1.0
    assert loss_of(changed) != pytest.approx(base, rel=1e-3)


def test_second_stage_soft_cross_entropy_matches_numpy():
    rs = np.random.RandomState(3)
    student = _tiny_pair(2)
    batch = _batch(rs)
    batch["teacher_logits"] = rs.randn(5, 2).astype(np.float32) * 3
    T = 2.0
    objective = metakd.MetaDistillSecondStage(student, temperature=T)
    objective.eval()
    loss, logits = objective(*[flow.tensor(batch[n]) for n in objective.input_names])
    z_s, z_t = logits.numpy(), batch["teacher_logits"]
    soft = -(np.exp(np_log_softmax(z_t / T)) * np_log_softmax(z_s / T)).sum(-1)
    assert float(loss.numpy()) == pytest.approx(soft.mean(), rel=1e-5)
    objective.use_sample_weights = True
    weighted, _ = objective(*[flow.tensor(batch[n]) for n in objective.input_names])
    u = np_expertise(z_t, batch["label_ids"], batch["weights"])
    assert float(weighted.numpy()) == pytest.approx((u * soft).mean(), rel=1e-5)


def test_row_subset_visits_each_chosen_row_once_per_epoch():
    from model_compress.data.loader import OFRecordLoader

    class FakeLoader:
        batch_size, shuffle, drop_last, seed, rank, world_size, device = 3, True, False, 7, 0, 1, "cpu"
        num_records, seq_length, as_numpy = 20, 1, False
        features = ["idxs", "domain"]
        arrays = {"idxs": np.arange(20, dtype=np.int32), "domain": np.arange(20, dtype=np.int32) % 4}
        epoch_plan, make_batch = OFRecordLoader.epoch_plan, OFRecordLoader.make_batch

        def _resolved_buckets(self):
            return None, None  # no length buckets

    rows = np.flatnonzero(FakeLoader.arrays["domain"] == 1)
    subset = metakd.RowSubset(FakeLoader(), rows)
    assert len(subset) == 2  # 5 rows, batch 3, last batch kept
    first = np.concatenate([b["idxs"].numpy() for b in subset])
    assert sorted(first.tolist()) == rows.tolist()
    second = np.concatenate([b["idxs"].numpy() for b in subset])
    assert sorted(second.tolist()) == rows.tolist() and first.tolist() != second.tolist()
    FakeLoader.drop_last = True
    assert len(metakd.RowSubset(FakeLoader(), rows)) == 1


# ----------------------------------------------------------------------------------------------
# the pipeline on a tiny model


@pytest.fixture(scope="module")
def senti_dir(tmp_path_factory):
    """A SENTI-style folder: 8 training and 4 dev rows per domain, taken from the shipped data."""
    target = tmp_path_factory.mktemp("metakd") / "SENTI"
    target.mkdir()
    for split, per_domain in (("train", 8), ("dev", 4)):
        with open(os.path.join(REPO_ROOT, "data", "SENTI", f"{split}.tsv"), encoding="utf-8") as f:
            header, *rows = f.readlines()
        kept, seen = [], {}
        for row in rows:
            domain = row.rstrip("\n").split("\t")[4]
            if seen.get(domain, 0) < per_domain:
                seen[domain] = seen.get(domain, 0) + 1
                kept.append(row)
        (target / f"{split}.tsv").write_text(header + "".join(kept), encoding="utf-8")
    return str(target)


COMMON = ["--task_name", "senti", "--seq_length", "16", "--seed", "42", "--eval_batch_size_per_device", "8"]


@pytest.fixture(scope="module")
def pipeline(senti_dir, tiny_model_dir, tmp_path_factory):
    from model_compress.recipes import metakd as job

    out = tmp_path_factory.mktemp("metakd_out")
    job.preprocess_main(["--model_load_dir", tiny_model_dir, "--data_dir", senti_dir, "--resave_ofrecord", *COMMON])
    teacher = job.run_meta_teacher(job.meta_teacher_parser().parse_args(
        ["--model_load_dir", tiny_model_dir, "--data_dir", senti_dir, "--num_epochs", "2",
         "--batch_size_per_device", "8", "--learning_rate", "1e-3", "--model_save_dir", str(out / "teacher"),
         *COMMON]))
    dump = job.run_teacher_eval(job.teacher_eval_parser().parse_args(
        ["--model_load_dir", teacher["snapshot"], "--data_dir", senti_dir, "--student_num_hidden_layers", "2",
         *COMMON]))
    return {"out": out, "teacher": teacher, "dump": dump, "data": senti_dir, "model": tiny_model_dir}


def test_meta_teacher_snapshot_and_per_domain_results(pipeline):
    teacher = pipeline["teacher"]
    assert os.path.basename(teacher["snapshot"]).startswith("snapshot_best_mft_model_senti_dev_")
    results = json.loads((pipeline["out"] / "teacher" / "results_eval.json").read_text())
    assert results["role"] == "meta-teacher" and results["domain_loss_weight"] == 0.5
    assert set(results["per_domain"]) == {"books", "dvd", "electronics", "kitchen"}
    assert results["num_examples"] == 16


def test_dump_round_trips_and_matches_a_fresh_teacher_forward(pipeline):
    from model_compress.data.loader import read_split_with_oneflow
    from model_compress.distill.teacher_cache import load_cache
    from model_compress.recipes.common import load_classifier

    directory = pipeline["dump"]["dump_dir"]
    index = json.loads(open(os.path.join(directory, "index.json")).read())
    assert index["attention_layers"] == [1, 3] and index["hidden_layers"] == [0, 2, 4] and index["count"] == 32
    arrays = load_cache(directory)
    assert isinstance(arrays["teacher_attention"], np.memmap)
    assert arrays["teacher_attention"].shape == (32, 2, 4, 16, 16)
    assert arrays["teacher_hidden"].shape == (32, 3, 16, 32)
    assert arrays["teacher_domain"].shape == (32, 32) and arrays["teacher_logits"].shape == (32, 2)

    split = read_split_with_oneflow(os.path.join(pipeline["data"], "ofrecord", "train"))
    rows = np.array([0, 5, 17, 31])
    model, _, _ = load_classifier(pipeline["teacher"]["snapshot"], 2, verbose=False)
    model.eval()
    mask = split["input_mask"][rows]
    logits, enc = model(flow.tensor(split["input_ids"][rows]), flow.tensor(split["segment_ids"][rows]),
                        flow.tensor(mask), output_hidden_states=True, output_attentions=True)
    np.testing.assert_allclose(arrays["teacher_logits"][rows], logits.numpy(), rtol=1e-4, atol=1e-5)
    assert index["attention"] == "probs"  # the default: probabilities, as the originals compare
    for slot, layer in enumerate([1, 3]):
        np.testing.assert_allclose(arrays["teacher_attention"][rows, slot], enc.attention_probs[layer].numpy(),
                                   rtol=1e-4, atol=1e-5)
    for slot, index_ in enumerate([0, 2, 4]):
        np.testing.assert_allclose(arrays["teacher_hidden"][rows, slot], enc.hidden_states[index_].numpy(),
                                   rtol=1e-4, atol=1e-4)
    last = enc.hidden_states[-1].numpy()
    pooled = (last * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    np.testing.assert_allclose(arrays["teacher_domain"][rows], pooled, rtol=1e-4, atol=1e-5)


def test_raw_score_dump_is_a_different_dump(pipeline):
    """`--attention_loss scores` keeps raw scores, in a dump of its own (the kind is part of the key)."""
    from model_compress.recipes import metakd as job

    args = ["--model_load_dir", pipeline["teacher"]["snapshot"], "--data_dir", pipeline["data"],
            "--student_num_hidden_layers", "2", *COMMON]
    scores = job.run_teacher_eval(job.teacher_eval_parser().parse_args([*args, "--attention_loss", "scores"]))
    assert scores["dump_dir"] != pipeline["dump"]["dump_dir"]
    raw, probs = scores["arrays"]["teacher_attention"], pipeline["dump"]["arrays"]["teacher_attention"]
    assert raw.min() < -100 and probs.min() >= 0  # masked keys: -10000 raw, 0 as probabilities
    shifted = np.exp(raw[:4] - raw[:4].max(-1, keepdims=True))
    np.testing.assert_allclose(shifted / shifted.sum(-1, keepdims=True), probs[:4], rtol=1e-4, atol=1e-6)


def test_distill_stages_and_vanilla_baseline(pipeline):
    from model_compress.modeling.checkpoint import load_snapshot
    from model_compress.recipes import metakd as job

    p, out = pipeline, pipeline["out"]
    args = ["--teacher_model", p["teacher"]["snapshot"], "--data_dir", p["data"], "--genre", "books",
            "--student_model", p["model"], "--student_num_hidden_layers", "2", "--batch_size_per_device", "4",
            "--learning_rate", "1e-3", "--num_epochs", "1", *COMMON]
    first = job.run_meta_distill(job.distill_parser().parse_args(
        [*args, "--distill_stage", "first", "--model_save_dir", str(out / "books")]))
    assert first["dump_dir"] == p["dump"]["dump_dir"]  # the dump is found again, not recomputed
    assert first["examples"] == 8 and first["first"].steps == 2  # books only
    state, config, meta = load_snapshot(first["snapshot"])
    assert config.num_hidden_layers == 2 and meta["role"] == "meta-student-first"
    assert not any(k.startswith(("fit_dense", "domain_")) for k in state)  # projections stay behind

    # stage 2 finds the stage-1 snapshot in the same output folder
    second = job.run_meta_distill(job.distill_parser().parse_args(
        [a for a in args if a not in ("--student_model", p["model"])] +
        ["--distill_stage", "second", "--T", "2", "--model_save_dir", str(out / "books")]))
    results = json.loads((out / "books" / "results_eval_books.json").read_text())
    assert results["role"] == "meta-kd-student" and results["genre"] == "books"
    assert results["num_examples"] == 4 and set(results["per_domain"]) == {"books", "dvd", "electronics", "kitchen"}
    assert results["accuracy"] == results["per_domain"]["books"] == second["eval"]["accuracy"]
    assert results["student_init"].endswith(first["snapshot"])
    assert os.path.basename(second["snapshot"]).startswith("snapshot_best_meta_student_books_dev_")

    vanilla = job.run_meta_distill(job.distill_parser().parse_args(
        [*args, "--distill_stage", "vanilla", "--model_save_dir", str(out / "kd")]))
    kd = json.loads((out / "kd" / "results_eval_books.json").read_text())
    assert kd["role"] == "vanilla-kd-student" and kd["parameters"] == results["parameters"]
    assert os.path.basename(vanilla["snapshot"]).startswith("snapshot_best_kd_student_books_dev_")

    table = job.summary_table(str(out / "teacher" / "results_eval.json"),
                              [("Meta-KD", str(out / "books" / "results_eval_{genre}.json")),
                               ("KD", str(out / "kd" / "results_eval_{genre}.json"))], ["books", "dvd"])
    assert table.splitlines()[1].startswith("books") and " - " in table.splitlines()[2] + " "


def test_seed_command_lines_from_metakd_dir(pipeline):
    """meta_teacher_eval.py as the seed types it (missing seed vocab path, batch 1), reusing the dump."""
    p = pipeline
    cmd = [sys.executable, "meta_teacher_eval.py", "--task_name", "senti", "--model_load_dir",
           p["teacher"]["snapshot"], "--data_dir", p["data"], "--num_epochs", "4", "--seed", "42",
           "--seq_length=16", "--train_example_num", "6480", "--eval_batch_size_per_device", "1", "--vocab_file",
           "uncased_L-12_H-768_A-12/vocab.txt", "--resave_ofrecord", "--student_num_hidden_layers", "2"]
    done = subprocess.run(cmd, cwd=os.path.join(REPO_ROOT, "model_compress", "metakd"), capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "teacher dump reused from" in done.stderr
    assert "not found: using the model's own" in done.stderr


def test_distill_rejects_bad_genre_and_missing_teacher(pipeline):
    from model_compress.recipes import metakd as job

    with pytest.raises(SystemExit, match="--teacher_model is required"):
        job.distill_main(["--data_dir", pipeline["data"], *COMMON])
    with pytest.raises(SystemExit, match="not a domain of this task"):
        job.distill_main(["--teacher_model", pipeline["teacher"]["snapshot"], "--data_dir", pipeline["data"],
                          "--genre", "toys", *COMMON])


def test_seed_000_metakd_commands_in_graph_mode(senti_dir, tiny_model_dir, tmp_path):
    """The four Meta-KD commands of seed 000 as written (sizes shrunk with their own flags), nn.Graph.

    36 training rows with --eval_batch_size_per_device 8 leave a short last batch in the teacher dump;
    meta_distill.py runs both stages (no --distill_stage); a later --distill_stage second with the
    seed's --student_model continues the stage-1 student.
    """
    import shutil

    data = tmp_path / "SENTI"
    shutil.copytree(senti_dir, data, ignore=shutil.ignore_patterns("ofrecord", "teacher_cache"))
    with open(data / "train.tsv", encoding="utf-8") as f:
        header, *rows = f.readlines()
    (data / "train.tsv").write_text(header + "".join(rows[:-4] if len(rows) % 8 == 0 else rows), encoding="utf-8")
    cwd = os.path.join(REPO_ROOT, "model_compress", "metakd")
    seed = ["--task_name", "senti", "--data_dir", f"{data}/", "--seed", "42", "--seq_length=16",
            "--train_example_num", "6480", "--vocab_file", "uncased_L-12_H-768_A-12/vocab.txt", "--resave_ofrecord"]

    def run(script, *args):
        done = subprocess.run([sys.executable, script, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    run("preprocess.py", "--model_load_dir", tiny_model_dir, "--num_epochs", "4", *seed)
    teacher_out = tmp_path / "teacher"
    run("meta_teacher.py", "--model_load_dir", tiny_model_dir, "--num_epochs", "1", *seed, "--eval_example_num",
        "720", "--batch_size_per_device", "8", "--eval_batch_size_per_device", "8", "--eval_every_step_num", "100",
        "--learning_rate", "5e-5", "--do_train", "--do_eval", "--model_save_dir", str(teacher_out))
    teacher = next(str(p) for p in teacher_out.iterdir() if p.name.startswith("snapshot_best_mft_model_senti_dev_"))
    dump = run("meta_teacher_eval.py", "--model_load_dir", teacher, "--num_epochs", "4", *seed,
               "--eval_batch_size_per_device", "8", "--student_num_hidden_layers", "2")
    assert "no effect here" in dump.stderr  # --num_epochs / --seed are accepted and said to be unused
    student_out = tmp_path / "student"
    distill = ["--student_model", tiny_model_dir, "--teacher_model", teacher, "--num_epochs", "1", *seed,
               "--eval_example_num", "720", "--batch_size_per_device", "8", "--eval_batch_size_per_device", "8",
               "--eval_every_step_num", "100", "--learning_rate", "5e-5", "--do_train", "--do_eval",
               "--student_num_hidden_layers", "2", "--model_save_dir", str(student_out)]
    done = run("meta_distill.py", *distill)
    assert "stage 1 (all" in done.stderr and "meta-kd-student (all)" in done.stdout
    results = json.loads((student_out / "results_eval_all.json").read_text())
    assert results["num_examples"] == 16 and results["stage"] == "all"
    second = run("meta_distill.py", *distill, "--distill_stage", "second")
    assert "continues the stage-1 student" in second.stderr
    assert json.loads((student_out / "results_eval_all.json").read_text())["stage"] == "second"


# ----------------------------------------------------------------------------------------------
# two processes under oneflow.distributed.launch

TWO_RANK_DRIVER = os.path.join(REPO_ROOT, "tests", "two_rank_objectives.py")


def _launch(port: int, *args, cwd=None, timeout=600) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "oneflow.distributed.launch", "--nproc_per_node", "2", "--master_port", str(port),
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd)


def test_layerwise_objectives_on_a_split_batch_match_one_process(tmp_path):
    """Meta-KD stage 1 (probs, scores), stage 2 and PKD's hidden MSE compile as a 2-rank nn.Graph over a
    batch split between the ranks, and give the loss of the whole batch computed eagerly in one process.

    Stacking the student's per-layer maps failed here ('Stack Grad expects the shape of input tensor ...').
    """
    proc = _launch(29751, TWO_RANK_DRIVER, "objectives", str(tmp_path), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0] == reports[1]  # one global loss
    assert set(reports[0]) == {"metakd_first_probs", "metakd_first_scores", "metakd_second", "pkd_hidden_mse"}
    for name, loss in reports[0].items():
        assert loss["split"] == pytest.approx(loss["local"], rel=1e-5), name


def test_a_rank_failing_alone_ends_the_launch(tmp_path):
    """Rank 1 raises while rank 0 waits for it: the launcher ends with a non-zero exit instead of hanging."""
    proc = _launch(29752, TWO_RANK_DRIVER, "fail", str(tmp_path), timeout=120)
    assert proc.returncode != 0
    assert "RuntimeError: rank 1 fails alone" in proc.stderr
    assert not (tmp_path / "rank0_passed_the_barrier").exists()


@pytest.mark.slow
def test_distill_stages_under_the_two_process_launcher(pipeline, tmp_path):
    """meta_distill.py stage first, then second, with 2 processes (4 books rows per rank and step)."""
    p = pipeline
    common = [os.path.join(REPO_ROOT, "model_compress", "metakd", "meta_distill.py"), "--teacher_model",
              p["teacher"]["snapshot"], "--data_dir", p["data"], "--genre", "books", "--student_num_hidden_layers",
              "2", "--batch_size_per_device", "4", "--learning_rate", "1e-3", "--num_epochs", "2",
              "--model_save_dir", str(tmp_path), *COMMON]
    first = _launch(29753, *common, "--student_model", p["model"], "--distill_stage", "first")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "stage 1 (books, 8 examples, 2 steps" in first.stderr  # 8 rows, 2 x 4 per step: 1 step an epoch
    assert os.path.isdir(tmp_path / "snapshot_meta_student_first_books")
    second = _launch(29753, *common, "--distill_stage", "second")
    assert second.returncode == 0, second.stderr[-3000:]
    results = json.loads((tmp_path / "results_eval_books.json").read_text())
    assert results["role"] == "meta-kd-student" and results["stage"] == "second"
    assert results["student_init"].endswith("snapshot_meta_student_first_books")
    assert results["num_examples"] == 4 and set(results["per_domain"]) == {"books", "dvd", "electronics", "kitchen"}
