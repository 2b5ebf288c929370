"""A classifier snapshot as the serving layer sees it: exactly the tensors of a BertForSequenceClassification
(MPNetForSequenceClassification), its config and label names, read from any snapshot format the toolkit
reads; and the OneFlow model rebuilt from it. Export (``serving.export``) and the runners
(``serving.runners``) both start here."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence

import numpy as np

from model_compress.modeling.checkpoint import check_state_shapes, classifier_state, load_snapshot, load_state_into
from model_compress.modeling.classifiers import build_classifier, head_num_labels
from model_compress.modeling.config import BertConfig, EncoderConfig, MPNetConfig
from model_compress.serving import ServingError


@dataclasses.dataclass
class Servable:
    """A classifier ready to export: exactly the BertForSequenceClassification tensors, config, labels."""

    state: dict[str, np.ndarray]
    config: BertConfig
    labels: list[str]
    source: str
    dropped: list[str] = dataclasses.field(default_factory=list)  # training-only tensors left out


def mpnet_classifier_keys(config: MPNetConfig) -> list[str]:
    """The tensor names of an MPNetForSequenceClassification with this config (HF convention)."""
    layer = [f"attention.attn.{n}" for n in "qkvo"] + [
        "attention.LayerNorm", "intermediate.dense", "output.dense", "output.LayerNorm"]
    modules = ["mpnet.embeddings.LayerNorm", "classifier.dense", "classifier.out_proj"]
    modules += [f"mpnet.encoder.layer.{i}.{m}" for i in range(config.num_hidden_layers) for m in layer]
    keys = [f"mpnet.embeddings.{n}_embeddings.weight" for n in ("word", "position")]
    keys.append("mpnet.encoder.relative_attention_bias.weight")
    return keys + [f"{m}.{p}" for m in modules for p in ("weight", "bias")]


def classifier_keys(config: EncoderConfig) -> list[str]:
    """The tensor names of a BertForSequenceClassification (MPNetForSequenceClassification) with this config."""
    if isinstance(config, MPNetConfig):
        return mpnet_classifier_keys(config)
    layer = [f"attention.self.{n}" for n in ("query", "key", "value")] + [
        "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense", "output.dense",
        "output.LayerNorm"]
    modules = ["bert.embeddings.LayerNorm", "bert.pooler.dense", "classifier"]
    modules += [f"bert.encoder.layer.{i}.{m}" for i in range(config.num_hidden_layers) for m in layer]
    keys = [f"bert.embeddings.{n}_embeddings.weight" for n in ("word", "position", "token_type")]
    return keys + [f"{m}.{p}" for m in modules for p in ("weight", "bias")]


def _few(keys: Sequence[str], limit: int = 4) -> str:
    return ", ".join(keys[:limit]) + (", ..." if len(keys) > limit else "")


def servable_state(
    state: Mapping[str, np.ndarray], config: BertConfig, source: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """(classifier tensors as float32, names of the training-only tensors left out).

    Raises ServingError when the classifier head is missing, when the head or encoder holds tensors a
    BertForSequenceClassification (one Linear over the tanh-pooled [CLS] state) has no place for, or
    when shapes disagree with the config.
    """
    wanted = classifier_keys(config)
    missing = [k for k in wanted if k not in state]
    if any(k.startswith("classifier.") for k in missing):
        raise ServingError(
            f"{source} has no classification head (classifier.weight/bias): an encoder-only snapshot "
            "cannot be served as a classifier; fine-tune it on a task first")
    if missing:
        raise ServingError(f"{source} lacks {len(missing)} tensors a BertForSequenceClassification needs "
                           f"({_few(missing)})")
    extra = sorted(k for k in state if k not in set(wanted))
    inexpressible = [k for k in extra if k.startswith(("bert.", "mpnet.", "classifier."))]
    if inexpressible:
        raise ServingError(
            f"{source} has a head or encoder tensors the export formats cannot express ({_few(inexpressible)}): "
            "they hold a BertForSequenceClassification, i.e. one Linear layer over the pooled [CLS] state")
    chosen = {k: np.asarray(state[k], dtype=np.float32) for k in wanted}
    problems = check_state_shapes(chosen, config)
    if problems:
        raise ServingError(f"{source} does not match its config: {'; '.join(problems[:3])}")
    return chosen, extra


def _hf_labels(model_dir: str) -> list[str] | None:
    path = os.path.join(model_dir, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            id2label = json.load(f).get("id2label")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(id2label, dict):
        return None
    try:
        return [str(id2label[k]) for k in sorted(id2label, key=int)]
    except (TypeError, ValueError):
        return None


def load_servable(model_dir: str, labels: Sequence[str] | None = None) -> Servable:
    """Read a snapshot (project, legacy OneFlow or HF) and keep the classifier it holds.

    Distillation snapshots holding a whole objective give their ``student.`` model. Label names come
    from ``labels``, else the snapshot's meta (project) or ``id2label`` (HF), else ``"0" .. "N-1"``.
    """
    if not os.path.exists(model_dir):
        raise ServingError(f"--model_dir {model_dir} does not exist")
    try:
        state, config, meta = load_snapshot(model_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise ServingError(str(exc)) from None
    if config is None:
        raise ServingError(f"{model_dir} has no config (config.json / snapshot.json); cannot export it")
    if not isinstance(config, EncoderConfig):
        raise ServingError(f"{model_dir} holds a {getattr(config, 'model_type', type(config).__name__)} model: "
                           "export and predict serve BERT classifiers (evaluate it with its --do_eval script)")
    selected = classifier_state(state)
    head = head_num_labels(selected)
    if head is not None and head != config.num_labels:
        config = config.replace(num_labels=head)
    chosen, dropped = servable_state(selected, config, model_dir)
    if selected is not state:  # a distillation objective: its student was chosen, the rest is left out
        dropped = sorted(k for k in state if k.partition("student.")[2] not in chosen)
    found = labels or meta.get("labels") or (_hf_labels(model_dir) if meta.get("snapshot_format") == "hf" else None)
    names = [str(label) for label in found] if found else [str(i) for i in range(config.num_labels)]
    if len(names) != config.num_labels:
        raise ServingError(f"{model_dir}: {len(names)} label names ({_few(names)}) for a head of "
                           f"{config.num_labels} labels")
    return Servable(chosen, config, names, model_dir, dropped)


def build_oneflow_model(state: Mapping[str, np.ndarray], config: BertConfig):
    """A OneFlow classifier of the config's family in eval mode holding ``state`` (every key must fit)."""
    model = build_classifier(config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    report = load_state_into(model, state, verbose=False)
    if report.missing or report.unexpected:
        raise ServingError(f"tensors do not fit {type(model).__name__}: {report.summary()}")
    return model.eval()
