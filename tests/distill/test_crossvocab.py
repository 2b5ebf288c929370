"""Distilling across vocabularies: a BERT-vocab student taught by an MPNet-vocab teacher."""

from __future__ import annotations

import os

import numpy as np
import oneflow as flow
import pytest

from model_compress import cli
from model_compress.data.augmentation import AugmentSpec, ensure_augmented
from model_compress.data.features import convert_examples_to_features
from model_compress.data.processors import InputExample, get_processor
from model_compress.data.tokenization import FullTokenizer
from model_compress.data.vocab import load_vocab, special_tokens_for
from model_compress.data.vocab_map import VocabMapError, build_vocab_map, vocab_map_between
from model_compress.distill.objectives import TeacherTargets
from model_compress.distill.teacher_cache import write_logits_file
from model_compress.modeling.bert import BertForSequenceClassification
from model_compress.modeling.checkpoint import load_state_into, module_state_numpy, save_snapshot
from model_compress.modeling.config import BertConfig, MPNetConfig
from model_compress.modeling.mpnet import MPNetForSequenceClassification
from model_compress.modeling.pretrained import default_pretrained_dir
from model_compress.recipes import kd as kd_recipe
from model_compress.recipes import pkd as pkd_recipe
from model_compress.recipes import tinybert as tinybert_job
from model_compress.recipes.common import load_classifier
from tests.conftest import REPO_ROOT, TINY_BERT
from tests.support import TINY_MPNET, mpnet_vocab

PAIRS = [("the film is very good .", "a dull book , not great"),
         ("a kettle !", "it was bad but the ending works"),
         ("zyxqv unheard-of words", "short")]
FAST = ["--task_name", "sst-2", "--seq_length", "16", "--batch_size_per_device", "16",
        "--eval_batch_size_per_device", "16", "--learning_rate", "2e-3"]


def mpnet_teacher(seed: int, vocab_size: int, scale: float = 1.0) -> MPNetForSequenceClassification:
    """A tiny MPNet over the full MPNet vocabulary, its LayerNorm gains and position bias randomised and its
    head scaled by ``scale`` (confident, input-dependent logits)."""
    flow.manual_seed(seed)
    model = MPNetForSequenceClassification(MPNetConfig(**{**TINY_MPNET, "vocab_size": vocab_size})).eval()
    rng = np.random.default_rng(seed)
    state = module_state_numpy(model)
    for key, value in state.items():
        if "LayerNorm.weight" in key or "relative" in key:
            state[key] = value * rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        if key.startswith("classifier.") and key.endswith("weight"):
            state[key] = value * scale
    load_state_into(model, state, verbose=False)
    return model


def bert_vocab() -> str:
    return os.path.join(default_pretrained_dir(), "vocab.txt")


def shipped_sentences(rows: int = 64) -> list[str]:
    with open(os.path.join(REPO_ROOT, "data", "glue_data", "SST-2", "train.tsv"), encoding="utf-8") as f:
        return [line.split("\t")[0] for line in f.read().splitlines()[1: rows + 1]]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(MPNet teacher snapshot with an MPNet vocab, BERT student snapshots with the BERT vocab: as wide as the
    teacher, and half as wide, whose intermediate losses go through fit_dense)."""
    root = tmp_path_factory.mktemp("crossvocab")
    vocab = mpnet_vocab(root / "mpnet_vocab.txt")
    size = len(load_vocab(vocab))
    teacher = mpnet_teacher(3, size)
    ids, mask, seg = features([(t, None) for t in shipped_sentences()], FullTokenizer(vocab), 16)
    z = teacher(flow.tensor(ids), flow.tensor(seg), flow.tensor(mask))[0].numpy()
    margin = z[:, 1] - z[:, 0]
    k = 3.0 / margin.std()  # logit margins of about +-3 around the median: both labels, confidently
    head = teacher.classifier.out_proj
    with flow.no_grad():
        head.weight.copy_(head.weight * k)
        head.bias.copy_(flow.tensor(np.array([0.0, -k * np.median(margin)], np.float32)))
    teacher_dir = str(root / "teacher")
    save_snapshot(teacher, teacher_dir, config=teacher.config, meta={"labels": ["0", "1"]},
                  extra_files={"vocab.txt": vocab})
    students = []
    for name, width in (("student", 32), ("narrow", 16)):
        flow.manual_seed(0)
        config = BertConfig(**{**TINY_BERT, "num_hidden_layers": 2, "hidden_size": width,
                               "intermediate_size": 2 * width})
        students.append(str(root / name))
        save_snapshot(BertForSequenceClassification(config), students[-1], config=config,
                      meta={"labels": ["0", "1"]}, extra_files={"vocab.txt": bert_vocab()})
    return teacher_dir, *students


def test_id_map_by_string_and_role(tmp_path):
    mp = mpnet_vocab(tmp_path / "vocab.txt")
    vmap = vocab_map_between(bert_vocab(), mp)
    bert, mpnet = load_vocab(bert_vocab()), load_vocab(mp)
    assert vmap.extra_separator == 1 and vmap.teacher_sep == mpnet["</s>"] == 2 and vmap.teacher_pad == 1
    roles = {"[CLS]": "<s>", "[SEP]": "</s>", "[PAD]": "<pad>", "[MASK]": "<mask>", "[UNK]": "[UNK]"}
    for token, target in roles.items():
        assert vmap.table[bert[token]] == mpnet[target]
    assert vmap.table[bert["[UNK]"]] == 104
    ordinary = [i for t, i in bert.items() if t not in roles]
    assert np.array_equal(vmap.table[ordinary], np.array(ordinary) + 4)  # the pieces sit 4 further on
    assert vocab_map_between(bert_vocab(), bert_vocab()) is None
    assert vmap.fingerprint == vocab_map_between(bert_vocab(), mp).fingerprint
    small = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "kettle": 4, "qqqzz": 5}
    bert_special = special_tokens_for(small, "vocab.txt")
    with pytest.raises(VocabMapError, match="'qqqzz' \\(id 5\\) has no equivalent"):
        build_vocab_map(small, bert_special, mpnet, special_tokens_for(mpnet, mp))


def features(texts, tokenizer, seq=24):
    rows = [InputExample(str(i), a, b, "0") for i, (a, b) in enumerate(texts)]
    feats = convert_examples_to_features(rows, ["0", "1"], seq, tokenizer)
    return [np.array([getattr(f, n) for f in feats], dtype=np.int32) for n in ("input_ids", "input_mask",
                                                                             "segment_ids")]


@pytest.mark.parametrize("pairs", [True, False])
def test_teacher_on_mapped_ids_equals_teacher_on_its_own_tokens(tmp_path, pairs):
    mp = mpnet_vocab(tmp_path / "vocab.txt")
    texts = PAIRS if pairs else [(a, None) for a, _ in PAIRS]
    ids, mask, seg = features(texts, FullTokenizer(bert_vocab()), seq=24)
    t_ids, t_mask, t_seg = features(texts, FullTokenizer(mp), seq=25 if pairs else 24)
    vmap = vocab_map_between(bert_vocab(), mp)
    host_ids, host_mask = vmap.teacher_inputs(ids, mask, seg)
    width = t_ids.shape[1]  # the mapped rows: the teacher tokenizer's own rows (plus one padding column)
    assert np.array_equal(host_ids[:, :width], t_ids) and np.array_equal(host_mask[:, :width], t_mask)
    teacher = mpnet_teacher(1, len(load_vocab(mp)))
    mapped = TeacherTargets(teacher, hidden_layers=[0, 2, 4], attention_layers=[1, 3], vocab_map=vmap)
    own = TeacherTargets(teacher, hidden_layers=[0, 2, 4], attention_layers=[1, 3])
    logits, attention, hidden = (t.numpy() for t in mapped(*(flow.tensor(x) for x in (ids, mask, seg))))
    r_logits, r_att, r_hidden = (t.numpy() for t in own(*(flow.tensor(x) for x in (t_ids, t_mask, t_seg))))
    np.testing.assert_allclose(logits, r_logits, atol=1e-5)
    assert hidden.shape[2] == ids.shape[1] and attention.shape[-1] == ids.shape[1]  # the student's positions
    for row in range(len(texts)):
        n = int(mask[row].sum())
        # the teacher's positions of the student's tokens: its extra separator (right after a's) left out
        keep = np.arange(n)
        if pairs:
            first = int((seg[row][:n] == 0).sum()) - 1
            keep = np.where(keep <= first, keep, keep + 1)
            assert t_ids[row, first] == t_ids[row, first + 1] == 2 and ids[row, first] == 102
        np.testing.assert_allclose(hidden[row][:, :n], r_hidden[row][:, keep], atol=1e-5)
        np.testing.assert_allclose(attention[row][:, :, :n, :n], r_att[row][:, :, keep][:, :, :, keep], atol=1e-5)


@pytest.fixture(scope="module")
def teacher_labelled(folders, tmp_path_factory):
    """64 shipped SST-2 sentences labelled by the teacher (its own tokenization), as both train and dev: the
    best-dev snapshot of a student is then the one that agrees most with the teacher. Returns (dir, share
    of the majority label)."""
    teacher_dir, *_ = folders
    texts = shipped_sentences()
    model, _, _ = load_classifier(teacher_dir, 2)
    ids, mask, seg = features([(t, None) for t in texts], FullTokenizer(os.path.join(teacher_dir, "vocab.txt")), 16)
    labels = model.eval()(flow.tensor(ids), flow.tensor(seg), flow.tensor(mask))[0].numpy().argmax(1)
    folder = tmp_path_factory.mktemp("labelled") / "SST-2"
    folder.mkdir()
    body = "sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in zip(texts, labels))
    for split in ("train", "dev"):
        (folder / f"{split}.tsv").write_text(body, encoding="utf-8")
    return str(folder), max(labels.mean(), 1 - labels.mean())


def pkd(argv) -> dict:
    return pkd_recipe.run(pkd_recipe.normalise_aliases(pkd_recipe.build_parser().parse_args(argv)))


@pytest.mark.parametrize("mode,buckets", [("online", "none"), ("cached", "auto")])
def test_kd_through_pkd_job_moves_the_student_to_the_teacher(folders, teacher_labelled, tmp_path, capsys, mode,
                                                             buckets):
    teacher_dir, student_dir, _ = folders
    data_dir, majority = teacher_labelled
    assert majority < 0.8  # the teacher's answers depend on the sentence
    common = FAST + ["--data_dir", data_dir, "--student_model", student_dir, "--length_buckets", buckets]
    start = pkd(common + ["--do_eval", "--model_save_dir", str(tmp_path / "untrained")])["eval"]["accuracy"]
    out = str(tmp_path / "kd")
    result = pkd(common + ["--teacher_model", teacher_dir, "--model_save_dir", out, "--do_train", "--do_eval",
                           "--num_epochs", "16", "--temperature", "1", "--teacher_mode", mode, "--kd_alpha", "1.0",
                           "--kd_beta", "0"])
    err = capsys.readouterr().err
    assert "read with the student's" in err
    if mode == "cached":
        assert "teacher outputs cached in" in err
    assert load_vocab(os.path.join(result["snapshot"], "vocab.txt")) == load_vocab(bert_vocab())
    # soft targets only (alpha 1): agreeing with the teacher beyond its majority answer is learnt from it
    agreement = result["eval"]["accuracy"]
    assert agreement > max(majority, start) + 0.05, (start, majority, agreement)


def test_kd_from_a_logits_file_of_the_teachers_own_tokenization(folders, teacher_labelled, tmp_path, capsys):
    teacher_dir, student_dir, _ = folders
    data_dir, majority = teacher_labelled
    model, _, _ = load_classifier(teacher_dir, 2)
    ids, mask, seg = features([(t, None) for t in shipped_sentences()],
                              FullTokenizer(os.path.join(teacher_dir, "vocab.txt")), 16)
    logits = model.eval()(flow.tensor(ids), flow.tensor(seg), flow.tensor(mask))[0].numpy()
    path = str(tmp_path / "logits.tsv")
    write_logits_file(path, logits)
    kd = kd_recipe.build_parser().parse_args(
        FAST + ["--data_dir", data_dir, "--student_model", student_dir, "--teacher_logits", path, "--model_save_dir",
                str(tmp_path / "kd"), "--num_epochs", "16", "--alpha", "1.0", "--temperature", "1", "--do_train",
                "--do_eval"])
    result = kd_recipe.run(kd)
    assert result["eval"]["accuracy"] > majority + 0.05
    capsys.readouterr()


def test_cache_key_includes_the_map(folders, tiny_sst2_dir, tmp_path, capsys):
    teacher_dir, student_dir, _ = folders
    argv = FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", teacher_dir, "--student_model", student_dir,
                   "--model_save_dir", str(tmp_path / "a"), "--train_example_num", "16", "--do_train",
                   "--max_steps", "1", "--teacher_mode", "cached", "--pkd_variant", "original"]
    pkd_recipe.main(argv)
    cache = os.path.join(tiny_sst2_dir, "teacher_cache")
    keys = set(os.listdir(cache))
    # the same teacher and texts read with the teacher's own vocabulary: another cache entry
    pkd_recipe.main(argv[:argv.index("--student_model")] + ["--from_scratch", "--student_num_hidden_layers", "2"] +
                         argv[argv.index("--model_save_dir"):])
    assert len(set(os.listdir(cache)) - keys) == 1
    capsys.readouterr()


def tinybert(argv) -> dict:
    return tinybert_job.run(cli.normalise_aliases(tinybert_job.build_parser().parse_args(argv)))


def test_tinybert_intermediate_and_prediction_across_vocabularies(folders, tiny_sst2_dir, tmp_path, capsys):
    teacher_dir, _, narrow_dir = folders
    out = str(tmp_path / "tb")
    base = FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", teacher_dir, "--model_save_dir", out,
                   "--train_example_num", "64", "--do_train"]
    short = tinybert(base + ["--student_model", narrow_dir, "--intermediate_distill", "True",
                             "--pred_distill", "False", "--max_steps", "1"])
    long = tinybert(base + ["--student_model", narrow_dir, "--intermediate_distill", "True",
                            "--pred_distill", "False", "--num_epochs", "16"])
    # a student half the teacher's width (fit_dense); same init, same first batches: many steps end far below
    # one step's loss
    assert long["intermediate"].final_loss < 0.75 * short["intermediate"].final_loss
    pred = tinybert(base + ["--intermediate_distill", "False", "--pred_distill", "True", "--num_epochs", "4",
                            "--temperature", "1", "--serve_for_online", "True"])
    assert load_vocab(os.path.join(pred["snapshot"], "vocab.txt")) == load_vocab(bert_vocab())
    capsys.readouterr()


def test_tinybert_augmentation_finds_neighbours_in_the_teachers_embeddings(folders, tiny_sst2_dir, tmp_path,
                                                                          capsys):
    teacher_dir, student_dir, _ = folders
    result = tinybert(FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", teacher_dir, "--student_model",
                              student_dir, "--model_save_dir", str(tmp_path / "aug"), "--train_example_num", "8",
                              "--aug_train", "True", "--N", "2", "--seed", "42", "--do_train", "--max_steps", "2",
                              "--intermediate_distill", "True", "--pred_distill", "False"])
    assert result["train_rows"] > 8
    job_rows = open(os.path.join(tiny_sst2_dir, "train_aug.tsv"), encoding="utf-8").read()
    # the same augmentation with the teacher's own tokenizer and embedding rows
    examples = get_processor("sst-2").get_examples(tiny_sst2_dir, "train")[:8]
    teacher, _, _ = load_classifier(teacher_dir, 2)
    own = tmp_path / "own"
    own.mkdir()
    ensure_augmented(str(own), examples, FullTokenizer(os.path.join(teacher_dir, "vocab.txt")),
                     teacher.encoder_model.embeddings.word_embeddings.weight.numpy(), AugmentSpec(num_tries=2, seed=42))
    assert (own / "train_aug.tsv").read_text(encoding="utf-8") == job_rows
    capsys.readouterr()


def test_unmappable_student_vocab_is_refused_in_one_line(folders, tiny_sst2_dir, tmp_path, capsys):
    teacher_dir, *_ = folders
    flow.manual_seed(0)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\nqqqzz\n", encoding="utf-8")
    config = BertConfig(**{**TINY_BERT, "vocab_size": 6})
    odd = str(tmp_path / "odd")
    save_snapshot(BertForSequenceClassification(config), odd, config=config, meta={"labels": ["0", "1"]},
                  extra_files={"vocab.txt": str(vocab)})
    with pytest.raises(SystemExit) as exc:
        pkd_recipe.main(FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", teacher_dir,
                                     "--student_model", odd, "--do_train"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'qqqzz' (id 5) has no equivalent" in err[0] and "cannot be mapped" in err[0]


def test_seq_length_without_room_for_the_teachers_extra_separator_is_refused(folders, tiny_sst2_dir, capsys):
    teacher_dir, student_dir, _ = folders  # the tiny MPNet reads 64 tokens, the tiny BERT student 64 as well
    argv = FAST + ["--data_dir", tiny_sst2_dir, "--teacher_model", teacher_dir, "--student_model", student_dir,
                   "--do_train", "--seq_length", "64"]
    with pytest.raises(SystemExit) as exc:
        pkd_recipe.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "(65 tokens) but takes at most 64" in err[-1], err  # the one error line, after the loading notes
    assert not any("Traceback" in line for line in err)
