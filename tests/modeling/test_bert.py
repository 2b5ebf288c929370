"""The OneFlow BERT against an independent numpy BERT, layer slicing, and nn.Graph vs eager training."""

import numpy as np
import oneflow as flow
import pytest

from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import import_hf_safetensors, load_state_into, module_state_numpy
from model_compress.modeling.config import BertConfig
from model_compress.modeling.pretrained import default_pretrained_dir
from model_compress.modeling.slicing import slice_layers
from model_compress.training.graph import make_train_step
from model_compress.training.objectives import ClassificationObjective
from model_compress.training.optim import build_optimizer, build_scheduler
from tests.conftest import TINY_BERT
from tests.numpy_bert import bert_forward


def test_default_weights_match_numpy_bert():
    state, config = import_hf_safetensors(default_pretrained_dir())
    model = BertForSequenceClassification(config.replace(num_labels=2)).eval()
    report = load_state_into(model, state, verbose=False)
    assert report.missing == ["classifier.weight", "classifier.bias"] and not report.unexpected
    rs = np.random.RandomState(0)
    ids = rs.randint(1000, 30000, (3, 16))
    ids[:, 0] = 101
    mask = np.ones((3, 16), np.int64)
    mask[1, 9:] = 0
    types = np.zeros((3, 16), np.int64)
    types[2, 8:] = 1
    _, enc = model(flow.tensor(ids.astype(np.int32)), flow.tensor(types.astype(np.int32)),
                   flow.tensor(mask.astype(np.int32)), output_hidden_states=True, output_attentions=True)
    reference = bert_forward(state, config, ids, mask, types)
    assert len(enc.hidden_states) == config.num_hidden_layers + 1
    for ours, theirs in zip(enc.hidden_states, reference.hidden_states):
        assert np.abs(ours.numpy() - theirs).max() <= 1e-4
    for ours, theirs in zip(enc.attention_probs, reference.attentions):
        assert np.abs(ours.numpy() - theirs).max() <= 1e-5
    np.testing.assert_allclose(enc.pooled_output.numpy(), reference.pooled, atol=1e-4)


def test_outputs_on_request_have_the_documented_shapes():
    config = BertConfig(vocab_size=50, **TINY_BERT)
    model = BertForSequenceClassification(config)
    ids = flow.tensor(np.arange(20, dtype=np.int32).reshape(2, 10) + 3)
    ones = flow.ones(2, 10, dtype=flow.int32)
    logits, enc = model(ids, ones * 0, ones)
    assert logits.shape == (2, 2) and enc.hidden_states == [] and enc.qkv == []
    _, enc = model(ids, ones * 0, ones, output_hidden_states=True, output_attentions=True, output_qkv=True)
    assert len(enc.hidden_states) == 5 and enc.hidden_states[0].shape == (2, 10, 32)
    assert enc.attention_scores[0].shape == (2, 4, 10, 10) and enc.attention_probs[3].shape == (2, 4, 10, 10)
    q, k, v = enc.qkv[2]
    assert q.shape == k.shape == v.shape == (2, 4, 10, 8)


def test_slicing_keeps_exactly_the_chosen_layers():
    config = BertConfig(vocab_size=50, **TINY_BERT)
    state = module_state_numpy(BertForSequenceClassification(config))
    sliced, student_config = slice_layers(state, config, "0,3")
    assert student_config.num_hidden_layers == 2
    for key, value in sliced.items():
        if ".encoder.layer.0." in key:
            assert np.array_equal(value, state[key])
        elif ".encoder.layer.1." in key:
            assert np.array_equal(value, state[key.replace(".layer.1.", ".layer.3.")])
        else:
            assert ".encoder.layer." not in key and np.array_equal(value, state[key])
    non_layer = [k for k in state if ".encoder.layer." not in k]
    assert len(sliced) == len(non_layer) + 2 * 16
    student = BertForSequenceClassification(student_config)
    assert not load_state_into(student, sliced, verbose=False).missing
    with pytest.raises(ValueError, match="outside"):
        slice_layers(state, config, "1,4")


def test_graph_loss_decreases_and_matches_eager_for_first_steps():
    rs = np.random.RandomState(0)
    ids = rs.randint(5, 60, (16, 12)).astype(np.int32)
    labels = (ids[:, 1] > 30).astype(np.int32)[:, None]
    inputs = [flow.tensor(ids), flow.ones(16, 12, dtype=flow.int32), flow.zeros(16, 12, dtype=flow.int32),
              flow.tensor(labels)]
    runs = {}
    for eager in (False, True):
        flow.manual_seed(3)
        model = BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT))
        objective = ClassificationObjective(model)
        optimizer = build_optimizer(objective, 3e-3, fused=False)
        step = make_train_step(objective, optimizer, build_scheduler(optimizer, 40, 0.1), eager=eager)
        runs[eager] = [float(step(*inputs)[0].numpy()) for _ in range(40)]
    np.testing.assert_allclose(runs[False][:5], runs[True][:5], rtol=1e-4)
    assert np.mean(runs[False][-5:]) < 0.5 * runs[False][0]


def test_predictor_handles_a_short_last_batch():
    from model_compress.training.evaluation import Predictor
    from model_compress.training.objectives import ClassifierLogits
    from model_compress.training.sources import ArrayBatches

    rs = np.random.RandomState(0)
    arrays = {"input_ids": rs.randint(5, 60, (10, 8)).astype(np.int32), "input_mask": np.ones((10, 8), np.int32),
              "segment_ids": np.zeros((10, 8), np.int32), "label_ids": np.zeros((10, 1), np.int32)}
    model = BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT)).eval()
    graph_logits, features, _ = Predictor(ClassifierLogits(model)).outputs(ArrayBatches(arrays, 4))
    eager_logits, _, _ = Predictor(ClassifierLogits(model), eager=True).outputs(ArrayBatches(arrays, 10))
    assert graph_logits.shape == (10, 2) and features["input_ids"].shape == (10, 8)
    np.testing.assert_allclose(graph_logits, eager_logits, atol=1e-5)


def test_frozen_word_embeddings_stay_fixed_while_the_rest_trains(tmp_path):
    from model_compress.training.loop import LoopConfig, train
    from model_compress.training.sources import ArrayBatches

    rs = np.random.RandomState(1)
    ids = rs.randint(5, 60, (32, 10)).astype(np.int32)
    arrays = {"input_ids": ids, "input_mask": np.ones((32, 10), np.int32),
              "segment_ids": np.zeros((32, 10), np.int32), "label_ids": (ids[:, 1] > 30).astype(np.int32)[:, None]}
    flow.manual_seed(4)
    model = BertForSequenceClassification(BertConfig(vocab_size=64, **TINY_BERT))
    before = module_state_numpy(model)
    config = LoopConfig(num_epochs=2, learning_rate=1e-2, output_dir=str(tmp_path), show_progress=False,
                        freeze_word_embeddings=True)
    train(ClassificationObjective(model), ArrayBatches(arrays, 8), None, None, lambda m: "s", config)
    after = module_state_numpy(model)
    word = "bert.embeddings.word_embeddings.weight"
    assert word in after
    np.testing.assert_array_equal(after[word], before[word])
    for name in ("bert.embeddings.position_embeddings.weight", "bert.encoder.layer.0.attention.self.query.weight",
                 "classifier.weight"):
        assert not np.allclose(after[name], before[name]), name
