"""A model's vocabulary file: its tokens and ids, and the special tokens it frames sentences with (BERT's
``[CLS] [SEP] [PAD] [UNK]`` or MPNet's ``<s> </s> <pad>``)."""

from __future__ import annotations

import dataclasses
import json
import os

UNK_TOKEN = "[UNK]"
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
PAD_TOKEN = "[PAD]"
SPECIAL_TOKENS_MAP = "special_tokens_map.json"  # Hugging Face's file beside vocab.txt
TOKENIZER_JSON = "tokenizer.json"


@dataclasses.dataclass(frozen=True)
class SpecialTokens:
    """The special tokens of a vocabulary and how a sentence pair is framed.

    BERT: ``[CLS] a [SEP] b [SEP]``; MPNet / RoBERTa: ``<s> a </s></s> b </s>`` (``pair_separators`` 2).
    ``mask`` is optional (fine-tuning never uses it).
    """

    cls: str = CLS_TOKEN
    sep: str = SEP_TOKEN
    pad: str = PAD_TOKEN
    unk: str = UNK_TOKEN
    mask: str = "[MASK]"
    pair_separators: int = 1

    def required(self) -> tuple[str, ...]:
        return self.cls, self.sep, self.pad, self.unk


BERT_SPECIAL_TOKENS = SpecialTokens()


def _token_text(value: object) -> str | None:
    """A token of special_tokens_map.json: a string or ``{"content": ...}``."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _pair_separators_from(tokenizer_json: str, sep: str) -> int:
    """2 for a RoBERTa-style post-processor (MPNet's), 1 for BERT's; without that file (or a post-processor
    it names), by the separator's form."""
    try:
        with open(tokenizer_json, encoding="utf-8") as f:
            kind = (json.load(f).get("post_processor") or {}).get("type")
    except (OSError, ValueError, AttributeError):
        kind = None
    if kind == "RobertaProcessing":
        return 2
    if kind == "BertProcessing":
        return 1
    return 2 if sep == "</s>" else 1


def special_tokens_for(vocab: dict[str, int], vocab_file: str | os.PathLike) -> SpecialTokens:
    """The special tokens a model's vocabulary uses.

    ``special_tokens_map.json`` beside ``vocab.txt`` decides when present (a Hugging Face tokenizer
    folder); otherwise the vocabulary itself: ``<s>``/``</s>`` mark the MPNet / RoBERTa convention (``<s>
    </s> <pad> <mask>``, unknown words as ``[UNK]`` when the vocab has it, as all-mpnet-base-v2's tokenizer
    does, else ``<unk>``), anything else is BERT's. The pair framing comes from ``tokenizer.json``'s
    post-processor when there is one.
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(vocab_file)))
    if "<s>" in vocab and "</s>" in vocab:
        found = SpecialTokens("<s>", "</s>", "<pad>", UNK_TOKEN if UNK_TOKEN in vocab else "<unk>", "<mask>", 2)
    else:
        found = BERT_SPECIAL_TOKENS
    mapped = os.path.join(folder, SPECIAL_TOKENS_MAP)
    if os.path.isfile(mapped):
        try:
            with open(mapped, encoding="utf-8") as f:
                raw = json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{mapped}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{mapped}: not a JSON object")
        tokens = {role: _token_text(raw.get(f"{role}_token")) or getattr(found, role)
                  for role in ("cls", "sep", "pad", "unk", "mask")}
        found = SpecialTokens(**tokens, pair_separators=found.pair_separators)
    pairs = _pair_separators_from(os.path.join(folder, TOKENIZER_JSON), found.sep)
    return dataclasses.replace(found, pair_separators=pairs)


def load_vocab(vocab_file: str | os.PathLike) -> dict[str, int]:
    """Read a BERT vocabulary (one token per line, id = line number).

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty or not valid UTF-8.
    """
    path = os.fspath(vocab_file)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocab file not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as exc:
        raise ValueError(f"vocab file {path} is not valid UTF-8: {exc}") from None
    # Only trailing blank lines are dropped: a blank line inside the file still takes an id.
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ValueError(f"vocab file is empty: {path}")
    vocab: dict[str, int] = {}
    for index, line in enumerate(lines):
        vocab[line.strip()] = index
    return vocab
