"""Length buckets: bound choice, epoch plans, bucketed loader batches, graphs per shape sharing one optimizer,
bucketed evaluation equal to padded evaluation, cached targets cut to the batch's length."""

from __future__ import annotations

import itertools

import numpy as np
import oneflow as flow
import pytest

from model_compress.data import buckets
from model_compress.data.loader import OFRecordLoader
from model_compress.data.ofrecord import ensure_ofrecord_split
from model_compress.data.processors import InputExample
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.config import BertConfig
from model_compress.training.graph import EagerTrainStep, GraphPerShape, TrainGraph, make_train_step
from model_compress.training.objectives import ClassificationObjective
from model_compress.training.optim import build_optimizer, build_scheduler
from model_compress.training.sources import WithCachedTargets
from tests.conftest import TINY_BERT

LABELS = ["negative", "positive"]
SEQ = 24


# -- bounds and plans (numpy only) ------------------------------------------------------------------
def test_parse_length_buckets():
    assert buckets.parse_length_buckets("none") is None
    assert buckets.parse_length_buckets("AUTO") == buckets.AUTO
    assert buckets.parse_length_buckets("64,16,32,16") == (16, 32, 64)
    for bad in ("16,x", "0,16", ","):
        with pytest.raises(buckets.BucketSpecError):
            buckets.parse_length_buckets(bad)


def test_the_flag_reaches_the_data_settings_and_bad_values_end_in_one_line(capsys):
    from model_compress.recipes import teacher
    from model_compress.recipes.settings import DataSettings, from_flags

    args = teacher.build_parser().parse_args(["--length_buckets", "16,32"])
    assert from_flags(DataSettings, args).length_buckets == (16, 32)
    assert teacher.build_parser().parse_args([]).length_buckets == buckets.AUTO
    with pytest.raises(SystemExit) as exit_info:
        teacher.build_parser().parse_args(["--length_buckets", "short"])
    assert exit_info.value.code == 2 and "--length_buckets" in capsys.readouterr().err


def test_chosen_bounds_minimise_padding_against_brute_force():
    rs = np.random.RandomState(0)
    lengths = np.clip(rs.gamma(3.0, 7.0, size=500).astype(int), 2, 64)
    chosen = buckets.choose_bounds(lengths, 64, max_buckets=3)

    def padded(bounds):
        return int(np.asarray(bounds)[buckets.bucket_ids(lengths, bounds)].sum())

    candidates = list(range(8, 64, 8))
    best = min(padded(tuple(c) + (64,)) for k in range(0, 3) for c in itertools.combinations(candidates, k))
    assert chosen[-1] == 64 and len(chosen) <= 3 and padded(chosen) == best
    assert padded(chosen) < padded((64,))
    # no record needs more than its longest length rounded up to the multiple
    assert buckets.choose_bounds(np.minimum(lengths, 37), 64, max_buckets=3)[-1] == 40


def test_resolve_bounds_caps_and_adds_seq_length():
    lengths = np.array([3, 5, 20])
    assert buckets.resolve_bounds((8, 16, 100), lengths, 32) == (8, 16, 32)
    assert buckets.resolve_bounds(None, lengths, 32) is None
    assert buckets.resolve_bounds((32,), lengths, 32) is None  # one bound = no buckets


@pytest.mark.parametrize("drop_last", [True, False])
def test_plan_visits_every_record_once_in_its_bound(drop_last):
    rs = np.random.RandomState(1)
    lengths = rs.randint(1, 65, size=203)
    bounds = (16, 32, 48, 64)
    ids = buckets.bucket_ids(lengths, bounds)
    order = rs.permutation(203)
    plan = buckets.plan_batches(order, ids, len(bounds), 8, drop_last, shuffle_seed=(3, 0))
    rows = np.concatenate([index for _, index in plan])
    assert len(plan) == (203 // 8 if drop_last else -(-203 // 8))  # as many batches as without buckets
    assert len(set(rows.tolist())) == len(rows) == (203 - 203 % 8 if drop_last else 203)
    for bucket, index in plan:
        assert lengths[index].max() <= bounds[bucket]
        assert len(index) == 8 or (not drop_last and bucket == len(bounds) - 1)
    again = buckets.plan_batches(order, ids, len(bounds), 8, drop_last, shuffle_seed=(3, 0))
    assert all(a[0] == b[0] and np.array_equal(a[1], b[1]) for a, b in zip(plan, again))
    other = buckets.plan_batches(order, ids, len(bounds), 8, drop_last, shuffle_seed=(3, 1))
    assert [b for b, _ in other] != [b for b, _ in plan]  # the batch order is shuffled per epoch seed


# -- the loader on real OFRecords -------------------------------------------------------------------
@pytest.fixture()
def split(tmp_path, data_tokenizer):
    words = ["good", "bad", "the", "book", "film", "very", "not", "great", "dull", "kettle"]
    examples = [InputExample(f"g{i}", " ".join(words[(i * 3 + j) % 10] for j in range(1 + (i * 7) % 20)), None,
                             LABELS[(i // 3) % 2]) for i in range(61)]
    return ensure_ofrecord_split(examples, str(tmp_path), "train", data_tokenizer, SEQ, LABELS, num_parts=2)


def test_bucketed_training_batches_are_sliced_and_cover_the_epoch(split):
    plain = OFRecordLoader(split.directory, batch_size=4, train=True, seed=5)
    loader = OFRecordLoader(split.directory, batch_size=4, train=True, seed=5, length_buckets=(8, 16))
    assert loader.bounds == (8, 16, SEQ) and len(loader) == len(plain) == 61 // 4
    full = plain.arrays
    seen = []
    for batch in loader:
        width = batch["input_ids"].shape[1]
        assert width in loader.bounds and batch["input_mask"].shape == (4, width)
        idxs = batch["idxs"].numpy()
        np.testing.assert_array_equal(batch["input_ids"].numpy(), full["input_ids"][idxs, :width])
        assert full["input_mask"][idxs, width:].sum() == 0  # nothing but padding was cut
        seen.extend(idxs.tolist())
    assert len(seen) == len(set(seen)) == 60
    assert "<=8:" in loader.bucket_summary()


def test_ranks_run_the_same_bucket_at_every_step_on_disjoint_rows(split):
    ranks = [OFRecordLoader(split.directory, batch_size=3, train=True, seed=2, rank=r, world_size=2,
                            length_buckets=buckets.AUTO) for r in range(2)]
    plans = [loader.epoch_plan(0) for loader in ranks]
    assert len(plans[0]) == len(plans[1]) == len(ranks[0]) == 61 // 6
    for (bound0, rows0), (bound1, rows1) in zip(*plans):
        assert bound0 == bound1 and len(rows0) == len(rows1) == 3 and not set(rows0) & set(rows1)


# -- graphs per shape share one optimizer --------------------------------------------------------------
def _tiny_training(seed=0):
    flow.manual_seed(seed)
    objective = ClassificationObjective(BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT)))
    objective.train()
    optimizer = build_optimizer(objective, 1e-3, 0.01, 1.0)
    return objective, optimizer, build_scheduler(optimizer, 10, 0.2)


def _batches(lengths_per_step):
    rs = np.random.RandomState(0)
    out = []
    for seq in lengths_per_step:
        ids = rs.randint(5, 60, (6, seq)).astype(np.int32)
        mask = (np.arange(seq)[None] < rs.randint(2, seq + 1, (6, 1))).astype(np.int32)
        out.append([flow.tensor(a) for a in (ids * mask, mask, np.zeros_like(ids), rs.randint(0, 2, (6, 1))
                                             .astype(np.int32))])
    return out


def _params(module):
    return {k: v.numpy() for k, v in module.state_dict().items()}


def test_graphs_of_two_shapes_step_like_one_eager_optimizer():
    batches = _batches([8, 16, 8, 16, 16, 8, 8, 16, 8, 16])
    objective, optimizer, scheduler = _tiny_training()
    eager = EagerTrainStep(objective, optimizer, scheduler)
    eager_losses = [float(eager(*b)[0].numpy()) for b in batches]
    reference = _params(objective)

    objective, optimizer, scheduler = _tiny_training()
    step = make_train_step(objective, optimizer, scheduler, per_shape=True)
    graph_losses = [float(step(*b)[0].numpy()) for b in batches]
    assert isinstance(step, GraphPerShape) and len(step.graphs) == 2
    np.testing.assert_allclose(graph_losses, eager_losses, atol=1e-5)
    shared = _params(objective)
    assert max(np.abs(shared[k] - reference[k]).max() for k in reference) < 1e-5

    # the same two graphs without the shared state (each its own Adam moments and step) drift apart
    objective, optimizer, scheduler = _tiny_training()
    step = GraphPerShape(lambda: TrainGraph(objective, optimizer, scheduler), share_state=False, module=objective)
    for b in batches:
        if tuple(b[0].shape) not in [k[0] for k in step.graphs]:
            for p in objective.parameters():
                p.grad = None
        step(*b)
    separate = _params(objective)
    assert max(np.abs(separate[k] - reference[k]).max() for k in reference) > 1e-4


# -- evaluation ----------------------------------------------------------------------------------------
def test_bucketed_evaluation_gives_the_metrics_of_padded_evaluation(split):
    from model_compress.training.evaluation import Predictor, evaluate_classifier
    from model_compress.training.objectives import ClassifierLogits

    flow.manual_seed(3)
    model = BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT)).eval()
    padded = OFRecordLoader(split.directory, batch_size=8, train=False)
    bucketed = OFRecordLoader(split.directory, batch_size=8, train=False, length_buckets=(8, 16))
    assert len({b["input_ids"].shape[1] for b in bucketed}) == 3
    plain = evaluate_classifier(Predictor(ClassifierLogits(model)), padded)
    cut = evaluate_classifier(Predictor(ClassifierLogits(model)), bucketed)
    for key in ("accuracy", "mcc", "precision", "recall", "f1", "num_examples"):
        assert cut[key] == plain[key], key
    logits_plain, features_plain, _ = Predictor(ClassifierLogits(model)).outputs(padded)
    logits_cut, features_cut, _ = Predictor(ClassifierLogits(model)).outputs(bucketed)
    order = features_cut["idxs"].reshape(-1)
    np.testing.assert_allclose(logits_cut, logits_plain[order], atol=1e-5)
    np.testing.assert_array_equal(features_cut["input_ids"], features_plain["input_ids"][order])


# -- cached targets ------------------------------------------------------------------------------------
def test_cached_sequence_targets_are_cut_to_the_batch_length(split):
    loader = OFRecordLoader(split.directory, batch_size=5, train=True, seed=1, length_buckets=(8, 16))
    n = loader.num_records
    rs = np.random.RandomState(0)
    cached = {"teacher_logits": rs.randn(n, 2).astype(np.float32),
              "teacher_hidden": rs.randn(n, 2, SEQ, 6).astype(np.float32),
              "teacher_attention": rs.randn(n, 2, 3, SEQ, SEQ).astype(np.float32)}
    widths = set()
    for batch in WithCachedTargets(loader, cached):
        width, idxs = batch["input_ids"].shape[1], batch["idxs"].numpy()
        widths.add(width)
        np.testing.assert_array_equal(batch["teacher_hidden"].numpy(), cached["teacher_hidden"][idxs][:, :, :width])
        np.testing.assert_array_equal(batch["teacher_attention"].numpy(),
                                      cached["teacher_attention"][idxs][:, :, :, :width, :width])
        np.testing.assert_array_equal(batch["teacher_logits"].numpy(), cached["teacher_logits"][idxs])
    assert len(widths) > 1


# -- distillation objectives are the same on a batch cut to its bucket -----------------------------------
@pytest.mark.parametrize("attention", ["scores", "probs"])
def test_intermediate_losses_do_not_change_when_the_batch_is_cut_to_its_length(attention):
    from model_compress.distill.objectives import TeacherTargets, TinyBERTIntermediateObjective
    from model_compress.training.sources import CACHED_SEQUENCE_AXES, slice_tokens

    flow.manual_seed(4)
    teacher = BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT)).eval()
    student = BertForSequenceClassification(BertConfig(vocab_size=64, **{**TINY_BERT, "num_hidden_layers": 2}))
    objective = TinyBERTIntermediateObjective(student.eval(), TINY_BERT["hidden_size"], attention).eval()
    rs = np.random.RandomState(5)
    full, cut = 16, 9
    mask = (np.arange(full)[None] < rs.randint(2, cut + 1, (5, 1))).astype(np.int32)
    mask[0, :cut] = 1  # the longest row fills the cut length
    ids = (rs.randint(5, 60, (5, full)) * mask).astype(np.int32)
    segments = np.zeros_like(ids)
    targets = TeacherTargets(teacher, hidden_layers=[0, 2, 4], attention_layers=[1, 3], attention=attention)
    _, att_t, hid_t = [t.numpy() for t in targets(*[flow.tensor(a) for a in (ids, mask, segments)])]

    def loss(width):
        cached = {"teacher_attention": slice_tokens(att_t, CACHED_SEQUENCE_AXES["teacher_attention"], width),
                  "teacher_hidden": slice_tokens(hid_t, CACHED_SEQUENCE_AXES["teacher_hidden"], width)}
        inputs = [flow.tensor(np.ascontiguousarray(a[:, :width])) for a in (ids, mask, segments)]
        out = objective(*inputs, flow.tensor(cached["teacher_attention"]), flow.tensor(cached["teacher_hidden"]))
        return [float(t.numpy()) for t in (out[0], out[2], out[3])]

    np.testing.assert_allclose(loss(cut), loss(full), rtol=1e-5)
