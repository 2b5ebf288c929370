"""Export a classifier snapshot for serving (entry: `python -m model_compress.export`,
`bash run_scripts/export_student.sh`).

    python -m model_compress.export --model_dir output/demo/student_tinybert/snapshot_best --format onnx \
        --output_dir output/demo/student_tinybert_onnx
    python -m model_compress.export --model_dir output/demo/student_tinybert/snapshot_best --format hf \
        --output_dir output/demo/student_tinybert_hf

    python -m model_compress.export --model_dir output/demo/student_tinybert/snapshot_best --format onnx \
        --quantize int8 --output_dir output/demo/student_tinybert_int8 [--calibration_data data/glue_data/SST-2]

The snapshot may be a project snapshot, a legacy OneFlow one or a Hugging Face folder. The export is
checked against the OneFlow model on real rows (`--parity_data`) before it is moved into place. With
`--quantize int8` the checked fp32 ONNX file is quantized by onnxruntime (dynamic; static QDQ calibrated
on `--calibration_data` training rows when given) and must pass the accuracy gate on every labelled row
of `--parity_data`/dev.tsv: refused (exit 1, nothing written) when its accuracy falls more than
`--max_accuracy_drop` points below the fp32 model's.
"""

from __future__ import annotations

import argparse
import os
import sys

from model_compress.cli import add_bool, finite_number, positive_int, user_errors
from model_compress.modeling.resolve import resolve_model
from model_compress.serving import ServingError
from model_compress.serving.gate import DEFAULT_MAX_DROP
from model_compress.serving.quantize import DEFAULT_KEEP_FLOAT, FLOAT_PARTS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_PARITY_DATA = os.path.join(REPO_ROOT, "data", "glue_data", "SST-2")


def label_list(value: str | None) -> list[str] | None:
    """`--label_enumerate_values a,b,c` (the EasyNLP flag) -> ['a', 'b', 'c']."""
    return [v.strip() for v in value.split(",")] if value else None


def model_vocab(model_dir: str, vocab_file: str | None) -> str:
    """`--vocab_file` if given, else the vocab.txt stored beside the model."""
    if vocab_file:
        if not os.path.isfile(vocab_file):
            raise ServingError(f"--vocab_file {vocab_file} does not exist")
        return vocab_file
    folder = model_dir if os.path.isdir(model_dir) else os.path.dirname(model_dir)
    beside = os.path.join(folder, "vocab.txt")
    if not os.path.isfile(beside):
        raise ServingError(f"no vocab.txt in {folder}: pass --vocab_file")
    return beside


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Export a classifier snapshot as a Hugging Face folder or ONNX.",
                                     allow_abbrev=False)
    parser.add_argument("--model_dir", required=True,
                        help="snapshot to export (project, legacy OneFlow or Hugging Face folder)")
    parser.add_argument("--format", required=True, choices=("hf", "onnx"), help="hf: transformers folder; onnx")
    parser.add_argument("--output_dir", required=True, help="folder to create (refused if it exists)")
    add_bool(parser, "--force", False, "replace an existing --output_dir")
    parser.add_argument("--vocab_file", default=None, help="vocab.txt (default: the one beside the model)")
    add_bool(parser, "--do_lower_case", True, "the tokenizer lower-cases (uncased vocab)")
    parser.add_argument("--label_enumerate_values", default=None,
                        help="label names in id order, comma separated (default: from the snapshot)")
    parser.add_argument("--parity_data", default=DEFAULT_PARITY_DATA,
                        help="SST-2-style folder whose dev.tsv rows the parity check runs on (with --quantize "
                             "int8 also the accuracy gate: every labelled row)")
    parser.add_argument("--parity_rows", type=int, default=16, help="rows in the parity batch")
    parser.add_argument("--parity_seq_length", type=int, default=64, help="sequence length of the parity batch")
    parser.add_argument("--tolerance", type=finite_number, default=1e-4,
                        help="largest allowed |logit difference| / max(1, max |logit|)")
    int8 = parser.add_argument_group("int8 (docs/serving.md)")
    int8.add_argument("--quantize", default="none", choices=("none", "int8"),
                      help="int8: quantize the ONNX file with onnxruntime (accuracy-gated)")
    int8.add_argument("--calibration_data", default=None,
                      help="folder whose train.tsv rows calibrate static (QDQ) quantization; default: dynamic")
    int8.add_argument("--calibration_rows", type=positive_int, default=256,
                      help="training rows sampled for calibration")
    int8.add_argument("--keep_float", default=None,
                      help=f"parts left in float, comma separated from {', '.join(FLOAT_PARTS)} or 'none' "
                           f"(default: {','.join(DEFAULT_KEEP_FLOAT)})")
    add_bool(int8, "--per_channel", True, "one int8 scale per weight column (else one per tensor)")
    int8.add_argument("--max_accuracy_drop", type=finite_number, default=DEFAULT_MAX_DROP,
                      help="refuse the int8 file if its dev accuracy is more than this many points below fp32's")
    return parser


def table_examples(flag: str, data_dir: str, split: str) -> tuple[list, list[str]]:
    """(examples of `data_dir`/<split>.tsv read as SST-2, the task's label list); errors name the flag."""
    from model_compress.data.processors import DataFormatError, get_processor

    processor = get_processor("sst-2")
    try:
        return processor.get_examples(data_dir, split), processor.get_labels()
    except (DataFormatError, FileNotFoundError, ValueError) as exc:
        raise ServingError(f"{flag} {data_dir}: {exc}") from None


def parity_inputs(data_dir: str, vocab_file: str, do_lower_case: bool, rows: int, seq_length: int) -> dict:
    """The parity batch: rows of `data_dir`/dev.tsv as singles and pairs, tokenized with the model's vocab."""
    from model_compress.data.tokenization import FullTokenizer
    from model_compress.serving.parity import parity_examples
    from model_compress.serving.runners import encode_examples

    texts = [ex.text_a for ex in table_examples("--parity_data", data_dir, "dev")[0][: rows + 1]]
    return encode_examples(parity_examples(texts, rows), FullTokenizer(vocab_file, do_lower_case), seq_length)


def int8_request(args, vocab_file: str, seq_length: int):
    """The int8 export's settings, gate rows (all labelled dev rows) and calibration rows from the flags."""
    import numpy as np

    from model_compress.data.tokenization import FullTokenizer
    from model_compress.serving.export import Int8Request
    from model_compress.serving.quantize import QuantizeSettings, parse_keep_float, sample_rows
    from model_compress.serving.runners import encode_examples

    settings = QuantizeSettings("static" if args.calibration_data else "dynamic", args.per_channel,
                                parse_keep_float(args.keep_float))
    tokenizer = FullTokenizer(vocab_file, args.do_lower_case)
    dev, label_names = table_examples("--parity_data", args.parity_data, "dev")
    labelled = [ex for ex in dev if ex.label is not None]
    if not labelled:
        raise ServingError(f"--parity_data {args.parity_data}: dev.tsv has no labelled rows for the accuracy gate")
    labels = np.array([label_names.index(ex.label) for ex in labelled])
    calibration = None
    if args.calibration_data:
        train = table_examples("--calibration_data", args.calibration_data, "train")[0]
        chosen = [train[i] for i in sample_rows(len(train), args.calibration_rows)]
        calibration = encode_examples(chosen, tokenizer, seq_length)
    return Int8Request(settings, encode_examples(labelled, tokenizer, seq_length), labels, calibration,
                       args.max_accuracy_drop)


def run(args):
    from model_compress.serving.export import check_output_dir, export_servable
    from model_compress.serving.gate import AccuracyGateError
    from model_compress.serving.parity import ParityError
    from model_compress.serving.servable import load_servable

    args.model_dir = resolve_model(args.model_dir, "--model_dir")
    check_output_dir(args.output_dir, args.force, args.model_dir)
    servable = load_servable(args.model_dir, label_list(args.label_enumerate_values))
    vocab = model_vocab(args.model_dir, args.vocab_file)
    config = servable.config
    seq_length = min(args.parity_seq_length, config.max_seq_length)
    inputs = parity_inputs(args.parity_data, vocab, args.do_lower_case, args.parity_rows, seq_length)
    int8 = int8_request(args, vocab, seq_length) if args.quantize == "int8" else None
    print(f"[export] {args.model_dir}: {config.num_hidden_layers} layers, hidden {config.hidden_size}, "
          f"labels {servable.labels} -> {args.format} in {args.output_dir}")
    if servable.dropped:
        print(f"[export] left out {len(servable.dropped)} training-only tensors "
              f"({', '.join(servable.dropped[:4])}{', ...' if len(servable.dropped) > 4 else ''})")
    try:
        result = export_servable(servable, args.format, args.output_dir, vocab, inputs, args.do_lower_case,
                                 args.force, args.tolerance, int8)
    except (ParityError, AccuracyGateError) as exc:
        print(f"error: [export] {exc}; nothing was written", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"[export] parity with the OneFlow model: {result.parity.describe()}")
    if result.gate is not None:
        print(f"[export] {result.quantization.describe()}")
        print(f"[export] accuracy gate passed: {result.gate.describe()}")
    print(f"[export] wrote {', '.join(result.files)} to {result.output_dir}")
    return result


@user_errors
def main(argv=None):
    return run(build_parser().parse_args(argv))
