"""A student's token ids translated into a teacher's: distilling across vocabularies of the same word pieces.

MiniLM (BERT's vocab) and MPNet split text into the same word pieces with other ids and other special
tokens. The task data is tokenized once, with the student's vocabulary; the teacher reads
``table[student_id]`` (pieces matched by string, special tokens by role). A pair is framed
``[CLS] a [SEP] b [SEP]`` by BERT and ``<s> a </s></s> b </s>`` by MPNet: the teacher's sequence then
gets one more separator after segment a, and the teacher states of that position are dropped again so
intermediate targets keep the student's positions (see ``teacher_positions``).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from model_compress.data.vocab import SpecialTokens, load_vocab, special_tokens_for

ROLES = ("cls", "sep", "pad", "unk", "mask")


class VocabMapError(ValueError):
    """A student token has no equivalent in the teacher's vocabulary."""


@dataclasses.dataclass(frozen=True)
class VocabMap:
    """``table[student id] -> teacher id``; ``extra_separator`` when the teacher frames a pair with one
    more separator than the student; ``teacher_sep`` is that separator's id."""

    table: np.ndarray
    teacher_sep: int
    teacher_pad: int
    extra_separator: int

    @property
    def fingerprint(self) -> str:
        """Identifies the mapping (teacher caches are keyed by it)."""
        digest = hashlib.sha256(self.table.astype(np.int64).tobytes())
        digest.update(f"{self.teacher_sep},{self.teacher_pad},{self.extra_separator}".encode())
        return digest.hexdigest()[:16]

    def teacher_positions(self, input_mask: np.ndarray, segment_ids: np.ndarray) -> np.ndarray:
        """[B, L + extra] student position each teacher position reads (host version of the graph's map)."""
        batch, length = input_mask.shape
        split = first_segment_end(input_mask, segment_ids, self.extra_separator)
        p = np.arange(length + self.extra_separator)[None, :]
        return np.where(p <= split[:, None], p, p - self.extra_separator).astype(np.int64)

    def teacher_inputs(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
        """(teacher ids, teacher mask) for a batch of student ids (numpy; the graph does the same)."""
        ids = np.concatenate([input_ids, np.zeros_like(input_ids[:, :1])], axis=1)
        mask = np.concatenate([input_mask, np.zeros_like(input_mask[:, :1])], axis=1)
        src = self.teacher_positions(input_mask, segment_ids)
        t_ids = self.table[np.take_along_axis(ids, src, 1)]
        t_mask = np.take_along_axis(mask, src, 1)
        return np.where(t_mask > 0, t_ids, self.teacher_pad), t_mask


def first_segment_end(input_mask: np.ndarray, segment_ids: np.ndarray, extra: int) -> np.ndarray:
    """Per row, the position of segment a's closing separator for pairs; the padded length for single
    sentences (no separator inserted)."""
    length = input_mask.shape[1]
    real = input_mask > 0
    is_pair = ((segment_ids > 0) & real).any(axis=1)
    end_a = ((segment_ids == 0) & real).sum(axis=1) - 1
    return np.where(is_pair & (extra > 0), end_a, length)


def build_vocab_map(student_vocab: dict[str, int], student_special: SpecialTokens,
                    teacher_vocab: dict[str, int], teacher_special: SpecialTokens) -> VocabMap:
    """The id map by token string, special tokens by role; VocabMapError names the first token the teacher
    lacks (a student missing [MASK] is fine: fine-tuning never uses it)."""
    by_role = {getattr(student_special, r): getattr(teacher_special, r) for r in ROLES}
    table = np.full(max(student_vocab.values()) + 1, -1, dtype=np.int64)
    missing = []
    for token, sid in student_vocab.items():
        target = by_role.get(token, token)
        tid = teacher_vocab.get(target)
        if tid is None:
            missing.append((sid, token))
        else:
            table[sid] = tid
    if missing:
        sid, token = min(missing)
        raise VocabMapError(f"the student's token {token!r} (id {sid}) has no equivalent in the teacher's "
                            f"vocabulary ({len(missing)} tokens unmapped): the vocabularies cannot be mapped")
    extra = teacher_special.pair_separators - student_special.pair_separators
    if extra not in (0, 1):
        raise VocabMapError(f"the teacher frames a pair with {teacher_special.pair_separators} separators, the "
                            f"student with {student_special.pair_separators}: only one extra separator is aligned")
    return VocabMap(table, teacher_vocab[teacher_special.sep], teacher_vocab[teacher_special.pad], extra)


def vocab_map_between(student_vocab_file: str, teacher_vocab_file: str) -> VocabMap | None:
    """None when both files hold the same vocabulary and framing (no mapping needed), else the map."""
    s_vocab, t_vocab = load_vocab(student_vocab_file), load_vocab(teacher_vocab_file)
    s_special = special_tokens_for(s_vocab, student_vocab_file)
    t_special = special_tokens_for(t_vocab, teacher_vocab_file)
    if s_vocab == t_vocab and s_special == t_special:
        return None
    return build_vocab_map(s_vocab, s_special, t_vocab, t_special)
