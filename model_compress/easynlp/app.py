"""The `easynlp` command: EasyNLP's flags mapped onto the toolkit's jobs (no training code of its own).

    easynlp --app_name=text_classify --mode=train --tables=train.tsv,dev.tsv --input_schema=... \
        --first_sequence=sent1 --second_sequence=sent2 --label_name=label --label_enumerate_values=0,1 \
        --checkpoint_dir=results/teacher --user_defined_parameters="pretrain_model_name_or_path=default"

* train: teacher fine-tuning (``recipes.teacher.train_teacher``), or vanilla KD with
  ``enable_distillation=True type=vanilla_kd`` (``recipes.kd.train_kd_student``) from logits carried in
  the table or in ``logits_saved_path``; the best dev snapshot goes to ``<checkpoint_dir>/snapshot_best``
  and ``results_eval.json`` beside it.
* evaluate: ``results_eval.json`` of ``--checkpoint_path`` (or ``--checkpoint_dir``) on the last table.
* predict: the ``--output_schema`` columns of every row of the first table, written to ``--outputs``.

See docs/easynlp.md for the flag table.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from model_compress.cli import seed_everything
from model_compress.data.tokenization import FullTokenizer
from model_compress.easynlp.flags import (
    APP_NAMES,
    MODES,
    UsageError,
    build_parser,
    check_choice,
    guarded,
    parse_user_defined_parameters,
    split_list,
    udp_bool,
    udp_float,
)
from model_compress.easynlp.models import check_sequence_length, resolve_model
from model_compress.easynlp.schema import (
    Table,
    TableProcessor,
    make_spec,
    output_rows,
    parse_output_schema,
    parse_schema,
    read_table,
    write_lines_atomic,
)
from model_compress.log import logger
from model_compress.recipes.common import TaskData, evaluate_snapshot, find_vocab, load_model_snapshot, write_results
from model_compress.recipes.settings import StudentSettings, TrainSettings
from model_compress.serving import ServingError
from model_compress.serving.runners import classify_examples, onnx_file, open_classifier
from model_compress.training import distributed

log = logger("easynlp")

PROG = "easynlp"
UDP_KEYS = ("pretrain_model_name_or_path", "enable_distillation", "type", "logits_name", "logits_saved_path",
            "temperature", "alpha")
KD_TYPES = ("vanilla_kd",)


# ----------------------------------------------------------------------------------------------
# processes and device


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def relaunch_command(worker_gpu: int, module: str, argv: Sequence[str]) -> list[str] | None:
    """``--worker_gpu=N`` (N > 1) outside a launcher: the same command under oneflow.distributed.launch."""
    if worker_gpu <= 1 or int(os.environ.get("WORLD_SIZE", "1") or 1) > 1:
        return None
    return [sys.executable, "-m", "oneflow.distributed.launch", "--nproc_per_node", str(worker_gpu),
            "--master_port", str(_free_port()), "-m", module, *argv]


def choose_device(worker_gpu: int) -> str:
    """cuda when GPUs are asked for and present; the CPU otherwise (one line says so when GPUs were asked for)."""
    if worker_gpu <= 0:
        return "cpu"
    import oneflow as flow

    if flow.cuda.is_available():
        return "cuda"
    log.info(f"--worker_gpu={worker_gpu}: no GPU on this machine, running on the CPU")
    return "cpu"


def train_settings(args, device: str) -> TrainSettings:
    """The toolkit's training settings from EasyNLP's flags (see docs/easynlp.md)."""
    for flag, value in (("--micro_batch_size", args.micro_batch_size), ("--sequence_length", args.sequence_length)):
        if value < 1:
            raise UsageError(flag, f"must be a positive integer, got {value}")
    if args.epoch_num <= 0:
        raise UsageError("--epoch_num", f"must be positive, got {args.epoch_num}")
    return TrainSettings(
        task_name="easynlp", num_epochs=args.epoch_num, max_steps=0, learning_rate=args.learning_rate,
        weight_decay_rate=args.weight_decay, warmup_proportion=args.warmup_proportion,
        clip_grad_norm=args.max_grad_norm, eval_every_step_num=max(args.save_checkpoint_steps, 0),
        freeze_word_embeddings=False, eval_batch_size_per_device=args.micro_batch_size, seed=args.random_seed,
        eager=args.eager, device=device)


# ----------------------------------------------------------------------------------------------
# tables -> task data


def tables_of(args, wanted: int) -> list[str]:
    """``--tables`` with at least ``wanted`` entries (train: train,dev; evaluate/predict: one)."""
    tables = split_list("--tables", args.tables)
    if len(tables) < wanted:
        need = "train.tsv,dev.tsv" if wanted == 2 else "a table"
        raise UsageError("--tables", f"--mode={args.mode} needs {need}, got {args.tables!r}")
    return tables


def task_data(tables: dict[str, Table], labels: Sequence[str], vocab: str, seq_length: int, records_dir: str
              ) -> TaskData:
    """The toolkit's TaskData over tables read by schema; the OFRecord splits go to ``records_dir``."""
    return TaskData(TableProcessor(labels), FullTokenizer(vocab, do_lower_case=True), records_dir, seq_length,
                    False, {split: table.examples for split, table in tables.items()})


def _labels_flag(args) -> list[str] | None:
    return split_list("--label_enumerate_values", args.label_enumerate_values) or None


def snapshot_labels(snapshot: str, args) -> list[str]:
    """Label strings of a trained model: --label_enumerate_values, else those stored with the snapshot."""
    _, config, meta = load_model_snapshot(snapshot, "predict with it")
    labels = _labels_flag(args) or meta.get("labels")
    if not labels:
        raise UsageError("--label_enumerate_values", f"{snapshot} does not record its labels; pass them")
    if len(labels) != config.num_labels:
        raise UsageError("--label_enumerate_values", f"{len(labels)} labels but {snapshot} has {config.num_labels}")
    return list(labels)


# ----------------------------------------------------------------------------------------------
# modes


@dataclasses.dataclass(frozen=True)
class Distillation:
    """``user_defined_parameters`` of vanilla KD."""

    logits_name: str
    logits_saved_path: str | None
    temperature: float
    alpha: float


def distillation_of(udp: dict[str, str], columns) -> Distillation | None:
    if not udp_bool(udp, "enable_distillation", False):
        return None
    flag = "--user_defined_parameters"
    kind = udp.get("type", "vanilla_kd")
    if kind not in KD_TYPES:
        raise UsageError(flag, f"type={kind}: supported distillation types: {', '.join(KD_TYPES)}")
    logits_name = udp.get("logits_name", "logits")
    if logits_name not in [c.name for c in columns]:
        raise UsageError(flag, f"logits_name={logits_name} is not a column of --input_schema; append e.g. "
                         f"{logits_name}:float:2")
    return Distillation(logits_name, udp.get("logits_saved_path"), udp_float(udp, "temperature", 1.0, low=1e-6),
                        udp_float(udp, "alpha", 0.5, low=0.0, high=1.0))


def run_train(args, udp: dict[str, str], settings: TrainSettings) -> dict:
    from model_compress.recipes.kd import train_kd_student
    from model_compress.recipes.teacher import train_teacher

    train_path, dev_path = tables_of(args, 2)[:2]
    if not args.checkpoint_dir:
        raise UsageError("--checkpoint_dir", "is required in --mode=train (where the best model goes)")
    labels = _labels_flag(args)
    if not labels:
        raise UsageError("--label_enumerate_values", "is required in --mode=train, e.g. 0,1")
    if not args.label_name:
        raise UsageError("--label_name", "is required in --mode=train")
    columns = parse_schema(args.input_schema)
    kd = distillation_of(udp, columns)
    spec = make_spec(columns, args.first_sequence, args.second_sequence, args.label_name, labels,
                     kd.logits_name if kd else None)
    train = read_table(train_path, spec, args.skip_first_line, kd.logits_saved_path if kd else None)
    dev = read_table(dev_path, spec, args.skip_first_line, need_logits=False)
    model_dir = resolve_model(udp.get("pretrain_model_name_or_path", "default"),
                              "--user_defined_parameters pretrain_model_name_or_path")
    vocab = find_vocab(model_dir, None)
    check_sequence_length(model_dir, args.sequence_length, "--sequence_length")
    output_dir = args.checkpoint_dir
    data = task_data({"train": train, "dev": dev}, labels, vocab, args.sequence_length,
                     os.path.join(output_dir, "records"))
    meta = {"app_name": args.app_name, "tables": [train_path, dev_path], "init": model_dir}
    if kd:
        spec_s = StudentSettings(student_model=model_dir, from_scratch=False, student_num_hidden_layers=0)
        loader = data.loader("train", args.micro_batch_size, train=True, seed=settings.seed)
        loop = train_kd_student(settings, data, spec_s, model_dir, vocab, train.logits, kd.temperature, kd.alpha,
                                loader, output_dir, meta)
        role = "student-kd"
    else:
        loop, _ = train_teacher(settings, data, model_dir, vocab, output_dir, args.micro_batch_size, meta=meta)
        role = "teacher"
    metrics, model = evaluate_snapshot(settings, loop.best_snapshot, data, "dev")
    if distributed.rank() == 0:
        path = write_results(output_dir, metrics, recorded_flags(args, udp), model, loop.best_snapshot, {"role": role})
        log.info(f"best model {loop.best_snapshot}: dev accuracy {metrics['accuracy']:.4f}; results in {path}")
    return {"snapshot": loop.best_snapshot, "eval": metrics, "train": loop}


def _checkpoint(args) -> str:
    value = args.checkpoint_path or args.checkpoint_dir
    if not value:
        raise UsageError("--checkpoint_path", f"is required in --mode={args.mode} (the trained model's directory)")
    snapshot = resolve_model(value, "--checkpoint_path" if args.checkpoint_path else "--checkpoint_dir")
    check_sequence_length(snapshot, args.sequence_length, "--sequence_length")
    return snapshot


def _single_process(mode: str) -> None:
    if distributed.world_size() > 1:
        raise UsageError("--worker_gpu", f"--mode={mode} runs in one process; drop the launcher / --worker_gpu")


def run_evaluate(args, udp: dict[str, str], settings: TrainSettings) -> dict:
    _single_process("evaluate")
    snapshot = _checkpoint(args)
    labels = snapshot_labels(snapshot, args)
    if not args.label_name:
        raise UsageError("--label_name", "is required in --mode=evaluate")
    spec = make_spec(parse_schema(args.input_schema), args.first_sequence, args.second_sequence, args.label_name,
                     labels)
    path = tables_of(args, 1)[-1]
    table = read_table(path, spec, args.skip_first_line)
    with tempfile.TemporaryDirectory(prefix="easynlp-records-") as records:
        data = task_data({"dev": table}, labels, find_vocab(snapshot, None), args.sequence_length, records)
        metrics, model = evaluate_snapshot(settings, snapshot, data, "dev")
    result_dir = args.checkpoint_dir or (os.path.dirname(snapshot) if args.checkpoint_path else snapshot)
    out = write_results(result_dir, metrics, recorded_flags(args, udp), model, snapshot, {"role": "evaluate",
                                                                                  "table": path})
    log.info(f"{snapshot} on {path}: accuracy {metrics['accuracy']:.4f}; results in {out}")
    return {"snapshot": snapshot, "eval": metrics, "results": out}


def run_predict(args, udp: dict[str, str], settings: TrainSettings) -> dict:
    from model_compress.recipes.teacher import predict_logits

    _single_process("predict")
    if not args.outputs:
        raise UsageError("--outputs", "is required in --mode=predict (the output tsv)")
    outputs = parse_output_schema(args.output_schema)
    exported = onnx_file(args.checkpoint_path or args.checkpoint_dir or "")
    if exported:
        try:
            model = open_classifier(exported, "onnxruntime", _labels_flag(args))
        except ServingError as exc:
            raise UsageError("--checkpoint_path", str(exc)) from None
        if model.max_length and args.sequence_length > model.max_length:
            raise UsageError("--sequence_length", f"{args.sequence_length} exceeds {exported}'s "
                             f"longest input {model.max_length}")
        snapshot, labels = exported, model.labels
    else:
        snapshot = _checkpoint(args)
        labels = snapshot_labels(snapshot, args)
    columns = parse_schema(args.input_schema)
    spec = make_spec(columns, args.first_sequence, args.second_sequence)
    append = split_list("--append_cols", args.append_cols)
    for name in append:
        if name not in spec.names:
            raise UsageError("--append_cols", f"{name!r} is not a column of --input_schema ({', '.join(spec.names)})")
    path = tables_of(args, 1)[0]
    table = read_table(path, spec, args.skip_first_line)
    if exported:  # an exported ONNX file/folder (fp32 or int8): onnxruntime
        try:
            logits = classify_examples(model, table.examples, args.sequence_length, max(args.micro_batch_size, 1))
        except ServingError as exc:
            raise UsageError("--checkpoint_path", str(exc)) from None
    else:
        with tempfile.TemporaryDirectory(prefix="easynlp-records-") as records:
            data = task_data({"test": table}, labels, find_vocab(snapshot, None), args.sequence_length, records)
            logits, _ = predict_logits(settings, snapshot, data, "test")
    write_lines_atomic(args.outputs, output_rows(logits, labels, outputs, table.fields, append))
    log.info(f"{len(table.examples)} rows of {','.join(outputs)} from {snapshot} written to {args.outputs}")
    return {"snapshot": snapshot, "outputs": args.outputs, "logits": logits}


def recorded_flags(args, udp: dict[str, str], task_name: str = "easynlp") -> dict:
    """The EasyNLP flags and user-defined parameters of a run, as results files record them."""
    return {"task_name": task_name, **{k: v for k, v in vars(args).items() if isinstance(v, (str, int, float))},
            "user_defined_parameters": dict(udp)}


RUNNERS = {"train": run_train, "evaluate": run_evaluate, "predict": run_predict}


def run(argv: Sequence[str] | None = None) -> dict | None:
    """Parse EasyNLP's flags and run the mode; returns what the mode produced (None when relaunched)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(PROG, "EasyNLP's command line on OneFlow: text classification and vanilla KD."
                        ).parse_args(argv)
    check_choice("--app_name", args.app_name, APP_NAMES)
    check_choice("--mode", args.mode, MODES)
    udp = parse_user_defined_parameters(args.user_defined_parameters, UDP_KEYS)
    command = relaunch_command(args.worker_gpu, "model_compress.easynlp", argv) if args.mode == "train" else None
    if command:
        log.info(f"--worker_gpu={args.worker_gpu}: {args.worker_gpu} processes under oneflow.distributed.launch")
        code = subprocess.call(command)
        if code:
            raise SystemExit(code)
        return None
    if args.worker_count > 1:
        log.info(f"--worker_count={args.worker_count}: start the command on each machine under "
             "python -m oneflow.distributed.launch --nnodes ...; this process trains with its launcher's group")
    settings = train_settings(args, choose_device(args.worker_gpu))
    seed_everything(args.random_seed)
    return RUNNERS[args.mode](args, udp, settings)


def main(argv: Sequence[str] | None = None) -> None:
    guarded(PROG, lambda: run(argv))

