"""Helpers shared by several test modules (test modules import from here or conftest, never each other)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

LABELS = ["negative", "positive"]
DOMAINS = ["books", "dvd", "electronics", "kitchen"]
TINY_MPNET = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                  max_position_embeddings=66, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
MPNET_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0-3 of all-mpnet-base-v2's vocab.txt, <mask> last


def mpnet_vocab(path) -> str:
    """all-mpnet-base-v2's vocabulary layout: <s> <pad> </s> <unk>, bert-base-uncased's pieces, <mask>."""
    from model_compress.modeling.pretrained import default_pretrained_dir

    with open(os.path.join(default_pretrained_dir(), "vocab.txt"), encoding="utf-8") as f:
        bert = f.read().splitlines()
    path.write_text("\n".join(MPNET_SPECIALS + bert + ["<mask>"]) + "\n", encoding="utf-8")
    return str(path)




def make_examples(n: int, weights: bool = True) -> list:
    """`n` small labelled examples cycling through five texts, with domains and (optionally) weights."""
    from model_compress.data.processors import InputExample

    texts = ["the book is good .", "a very dull film", "the kettle was not great !", "good", "bad books ,"]
    return [
        InputExample(
            f"ex-{i}",
            texts[i % 5],
            "not bad" if i % 3 == 0 else None,
            LABELS[i % 2],
            DOMAINS[i % 4],
            (i + 1) / 10 if weights else None,
        )
        for i in range(n)
    ]


LEFTOVER = re.compile(r"\.(tmp|old)[-.]|\.tmp\d+$|\.tmp$")

# a tiny student run of the distil/ entries: 64 train, 32 dev rows, one epoch
TINY_RUN = ["--train_example_num", "64", "--dev_example_num", "32", "--seq_length", "16", "--num_epochs", "1",
            "--batch_size_per_device", "16", "--eval_batch_size_per_device", "16", "--learning_rate", "1e-3"]


def leftovers(root) -> list[str]:
    """Temporary or half-replaced files and folders under `root`."""
    found = []
    for parent, dirs, files in os.walk(root):
        found += [os.path.join(parent, n) for n in dirs + files if LEFTOVER.search(n)]
    return found


def refused(main, argv, capsys, *needles, root=None) -> str:
    """Run `main(argv)`; assert exit code 2, exactly one error line naming every needle, no traceback."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2, info.value
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error:" in line]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    if root is not None:
        assert leftovers(root) == []
    return lines[0]


def cli_error(capsys, main, argv) -> str:
    """The one `error:` line a CLI main prints for a user mistake (it must exit with code 2)."""
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error")]
    assert len(err) == 1
    return err[0]


def run_script(script: str, args: list[str], cwd: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """`python model_compress/<script> args...` in a child process."""
    return subprocess.run([sys.executable, os.path.join(REPO_ROOT, "model_compress", script), *args],
                          capture_output=True, text=True, timeout=300, cwd=cwd, **kwargs)


def run_shell_script(script: str, env_extra: dict, args: list[str]) -> subprocess.CompletedProcess:
    """`bash run_scripts/<script> args...` with extra environment variables."""
    env = {**os.environ, **env_extra}
    return subprocess.run(["bash", os.path.join(REPO_ROOT, "run_scripts", script), *args], env=env,
                          capture_output=True, text=True, timeout=600)


def clean_success(done: subprocess.CompletedProcess) -> None:
    """A run that must succeed: exit code 0, no traceback, no error line."""
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Check failed" not in done.stderr, done.stderr[-3000:]
    assert not [line for line in done.stderr.splitlines() if "error:" in line], done.stderr[-3000:]


def one_line_failure(done: subprocess.CompletedProcess, *needles) -> str:
    """A run refused in one line: exit code 2, one `error:` line naming every needle, no traceback."""
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr and "Check failed" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, done.stderr[-3000:]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_matches_reference(report: dict, snapshot: str, data_dir: str | None, seq_length: int,
                             task: str = "sst-2", rows: int | None = None, examples: list | None = None,
                             margin: float = 1e-4) -> None:
    """A run's reported dev accuracy equals one computed another way from its saved snapshot.

    The dev rows are the task's dev split under `data_dir` (the first `rows`), or `examples` as given.

    The reference reloads the snapshot, runs the model eagerly over the dev rows at full padding (no
    nn.Graph, no OFRecords, no length buckets) and counts correct argmaxes by hand. Examples whose two
    top logits lie within `margin` may go either way between graph and eager arithmetic; the reported
    count must lie in the range they allow.
    """
    import oneflow as flow

    from model_compress.data.features import convert_examples_to_features, features_to_arrays
    from model_compress.data.processors import get_processor
    from model_compress.data.tokenization import FullTokenizer
    from model_compress.recipes.common import load_classifier

    processor = get_processor(task)
    if examples is None:
        examples = processor.get_examples(data_dir, "dev")[:rows]
    labels = processor.get_labels()
    model, _, _ = load_classifier(snapshot, len(labels), verbose=False, student=True)
    model.eval()
    tokenizer = FullTokenizer(os.path.join(snapshot, "vocab.txt"), do_lower_case=True)
    arrays = features_to_arrays(convert_examples_to_features(examples, labels, seq_length, tokenizer))
    with flow.no_grad():
        logits = model(*(flow.tensor(arrays[n].astype("int64")) for n in ("input_ids", "segment_ids",
                                                                           "input_mask")))[0].numpy()
    truth = arrays["label_ids"].reshape(-1)
    top2 = np.sort(logits, axis=-1)[:, -2:]
    sure = top2[:, 1] - top2[:, 0] > margin
    correct = logits.argmax(-1) == truth
    low, high = int((correct & sure).sum()), int((correct | ~sure).sum())
    assert report["num_examples"] == len(examples)
    reported = round(report["accuracy"] * len(examples))
    assert abs(report["accuracy"] * len(examples) - reported) < 1e-6, "accuracy is a count over the dev rows"
    assert low <= reported <= high, (reported, low, high)
