"""Shared pytest fixtures."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import model_compress  # noqa: F401  (OneFlow environment set-up before any test imports oneflow)

EXIT_STATUS = pytest.StashKey[int]()
TREE_BEFORE = pytest.StashKey[set]()
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def files_outside_git() -> set[str] | None:
    """Untracked and ignored files of the checkout (the venv, the interpreter and byte code left out);
    None when the tree is not a git checkout."""
    try:
        listing = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "--untracked-files=all", "--", ".", ":!.venv",
             ":!.python", ":!.venv-reference"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    paths = {line[3:] for line in listing.splitlines() if line[:2] in ("??", "!!")}
    return {p for p in paths if "__pycache__/" not in p}


def pytest_sessionstart(session):
    session.config.stash[TREE_BEFORE] = files_outside_git()


def pytest_sessionfinish(session, exitstatus):
    """Tests work on copies in temporary folders: a file that appeared in the checkout fails the run."""
    before = session.config.stash.get(TREE_BEFORE, None)
    after = files_outside_git() if before is not None else None
    appeared = sorted(after - before) if after is not None else []
    if appeared:
        shown = "\n  ".join(appeared[:40]) + ("\n  ..." if len(appeared) > 40 else "")
        print(f"\nerror: the tests wrote {len(appeared)} file(s) into the checkout {REPO_ROOT}:\n  {shown}",
              file=sys.stderr)
        if int(exitstatus) == 0:
            exitstatus = pytest.ExitCode.TESTS_FAILED
            session.exitstatus = exitstatus
    session.config.stash[EXIT_STATUS] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """End the test process with pytest's own exit status once its report is out.

    OneFlow 0.9 can crash while the interpreter tears down graphs after a failed test (its issue 6179:
    actors still registered when their threads are destroyed), which turned a failing run's exit
    status 1 into a segmentation fault (139) and hid which it was.
    """
    if EXIT_STATUS not in config.stash:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(config.stash[EXIT_STATUS])


# A tiny uncased vocabulary: enough for the data-layer tests to build real OFRecord splits.
DATA_TEST_VOCAB = (
    "[PAD] [UNK] [CLS] [SEP] the a good bad not book film kettle is was but . , ! very ##s ##ly great dull"
).split()


@pytest.fixture()
def data_tokenizer(tmp_path_factory):
    """A FullTokenizer over DATA_TEST_VOCAB (written to a temporary vocab.txt)."""
    from model_compress.data.tokenization import FullTokenizer

    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(DATA_TEST_VOCAB) + "\n", encoding="utf-8")
    return FullTokenizer(str(path))


TINY_BERT = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A randomly initialised 4-layer, 32-wide BERT snapshot with the real uncased vocab beside it."""
    import oneflow as flow

    from model_compress.modeling.bert import BertForSequenceClassification
    from model_compress.modeling.checkpoint import save_snapshot
    from model_compress.modeling.config import BertConfig
    from model_compress.modeling.pretrained import default_pretrained_dir

    flow.manual_seed(0)
    config = BertConfig(**TINY_BERT)
    path = str(tmp_path_factory.mktemp("tiny") / "tiny_bert")
    vocab = os.path.join(default_pretrained_dir(), "vocab.txt")
    save_snapshot(BertForSequenceClassification(config), path, config=config, meta={"labels": ["0", "1"]},
                  extra_files={"vocab.txt": vocab})
    return path


@pytest.fixture()
def tiny_sst2_dir(tmp_path):
    """The first rows of the shipped SST-2-style set (96 train, 48 dev) in a fresh folder."""
    target = tmp_path / "SST-2"
    target.mkdir()
    for split, rows in (("train", 96), ("dev", 48)):
        with open(os.path.join(REPO_ROOT, "data", "glue_data", "SST-2", f"{split}.tsv"), encoding="utf-8") as f:
            lines = f.readlines()[: rows + 1]
        (target / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    return str(target)
