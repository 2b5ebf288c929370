"""Checkpoint I/O: project snapshots, legacy layout, safetensors, loading into modules, default weights."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import oneflow as flow
import pytest

import model_compress  # noqa: F401  (environment before oneflow)
from model_compress.modeling import checkpoint as ck
from model_compress.modeling import pretrained
from model_compress.modeling.config import BertConfig
from tests.numpy_bert import bert_forward, mean_pool

TINY = BertConfig(
    vocab_size=20,
    hidden_size=8,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=16,
    max_position_embeddings=12,
    type_vocab_size=2,
    num_labels=3,
)


def all_keys(config: BertConfig) -> list[str]:
    keys = [
        "bert.embeddings.word_embeddings.weight",
        "bert.embeddings.position_embeddings.weight",
        "bert.embeddings.token_type_embeddings.weight",
        "bert.embeddings.LayerNorm.weight",
        "bert.embeddings.LayerNorm.bias",
        "bert.pooler.dense.weight",
        "bert.pooler.dense.bias",
        "classifier.weight",
        "classifier.bias",
    ]
    for i in range(config.num_hidden_layers):
        for part in (
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
            "attention.output.LayerNorm",
            "intermediate.dense",
            "output.dense",
            "output.LayerNorm",
        ):
            keys += [f"bert.encoder.layer.{i}.{part}.weight", f"bert.encoder.layer.{i}.{part}.bias"]
    return keys


def random_state(config: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(ck.expected_shape(k, config)).astype(np.float32) for k in all_keys(config)}


def hidden_siblings(path) -> list[str]:
    return [n for n in os.listdir(os.path.dirname(path)) if n.startswith(f".{os.path.basename(path)}.")]


# ----------------------------------------------------------------------------------------------------
# project snapshots
# ----------------------------------------------------------------------------------------------------
def test_project_snapshot_round_trip(tmp_path, capsys):
    state = random_state(TINY)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\nhello\n")
    path = str(tmp_path / "snapshot_best")
    meta = {"score": np.float32(0.875), "step": 120, "task": "sst-2", "flags": {"lr": 5e-5}}
    ck.save_snapshot(state, path, TINY, meta, extra_files={"vocab.txt": str(vocab)})
    assert sorted(os.listdir(path))[:3] == ["config.json", "pickled_data", "snapshot.json"]
    assert (tmp_path / "snapshot_best" / "vocab.txt").read_text() == "[PAD]\nhello\n"
    assert BertConfig.from_json_file(os.path.join(path, "config.json")) == TINY

    loaded, config, got_meta = ck.load_snapshot(path)
    assert path in capsys.readouterr().err
    assert config == TINY
    assert got_meta["score"] == pytest.approx(0.875) and got_meta["step"] == 120
    assert got_meta["task"] == "sst-2" and got_meta["flags"] == {"lr": 5e-5}
    assert got_meta["snapshot_format"] == "project"
    assert sorted(loaded) == sorted(state)
    for key in state:
        assert loaded[key].dtype == np.float32
        np.testing.assert_array_equal(loaded[key], state[key])
    # the directory is a plain flow.save output too
    plain = flow.load(path)
    np.testing.assert_array_equal(plain["classifier.bias"].numpy(), state["classifier.bias"])
    assert not hidden_siblings(path)


def test_load_prints_unpickle_notice(tmp_path, capsys):
    path = str(tmp_path / "s")
    ck.save_snapshot({"w": np.ones(2, np.float32)}, path)
    capsys.readouterr()
    ck.load_snapshot(path)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and path in err[0] and "unpickles" in err[0]


def test_save_module_and_replace_existing(tmp_path):
    module = flow.nn.Sequential(flow.nn.Linear(4, 3), flow.nn.LayerNorm(3))
    path = str(tmp_path / "snap")
    ck.save_snapshot({"old": np.zeros(1, np.float32)}, path, meta={"score": 0.1})
    ck.save_snapshot(module, path, meta={"score": 0.2})
    state, config, meta = ck.load_snapshot(path)
    assert config is None and meta["score"] == 0.2
    expected = ck.module_state_numpy(module)
    assert sorted(state) == sorted(expected) == ["0.bias", "0.weight", "1.bias", "1.weight"]
    for key in expected:
        np.testing.assert_array_equal(state[key], expected[key])
    assert not hidden_siblings(path)


def test_failed_save_leaves_no_snapshot_and_no_temp(tmp_path):
    path = str(tmp_path / "snapshot_best")
    with pytest.raises(FileNotFoundError):  # fails after flow.save has written the tensors
        ck.save_snapshot(
            random_state(TINY), path, TINY, {"score": 1}, extra_files={"x": str(tmp_path / "nope")}
        )
    assert not os.path.exists(path)
    assert os.listdir(tmp_path) == []


def test_failed_replace_keeps_old_snapshot(tmp_path):
    path = str(tmp_path / "snap")
    ck.save_snapshot({"w": np.full(3, 7, np.float32)}, path, meta={"score": 0.5})
    with pytest.raises(FileNotFoundError):
        ck.save_snapshot({"w": np.zeros(3, np.float32)}, path, extra_files={"x": str(tmp_path / "nope")})
    state, _, meta = ck.load_snapshot(path)
    np.testing.assert_array_equal(state["w"], np.full(3, 7, np.float32))
    assert meta["score"] == 0.5 and not hidden_siblings(path)


def test_unserialisable_meta_fails_before_writing(tmp_path):
    path = str(tmp_path / "snap")
    with pytest.raises(TypeError):
        ck.save_snapshot({"w": np.zeros(1, np.float32)}, path, meta={"bad": object()})
    assert os.listdir(tmp_path) == []


def test_refusals(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ck.load_snapshot(str(tmp_path / "missing"))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hi")
    with pytest.raises(ValueError, match="not a checkpoint"):
        ck.load_snapshot(str(tmp_path / "junk"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        ck.save_snapshot({"w": np.zeros(1, np.float32)}, str(tmp_path / "file"))


# ----------------------------------------------------------------------------------------------------
# legacy layout
# ----------------------------------------------------------------------------------------------------
def test_legacy_name_table():
    assert ck.legacy_to_hf_name("bert-embeddings-LayerNorm-gamma") == (
        "bert.embeddings.LayerNorm.weight",
        False,
    )
    assert ck.legacy_to_hf_name("bert-encoder-layer_3-attention-self-query-weight") == (
        "bert.encoder.layer.3.attention.self.query.weight",
        True,
    )
    assert ck.legacy_to_hf_name("bert-encoder-layer_11-output-LayerNorm-beta") == (
        "bert.encoder.layer.11.output.LayerNorm.bias",
        False,
    )
    assert ck.legacy_to_hf_name("bert-pooler-dense-weight") == ("bert.pooler.dense.weight", True)
    assert ck.legacy_to_hf_name("classification-output_weights") == ("classifier.weight", False)
    assert ck.legacy_to_hf_name("cls-predictions-output_bias") is None
    for key in all_keys(TINY):
        legacy, transposed = ck.hf_to_legacy_name(key)
        assert ck.legacy_to_hf_name(legacy) == (key, transposed)


def test_legacy_round_trip_with_transposes_and_skips(tmp_path):
    state = random_state(TINY, seed=1)
    path = tmp_path / "legacy"
    ck.write_legacy_snapshot(state, str(path), zero_moments=True)
    query = path / "bert-encoder-layer_1-attention-self-query-weight" / "out"
    raw = np.fromfile(query, dtype="<f4").reshape(8, 8)
    np.testing.assert_array_equal(
        raw, state["bert.encoder.layer.1.attention.self.query.weight"].T
    )  # [in, out]
    inter = np.fromfile(path / "bert-encoder-layer_0-intermediate-dense-weight" / "out", dtype="<f4")
    np.testing.assert_array_equal(
        inter.reshape(8, 16), state["bert.encoder.layer.0.intermediate.dense.weight"].T
    )
    head = np.fromfile(path / "classification-output_weights" / "out", dtype="<f4").reshape(3, 8)
    np.testing.assert_array_equal(head, state["classifier.weight"])  # [labels, hidden], not transposed
    assert (path / "snapshot_done").is_file()
    assert not np.fromfile(path / "bert-pooler-dense-weight-m" / "out", dtype="<f4").any()
    # variables the originals saved besides the model
    for extra, payload in (
        ("System-Train-TrainStep-TrainJob", struct.pack("<q", 1234)),
        ("cls-predictions-output_bias", np.ones(20, "<f4").tobytes()),
    ):
        (path / extra).mkdir()
        (path / extra / "out").write_bytes(payload)

    skipped: list[str] = []
    back = ck.read_legacy_snapshot(str(path), TINY, skipped=skipped)
    assert sorted(back) == sorted(state)
    for key in state:
        np.testing.assert_array_equal(back[key], state[key])
    assert "bert-pooler-dense-weight-m" in skipped and "bert-pooler-dense-weight-v" in skipped
    assert "System-Train-TrainStep-TrainJob" in skipped and "cls-predictions-output_bias" in skipped

    loaded, config, meta = ck.load_snapshot(str(path))  # no config: inferred from sizes
    assert meta["snapshot_format"] == "legacy" and meta["legacy_prefix"] == ""
    assert config.replace(num_attention_heads=2) == TINY
    np.testing.assert_array_equal(loaded["bert.pooler.dense.weight"], state["bert.pooler.dense.weight"])


def test_legacy_position_table_with_meta_file(tmp_path):
    state = random_state(TINY, seed=2)
    path = tmp_path / "legacy"
    ck.write_legacy_snapshot(state, str(path))
    pos = path / "bert-embeddings-position_embeddings"
    (pos / "meta").write_text("shape {\n  dim: 1\n  dim: 12\n  dim: 8\n}\ndata_type: kFloat\n")
    back = ck.read_legacy_snapshot(str(path), TINY)
    np.testing.assert_array_equal(
        back["bert.embeddings.position_embeddings.weight"],
        state["bert.embeddings.position_embeddings.weight"],
    )


def test_legacy_student_prefix(tmp_path):
    teacher = random_state(TINY, seed=3)
    student_cfg = TINY.replace(num_hidden_layers=1)
    student = random_state(student_cfg, seed=4)
    wrapped = {f"teacher.{k}": v for k, v in teacher.items()}
    wrapped.update({f"student.{k}": v for k, v in student.items()})
    fit = np.arange(48, dtype=np.float32).reshape(6, 8)  # [teacher width, student width]
    wrapped["student.fit_dense.weight"] = fit
    wrapped["student.fit_dense.bias"] = np.ones(6, np.float32)
    path = tmp_path / "kd"
    ck.write_legacy_snapshot(wrapped, str(path))
    names = set(os.listdir(path))
    assert "student-bert-encoder-layer_0-attention-self-key-weight" in names
    assert "student-fit_dense-weight" in names and "bert-encoder-layer_1-output-dense-bias" in names
    assert "student-bert-encoder-layer_1-output-dense-bias" not in names

    got_teacher, cfg_t, meta = ck.load_snapshot(str(path), config=TINY)
    assert meta["legacy_prefix"] == "" and sorted(got_teacher) == sorted(teacher)
    got_student, _, meta = ck.load_snapshot(str(path), config=student_cfg, legacy_prefix="student-")
    assert meta["legacy_prefix"] == "student-"
    np.testing.assert_array_equal(got_student["fit_dense.weight"], fit)
    for key in student:
        np.testing.assert_array_equal(got_student[key], student[key])

    only_student = tmp_path / "student_only"
    ck.write_legacy_snapshot(student, str(only_student), prefix="student-")
    assert all(n.startswith("student-") or n == "snapshot_done" for n in os.listdir(only_student))
    auto, config, meta = ck.load_snapshot(str(only_student))
    assert meta["legacy_prefix"] == "student-" and config.num_hidden_layers == 1
    np.testing.assert_array_equal(auto["classifier.weight"], student["classifier.weight"])


def test_legacy_size_mismatch_names_folder(tmp_path):
    path = tmp_path / "legacy"
    ck.write_legacy_snapshot(random_state(TINY), str(path))
    with pytest.raises(ValueError, match="bert-embeddings-word_embeddings/out holds 160"):
        ck.read_legacy_snapshot(str(path), TINY.replace(vocab_size=30))
    with pytest.raises(ValueError, match="no legacy name"):
        ck.write_legacy_snapshot({"mystery.weight": np.zeros(2, np.float32)}, str(tmp_path / "x"))


# ----------------------------------------------------------------------------------------------------
# safetensors
# ----------------------------------------------------------------------------------------------------
def write_raw_safetensors(path, entries: dict[str, tuple[str, list[int], bytes]], pad: bool = True) -> None:
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (dtype, shape, raw) in entries.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def test_safetensors_dtypes(tmp_path):
    f32 = np.array([[1.0, -2.5], [3.25, 1e-3]], np.float32)
    f16 = np.array([0.5, -1.25, 65504.0], np.float16)
    bf16_values = np.array([1.5, -2.0, 0.15625, 2.0**100], np.float32)
    bf16_raw = (bf16_values.view(np.uint32) >> 16).astype("<u2").tobytes()  # exact for these values
    ids = np.arange(4, dtype=np.int64).reshape(1, 4)
    path = tmp_path / "m.safetensors"
    write_raw_safetensors(
        path,
        {
            "a": ("F32", [2, 2], f32.astype("<f4").tobytes()),
            "b": ("F16", [3], f16.astype("<f2").tobytes()),
            "c": ("BF16", [2, 2], bf16_raw),
            "ids": ("I64", [1, 4], ids.astype("<i8").tobytes()),
        },
    )
    got = ck.read_safetensors(str(path))
    np.testing.assert_array_equal(got["a"], f32)
    assert got["b"].dtype == np.float32 and got["c"].dtype == np.float32
    np.testing.assert_array_equal(got["b"], f16.astype(np.float32))
    np.testing.assert_array_equal(got["c"], bf16_values.reshape(2, 2))
    assert got["ids"].dtype == np.int64 and got["ids"].tolist() == [[0, 1, 2, 3]]
    assert ck.read_safetensors(str(path), float32=False)["b"].dtype == np.float16

    out = tmp_path / "w.safetensors"
    ck.write_safetensors({"x": f32, "h": f16}, str(out), metadata={"format": "pt"})
    again = ck.read_safetensors(str(out), float32=False)
    np.testing.assert_array_equal(again["x"], f32)
    np.testing.assert_array_equal(again["h"], f16)
    assert struct.unpack("<Q", out.read_bytes()[:8])[0] % 8 == 0


def test_safetensors_bad_files_name_the_file(tmp_path):
    short = tmp_path / "short.safetensors"
    short.write_bytes(b"\x01\x02")
    with pytest.raises(ValueError, match="short.safetensors"):
        ck.read_safetensors(str(short))
    huge = tmp_path / "huge.safetensors"
    huge.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    with pytest.raises(ValueError, match="huge.safetensors: bad safetensors header length"):
        ck.read_safetensors(str(huge))
    notjson = tmp_path / "notjson.safetensors"
    notjson.write_bytes(struct.pack("<Q", 4) + b"{{{{")
    with pytest.raises(ValueError, match="notjson.safetensors: safetensors header is not valid JSON"):
        ck.read_safetensors(str(notjson))
    wrong = tmp_path / "wrong.safetensors"
    write_raw_safetensors(wrong, {"a": ("F32", [3], b"\x00" * 8)})
    with pytest.raises(ValueError, match="wrong.safetensors: tensor 'a' spans 8 bytes"):
        ck.read_safetensors(str(wrong))
    odd = tmp_path / "odd.safetensors"
    write_raw_safetensors(odd, {"a": ("C64", [1], b"\x00" * 8)})
    with pytest.raises(ValueError, match="unsupported dtype"):
        ck.read_safetensors(str(odd))


def test_import_hf_directory(tmp_path):
    cfg = TINY.replace(num_hidden_layers=1)
    bare = {k[len("bert.") :]: v for k, v in random_state(cfg).items() if k.startswith("bert.")}
    bare["embeddings.LayerNorm.gamma"] = bare.pop("embeddings.LayerNorm.weight")
    bare["embeddings.LayerNorm.beta"] = bare.pop("embeddings.LayerNorm.bias")
    bare["embeddings.position_ids"] = np.arange(12, dtype=np.int64)[None]
    ck.write_safetensors(bare, str(tmp_path / "model.safetensors"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        ck.import_hf_safetensors(str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({**cfg.to_dict(), "model_type": "bert"}))
    state, config = ck.import_hf_safetensors(str(tmp_path))
    assert config == cfg
    assert "bert.embeddings.LayerNorm.weight" in state and "bert.embeddings.position_ids" not in state
    assert all(k.startswith("bert.") for k in state)
    assert ck.snapshot_format(str(tmp_path)) == "hf"
    _, _, meta = ck.load_snapshot(str(tmp_path))
    assert meta["snapshot_format"] == "hf"


def test_real_default_weights_import():
    state, config = ck.import_hf_safetensors(pretrained.default_pretrained_dir())
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 6, 12)
    assert config.intermediate_size == 1536 and config.vocab_size == 30522
    expected = [k for k in all_keys(config) if not k.startswith("classifier.")]
    assert sorted(state) == sorted(expected)
    assert state["bert.embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert state["bert.encoder.layer.5.intermediate.dense.weight"].shape == (1536, 384)
    assert state["bert.encoder.layer.5.output.dense.weight"].shape == (384, 1536)
    assert all(v.dtype == np.float32 for v in state.values())


# ----------------------------------------------------------------------------------------------------
# numpy reference BERT on the real weights
# ----------------------------------------------------------------------------------------------------
def _encode(vocab: dict[str, int], sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """[CLS] words [SEP] with whole-word vocab lookups (enough for simple lowercase sentences)."""
    rows = []
    for text in sentences:
        words = text.lower().replace(".", " ").split()
        assert all(w in vocab for w in words), [w for w in words if w not in vocab]
        rows.append([vocab["[CLS]"]] + [vocab[w] for w in words] + [vocab["[SEP]"]])
    width = max(map(len, rows))
    ids = np.array([r + [0] * (width - len(r)) for r in rows])
    return ids, (ids != 0).astype(np.int64)


def test_numpy_bert_paraphrases_are_closer():
    model_dir = pretrained.default_pretrained_dir()
    state, config = ck.import_hf_safetensors(model_dir)
    with open(os.path.join(model_dir, "vocab.txt"), encoding="utf-8") as f:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
    sentences = [
        "a man is playing a guitar.",
        "a person plays the guitar.",
        "the stock market fell sharply today.",
    ]
    ids, mask = _encode(vocab, sentences)
    out = bert_forward(state, config, ids, mask)
    assert len(out.hidden_states) == 7 and out.hidden_states[-1].shape == (3, ids.shape[1], 384)
    assert out.logits is None and out.pooled.shape == (3, 384)
    emb = mean_pool(out.last_hidden_state, mask)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    paraphrase, unrelated = emb[0] @ emb[1], emb[0] @ emb[2]
    assert paraphrase > unrelated + 0.3, (paraphrase, unrelated)
    # padding must not change a sentence's states
    alone = bert_forward(state, config, ids[1:2, : mask[1].sum()], mask[1:2, : mask[1].sum()])
    np.testing.assert_allclose(
        alone.last_hidden_state[0], out.last_hidden_state[1, : mask[1].sum()], atol=1e-6
    )


# ----------------------------------------------------------------------------------------------------
# loading into a module
# ----------------------------------------------------------------------------------------------------
class Tiny(flow.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense = flow.nn.Linear(4, 3)
        self.norm = flow.nn.LayerNorm(3)


def test_load_state_into_reports(capsys):
    module = Tiny()
    weight = np.arange(12, dtype=np.float32).reshape(3, 4)
    report = ck.load_state_into(
        module, {"dense.weight": weight, "dense.bias": flow.ones(3), "extra.w": weight}
    )
    assert report.loaded == ["dense.weight", "dense.bias"]
    assert report.missing == ["norm.weight", "norm.bias"] and report.unexpected == ["extra.w"]
    printed = capsys.readouterr().out
    assert "loaded 2 tensors; missing 2 (norm.weight, norm.bias); unexpected 1 (extra.w)" in printed
    np.testing.assert_array_equal(module.dense.weight.numpy(), weight)
    np.testing.assert_array_equal(ck.module_state_numpy(module)["dense.bias"], np.ones(3, np.float32))

    with pytest.raises(ValueError, match=r"dense.weight: checkpoint shape \(4, 3\) != model shape \(3, 4\)"):
        ck.load_state_into(module, {"norm.bias": np.zeros(3, np.float32), "dense.weight": weight.T})
    np.testing.assert_array_equal(module.norm.bias.numpy(), np.zeros(3))  # nothing copied before the error
    report = ck.load_state_into(
        module, {"dense.weight": weight.T, "norm.weight": np.full(3, 2.0)}, strict_shapes=False, verbose=False
    )
    assert report.mismatched == [("dense.weight", (4, 3), (3, 4))] and report.loaded == ["norm.weight"]
    assert module.norm.weight.dtype == flow.float32 and module.norm.weight.numpy().tolist() == [2.0, 2.0, 2.0]


# ----------------------------------------------------------------------------------------------------
# default pretrained snapshot
# ----------------------------------------------------------------------------------------------------
def test_ensure_default_snapshot_is_cached(tmp_path, monkeypatch, capsys):
    path = pretrained.ensure_default_snapshot(str(tmp_path / "models"))
    assert path == str(tmp_path / "models" / "all-MiniLM-L6-v2")
    assert sorted(n for n in os.listdir(path) if not n.startswith("tensor_")) == [
        "config.json",
        "pickled_data",
        "snapshot.json",
        "vocab.txt",
    ]
    state, config, meta = ck.load_snapshot(path)
    assert config.hidden_size == 384 and meta["name"] == "all-MiniLM-L6-v2"
    assert state["bert.encoder.layer.0.attention.self.query.weight"].shape == (384, 384)

    def boom(*_args):
        raise AssertionError("second call must not convert again")

    monkeypatch.setattr(pretrained, "import_hf_safetensors", boom)
    assert pretrained.ensure_default_snapshot(str(tmp_path / "models")) == path
    assert pretrained.main(["--models_dir", str(tmp_path / "models")]) == 0
    assert capsys.readouterr().out.strip() == os.path.abspath(path)


def test_missing_default_weights_say_what_to_run(monkeypatch):
    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="run_scripts/setup_env.sh"):
        pretrained.default_pretrained_dir()
