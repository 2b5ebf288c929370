"""meta_teacher_train.py, meta_student_distill.py and main_evaluate.py: EasyNLP's flags and user-defined
parameters -> the Meta-KD recipe's typed settings -> ``recipes.metakd`` (meta-teacher, two-stage student,
evaluation per domain) over the staged ``--tables``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from model_compress.easynlp import flags as udp_flags
from model_compress.easynlp.flags import UsageError, build_parser, check_choice, guarded
from model_compress.easynlp.metakd.tables import stage_tables
from model_compress.easynlp.models import check_sequence_length, resolve_model
from model_compress.recipes.settings import (
    DataSettings,
    MetaKDSettings,
    MetaTeacherSettings,
    RunSettings,
    StudentSettings,
    TeacherDumpSettings,
    TrainSettings,
)

TEACHER_KEYS = ("pretrain_model_name_or_path", "use_sample_weights", "use_domain_loss", "domain_loss_weight")
STUDENT_KEYS = ("pretrain_model_name_or_path", "teacher_model_path", "domain_loss_weight", "distill_stage", "genre",
                "T", "student_num_hidden_layers", "use_sample_weights")
EVALUATE_KEYS = ("pretrain_model_name_or_path", "genre")
UDP = "--user_defined_parameters"


def _parse(prog: str, argv: Sequence[str] | None, keys: Sequence[str], modes: Sequence[str]):
    args = build_parser(prog, f"EasyNLP's {prog} on OneFlow (Meta-KD example).").parse_args(argv)
    check_choice("--app_name", args.app_name, ("text_classify",))
    check_choice("--mode", args.mode, modes)
    return args, udp_flags.parse_user_defined_parameters(args.user_defined_parameters, keys)


def _device(args) -> str:
    """--worker_gpu as given; unset, a GPU when there is one (the examples are GPU scripts), else the CPU."""
    import oneflow as flow

    from model_compress.easynlp.app import choose_device

    if args.worker_gpu > 0:
        return choose_device(args.worker_gpu)
    return "cuda" if flow.cuda.is_available() else "cpu"


@dataclasses.dataclass(frozen=True)
class Common:
    """The settings every Meta-KD script shares, from EasyNLP's flags over the staged folder."""

    data: DataSettings
    train: TrainSettings
    flags: dict


def _common(args, udp: dict[str, str], folder: str) -> Common:
    from model_compress.easynlp.app import recorded_flags, train_settings

    data = DataSettings(task_name="senti", data_dir=folder, seq_length=args.sequence_length, length_buckets="auto")
    train = dataclasses.replace(train_settings(args, _device(args)), task_name="senti")
    return Common(data, train, recorded_flags(args, udp, task_name="senti"))


def _run(common: Common, args, do_train: bool, model_save_dir: str) -> RunSettings:
    return RunSettings(do_train=do_train, do_eval=True, batch_size_per_device=args.micro_batch_size,
                       model_save_dir=model_save_dir, result_dir="", vocab_file=None, flags=common.flags)


def _student_layers(udp: dict[str, str]) -> int:
    layers = udp.get("student_num_hidden_layers", "0")
    if not layers.isdigit():
        raise UsageError(UDP, f"student_num_hidden_layers={layers}: expected an integer >= 0")
    return int(layers)


def _meta_kd(udp: dict[str, str], teacher: str | None, stage: str) -> MetaKDSettings:
    return MetaKDSettings(
        teacher_model=teacher, distill_stage=stage, genre=udp.get("genre", "all"), first_stage_epochs=0,
        domain_loss_weight=udp_flags.udp_float(udp, "domain_loss_weight", 0.5, low=0.0),
        use_sample_weights=udp_flags.udp_bool(udp, "use_sample_weights", True),
        temperature=udp_flags.udp_float(udp, "T", 2.0, low=1e-6), weight_soft_loss=False, alpha=0.5)


def _teacher_dump() -> TeacherDumpSettings:
    return TeacherDumpSettings(dump_dir=None, refresh_teacher_cache=False, attention_loss="probs")


def meta_teacher_train_main(argv: Sequence[str] | None = None) -> None:
    """meta_teacher_train.py: the meta-teacher (recipes.metakd.train_meta_teacher) on the staged tables."""

    def run() -> None:
        from model_compress.recipes.common import find_vocab
        from model_compress.recipes.metakd.teacher import train_meta_teacher

        args, udp = _parse("meta_teacher_train.py", argv, TEACHER_KEYS, ("train", "evaluate"))
        if not args.checkpoint_dir:
            raise UsageError("--checkpoint_dir", "is required (where the meta-teacher goes)")
        weights = udp_flags.udp_bool(udp, "use_sample_weights", True)
        train = args.mode == "train"
        model = udp.get("pretrain_model_name_or_path", "default") if train else args.checkpoint_dir
        model_dir = resolve_model(model, f"{UDP} pretrain_model_name_or_path" if train else "--checkpoint_dir")
        check_sequence_length(model_dir, args.sequence_length, "--sequence_length")
        folder, _ = stage_tables(args, weights and train, find_vocab(model_dir, None))
        common = _common(args, udp, folder)
        meta = MetaTeacherSettings(
            layer_indexes=None, domain_loss_weight=udp_flags.udp_float(udp, "domain_loss_weight", 0.5, low=0.0),
            use_sample_weights=weights, use_domain_loss=udp_flags.udp_bool(udp, "use_domain_loss", True))
        train_meta_teacher(_run(common, args, train, args.checkpoint_dir), common.data, common.train, meta, model_dir)

    guarded("meta_teacher_train.py", run)


def meta_student_distill_main(argv: Sequence[str] | None = None) -> None:
    """meta_student_distill.py: stage ``first`` (intermediate layers) or ``second`` (soft labels) of the student."""

    def run() -> None:
        from model_compress.recipes.common import find_vocab
        from model_compress.recipes.metakd.distill import meta_distill

        args, udp = _parse("meta_student_distill.py", argv, STUDENT_KEYS, ("train",))
        stage = check_choice(f"{UDP} distill_stage", udp.get("distill_stage", ""), ("first", "second"))
        if "teacher_model_path" not in udp:
            raise UsageError(UDP, "teacher_model_path= is required (the meta_teacher_train.py --checkpoint_dir)")
        if not args.checkpoint_dir:
            raise UsageError("--checkpoint_dir", "is required (where this stage's student goes)")
        teacher = resolve_model(udp["teacher_model_path"], f"{UDP} teacher_model_path")
        student = resolve_model(udp.get("pretrain_model_name_or_path", "default"), f"{UDP} pretrain_model_name_or_path")
        layers = _student_layers(udp)
        folder, _ = stage_tables(args, False, find_vocab(teacher, None))
        common = _common(args, udp, folder)
        spec = StudentSettings(student_model=student, from_scratch=False, student_num_hidden_layers=layers)
        meta_distill(_run(common, args, True, args.checkpoint_dir), common.data, common.train, spec,
                     _meta_kd(udp, teacher, stage), _teacher_dump())

    guarded("meta_student_distill.py", run)


def main_evaluate_main(argv: Sequence[str] | None = None) -> None:
    """main_evaluate.py: dev accuracy (per domain) of a student; results beside it (results_eval_<genre>.json)."""

    def run() -> None:
        from model_compress.recipes.common import find_vocab
        from model_compress.recipes.metakd.distill import meta_distill

        args, udp = _parse("main_evaluate.py", argv, EVALUATE_KEYS, ("evaluate",))
        given = udp.get("pretrain_model_name_or_path") or args.checkpoint_dir
        if not given:
            raise UsageError(UDP, "pretrain_model_name_or_path= (the student) is required")
        flag = f"{UDP} pretrain_model_name_or_path" if "pretrain_model_name_or_path" in udp else "--checkpoint_dir"
        snapshot = resolve_model(given, flag)
        folder, _ = stage_tables(args, False, find_vocab(snapshot, None))
        result_dir = given if os.path.isdir(given) and os.path.abspath(given) != os.path.abspath(snapshot) \
            else os.path.dirname(os.path.abspath(snapshot))
        common = _common(args, udp, folder)
        spec = StudentSettings(student_model=snapshot, from_scratch=False, student_num_hidden_layers=0)
        meta_distill(_run(common, args, False, result_dir), common.data, common.train, spec,
                     _meta_kd(udp, None, "all"), _teacher_dump())

    guarded("main_evaluate.py", run)
