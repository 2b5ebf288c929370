"""Examples -> fixed-length BERT inputs.

Layout of one feature row, with the special tokens of the tokenizer's vocabulary (BERT's shown; MPNet
uses ``<s> </s> <pad>`` and two separators between the texts of a pair, ``<s> a </s></s> b </s>``)::

    single:  [CLS] a1 .. an [SEP] [PAD] ..         segment_ids 0 .. 0
    pair:    [CLS] a1 .. an [SEP] b1 .. bm [SEP]   segment_ids 0 for [CLS]/a/first [SEP], 1 for the rest

``input_mask`` is 1 on real tokens and 0 on padding; padding ids are the vocabulary's padding token
(0, ``[PAD]``, in BERT vocabs; 1, ``<pad>``, in MPNet's). A single text longer than ``max_seq_length - 2``
tokens is cut at the end; for a pair, the longer of the two (``text_b`` on a tie) loses its last token
until both fit beside the special tokens (``max_seq_length - 3`` for BERT, ``- 4`` for MPNet).

The names used here (``input_ids input_mask segment_ids label_ids domain idxs weights``) are the
OFRecord feature names and the keys of every batch dict in the project.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from model_compress.data.processors import InputExample
from model_compress.data.vocab import BERT_SPECIAL_TOKENS

# name -> numpy dtype; the first three are [seq_len] per example, the rest [1]
SEQUENCE_FEATURES = ("input_ids", "input_mask", "segment_ids")
FEATURE_DTYPES: dict[str, type] = {
    "input_ids": np.int32,
    "input_mask": np.int32,
    "segment_ids": np.int32,
    "label_ids": np.int32,
    "domain": np.int32,
    "idxs": np.int32,
    "weights": np.float32,
}
UNLABELED = -1  # label_id of an example without a label (test data)


class Tokenizer(Protocol):
    vocab: dict[str, int]

    def tokenize(self, text: str) -> list[str]: ...

    def convert_tokens_to_ids(self, tokens: Sequence[str]) -> list[int]: ...


@dataclasses.dataclass
class InputFeatures:
    """Model inputs of one example.

    Attributes:
        input_ids, input_mask, segment_ids: ``max_seq_length`` ints each (ids padded with the padding
            token, mask and segments with 0).
        label_id: index of the label in the label list, ``-1`` when the example has no label.
        domain_id: index of the domain in the domain list, None when no domain list was given.
        idx: position of the example in the converted sequence (stable id for caches).
        weight: per-example weight, 1.0 unless the example carries one.
    """

    input_ids: list[int]
    input_mask: list[int]
    segment_ids: list[int]
    label_id: int
    domain_id: int | None = None
    idx: int = 0
    weight: float = 1.0


def truncate_pair(tokens_a: list, tokens_b: list, max_length: int) -> None:
    """Pop tokens, one at a time from the end of the longer list (``tokens_b`` on ties), in place."""
    while len(tokens_a) + len(tokens_b) > max_length:
        if len(tokens_a) > len(tokens_b):
            tokens_a.pop()
        else:
            tokens_b.pop()


def _encoder(tokenizer: Tokenizer):
    """The fastest text -> ids function the tokenizer offers."""
    encode = getattr(tokenizer, "encode", None)
    if callable(encode):
        return encode
    return lambda text: tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))


def _special_ids(tokenizer: Tokenizer) -> tuple[int, int, int, int]:
    """Ids of the classification, separator and padding tokens, and the separators between a pair's texts."""
    special = getattr(tokenizer, "special_tokens", None) or BERT_SPECIAL_TOKENS
    vocab = tokenizer.vocab
    for token in (special.cls, special.sep):
        if token not in vocab:
            raise ValueError(f"tokenizer vocab has no {token} token")
    pad = vocab.get(special.pad, 0)  # small test vocabs may lack a padding token: padding is masked anyway
    return vocab[special.cls], vocab[special.sep], pad, special.pair_separators


def convert_examples_to_features(
    examples: Sequence[InputExample],
    label_list: Sequence[str],
    max_seq_length: int,
    tokenizer: Tokenizer,
    domain_list: Sequence[str] | None = None,
) -> list[InputFeatures]:
    """Tokenize, truncate and pad every example.

    Args:
        examples: examples in order; ``idx`` of each feature is its position here.
        label_list: label strings in id order.
        max_seq_length: length of every id list (at least 3 for pairs, 2 for single texts).
        tokenizer: a :class:`~model_compress.data.tokenization.FullTokenizer` (or any object with
            ``vocab``, ``tokenize`` and ``convert_tokens_to_ids``).
        domain_list: domain names in id order; when given, every example must have a known domain.

    Raises:
        ValueError: a label or domain is not in its list, or ``max_seq_length`` is too small.
    """
    label_map = {label: i for i, label in enumerate(label_list)}
    domain_map = None if domain_list is None else {d: i for i, d in enumerate(domain_list)}
    cls_id, sep_id, pad_id, pair_seps = _special_ids(tokenizer)
    encode = _encoder(tokenizer)
    if max_seq_length < 2:
        raise ValueError(f"max_seq_length must be at least 2, got {max_seq_length}")
    zeros = [0] * max_seq_length
    ones = [1] * max_seq_length
    pads = [pad_id] * max_seq_length
    middle = [sep_id] * pair_seps
    features = []
    for idx, ex in enumerate(examples):
        ids_a = encode(ex.text_a)
        if ex.text_b:
            if max_seq_length < 2 + pair_seps:
                raise ValueError(f"max_seq_length {max_seq_length} is too small for sentence pairs")
            ids_b = encode(ex.text_b)
            truncate_pair(ids_a, ids_b, max_seq_length - 2 - pair_seps)
            input_ids = [cls_id, *ids_a, *middle, *ids_b, sep_id]
            len_a = len(ids_a) + 2
            segment_ids = zeros[:len_a] + ones[: len(input_ids) - len_a]
        else:
            del ids_a[max_seq_length - 2:]
            input_ids = [cls_id, *ids_a, sep_id]
            segment_ids = zeros[: len(input_ids)]
        n = len(input_ids)
        pad = zeros[: max_seq_length - n]
        input_mask = ones[:n] + pad
        input_ids += pads[: max_seq_length - n]
        segment_ids += pad

        if ex.label is None:
            label_id = UNLABELED
        else:
            try:
                label_id = label_map[ex.label]
            except KeyError:
                raise ValueError(
                    f"example {ex.guid}: label {ex.label!r} is not in {list(label_list)}"
                ) from None
        domain_id = None
        if domain_map is not None:
            try:
                domain_id = domain_map[ex.domain]
            except KeyError:
                raise ValueError(
                    f"example {ex.guid}: domain {ex.domain!r} is not in {list(domain_list)}"
                ) from None
        weight = 1.0 if ex.weight is None else float(ex.weight)
        features.append(InputFeatures(input_ids, input_mask, segment_ids, label_id, domain_id, idx, weight))
    return features


def feature_names(with_domain: bool = False, with_weights: bool = False) -> list[str]:
    """Names of the features a split carries, in the order used everywhere."""
    names = ["input_ids", "input_mask", "segment_ids", "label_ids"]
    if with_domain:
        names.append("domain")
    names.append("idxs")
    if with_weights:
        names.append("weights")
    return names


def features_to_arrays(
    features: Sequence[InputFeatures], names: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """Stack features into numpy arrays: ``[N, seq_len]`` int32 for the sequence features, ``[N]`` for
    ``label_ids domain idxs`` (int32) and ``weights`` (float32).

    ``names`` defaults to every feature the list carries (``domain`` only when domain ids are set).
    """
    if names is None:
        with_domain = bool(features) and features[0].domain_id is not None
        names = feature_names(with_domain=with_domain, with_weights=True)
    columns = {
        "input_ids": lambda f: f.input_ids,
        "input_mask": lambda f: f.input_mask,
        "segment_ids": lambda f: f.segment_ids,
        "label_ids": lambda f: f.label_id,
        "domain": lambda f: f.domain_id,
        "idxs": lambda f: f.idx,
        "weights": lambda f: f.weight,
    }
    out = {}
    for name in names:
        if name not in columns:
            raise ValueError(f"unknown feature {name!r}; known: {list(columns)}")
        values = [columns[name](f) for f in features]
        if name == "domain" and any(v is None for v in values):
            raise ValueError("feature 'domain' requested but some features have no domain id")
        array = np.asarray(values, dtype=FEATURE_DTYPES[name])
        if name in SEQUENCE_FEATURES and not features:
            array = array.reshape(0, 0)
        out[name] = array
    return out
