"""Task processors: read a task's text files into :class:`InputExample` lists, validating every row.

Supported layouts (see docs/formats.md):

* GLUE TSV files with a header (CoLA has none), as GLUE ships them: SST-2, CoLA, MRPC, QQP, RTE, QNLI,
  MNLI (dev = ``dev_matched.tsv``).
* MFT / K-shot CSV files ``text<TAB>domain<TAB>label`` without header: ``train.csv dev.csv test.csv``.
  ``g1`` mixes the SST-2, MR and CR domains (``data/k-shot-cross/g1/16-42``); ``sst-2``, ``mr`` and
  ``cr`` read one domain (``data/k-shot-single/<TASK>/16-42``). ``sst-2`` reads the GLUE ``.tsv`` files
  instead when those are what ``data_dir`` holds.
* Amazon multi-domain sentiment ``senti``: TSV with header ``guid text_a text_b label domain [weight]``
  (or the raw ``review domain sentiment`` header of EasyNLP's ``generate_senti_data.py``).

Every bad row (wrong column count, unknown label or domain, empty text, undecodable bytes, bad weight)
raises :class:`DataFormatError` naming the file, the 1-based line number and the field.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator, Sequence

SPLIT_NAMES = ("train", "dev", "test")


@dataclasses.dataclass
class InputExample:
    """One text classification example.

    Attributes:
        guid: unique id, e.g. ``"train-12"``.
        text_a: first (or only) sentence.
        text_b: second sentence of a pair task, else None.
        label: label string, None for unlabeled test data.
        domain: domain / task name for multi-domain data, else None.
        weight: per-example weight (MFT prototypical score), else None.
    """

    guid: str
    text_a: str
    text_b: str | None = None
    label: str | None = None
    domain: str | None = None
    weight: float | None = None


class DataFormatError(ValueError):
    """A row of an input file does not match the expected format.

    Attributes ``path``, ``line`` (1-based) and ``field`` say where; the message says all three.
    """

    def __init__(self, path: str, line: int | None, field: str | None, reason: str) -> None:
        self.path = path
        self.line = line
        self.field = field
        self.reason = reason
        where = path if line is None else f"{path}, line {line}"
        what = f"field '{field}': " if field else ""
        super().__init__(f"{where}: {what}{reason}")


def read_rows(
    path: str, delimiter: str = "\t", skip_undecodable: bool = False
) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, columns)`` for every non-empty line of a delimited text file.

    Fields are not quoted (like GLUE's own readers, ``quotechar=None``). A UTF-8 BOM is ignored.
    Undecodable bytes raise :class:`DataFormatError` with the line number, or, with
    ``skip_undecodable``, the line is skipped with a warning.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"data file not found: {path}")
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                error = DataFormatError(
                    path, number, "text", f"undecodable bytes at byte {exc.start + 1} of the line (not UTF-8)"
                )
                if not skip_undecodable:
                    raise error from None
                warnings.warn(f"skipping bad row: {error}", stacklevel=2)
                continue
            line = line.rstrip("\r\n")
            if not line:
                continue
            yield number, line.split(delimiter)


class DataProcessor:
    """Base class: one task, its label set, and (for multi-domain tasks) its domains.

    Subclasses set ``labels`` (and ``domains``) and implement :meth:`read_examples`.
    ``strict=False`` skips bad rows with a warning instead of raising (useful for GLUE QQP, whose
    public train file has a few malformed lines).
    """

    name = "base"
    labels: tuple[str, ...] = ()
    domains: tuple[str, ...] | None = None

    def __init__(self, strict: bool = True) -> None:
        self.strict = strict

    # -- public API -------------------------------------------------------------------------------
    def get_labels(self) -> list[str]:
        """Label strings in id order."""
        return list(self.labels)

    def get_domains(self) -> list[str]:
        """Domain names in id order (multi-domain tasks only)."""
        if self.domains is None:
            raise NotImplementedError(f"task {self.name} has no domains")
        return list(self.domains)

    def get_train_examples(self, data_dir: str) -> list[InputExample]:
        """Examples of the training split."""
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir: str) -> list[InputExample]:
        """Examples of the dev split."""
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir: str) -> list[InputExample]:
        """Examples of the test split (labels may be None)."""
        return self.get_examples(data_dir, "test")

    def get_examples(self, data_dir: str, split: str) -> list[InputExample]:
        """Examples of ``split`` (one of train, dev, test)."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLIT_NAMES)}")
        return self.read_examples(self.split_file(data_dir, split), split)

    # -- for subclasses ---------------------------------------------------------------------------
    def split_file(self, data_dir: str, split: str) -> str:
        raise NotImplementedError

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        raise NotImplementedError

    def _rows(self, path: str, delimiter: str = "\t") -> Iterator[tuple[int, list[str]]]:
        return read_rows(path, delimiter, skip_undecodable=not self.strict)

    def _collect(
        self, path: str, rows: Iterator[tuple[int, list[str]]], make: Callable[[int, list[str]], InputExample]
    ) -> list[InputExample]:
        """Build examples from rows, raising or (non-strict) skipping on DataFormatError."""
        examples = []
        skipped = 0
        for number, cols in rows:
            try:
                examples.append(make(number, cols))
            except DataFormatError:
                if self.strict:
                    raise
                skipped += 1
        if skipped:
            warnings.warn(f"{path}: skipped {skipped} bad rows", stacklevel=3)
        return examples

    def check_label(self, path: str, line: int, label: str) -> str:
        if label not in self.labels:
            raise DataFormatError(
                path, line, "label", f"unknown label {label!r}; expected one of {list(self.labels)}"
            )
        return label

    def check_domain(self, path: str, line: int, domain: str) -> str:
        assert self.domains is not None
        if domain not in self.domains:
            raise DataFormatError(
                path, line, "domain", f"unknown domain {domain!r}; expected one of {list(self.domains)}"
            )
        return domain


def _text(path: str, line: int, field: str, value: str) -> str:
    if not value.strip():
        raise DataFormatError(path, line, field, "empty text")
    return value


def _ncols(path: str, line: int, cols: list[str], expected: int | Sequence[int], what: str) -> None:
    allowed = (expected,) if isinstance(expected, int) else tuple(expected)
    if len(cols) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise DataFormatError(path, line, "columns", f"expected {want} tab-separated columns ({what}), "
                              f"found {len(cols)}")


# ---------------------------------------------------------------------------------------------------
# GLUE
# ---------------------------------------------------------------------------------------------------
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

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        layout = self.test_layout if split == "test" else self.train_layout
        rows = self._rows(path)
        if layout.header:
            next(rows, None)
        needed = max(i for i in (layout.text_a, layout.text_b, layout.label) if i is not None) + 1

        def make(number: int, cols: list[str]) -> InputExample:
            if layout.ncols is None:
                if len(cols) < needed:
                    raise DataFormatError(path, number, "columns",
                                          f"expected at least {needed} columns, found {len(cols)}")
            else:
                _ncols(path, number, cols, layout.ncols, self.name)
            text_a = _text(path, number, "text_a", cols[layout.text_a])
            text_b = None
            if layout.text_b is not None:
                text_b = _text(path, number, "text_b", cols[layout.text_b])
            label = None
            if layout.label is not None:
                label = self.check_label(path, number, cols[layout.label].strip())
            return InputExample(f"{split}-{number}", text_a, text_b, label)

        return self._collect(path, rows, make)


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
        layout = self.test_layout if split == "test" else self.train_layout
        rows = self._rows(path)
        next(rows, None)

        def make(number: int, cols: list[str]) -> InputExample:
            _ncols(path, number, cols, layout.ncols, self.name)
            text_a = _text(path, number, "sentence1", cols[8])
            text_b = _text(path, number, "sentence2", cols[9])
            label = None if split == "test" else self.check_label(path, number, cols[-1].strip())
            return InputExample(f"{split}-{number}", text_a, text_b, label)

        return self._collect(path, rows, make)


# ---------------------------------------------------------------------------------------------------
# MFT / K-shot CSV: text<TAB>domain<TAB>label, no header
# ---------------------------------------------------------------------------------------------------
class KShotProcessor(DataProcessor):
    """K-shot CSV files ``train.csv dev.csv test.csv`` with rows ``text<TAB>domain<TAB>label``."""

    def split_file(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, f"{split}.csv")

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        def make(number: int, cols: list[str]) -> InputExample:
            _ncols(path, number, cols, 3, "text, domain, label")
            text = _text(path, number, "text", cols[0])
            domain = self.check_domain(path, number, cols[1].strip())
            label = self.check_label(path, number, cols[2].strip())
            return InputExample(f"{split}-{number}", text, None, label, domain)

        return self._collect(path, self._rows(path), make)


class G1Processor(KShotProcessor):
    """MFT group g1: binary sentiment over the SST-2, MR and CR domains."""

    name = "g1"
    labels = ("0", "1")
    domains = ("SST-2", "MR", "CR")


class KShotSingleProcessor(KShotProcessor):
    """One domain of a K-shot group (``data/k-shot-single/<TASK>/<K>-<seed>``)."""

    labels = ("0", "1")

    def __init__(self, domain: str, strict: bool = True) -> None:
        super().__init__(strict)
        self.name = domain.lower()
        self.domains = (domain,)


# ---------------------------------------------------------------------------------------------------
# Amazon multi-domain sentiment
# ---------------------------------------------------------------------------------------------------
class SentiProcessor(DataProcessor):
    """Amazon reviews in four domains, ``train.tsv dev.tsv [test.tsv]`` with a header row.

    Accepted headers: ``guid text_a text_b label domain [weight]`` (text_b may be empty; an
    ``embeddings`` last column, as in EasyNLP's ``dev_standard.tsv``, is ignored) or the raw
    ``review domain sentiment``.
    """

    name = "senti"
    labels = ("positive", "negative")
    domains = ("books", "dvd", "electronics", "kitchen")

    def split_file(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, f"{split}.tsv")

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        rows = self._rows(path)
        first = next(rows, None)
        if first is None:
            return []
        header = [h.strip().lower() for h in first[1]]
        if header[:3] == ["review", "domain", "sentiment"]:
            return self._collect(path, rows, lambda n, c: self._raw_row(path, split, n, c))
        if header[:5] != ["guid", "text_a", "text_b", "label", "domain"]:
            raise DataFormatError(path, first[0], "header",
                                  "expected 'guid text_a text_b label domain [weight]' or "
                                  f"'review domain sentiment', found {first[1]}")
        has_weight = len(header) > 5 and header[5] == "weight"
        ncols = len(header)

        def make(number: int, cols: list[str]) -> InputExample:
            _ncols(path, number, cols, ncols, " ".join(header))
            text_a = _text(path, number, "text_a", cols[1])
            text_b = cols[2] if cols[2].strip() else None
            label = self.check_label(path, number, cols[3].strip())
            domain = self.check_domain(path, number, cols[4].strip())
            weight = None
            if has_weight:
                try:
                    weight = float(cols[5])
                except ValueError:
                    raise DataFormatError(path, number, "weight", f"not a number: {cols[5]!r}") from None
            guid = cols[0].strip() or f"{split}-{number}"
            return InputExample(guid, text_a, text_b, label, domain, weight)

        return self._collect(path, rows, make)

    def _raw_row(self, path: str, split: str, number: int, cols: list[str]) -> InputExample:
        _ncols(path, number, cols, 3, "review, domain, sentiment")
        text = _text(path, number, "review", cols[0])
        domain = self.check_domain(path, number, cols[1].strip())
        label = self.check_label(path, number, cols[2].strip())
        return InputExample(f"{split}-{number}", text, None, label, domain)


# ---------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------
_REGISTRY: dict[str, Callable[..., DataProcessor]] = {
    "sst-2": Sst2Processor,
    "cola": ColaProcessor,
    "mrpc": MrpcProcessor,
    "qqp": QqpProcessor,
    "rte": RteProcessor,
    "qnli": QnliProcessor,
    "mnli": MnliProcessor,
    "g1": G1Processor,
    "mr": lambda strict=True: KShotSingleProcessor("MR", strict=strict),
    "cr": lambda strict=True: KShotSingleProcessor("CR", strict=strict),
    "senti": SentiProcessor,
}
_ALIASES = {"sst2": "sst-2", "sst": "sst-2", "mnli-m": "mnli"}


def known_tasks() -> list[str]:
    """Task names accepted by :func:`get_processor`."""
    return sorted(_REGISTRY)


def get_processor(task_name: str, strict: bool = True) -> DataProcessor:
    """The processor of a task, by case-insensitive name (``SST-2``, ``g1``, ``senti``, ...).

    Raises:
        ValueError: unknown task; the message lists the known ones.
    """
    key = task_name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown task {task_name!r}; known tasks: {', '.join(known_tasks())}")
    return _REGISTRY[key](strict=strict)


def select_domains(
    examples: Sequence[InputExample], domains: str | Sequence[str] | None
) -> list[InputExample]:
    """Keep the examples of the given domain(s); None or ``"mix"`` keeps everything.

    ``domains`` may be a comma separated string (``"books,dvd"``).
    """
    if domains is None or domains == "mix":
        return list(examples)
    wanted = set(domains.split(",")) if isinstance(domains, str) else set(domains)
    return [e for e in examples if e.domain in wanted]
