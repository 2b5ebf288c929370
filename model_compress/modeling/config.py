"""Model configurations: sizes and dropouts, read from and written to Hugging Face style config.json.

BertConfig describes every BERT in the project, MPNetConfig an MPNet encoder (all-mpnet-base-v2) and
LSTMConfig the Distilled BiLSTM student; the last two are marked by their ``model_type`` so a snapshot
says which model it holds (`config_from_dict`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from model_compress.files import write_json_atomic

C = TypeVar("C", bound="JsonConfig")


def read_json_object(path: str) -> dict[str, Any]:
    """A config.json's object; invalid JSON or a non-object raises ValueError naming the file."""
    with open(path, encoding="utf-8") as f:
        try:
            raw = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a JSON object")
    return raw


class JsonConfig:
    """Dict / config.json round trip shared by the config dataclasses."""

    def replace(self: C, **changes: Any) -> C:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls: type[C], raw: dict[str, Any]) -> C:
        """Build from a dict, ignoring keys this project does not use (HF configs carry many)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in raw.items() if k in fields}
        if "num_labels" not in known and isinstance(raw.get("id2label"), dict):
            known["num_labels"] = len(raw["id2label"])
        return cls(**known)

    @classmethod
    def from_json_file(cls: type[C], path: str) -> C:
        return cls.from_dict(read_json_object(path))

    def to_json_file(self, path: str) -> None:
        write_json_atomic(path, self.to_dict())


@dataclasses.dataclass
class _EncoderShape(JsonConfig):
    """Sizes, dropouts and head shared by the transformer encoders (BERT's defaults)."""

    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    num_labels: int = 2

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if self.hidden_act != "gelu":
            raise ValueError(f"hidden_act {self.hidden_act!r} is not supported (only exact 'gelu')")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_seq_length(self) -> int:
        """Longest input the position table covers."""
        return self.max_position_embeddings


@dataclasses.dataclass
class BertConfig(_EncoderShape):
    """Shape of a BERT encoder plus the classification head on top of it."""

    type_vocab_size: int = 2


@dataclasses.dataclass
class MPNetConfig(_EncoderShape):
    """Shape of an MPNet encoder (Hugging Face ``MPNetConfig`` fields) plus its classification head.

    No token types; positions start after ``pad_token_id`` (HF counts real tokens from padding_idx + 1),
    and one table of ``relative_attention_num_buckets`` x heads relative-position biases is shared by all
    layers.
    """

    vocab_size: int = 30527
    max_position_embeddings: int = 514
    layer_norm_eps: float = 1e-5
    relative_attention_num_buckets: int = 32
    pad_token_id: int = 1
    model_type: str = "mpnet"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.pad_token_id < self.max_position_embeddings - 1:
            raise ValueError(f"pad_token_id {self.pad_token_id} leaves no positions in "
                             f"max_position_embeddings {self.max_position_embeddings}")
        if self.relative_attention_num_buckets < 4 or self.relative_attention_num_buckets % 4:
            raise ValueError("relative_attention_num_buckets must be a positive multiple of 4, got "
                             f"{self.relative_attention_num_buckets}")

    @property
    def max_seq_length(self) -> int:
        """Longest input the position table covers (positions run from pad_token_id + 1)."""
        return self.max_position_embeddings - self.pad_token_id - 1


EncoderConfig = BertConfig | MPNetConfig  # the transformer encoders (not the BiLSTM)


@dataclasses.dataclass
class LSTMConfig(JsonConfig):
    """The Distilled BiLSTM student: word embeddings, (bi)LSTM layers, a ReLU layer and the classifier."""

    # input: ids of the teacher's vocabulary, of which the student reads the first max_seq_length (0: all)
    vocab_size: int = 30522
    embedding_size: int = 300
    max_seq_length: int = 0
    # recurrent layers (hidden_size units per direction)
    hidden_size: int = 300
    num_layers: int = 1
    bidirectional: bool = True
    # head: ReLU layer, dropout, classifier
    intermediate_size: int = 400
    hidden_dropout_prob: float = 0.5
    num_labels: int = 2
    initializer_range: float = 0.02
    model_type: str = "distilled_bilstm"

    def __post_init__(self) -> None:
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_layers", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def config_from_dict(raw: dict[str, Any]) -> BertConfig | MPNetConfig | LSTMConfig:
    """The config a snapshot's dict describes: LSTMConfig or MPNetConfig when its ``model_type`` says so,
    else BertConfig."""
    kind = raw.get("model_type")
    if kind == LSTMConfig.model_type:
        return LSTMConfig.from_dict(raw)
    if kind == MPNetConfig.model_type:
        return MPNetConfig.from_dict(raw)
    return BertConfig.from_dict(raw)


def config_from_json_file(path: str) -> BertConfig | MPNetConfig | LSTMConfig:
    """`config_from_dict` of a config.json file (errors name the file)."""
    return config_from_dict(read_json_object(path))
