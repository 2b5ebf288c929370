"""PP-MiniLM general distillation: corpus streaming, schedule on resume, and tiny end-to-end runs."""

from __future__ import annotations

import json
import os

import numpy as np
import oneflow as flow
import pytest

from model_compress.data.corpus import CorpusStream, list_corpus_files, make_corpus, shard_files
from model_compress.data.tokenization import FullTokenizer
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import load_snapshot, module_state_numpy, save_snapshot
from model_compress.modeling.config import BertConfig
from model_compress.recipes import minilm as gd
from model_compress.recipes.minilm import ROLE, check_relation_heads, step_config
from model_compress.training.resume import list_snapshots, lr_at
from model_compress.training.steps import resumed_step_optimization

WORDS = "the a book film kettle plot screen is was very not good bad great dull and but it".split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS, ".", "!"]


def _write_vocab(path) -> str:
    path.write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    return str(path)


def _write_corpus(directory, files: int = 3, lines: int = 40, seed: int = 0) -> str:
    rng = np.random.RandomState(seed)
    directory.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        text = []
        for _ in range(lines):
            words = rng.choice(WORDS, size=rng.randint(2, 9))
            text.append(" ".join(words) + " .")
            if rng.rand() < 0.1:
                text.append("")  # blank lines are skipped
        (directory / f"part-{f}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    return str(directory)


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory):
    """A tiny random teacher snapshot (with vocab.txt) and a tiny three-file corpus."""
    root = tmp_path_factory.mktemp("general_distill")
    vocab = _write_vocab(root / "vocab.txt")
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=32, max_position_embeddings=32)
    flow.manual_seed(0)
    state = module_state_numpy(BertForSequenceClassification(config))
    for key in state:  # sharpen the random teacher's attention so its relations are far from uniform
        if ".attention.self." in key and key.endswith(".weight"):
            state[key] = state[key] * 10.0
    teacher_dir = save_snapshot(state, str(root / "teacher"), config, {"role": "teacher"},
                                extra_files={"vocab.txt": vocab})
    corpus = _write_corpus(root / "corpus")
    return {"root": root, "teacher": teacher_dir, "corpus": corpus, "vocab": vocab}


def _args(setup, output_dir, **overrides):
    flags = {
        "--teacher_model_name_or_path": setup["teacher"], "--input_dir": setup["corpus"],
        "--output_dir": str(output_dir), "--num_layers": 2, "--hidden_size": 8, "--num_attention_heads": 2,
        "--intermediate_size": 16, "--num_relation_heads": 4, "--max_seq_length": 16, "--batch_size": 4,
        "--learning_rate": 5e-3, "--warmup_steps": 0, "--logging_steps": 1, "--save_steps": 3, "--max_steps": 6,
        "--seed": 1, "--shuffle_buffer": 16,
    }
    flags.update({f"--{k}": v for k, v in overrides.items()})
    argv = []
    for key, value in flags.items():
        argv += [key, str(value)]
    return gd.build_parser().parse_args(argv)


# -- corpus --------------------------------------------------------------------------------------------------
def test_stream_packs_within_length_and_covers_every_sentence(tiny_setup):
    tok = FullTokenizer(tiny_setup["vocab"])
    files = list_corpus_files(tiny_setup["corpus"])
    single = CorpusStream(files, tok, 16, seed=3, pack=False)
    sentences = [line for f in files for line in open(f, encoding="utf-8") if line.strip()]
    seqs = list(single.sequences(0))
    assert len(seqs) == len(sentences)
    assert sorted(tuple(s[1:-1]) for s in seqs) == sorted(tuple(tok.encode(t)[:14]) for t in sentences)
    packed = list(CorpusStream(files, tok, 16, seed=3).sequences(0))
    assert all(s[0] == tok.vocab["[CLS]"] and s[-1] == tok.vocab["[SEP]"] and len(s) <= 16 for s in packed)
    assert len(packed) < len(seqs)  # packing joins sentences
    assert sum(len(s) - 2 for s in packed) == sum(len(s) - 2 for s in seqs)  # ...and loses no token


def test_stream_batches_shape_mask_and_skip(tiny_setup):
    tok = FullTokenizer(tiny_setup["vocab"])
    stream = CorpusStream(list_corpus_files(tiny_setup["corpus"]), tok, 16, seed=0, shuffle_buffer=8)
    it = stream.batches(4)
    batches = [next(it) for _ in range(40)]  # several passes over the corpus
    first = batches[0]
    assert first["input_ids"].shape == (4, 16) and first["input_ids"].dtype == np.int32
    assert ((first["input_ids"] != 0) == (first["input_mask"] == 1)).all()
    skipped = next(stream.batches(4, skip=37))
    for name in first:
        np.testing.assert_array_equal(skipped[name], batches[37][name])


def test_files_are_sharded_across_ranks(tiny_setup):
    files = [f"f{i}" for i in range(5)]
    shards = [shard_files(files, r, 2) for r in range(2)]
    assert sorted(shards[0] + shards[1]) == files and not set(shards[0]) & set(shards[1])
    assert shard_files(files[:1], 1, 2) == files[:1]  # more ranks than files: share


def test_make_corpus_splits_sentences_and_dedupes(tmp_path):
    data = tmp_path / "SST-2"
    data.mkdir()
    (data / "train.tsv").write_text("sentence\tlabel\nit was good . it was bad !\t1\nit was good .\t0\n",
                                    encoding="utf-8")
    out = tmp_path / "corpus"
    assert make_corpus([("sst-2", str(data))], str(out), num_files=4) == 2
    lines = sorted(line for f in sorted(os.listdir(out)) for line in (out / f).read_text().splitlines())
    assert lines == ["it was bad !", "it was good ."]
    assert make_corpus([("sst-2", str(data))], str(out)) == 0  # kept


# -- schedule ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("start", [0, 2, 4, 7])
def test_resumed_schedule_continues_the_learning_rate(start):
    module = flow.nn.Linear(2, 2)
    args = gd.build_parser().parse_args(["--input_dir", "x", "--output_dir", "y", "--max_steps", "10",
                                         "--learning_rate", "1.0", "--eager"])
    settings = gd.distill_settings(args)
    optimizer, scheduler = resumed_step_optimization(module, step_config(settings, warmup_steps=4), start)
    seen = []
    for _ in range(start, 10):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    expected = [lr_at(step, 1.0, 10, 4) for step in range(start, 10)]
    np.testing.assert_allclose(seen, expected, atol=1e-6)


def test_bad_relation_heads_fail_with_choices():
    from model_compress.errors import RecipeError

    with pytest.raises(RecipeError, match=r"valid: \[1, 2, 4, 8\]"):
        check_relation_heads(3, [16, 8])


# -- end to end ----------------------------------------------------------------------------------------------
def test_snapshots_and_resume(tiny_setup, tmp_path):
    out = tmp_path / "run"
    first = gd.run(_args(tiny_setup, out))
    assert first["step"] == 6
    assert [s for s, _ in list_snapshots(str(out))] == [3, 6]
    state, config, meta = load_snapshot(str(out / "model_6"))
    assert meta["step"] == 6 and meta["role"] == ROLE and meta["teacher_layer_index"] == 1
    assert config.num_hidden_layers == 2 and config.hidden_size == 8 and config.vocab_size == len(VOCAB)
    assert os.path.isfile(out / "model_6" / "vocab.txt")
    assert not any(k.startswith("classifier.") for k in state)
    assert all(np.isfinite(loss) for _, loss in first["losses"])

    again = gd.run(_args(tiny_setup, out, max_steps=9))
    assert again["losses"][0][0] == 7 and again["step"] == 9
    assert [s for s, _ in list_snapshots(str(out))] == [3, 6, 9]
    log = [json.loads(line) for line in (out / "general_distill_log.json").read_text().splitlines()]
    assert [entry["start_step"] for entry in log] == [0, 6]

    # frozen parts (pooler, the distilled layer's feed-forward block) are carried over unchanged, trained ones moved
    resumed, _, _ = load_snapshot(str(out / "model_9"))
    for key in ("bert.pooler.dense.weight", "bert.encoder.layer.1.output.dense.weight"):
        np.testing.assert_array_equal(resumed[key], state[key])
    assert not np.array_equal(resumed["bert.encoder.layer.1.attention.self.query.weight"],
                              state["bert.encoder.layer.1.attention.self.query.weight"])

    # max_steps reached: nothing to train, the existing snapshot is reported
    assert gd.run(_args(tiny_setup, out, max_steps=9))["snapshot"] == str(out / "model_9")

    # a general student loads as a classifier for fine-tuning (fresh task head)
    from model_compress.recipes.common import load_classifier

    model, cfg, _ = load_classifier(str(out / "model_9"), 3, verbose=False)
    assert cfg.num_labels == 3 and model.classifier.weight.shape == (3, 8)


def test_initial_student_only_with_zero_steps(tiny_setup, tmp_path):
    result = gd.run(_args(tiny_setup, tmp_path / "init", max_steps=0))
    assert result["snapshot"].endswith("model_0") and os.path.isdir(result["snapshot"])


def test_loss_decreases(tiny_setup, tmp_path):
    result = gd.run(_args(tiny_setup, tmp_path / "long", max_steps=40, save_steps=40, beta=0.3, alpha=0.1,
                          hidden_size=16, num_attention_heads=4, learning_rate=1e-2))
    losses = np.array([loss for _, loss in result["losses"]])
    assert np.isfinite(losses).all()
    assert losses[-8:].mean() < 0.6 * losses[:4].mean()  # measured: about 0.4
