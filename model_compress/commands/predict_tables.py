"""Predict mode in the EasyNLP style (entry: `python -m model_compress.predict`, run_scripts/predict.sh).

    python -m model_compress.predict --tables dev.tsv --outputs student_pred.tsv \
        --input_schema label:str:1,sid1:str:1,sid2:str:1,sent1:str:1,sent2:str:1 \
        --first_sequence sent1 --second_sequence sent2 --checkpoint_path output/demo/student_tinybert/snapshot_best \
        --output_schema predictions,probabilities,logits --append_cols label --micro_batch_size 32 \
        --sequence_length 128 --backend onnxruntime

The table is a tsv without header whose columns `--input_schema` names (`name:type:count`, as the
EasyNLP commands read it: model_compress/easynlp/schema.py); without `--input_schema` its first line is a
header naming the columns. The output tsv has no header: one line per input row, in order, with the
`--output_schema` columns (`predictions`: the label name; `probabilities`, `logits`: comma-separated
values, one per label) and then the `--append_cols` copied from the input. `--output_schema=logits`
writes exactly the teacher logits file that vanilla KD reads. The checkpoint is any snapshot the
toolkit loads, or an exported ONNX file/folder; `--backend` picks OneFlow nn.Graph or onnxruntime.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from model_compress.cli import add_bool, positive_int, user_errors
from model_compress.commands.export_model import label_list
from model_compress.easynlp.flags import OUTPUT_COLUMNS, UsageError
from model_compress.easynlp.schema import (
    Table,
    header_columns,
    make_spec,
    output_rows,
    parse_output_schema,
    parse_schema,
    read_table,
)
from model_compress.files import atomic_open
from model_compress.modeling.resolve import resolve_model
from model_compress.serving import ServingError


def read_input(args: argparse.Namespace) -> tuple[Table, list[str], list[str]]:
    """The table read by its schema (EasyNLP's tables module), the output columns and the appended columns.

    Without ``--input_schema`` the first line names the columns. A mistake is a ServingError naming the flag
    (and file and line).
    """
    try:
        outputs = parse_output_schema(args.output_schema)
        if args.input_schema:
            columns, skip = parse_schema(args.input_schema), args.skip_first_line
        else:
            columns, skip = header_columns(args.tables), True
        spec = make_spec(columns, args.first_sequence, args.second_sequence or "")
        appended = [c.strip() for c in (args.append_cols or "").split(",") if c.strip()]
        for name in appended:
            if name not in spec.names:
                raise UsageError("--append_cols", f"{name!r} is not a column of {args.tables} "
                                 f"(columns: {', '.join(spec.names)})")
        return read_table(args.tables, spec, skip_first_line=skip), outputs, appended
    except UsageError as exc:
        raise ServingError(str(exc)) from None


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
    parser.add_argument("--ort_threads", type=int, default=0,
                        help="onnxruntime intra-op threads (0: its default, one per core; 1 was faster on a "
                             "loaded 2-core machine, docs/benchmarks.md)")
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
    from model_compress.serving.runners import encode_examples, onnx_file, open_classifier

    if not (os.path.exists(args.checkpoint_path) and onnx_file(args.checkpoint_path)):
        args.checkpoint_path = resolve_model(args.checkpoint_path, "--checkpoint_path")
    table, columns, appended_cols = read_input(args)
    examples = table.examples
    model = open_classifier(args.checkpoint_path, args.backend, label_list(args.label_enumerate_values),
                            max(args.ort_threads, 0))
    if model.max_length and args.sequence_length > model.max_length:
        raise ServingError(f"--sequence_length {args.sequence_length} exceeds the model's "
                           f"longest input {model.max_length}")
    vocab = args.vocab_file or model.vocab_file
    if not vocab or not os.path.isfile(vocab):
        raise ServingError(f"no vocab.txt beside {args.checkpoint_path}: pass --vocab_file")
    lower = args.do_lower_case if args.do_lower_case is not None else model.do_lower_case
    tokenizer = FullTokenizer(vocab, do_lower_case=True if lower is None else lower)
    seconds, size = 0.0, args.micro_batch_size
    with atomic_open(args.outputs) as out, tqdm(total=len(examples), unit="row", desc="predict",
                                                file=sys.stderr) as bar:
        for start in range(0, len(examples), size):
            inputs = encode_examples(examples[start:start + size], tokenizer, args.sequence_length)
            began = time.perf_counter()
            logits = model(inputs)
            seconds += time.perf_counter() - began
            for line in output_rows(logits, model.labels, columns, table.fields[start:start + size],
                                    appended_cols):
                out.write(line + "\n")
            bar.update(len(logits))
    backend = model.runner.backend
    rate = len(examples) / max(seconds, 1e-9)
    print(f"[predict] {len(examples)} rows -> {args.outputs} ({', '.join(columns)}); {backend}: "
          f"{seconds:.2f} s in the model{' (graph compilation included)' if backend == 'oneflow' else ''}")
    return {"rows": len(examples), "outputs": args.outputs, "backend": backend, "samples_per_second": rate}


@user_errors
def main(argv=None):
    return run(build_parser().parse_args(argv))
