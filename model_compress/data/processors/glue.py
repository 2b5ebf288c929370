"""GLUE tasks stored as TSV files (SST-2, CoLA, MRPC, QQP, RTE, QNLI, MNLI)."""

from __future__ import annotations

import dataclasses
import os

from model_compress.data.processors.base import (
    SPLIT_NAMES,
    DataFormatError,
    DataProcessor,
    InputExample,
    check_columns,
    nonempty_text,
)
from model_compress.data.processors.kshot import KShotSingleProcessor


@dataclasses.dataclass(frozen=True)
class _GlueLayout:
    """Where the fields of one GLUE file are. ``label`` None means the file has no labels."""

    ncols: int | tuple[int, ...] | None  # None: at least max(index)+1 columns
    text_a: int
    text_b: int | None = None
    label: int | None = None
    header: bool = True


class GlueProcessor(DataProcessor):
    """A GLUE task stored as TSV files ``train.tsv``, ``dev.tsv`` and ``test.tsv``."""

    train_layout: _GlueLayout
    test_layout: _GlueLayout
    dev_file = "dev.tsv"

    def split_file(self, data_dir: str, split: str) -> str:
        name = {"train": "train.tsv", "dev": self.dev_file, "test": "test.tsv"}[split]
        return os.path.join(data_dir, name)

    def layout_of(self, path: str, split: str) -> _GlueLayout:
        """The split's layout; a test file whose header names a ``label`` column where the training
        layout has it (a labelled test set, e.g. a held-out part of the training data) reads as training."""
        if split != "test":
            return self.train_layout
        labelled = self.train_layout
        first = next(self._rows(path), None) if labelled.header and labelled.label is not None else None
        if first is not None:
            cols = [c.strip().lower() for c in first[1]]
            widths = labelled.ncols if isinstance(labelled.ncols, tuple) else (labelled.ncols,)
            if len(cols) > labelled.label and cols[labelled.label] == "label" and \
                    (labelled.ncols is None or len(cols) in widths):
                return labelled
        return self.test_layout

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        layout = self.layout_of(path, split)
        rows = self._rows(path)
        if layout.header:
            first = next(rows, None)
            if first is not None:
                self._check_header(path, layout, *first)
        needed = max(i for i in (layout.text_a, layout.text_b, layout.label) if i is not None) + 1

        def make(number: int, cols: list[str]) -> InputExample:
            if layout.ncols is None:
                if len(cols) < needed:
                    raise DataFormatError(path, number, "columns",
                                          f"expected at least {needed} columns, found {len(cols)}")
            else:
                check_columns(path, number, cols, layout.ncols, self.name)
            text_a = nonempty_text(path, number, "text_a", cols[layout.text_a])
            text_b = None
            if layout.text_b is not None:
                text_b = nonempty_text(path, number, "text_b", cols[layout.text_b])
            label = None
            if layout.label is not None:
                label = self.check_label(path, number, cols[layout.label].strip())
            return InputExample(f"{split}-{number}", text_a, text_b, label)

        return self._collect(path, rows, make)

    def _check_header(self, path: str, layout: _GlueLayout, number: int, cols: list[str]) -> None:
        """GLUE files start with a header line; a data row in its place would be dropped silently."""
        if layout.label is not None and len(cols) > layout.label:
            looks_like_data = cols[layout.label].strip() in self.get_labels()
        else:
            looks_like_data = cols[0].strip().isdigit()
        if looks_like_data:
            raise DataFormatError(path, number, "header", "the first line is a data row, but GLUE files start "
                                  "with a header line (e.g. 'sentence<TAB>label'): add the header")


class Sst2Processor(GlueProcessor):
    """SST-2: GLUE ``sentence<TAB>label`` TSV, or K-shot CSV (``text<TAB>SST-2<TAB>label``).

    The format is chosen by the files in ``data_dir``: ``<split>.tsv`` means GLUE, ``<split>.csv``
    means K-shot; both present is an error (say which one you mean by removing the other).
    """

    name = "sst-2"
    labels = ("0", "1")
    train_layout = _GlueLayout(ncols=2, text_a=0, label=1)
    test_layout = _GlueLayout(ncols=2, text_a=1)

    def get_examples(self, data_dir: str, split: str) -> list[InputExample]:
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
        tsv = os.path.join(data_dir, f"{split}.tsv")
        csv = os.path.join(data_dir, f"{split}.csv")
        if os.path.isfile(tsv) and os.path.isfile(csv):
            raise ValueError(f"{data_dir} holds both {split}.tsv (GLUE) and {split}.csv (K-shot); "
                             "keep only one")
        if os.path.isfile(csv):
            return KShotSingleProcessor("SST-2", strict=self.strict).read_examples(csv, split)
        return self.read_examples(tsv, split)


class ColaProcessor(GlueProcessor):
    """CoLA: no header, 4 columns ``source label star sentence``; test has header ``index sentence``."""

    name = "cola"
    labels = ("0", "1")
    train_layout = _GlueLayout(ncols=4, text_a=3, label=1, header=False)
    test_layout = _GlueLayout(ncols=2, text_a=1)


class MrpcProcessor(GlueProcessor):
    """MRPC: ``Quality #1 ID #2 ID #1 String #2 String``."""

    name = "mrpc"
    labels = ("0", "1")
    train_layout = _GlueLayout(ncols=5, text_a=3, text_b=4, label=0)
    test_layout = _GlueLayout(ncols=5, text_a=3, text_b=4)


class QqpProcessor(GlueProcessor):
    """QQP: ``id qid1 qid2 question1 question2 is_duplicate``; test ``id question1 question2``."""

    name = "qqp"
    labels = ("0", "1")
    train_layout = _GlueLayout(ncols=6, text_a=3, text_b=4, label=5)
    test_layout = _GlueLayout(ncols=3, text_a=1, text_b=2)


class RteProcessor(GlueProcessor):
    """RTE: ``index sentence1 sentence2 label``."""

    name = "rte"
    labels = ("entailment", "not_entailment")
    train_layout = _GlueLayout(ncols=4, text_a=1, text_b=2, label=3)
    test_layout = _GlueLayout(ncols=3, text_a=1, text_b=2)


class QnliProcessor(GlueProcessor):
    """QNLI: ``index question sentence label``."""

    name = "qnli"
    labels = ("entailment", "not_entailment")
    train_layout = _GlueLayout(ncols=4, text_a=1, text_b=2, label=3)
    test_layout = _GlueLayout(ncols=3, text_a=1, text_b=2)


class MnliProcessor(GlueProcessor):
    """MNLI (matched dev): sentence1 = column 8, sentence2 = column 9, gold label = last column.

    Train rows have 12 columns, dev rows 16 (five annotator labels); test ``test_matched.tsv`` has 10.
    """

    name = "mnli"
    labels = ("contradiction", "entailment", "neutral")
    dev_file = "dev_matched.tsv"
    train_layout = _GlueLayout(ncols=(12, 16), text_a=8, text_b=9, label=-1)
    test_layout = _GlueLayout(ncols=10, text_a=8, text_b=9)

    def split_file(self, data_dir: str, split: str) -> str:
        if split == "test":
            return os.path.join(data_dir, "test_matched.tsv")
        return super().split_file(data_dir, split)

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        layout = self.layout_of(path, split)
        rows = self._rows(path)
        next(rows, None)

        def make(number: int, cols: list[str]) -> InputExample:
            check_columns(path, number, cols, layout.ncols, self.name)
            text_a = nonempty_text(path, number, "sentence1", cols[8])
            text_b = nonempty_text(path, number, "sentence2", cols[9])
            label = None if split == "test" else self.check_label(path, number, cols[-1].strip())
            return InputExample(f"{split}-{number}", text_a, text_b, label)

        return self._collect(path, rows, make)

