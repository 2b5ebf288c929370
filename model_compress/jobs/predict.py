"""Predict mode in the EasyNLP style (entry: `python -m model_compress.predict`, run_scripts/predict.sh).

    python -m model_compress.predict --tables dev.tsv --outputs student_pred.tsv \
        --input_schema label:str:1,sid1:str:1,sid2:str:1,sent1:str:1,sent2:str:1 \
        --first_sequence sent1 --second_sequence sent2 --checkpoint_path output/demo/student_pkd/snapshot_best \
        --output_schema predictions,probabilities,logits --append_cols label --micro_batch_size 32 \
        --sequence_length 128 --backend onnxruntime

The table is a tsv without header whose columns `--input_schema` names (`name:type:count`; a column
with count > 1 holds comma-separated values); without `--input_schema` its first line is a header
naming the columns. The output tsv has no header: one line per input row, in order, with the
`--output_schema` columns (`predictions`: the label name; `probabilities`, `logits`: comma-separated
values, one per label) and then the `--append_cols` copied from the input. `--output_schema=logits`
writes exactly the teacher logits file that vanilla KD reads. The checkpoint is any snapshot the
toolkit loads, or an exported ONNX file/folder; `--backend` picks OneFlow nn.Graph or onnxruntime.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

import numpy as np

from model_compress.cli import add_bool, positive_int, user_errors
from model_compress.data.processors import InputExample, read_rows
from model_compress.jobs.export import label_list
from model_compress.serving import ServingError

OUTPUT_COLUMNS = ("predictions", "probabilities", "logits")


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: str
    count: int


def parse_schema(schema: str, flag: str = "--input_schema") -> list[Column]:
    """`label:str:1,sent1:str:1,logits:float:2` -> columns (type and count default to str and 1)."""
    columns = []
    for item in schema.split(","):
        parts = item.strip().split(":")
        if not parts[0] or len(parts) > 3:
            raise ServingError(f"{flag}: {item!r} is not name:type:count")
        kind = parts[1] if len(parts) > 1 else "str"
        if kind not in ("str", "int", "float"):
            raise ServingError(f"{flag}: {item!r} has type {kind!r}; expected str, int or float")
        try:
            count = int(parts[2]) if len(parts) > 2 else 1
        except ValueError:
            raise ServingError(f"{flag}: {item!r} has a count that is not a number") from None
        columns.append(Column(parts[0], kind, count))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ServingError(f"{flag}: a column name repeats in {names}")
    return columns


@dataclasses.dataclass
class Table:
    """Rows of a tsv as column-name -> text dicts, with their 1-based line numbers."""

    path: str
    names: list[str]
    rows: list[tuple[int, list[str]]]

    def column(self, name: str, flag: str) -> int:
        if name not in self.names:
            raise ServingError(f"{flag} {name!r} is not a column of {self.path} (columns: {', '.join(self.names)})")
        return self.names.index(name)


def read_table(path: str, schema: str | None, skip_first_line: bool) -> Table:
    if not os.path.isfile(path):
        raise ServingError(f"--tables {path} does not exist")
    rows = list(read_rows(path))
    if schema:
        names = [c.name for c in parse_schema(schema)]
        if skip_first_line:
            rows = rows[1:]
    else:
        if not rows:
            raise ServingError(f"{path} is empty")
        names, rows = rows[0][1], rows[1:]
    for number, cols in rows:
        if len(cols) != len(names):
            raise ServingError(f"{path}, line {number}: expected {len(names)} tab-separated columns "
                               f"({', '.join(names)}), found {len(cols)}")
    return Table(path, names, rows)


def table_examples(table: Table, first: str, second: str | None) -> list[InputExample]:
    a = table.column(first, "--first_sequence")
    b = table.column(second, "--second_sequence") if second else None
    examples = []
    for number, cols in table.rows:
        if not cols[a].strip():
            raise ServingError(f"{table.path}, line {number}: field '{first}': empty text")
        text_b = cols[b] if b is not None and cols[b].strip() else None
        examples.append(InputExample(f"line-{number}", cols[a], text_b))
    return examples


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def _values(row: np.ndarray) -> str:
    return ",".join(f"{v:.7g}" for v in row)


def format_rows(logits: np.ndarray, labels: list[str], columns: list[str], appended: list[list[str]]) -> list[str]:
    """Output lines (no newline) for a batch: the chosen columns, then the appended input columns."""
    probs = softmax(logits.astype(np.float64)) if "probabilities" in columns else None
    best = logits.argmax(axis=-1)
    lines = []
    for i, row in enumerate(logits):
        fields = []
        for name in columns:
            if name == "predictions":
                fields.append(labels[best[i]] if best[i] < len(labels) else str(best[i]))
            elif name == "probabilities":
                fields.append(_values(probs[i]))
            else:
                fields.append(_values(row))
        lines.append("\t".join(fields + appended[i]))
    return lines


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Predict with a classifier over a tsv table (EasyNLP predict mode).",
                                     allow_abbrev=False)
    parser.add_argument("--tables", required=True, help="input tsv")
    parser.add_argument("--outputs", required=True, help="output tsv (written whole, then renamed into place)")
    parser.add_argument("--input_schema", default=None,
                        help="column names name:type:count,... (default: the table's first line is a header)")
    add_bool(parser, "--skip_first_line", False, "with --input_schema: the first line is a header; skip it")
    parser.add_argument("--first_sequence", default="sentence", help="column holding the (first) text")
    parser.add_argument("--second_sequence", default=None, help="column holding the second text of a pair")
    parser.add_argument("--output_schema", default="predictions",
                        help=f"output columns, comma separated, from {', '.join(OUTPUT_COLUMNS)}")
    parser.add_argument("--append_cols", default=None, help="input columns copied after the outputs")
    parser.add_argument("--checkpoint_path", "--checkpoint_dir", dest="checkpoint_path", required=True,
                        help="snapshot (project, legacy OneFlow, HF) or exported ONNX file/folder")
    parser.add_argument("--backend", default=None, choices=("oneflow", "onnxruntime"),
                        help="default: onnxruntime for an ONNX file, OneFlow nn.Graph otherwise")
    parser.add_argument("--micro_batch_size", type=positive_int, default=32, help="rows per batch")
    parser.add_argument("--sequence_length", type=positive_int, default=128, help="max tokens per row")
    parser.add_argument("--vocab_file", default=None, help="vocab.txt (default: the one beside the model)")
    add_bool(parser, "--do_lower_case", None, "lower-case (default: as exported, else True)")
    parser.add_argument("--label_enumerate_values", default=None, help="label names in id order (default: the model's)")
    parser.add_argument("--mode", default="predict", choices=("predict",), help="accepted for EasyNLP command lines")
    parser.add_argument("--app_name", default="text_classify", choices=("text_classify",),
                        help="accepted for EasyNLP command lines")
    parser.add_argument("--worker_gpu", type=int, default=None, help="accepted for EasyNLP command lines (CPU here)")
    parser.add_argument("--worker_count", type=int, default=None, help="accepted for EasyNLP command lines")
    return parser


def run(args) -> dict:
    from tqdm import tqdm

    from model_compress.data.tokenization import FullTokenizer
    from model_compress.serving.runners import encode_examples, open_classifier

    columns = [c.strip() for c in args.output_schema.split(",") if c.strip()]
    unknown = [c for c in columns if c not in OUTPUT_COLUMNS]
    if unknown or not columns:
        raise ServingError(f"--output_schema {args.output_schema!r}: choose from {', '.join(OUTPUT_COLUMNS)}")
    table = read_table(args.tables, args.input_schema, args.skip_first_line)
    examples = table_examples(table, args.first_sequence, args.second_sequence)
    appended_idx = [table.column(c.strip(), "--append_cols") for c in (args.append_cols or "").split(",") if c.strip()]
    model = open_classifier(args.checkpoint_path, args.backend, label_list(args.label_enumerate_values))
    if model.max_length and args.sequence_length > model.max_length:
        raise ServingError(f"--sequence_length {args.sequence_length} exceeds the model's "
                           f"max_position_embeddings {model.max_length}")
    vocab = args.vocab_file or model.vocab_file
    if not vocab or not os.path.isfile(vocab):
        raise ServingError(f"no vocab.txt beside {args.checkpoint_path}: pass --vocab_file")
    lower = args.do_lower_case if args.do_lower_case is not None else model.do_lower_case
    tokenizer = FullTokenizer(vocab, do_lower_case=True if lower is None else lower)
    tmp = f"{args.outputs}.tmp{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(args.outputs)), exist_ok=True)
    seconds, size = 0.0, args.micro_batch_size
    try:
        with open(tmp, "w", encoding="utf-8") as out, tqdm(total=len(examples), unit="row", desc="predict",
                                                             file=sys.stderr) as bar:
            for start in range(0, len(examples), size):
                inputs = encode_examples(examples[start:start + size], tokenizer, args.sequence_length)
                began = time.perf_counter()
                logits = model(inputs)
                seconds += time.perf_counter() - began
                rows = table.rows[start:start + size]
                appended = [[cols[i] for i in appended_idx] for _, cols in rows]
                for line in format_rows(logits, model.labels, columns, appended):
                    out.write(line + "\n")
                bar.update(len(rows))
        os.replace(tmp, args.outputs)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    backend = model.runner.backend
    rate = len(examples) / max(seconds, 1e-9)
    print(f"[predict] {len(examples)} rows -> {args.outputs} ({', '.join(columns)}); {backend}: "
          f"{seconds:.2f} s in the model{' (graph compilation included)' if backend == 'oneflow' else ''}")
    return {"rows": len(examples), "outputs": args.outputs, "backend": backend, "samples_per_second": rate}


@user_errors
def main(argv=None):
    return run(build_parser().parse_args(argv))
