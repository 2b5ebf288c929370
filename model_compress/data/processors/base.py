"""Processor basics: InputExample, DataFormatError, row reading and the DataProcessor base class."""

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


def nonempty_text(path: str, line: int, field: str, value: str) -> str:
    """``value``, or DataFormatError naming file, line and field when it is blank."""
    if not value.strip():
        raise DataFormatError(path, line, field, "empty text")
    return value


def check_columns(path: str, line: int, cols: list[str], expected: int | Sequence[int], what: str) -> None:
    """DataFormatError naming file and line unless the row has an allowed column count."""
    allowed = (expected,) if isinstance(expected, int) else tuple(expected)
    if len(cols) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise DataFormatError(path, line, "columns", f"expected {want} tab-separated columns ({what}), "
                              f"found {len(cols)}")
