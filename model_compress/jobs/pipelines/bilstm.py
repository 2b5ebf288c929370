"""Distilled BiLSTM runs over typed settings: an LSTM student taught by a BERT teacher's logits (vanilla KD)."""

from __future__ import annotations

import os

from model_compress.distill.objectives import VanillaKDObjective
from model_compress.errors import RecipeError
from model_compress.jobs import settings as cfg
from model_compress.jobs.common import (
    find_vocab,
    fit_classifier,
    load_classifier,
    load_task_data,
)
from model_compress.jobs.pipelines.student import evaluate_student, logits_from_file, with_teacher_outputs
from model_compress.modeling.checkpoint import snapshot_config
from model_compress.modeling.config import LSTMConfig
from model_compress.modeling.lstm import DistilledBiLSTM
from model_compress.modeling.resolve import resolve_model
from model_compress.training import distributed
from model_compress.training.sources import WithCachedTargets

ROLE = "student-bilstm"


def lstm_config(spec: cfg.DistilledLSTMSettings, vocab_size: int, num_labels: int) -> LSTMConfig:
    """The student's shape from the flags; its embedding covers the teacher's vocabulary."""
    try:
        return LSTMConfig(
            vocab_size=vocab_size, embedding_size=spec.student_embedding_size or spec.student_hidden_size,
            hidden_size=spec.student_hidden_size, num_layers=spec.student_num_hidden_layers,
            bidirectional=spec.bidirectional, intermediate_size=spec.student_intermediate_size,
            hidden_dropout_prob=spec.student_hidden_dropout_prob, num_labels=num_labels,
            max_seq_length=spec.student_seq_length)
    except ValueError as exc:
        raise RecipeError(f"student size: {exc}") from None


def train_distilled_lstm(
    run: cfg.RunSettings, data_settings: cfg.DataSettings, settings: cfg.TrainSettings,
    spec: cfg.DistilledLSTMSettings,
) -> dict:
    """KD of a fresh LSTM student from a logits file or the teacher (online or cached), then dev metrics."""
    output_dir = run.model_save_dir or os.path.join("output", f"{ROLE}-{settings.task_name}")
    result, snapshot = {}, spec.student_model
    if run.do_train:
        if not (spec.teacher_logits or spec.teacher_model):
            raise RecipeError("give --teacher_model (the fine-tuned teacher) or --teacher_logits "
                              "(task_teacher.py --export_logits)")
        teacher_dir = resolve_model(spec.teacher_model)  # its vocabulary is the student's
        vocab = find_vocab(teacher_dir, run.vocab_file)
        data = load_task_data(data_settings, vocab, model_dir=teacher_dir)
        teacher_config = snapshot_config(teacher_dir)
        vocab_size = teacher_config.vocab_size if teacher_config else len(data.tokenizer.vocab)
        model = DistilledBiLSTM(lstm_config(spec, vocab_size, len(data.labels)))
        model = distributed.setup_model(model, settings.device)
        objective = VanillaKDObjective(model, spec.temperature, spec.kd_alpha)
        train = data.loader("train", run.batch_size_per_device, train=True, seed=settings.seed)
        if spec.teacher_logits:
            train = WithCachedTargets(train, {"teacher_logits": logits_from_file(spec.teacher_logits, data, train)})
        else:
            teacher, _, _ = load_classifier(teacher_dir, len(data.labels))
            teacher = distributed.setup_model(teacher, settings.device)
            objective, train = with_teacher_outputs(objective, train, teacher, teacher_dir, data, settings,
                                                    spec.teacher_mode, spec.refresh_teacher_cache, tag="bilstm")
        dev = data.loader("dev", settings.eval_batch_size_per_device, train=False, seed=settings.seed, rank=0,
                          world_size=1)
        loop = fit_classifier(settings, objective, model, train, dev, vocab, output_dir,
                              meta={"labels": data.labels, "role": ROLE, "teacher": teacher_dir})
        snapshot, result["train"] = loop.best_snapshot, loop
    if run.do_eval:
        result["eval"] = evaluate_student(run, data_settings, settings, snapshot, output_dir, ROLE)
    result["snapshot"] = snapshot
    return result
