"""EasyNLP tables: ``--input_schema`` columns, tsv rows read by column name, ``--output_schema`` rows.

A table is a tsv file without header (a first line equal to the schema's column names, or any first line
with ``--skip_first_line``, is skipped). ``name:type:count`` names one tab-separated field; a field with
count > 1 holds ``count`` comma separated values (``logits:float:2`` -> ``0.31,-0.2``). Teacher logits
come from the table's own column or, with ``logits_saved_path``, from a file with one such field per
table row (the file wins when both are present). Every problem is a :class:`UsageError` naming the flag,
the file and the 1-based line.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from model_compress.data.processors import DataFormatError, DataProcessor, InputExample, read_rows
from model_compress.easynlp.flags import OUTPUT_COLUMNS, UsageError, split_list
from model_compress.files import atomic_open
from model_compress.finite import NonFiniteError, finite_float

TYPES = ("str", "int", "float")


@dataclasses.dataclass(frozen=True)
class Column:
    """One schema entry: a tsv field holding ``count`` values of ``type``."""

    name: str
    type: str
    count: int

    def __str__(self) -> str:
        return f"{self.name}:{self.type}:{self.count}"


def parse_schema(text: str, flag: str = "--input_schema") -> list[Column]:
    """``name:type:count,...`` -> columns; malformed entries, unknown types and repeated names are errors."""
    columns: list[Column] = []
    for entry in split_list(flag, text):
        parts = entry.split(":")
        if len(parts) != 3 or not parts[0]:
            raise UsageError(flag, f"entry {entry!r} is not name:type:count")
        name, kind, count = parts
        if kind not in TYPES:
            raise UsageError(flag, f"entry {entry!r}: type must be one of {', '.join(TYPES)}")
        if not count.isdigit() or int(count) < 1:
            raise UsageError(flag, f"entry {entry!r}: count must be a positive integer")
        if any(c.name == name for c in columns):
            raise UsageError(flag, f"column {name!r} is named twice")
        columns.append(Column(name, kind, int(count)))
    if not columns:
        raise UsageError(flag, "is empty: name the table's columns, e.g. sent:str:1,label:str:1")
    return columns


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """How to read a table: its columns and which of them are texts, label, teacher logits, domain, weight."""

    columns: tuple[Column, ...]
    first_sequence: str
    second_sequence: str | None = None
    label_name: str | None = None
    labels: tuple[str, ...] | None = None  # None: labels are not read (predict)
    logits_name: str | None = None
    domain_name: str | None = None
    weight_name: str | None = None

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


def make_spec(columns: Sequence[Column], first_sequence: str, second_sequence: str = "", label_name: str = "",
              labels: Sequence[str] | None = None, logits_name: str | None = None, domain_name: str | None = None,
              weight_name: str | None = None) -> TableSpec:
    """A :class:`TableSpec` whose named columns are checked against the schema (errors name the flag)."""
    names = [c.name for c in columns]

    def need(flag: str, name: str | None) -> str | None:
        if name and name not in names:
            raise UsageError(flag, f"{name!r} is not a column of --input_schema ({', '.join(names)})")
        return name or None

    if not first_sequence:
        raise UsageError("--first_sequence", "is required: the column holding the text")
    need("--first_sequence", first_sequence)
    need("--second_sequence", second_sequence)
    need("--label_name", label_name)
    need("--input_schema", domain_name)
    need("--input_schema", weight_name)
    if logits_name:
        need("--user_defined_parameters logits_name", logits_name)
        column = next(c for c in columns if c.name == logits_name)
        if column.type != "float":
            raise UsageError("--input_schema", f"the logits column {column} must have type float")
        if labels is not None and column.count != len(labels):
            raise UsageError("--input_schema", f"the logits column {column} holds {column.count} values but "
                             f"--label_enumerate_values has {len(labels)} labels")
    if labels is not None:
        if len(set(labels)) != len(labels):
            raise UsageError("--label_enumerate_values", f"{','.join(labels)} repeats a label")
        if len(labels) < 2:
            raise UsageError("--label_enumerate_values", "needs at least two labels")
    return TableSpec(tuple(columns), first_sequence, second_sequence or None, label_name or None,
                     tuple(labels) if labels is not None else None, logits_name or None, domain_name, weight_name)


@dataclasses.dataclass
class Table:
    """A table's rows: examples (text, label, domain, weight), raw fields by name, teacher logits."""

    path: str
    examples: list[InputExample]
    fields: list[dict[str, str]]
    lines: list[int]
    logits: np.ndarray | None = None


def _values(column: Column, text: str, flag: str, path: str, line: int) -> list[float]:
    """The ``count`` numbers of an int/float field."""
    parts = text.split(",")
    if len(parts) != column.count:
        raise UsageError(flag, f"column {column.name!r} ({column}) holds {len(parts)} values, expected "
                         f"{column.count}", path, line)
    try:
        return [int(p) if column.type == "int" else finite_float(p) for p in parts]
    except NonFiniteError as exc:
        raise UsageError(flag, f"column {column.name!r} ({column}): {exc}", path, line) from None
    except ValueError:
        raise UsageError(flag, f"column {column.name!r} ({column}): {text[:40]!r} is not {column.type}",
                         path, line) from None


def _rows(path: str, flag: str):
    if not os.path.isfile(path):
        raise UsageError(flag, "file not found", path)
    try:
        yield from read_rows(path)
    except DataFormatError as exc:
        raise UsageError(flag, exc.reason, path, exc.line) from None


def read_logits_column(path: str, column: Column, rows: int) -> tuple[np.ndarray, list[int]]:
    """A logits file (``logits_saved_path``): one ``column`` field per table row."""
    flag = f"--user_defined_parameters logits_saved_path={path}"
    values, lines = [], []
    for line, cols in _rows(path, flag):
        if len(cols) != 1:
            raise UsageError(flag, f"expected one field of {column.count} comma separated logits, found "
                             f"{len(cols)} tab-separated fields", path, line)
        values.append(_values(column, cols[0], flag, path, line))
        lines.append(line)
    if len(values) != rows:
        raise UsageError(flag, f"{len(values)} rows of logits but the training table has {rows} rows "
                         "(export them with --mode=predict --output_schema=logits on the same table)", path)
    return np.asarray(values, dtype=np.float32), lines


def read_table(path: str, spec: TableSpec, skip_first_line: bool = False, logits_file: str | None = None,
               need_logits: bool = True, flag: str = "--tables") -> Table:
    """Read and validate every row of ``path`` against ``spec``.

    The logits column may be missing from the rows when ``logits_file`` supplies it or when the logits are
    not needed (``need_logits=False``: a dev table read with the training schema).
    """
    logits_column = spec.column(spec.logits_name) if spec.logits_name else None
    full = spec.names
    optional = logits_column is not None and (logits_file or not need_logits)
    short = [n for n in full if n != spec.logits_name] if optional else full
    if not need_logits:
        logits_column = None
    examples, fields, lines, logits = [], [], [], []
    stem = os.path.splitext(os.path.basename(path))[0]
    for index, (line, cols) in enumerate(_rows(path, flag)):
        if index == 0 and (skip_first_line or [c.strip() for c in cols] in (full, short)):
            continue
        if len(cols) == len(full):
            names = full
        elif len(cols) == len(short):
            names = short
        else:
            want = f"{len(full)}" if full == short else f"{len(short)} or {len(full)}"
            raise UsageError("--input_schema", f"names {want} columns ({','.join(full)}) but the row has "
                             f"{len(cols)} tab-separated fields", path, line)
        row = dict(zip(names, cols))
        for column in spec.columns:
            if column.name in row and column.type != "str" and column.name != spec.logits_name:
                _values(column, row[column.name], "--input_schema", path, line)
        text_a = row[spec.first_sequence]
        if not text_a.strip():
            raise UsageError("--first_sequence", f"column {spec.first_sequence!r} is empty", path, line)
        text_b = row[spec.second_sequence] if spec.second_sequence else None
        text_b = text_b if text_b and text_b.strip() else None
        label = None
        if spec.labels is not None and spec.label_name:
            label = row[spec.label_name].strip()
            if label not in spec.labels:
                raise UsageError("--label_enumerate_values", f"label {label!r} (column {spec.label_name!r}) is not "
                                 f"one of {','.join(spec.labels)}", path, line)
        weight = None
        if spec.weight_name:
            try:
                weight = finite_float(row[spec.weight_name])
            except NonFiniteError as exc:
                raise UsageError("--input_schema", f"column {spec.weight_name!r}: {exc}", path, line) from None
            except ValueError:
                raise UsageError("--input_schema", f"column {spec.weight_name!r}: {row[spec.weight_name]!r} is "
                                 "not a number", path, line) from None
        domain = row[spec.domain_name].strip() if spec.domain_name else None
        guid = row.get("guid", "").strip() or f"{stem}-{line}"
        examples.append(InputExample(guid, text_a, text_b, label, domain, weight))
        if logits_column is not None and not logits_file:
            logits.append(_values(logits_column, row[logits_column.name], "--input_schema", path, line))
        fields.append(row)
        lines.append(line)
    if not examples:
        raise UsageError(flag, "has no rows", path)
    table = Table(path, examples, fields, lines)
    if logits_column is not None:
        if logits_file:
            table.logits, _ = read_logits_column(logits_file, logits_column, len(examples))
        else:
            table.logits = np.asarray(logits, dtype=np.float32)
    return table


class TableProcessor(DataProcessor):
    """The label list of tables read by schema (examples come from :func:`read_table`, not from a folder)."""

    name = "easynlp"

    def __init__(self, labels: Sequence[str]) -> None:
        super().__init__(strict=True)
        self.labels = tuple(labels)


def parse_output_schema(text: str) -> list[str]:
    """``--output_schema``: predictions, probabilities and/or logits."""
    names = split_list("--output_schema", text)
    for name in names:
        if name not in OUTPUT_COLUMNS:
            raise UsageError("--output_schema", f"{name!r} is not an output; choose from {', '.join(OUTPUT_COLUMNS)}")
    if not names:
        raise UsageError("--output_schema", "is empty; choose from " + ", ".join(OUTPUT_COLUMNS))
    return names


def _numbers(row: np.ndarray) -> str:
    return ",".join(f"{v:.7g}" for v in np.asarray(row, dtype=np.float64))


def output_rows(logits: np.ndarray, labels: Sequence[str], outputs: Sequence[str], fields: Sequence[dict[str, str]],
                append_cols: Sequence[str]) -> list[str]:
    """One tsv line per row (``fields``: the rows' input fields by name, e.g. ``Table.fields``): the ``outputs``
    columns, then the ``append_cols`` input fields."""
    shifted = logits - logits.max(-1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    lines = []
    for i, row in enumerate(fields):
        cells = []
        for name in outputs:
            if name == "predictions":
                best = int(logits[i].argmax())
                cells.append(labels[best] if best < len(labels) else str(best))
            elif name == "probabilities":
                cells.append(_numbers(probabilities[i]))
            else:
                cells.append(_numbers(logits[i]))
        cells.extend(row.get(name, "") for name in append_cols)
        lines.append("\t".join(cells))
    return lines


def header_columns(path: str, flag: str = "--tables") -> list[Column]:
    """A table without ``--input_schema``: its first line names the columns (all text)."""
    for _, cols in _rows(path, flag):
        return [Column(name.strip(), "str", 1) for name in cols]
    raise UsageError(flag, "is empty", path)


def write_lines_atomic(path: str, lines: Sequence[str]) -> None:
    """Write ``lines`` to ``path`` under a temporary name, then rename into place."""
    with atomic_open(path, newline="\n") as f:
        for line in lines:
            f.write(line + "\n")
