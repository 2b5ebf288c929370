"""A classifier as a Hugging Face ``BertForSequenceClassification`` (or ``MPNetForSequenceClassification``) folder.

Files: ``config.json`` (architecture, sizes, ``num_labels``, ``id2label``/``label2id``),
``model.safetensors`` (float32, the standard key names, ``format: pt`` metadata as ``transformers``
requires), ``vocab.txt``, ``tokenizer_config.json`` and ``special_tokens_map.json``, so that
``AutoModelForSequenceClassification.from_pretrained(dir)`` and ``AutoTokenizer.from_pretrained(dir)``
load it. Written with numpy and json only.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from model_compress.data.vocab import BERT_SPECIAL_TOKENS, load_vocab, special_tokens_for
from model_compress.modeling.checkpoint import write_safetensors
from model_compress.modeling.config import EncoderConfig, MPNetConfig

SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                  "mask_token": "[MASK]"}


def hf_config(config: EncoderConfig, labels: Sequence[str]) -> dict[str, Any]:
    """``config.json`` contents of a BertForSequenceClassification (MPNetForSequenceClassification for an
    MPNetConfig) with these labels."""
    fields = config.to_dict()
    if isinstance(config, MPNetConfig):
        family = {"architectures": ["MPNetForSequenceClassification"], "model_type": "mpnet",
                  "bos_token_id": 0, "eos_token_id": 2}
    else:
        family = {"architectures": ["BertForSequenceClassification"], "model_type": "bert", "pad_token_id": 0,
                  "position_embedding_type": "absolute", "use_cache": True}
    return {
        **family,
        **{k: v for k, v in fields.items() if k != "num_labels"},
        "num_labels": config.num_labels,
        "id2label": {str(i): str(label) for i, label in enumerate(labels)},
        "label2id": {str(label): i for i, label in enumerate(labels)},
        "problem_type": "single_label_classification",
        "classifier_dropout": None,
        "torch_dtype": "float32",
    }


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_tokenizer_files(directory: str, vocab_file: str, do_lower_case: bool, max_length: int) -> list[str]:
    """``vocab.txt``, ``tokenizer_config.json`` and ``special_tokens_map.json``: BertTokenizer, or
    MPNetTokenizer with ``<s> </s> <pad>`` ... when the vocab's special tokens are MPNet's."""
    found = special_tokens_for(load_vocab(vocab_file), vocab_file)
    if found == BERT_SPECIAL_TOKENS:
        tokenizer_class, special = "BertTokenizer", SPECIAL_TOKENS
    else:
        tokenizer_class = "MPNetTokenizer"
        special = {"bos_token": found.cls, "eos_token": found.sep, "unk_token": found.unk, "sep_token": found.sep,
                   "pad_token": found.pad, "cls_token": found.cls, "mask_token": found.mask}
    vocab = os.path.join(directory, "vocab.txt")
    shutil.copyfile(vocab_file, vocab)
    tokenizer_config = {"tokenizer_class": tokenizer_class, "do_lower_case": do_lower_case,
                        "model_max_length": max_length, "tokenize_chinese_chars": True,
                        "strip_accents": None, **special}
    paths = [vocab, os.path.join(directory, "tokenizer_config.json"),
             os.path.join(directory, "special_tokens_map.json")]
    _write_json(paths[1], tokenizer_config)
    _write_json(paths[2], special)
    return paths


def write_hf_config(directory: str, config: EncoderConfig, labels: Sequence[str]) -> str:
    path = os.path.join(directory, "config.json")
    _write_json(path, hf_config(config, labels))
    return path


def write_hf_folder(
    directory: str,
    state: Mapping[str, np.ndarray],
    config: EncoderConfig,
    labels: Sequence[str],
    vocab_file: str,
    do_lower_case: bool = True,
) -> list[str]:
    """Write the folder's files into the existing ``directory``; returns their paths.

    ``state`` holds exactly the classifier tensors under their HF names (``bert.*`` / ``mpnet.*``,
    ``classifier.*``).
    """
    weights = {key: np.asarray(value, dtype=np.float32) for key, value in state.items()}
    files = [write_hf_config(directory, config, labels),
             write_safetensors(weights, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})]
    return files + write_tokenizer_files(directory, vocab_file, do_lower_case, config.max_seq_length)
