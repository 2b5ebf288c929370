"""Meta Fine-Tuning: prototypical scores, weighted CE, domain corruption, and the three steps end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import oneflow as flow
import pytest

from model_compress.distill import meta
from model_compress.training.sources import ArrayBatches

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def np_log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def cos(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


# ----------------------------------------------------------------------------------------------
# scores and formulas


def test_prototypical_score_matches_hand_computation():
    e = np.array([[1, 0], [1, 1], [0, 2], [3, 1], [2, 2], [0, 1], [1, 3]], dtype=np.float32)
    d = np.array([0, 0, 0, 1, 1, 1, 2])
    y = np.array([0, 0, 1, 0, 1, 1, 0])
    got = meta.prototypical_scores(e, d, y)
    expected = []
    for i in range(len(e)):
        own = e[(d == d[i]) & (y == y[i])].mean(0)
        others = [e[(d == dd) & (y == y[i])].mean(0) for dd in sorted(set(d.tolist()) - {d[i]})
                  if ((d == dd) & (y == y[i])).any()]
        expected.append((cos(e[i], own) + cos(e[i], np.mean(others, 0))) / 2)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # example 0: own centroid (1, .5); other domains' class-0 centroids (3, 1) and (1, 3) -> mean (2, 2)
    assert got[0] == pytest.approx((cos(e[0], np.array([1, 0.5])) + cos(e[0], np.array([2, 2]))) / 2, rel=1e-5)
    assert got.dtype == np.float32


def test_prototypical_score_single_domain_is_own_centroid_cosine():
    e = np.array([[1, 0], [0, 1], [2, 1], [1, 2]], dtype=np.float32)
    y = np.array([0, 0, 1, 1])
    got = meta.prototypical_scores(e, np.zeros(4, int), y)
    expected = [cos(e[i], e[y == y[i]].mean(0)) for i in range(4)]
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_mean_pool_ignores_padding():
    h = np.arange(2 * 3 * 2, dtype=np.float32).reshape(2, 3, 2)
    m = np.array([[1, 1, 0], [1, 0, 0]], dtype=np.int32)
    got = meta.mean_pool(flow.tensor(h), flow.tensor(m)).numpy()
    np.testing.assert_allclose(got, [h[0, :2].mean(0), h[1, 0]], rtol=1e-6)


def test_domain_expertise_weight_formula():
    p = np.array([1.0, 0.5, 0.0, 0.9], dtype=np.float32)
    w = np.array([0.8, 0.2, 1.0, -0.5], dtype=np.float32)
    expected = (1 + w) / (np.exp((1 - p) ** 2) + 1)
    np.testing.assert_allclose(meta.domain_expertise_weight(p, w), expected, rtol=1e-6)
    np.testing.assert_allclose(meta.domain_expertise_weight(flow.tensor(p), flow.tensor(w)).numpy(), expected,
                               rtol=1e-6)
    assert meta.domain_expertise_weight(1.0, 0.6) == pytest.approx(0.8)  # p = 1: (1 + w) / 2


def test_layer_indexes_scale_and_check():
    assert meta.scale_layer_indexes((3, 7, 11), 12) == [3, 7, 11]
    assert meta.scale_layer_indexes((3, 7, 11), 6) == [1, 3, 5]
    assert meta.scale_layer_indexes((3, 7, 11), 3) == [0, 1, 2]
    assert meta.parse_layer_indexes("1, 3,5", 6) == [1, 3, 5]
    with pytest.raises(ValueError, match=r"\[7, 11\] out of range for a 6-layer model \(0-based: valid 0..5\)"):
        meta.parse_layer_indexes("3,7,11", 6)
    from model_compress.errors import RecipeError
    from model_compress.recipes.mft import choose_layers

    with pytest.raises(RecipeError, match="--layer_indexes"):
        choose_layers("3,7,11", 6)
    assert choose_layers(None, 6) == [1, 3, 5]


# ----------------------------------------------------------------------------------------------
# weighted CE


def test_zero_weight_examples_contribute_nothing():
    rs = np.random.RandomState(0)
    z = rs.randn(4, 3).astype(np.float32)
    w = np.array([1.0, 0.0, 0.5, 0.0], dtype=np.float32)

    def loss_and_grad(labels):
        logits = flow.tensor(z, requires_grad=True)
        loss = meta.weighted_cross_entropy(logits, flow.tensor(labels), flow.tensor(w))
        loss.backward()
        return float(loss.numpy()), logits.grad.numpy()

    y = np.array([0, 1, 2, 0], dtype=np.int64)
    loss, grad = loss_and_grad(y)
    assert loss == pytest.approx((-(np_log_softmax(z)[np.arange(4), y]) * w).mean(), rel=1e-5)
    np.testing.assert_allclose(grad[[1, 3]], 0.0, atol=1e-7)
    flipped = y.copy()
    flipped[[1, 3]] = [2, 1]  # labels of the zero-weight rows changed: nothing moves
    loss2, grad2 = loss_and_grad(flipped)
    assert loss2 == pytest.approx(loss, rel=1e-6)
    np.testing.assert_allclose(grad2, grad, atol=1e-7)


def tiny_config(layers: int = 4, vocab_size: int = 40):
    from model_compress.modeling.config import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                      intermediate_size=32, max_position_embeddings=32, num_labels=2)


def tiny_batch(rs, batch=6, seq=8):
    mask = np.ones((batch, seq), np.int32)
    mask[:, 5:] = 0
    return {
        "input_ids": rs.randint(4, 40, (batch, seq)).astype(np.int32) * mask,
        "input_mask": mask,
        "segment_ids": np.zeros((batch, seq), np.int32),
        "label_ids": rs.randint(0, 2, batch).astype(np.int32),
        "weights": np.array([0.9, 0.0, 0.7, 0.0, 0.8, 0.6], np.float32)[:batch],
        "domain": np.array([0, 1, 2, 0, 1, 2], np.int32)[:batch],
        "shuffled_domain": np.array([1, 2, 0, 2, 0, 1], np.int32)[:batch],
    }


def test_weights_reach_the_mft_objective_loss_and_gradient():
    from model_compress.modeling.bert import BertForSequenceClassification

    flow.manual_seed(0)
    config = tiny_config()
    model = BertForSequenceClassification(config)
    objective = meta.MetaFineTuningObjective(model, meta.DomainCorruptionHead(16, 3, [0, 2, 3]), 0.1)
    objective.eval()  # no dropout: two forwards must agree exactly
    batch = tiny_batch(np.random.RandomState(1))

    def run(b):
        objective.zero_grad()
        out = objective(*[flow.tensor(b[n]) for n in objective.input_names])
        out[0].backward()
        return [float(t.numpy()) for t in (out[0], out[2], out[3])], model.classifier.weight.grad.numpy().copy()

    (loss, ce, dom), grad = run(batch)
    assert loss == pytest.approx(ce + 0.1 * dom, rel=1e-5)
    flipped = dict(batch, label_ids=batch["label_ids"].copy())
    flipped["label_ids"][[1, 3]] = 1 - flipped["label_ids"][[1, 3]]  # zero-weight rows
    (loss2, ce2, _), grad2 = run(flipped)
    assert (loss2, ce2) == pytest.approx((loss, ce), rel=1e-6)
    np.testing.assert_allclose(grad2, grad, atol=1e-7)
    flipped["label_ids"][0] = 1 - flipped["label_ids"][0]  # a weighted row does matter
    (_, ce3, _), _ = run(flipped)
    assert ce3 != pytest.approx(ce, rel=1e-4)


# ----------------------------------------------------------------------------------------------
# domain corruption


def test_shuffled_domains_are_batch_permutations():
    domains = np.tile(np.array([0, 1, 2], np.int32), 8)
    source = meta.WithShuffledDomains(ArrayBatches({"domain": domains}, 6), seed=3)
    batches = list(source)
    differs = 0
    for b in batches:
        true, shuffled = b["domain"].numpy(), b["shuffled_domain"].numpy()
        assert sorted(true.tolist()) == sorted(shuffled.tolist())
        assert shuffled.dtype == true.dtype
        differs += int((true != shuffled).any())
    assert differs >= 3
    source.set_epoch(0)
    again = [b["shuffled_domain"].numpy() for b in source]
    assert all((a == b["shuffled_domain"].numpy()).all() for a, b in zip(again, batches))  # reproducible
    rng = np.random.default_rng(0)
    assert sorted(meta.shuffled_domains(np.array([2, 0, 1, 1]), rng).tolist()) == [0, 1, 1, 2]


def test_domain_head_loss_uses_the_shuffled_labels():
    flow.manual_seed(0)
    rs = np.random.RandomState(2)
    head = meta.DomainCorruptionHead(4, 3, [0, 2])
    states = [rs.randn(5, 3, 4).astype(np.float32) for _ in range(4)]  # embeddings + 3 layers
    mask = np.array([[1, 1, 0]] * 5, np.int32)
    domain = np.array([0, 1, 2, 0, 1], np.int32)
    shuffled = np.array([1, 0, 0, 2, 1], np.int32)
    E = head.domain_embeddings.weight.numpy()
    W, b = head.domain_classifier.weight.numpy(), head.domain_classifier.bias.numpy()

    def expected(targets):
        per_layer = []
        for layer in (0, 2):
            x = states[layer + 1][:, :2].mean(1) + E[domain]
            per_layer.append(-np_log_softmax(x @ W.T + b)[np.arange(5), targets].mean())
        return np.mean(per_layer)

    def got(targets):
        return float(head([flow.tensor(s) for s in states], flow.tensor(mask), flow.tensor(domain),
                          flow.tensor(targets)).numpy())

    assert got(shuffled) == pytest.approx(expected(shuffled), rel=1e-5)
    assert got(shuffled) != pytest.approx(got(domain), rel=1e-3)


# ----------------------------------------------------------------------------------------------
# end to end on a tiny model

WORDS = {"1": "good great fine nice".split(), "0": "bad dull poor awful".split()}
FILLER = "the a film book it was very".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", ".", *FILLER, *WORDS["1"], *WORDS["0"]]


def kshot_rows(rs, domains, k):
    rows = []
    for domain in domains:
        for label in ("0", "1"):
            for _ in range(k):
                words = list(rs.choice(FILLER, 3)) + list(rs.choice(WORDS[label], 2))
                rs.shuffle(words)
                rows.append(f"{' '.join(words)} .\t{domain}\t{label}")
    rs.shuffle(rows)
    return rows


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    from model_compress.modeling.bert import BertForSequenceClassification
    from model_compress.modeling.checkpoint import save_snapshot

    root = tmp_path_factory.mktemp("mft")
    vocab = root / "vocab.txt"
    vocab.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    flow.manual_seed(0)
    config = tiny_config(vocab_size=len(VOCAB))
    model_dir = str(root / "tiny_bert")
    save_snapshot(BertForSequenceClassification(config), model_dir, config, {"name": "tiny"},
                  extra_files={"vocab.txt": str(vocab)})
    rs = np.random.RandomState(0)
    cross = root / "k-shot-cross" / "g1" / "4-42"
    single = root / "k-shot-single" / "SST-2" / "4-42"
    for split in ("train", "dev"):
        cross.mkdir(parents=True, exist_ok=True)
        (cross / f"{split}.csv").write_text("\n".join(kshot_rows(rs, ("SST-2", "MR", "CR"), 4)) + "\n")
    single.mkdir(parents=True)
    for split, k in (("train", 4), ("dev", 4), ("test", 6)):
        (single / f"{split}.csv").write_text("\n".join(kshot_rows(rs, ("SST-2",), k)) + "\n")
    return {"root": root, "model": model_dir, "cross": str(cross), "single": str(single)}


def test_three_steps_end_to_end(tiny_setup):
    from model_compress.cli import normalise_aliases
    from model_compress.data.loader import read_split_with_oneflow
    from model_compress.recipes import mft

    s = tiny_setup
    common = ["--seq_length", "16", "--seed", "42", "--eval_batch_size_per_device", "8"]
    pre = mft.run_preprocess(normalise_aliases(mft.preprocess_parser().parse_args(
        ["--task_name", "g1", "--model_load_dir", s["model"], "--data_dir", s["cross"], "--resave_ofrecord", *common])))
    weights = np.load(os.path.join(s["cross"], "ofrecord", "train", "weight.npy"))
    assert weights.shape == (24,) and np.all(np.abs(weights) <= 1.0 + 1e-6)
    np.testing.assert_allclose(weights, pre["scores"])
    split = read_split_with_oneflow(pre["train_dir"])  # read back through OneFlow's own reader
    np.testing.assert_allclose(split["weights"], weights)
    assert set(split["domain"].tolist()) == {0, 1, 2}

    out = s["root"] / "mft_out"
    run = mft.run_meta_finetuning(normalise_aliases(mft.meta_finetuning_parser().parse_args(
        ["--task_name", "g1", "--model_load_dir", s["model"], "--data_dir", s["cross"], "--num_epochs", "2",
         "--batch_size_per_device", "8", "--learning_rate", "1e-3", "--model_save_dir", str(out),
         "--resave_ofrecord", *common])))
    assert run["layer_indexes"] == [0, 2, 3]  # 3,7,11 scaled to 4 layers
    snapshot = run["snapshot"]
    assert os.path.basename(snapshot).startswith("snapshot_best_mft_model_g1_dev_")
    assert os.path.isfile(os.path.join(snapshot, "config.json"))
    # --resave_ofrecord rebuilt the split: weight.npy is back beside it, unchanged
    np.testing.assert_allclose(np.load(os.path.join(s["cross"], "ofrecord", "train", "weight.npy")), weights)
    assert json.loads((out / "results_eval.json").read_text())["role"] == "mft"

    ft_out = s["root"] / "ft_out"
    result = mft.run_finetuning(normalise_aliases(mft.finetuning_parser().parse_args(
        ["--task_name", "sst-2", "--model_load_dir", snapshot, "--data_dir", s["single"], "--num_epochs", "2",
         "--batch_size_per_device", "4", "--dev_batch_size_per_device", "4", "--model_save_dir", str(ft_out),
         *common])))
    payload = json.loads((ft_out / "results_eval.json").read_text())
    assert payload["eval_split"] == "test" and payload["test"]["num_examples"] == 12
    assert payload["dev"]["num_examples"] == 8
    assert payload["accuracy"] == result["test"]["accuracy"]
    assert os.path.basename(payload["snapshot"]).startswith("snapshot_best_ft_model_sst-2_dev_")


def test_preprocess_entry_script_runs_from_mft_dir(tiny_setup, tmp_path):
    """The seed's command line, typed in model_compress/mft/, with a missing seed vocab path."""
    s = tiny_setup
    cmd = [sys.executable, "preprocess.py", "--task_name", "g1", "--model_load_dir", s["model"],
           "--data_dir", s["cross"], "--num_epochs", "4", "--seed", "42", "--seq_length=16",
           "--train_example_num", "24", "--dev_example_num", "24", "--vocab_file",
           "uncased_L-12_H-768_A-12/vocab.txt", "--resave_ofrecord"]
    done = subprocess.run(cmd, cwd=os.path.join(REPO, "model_compress", "mft"), capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "SST-2" in done.stdout and "all" in done.stdout and "mean" in done.stdout
    assert "not found: using the model's own" in done.stderr
    assert "embedding train: 100%" in done.stderr  # the long pass shows a progress bar
    assert os.path.isfile(os.path.join(s["cross"], "ofrecord", "train", "weight.npy"))


def test_meta_finetuning_without_scores_fails_clearly(tiny_setup, tmp_path):
    from model_compress.recipes import mft

    data = tmp_path / "g1"
    data.mkdir()
    for split in ("train", "dev"):
        (data / f"{split}.csv").write_text((tiny_setup["root"] / "k-shot-cross/g1/4-42" / f"{split}.csv").read_text())
    with pytest.raises(SystemExit, match="run preprocess.py"):
        mft.meta_finetuning_main(["--model_load_dir", tiny_setup["model"], "--data_dir", str(data),
                                  "--seq_length", "16"])
