"""In-graph side of cross-vocabulary distillation: student batches -> teacher ids, teacher states -> student
positions (the numpy twin of the position arithmetic is ``data.vocab_map.VocabMap``)."""

from __future__ import annotations

import oneflow as flow
from oneflow import nn

from model_compress.data.vocab_map import VocabMap


class TeacherInputMap(nn.Module):
    """Translates a student batch for the teacher (``to_teacher``) and realigns the teacher's per-token
    outputs with the student's positions (``to_student``); see ``data.vocab_map``."""

    def __init__(self, vocab_map: VocabMap) -> None:
        super().__init__()
        self.extra = int(vocab_map.extra_separator)
        self.teacher_pad = int(vocab_map.teacher_pad)
        self.register_buffer("table", flow.tensor(vocab_map.table, dtype=flow.int64), persistent=False)

    def _split(self, input_mask, segment_ids):
        """[B, 1] int64: the closing separator of segment a for pairs, the padded length otherwise."""
        real = (input_mask > 0).to(flow.int64)
        second = (segment_ids > 0).to(flow.int64) * real
        end_a = ((1 - second) * real).sum(dim=1, keepdim=True) - 1
        length = end_a * 0 + input_mask.shape[1]
        if not self.extra:
            return length
        return flow.where(second.sum(dim=1, keepdim=True) > 0, end_a, length)

    def to_teacher(self, input_ids, input_mask, segment_ids):
        """(teacher ids, teacher mask, zero segment ids, [B, L] teacher index of every student position)."""
        ids = input_ids.to(flow.int64)
        mask = input_mask.to(flow.int64)
        if self.extra:
            ids = flow.cat([ids, ids[:, :1] * 0], dim=1)  # (arithmetic, not zeros_like: no graph warning)
            mask = flow.cat([mask, mask[:, :1] * 0], dim=1)
        split = self._split(input_mask, segment_ids)
        p = flow.cumsum(ids * 0 + 1, dim=1) - 1  # [B, T] positions, on the batch's placement
        src = flow.where(p <= split, p, p - self.extra)
        table = self.table.to_global(placement=ids.placement, sbp=flow.sbp.broadcast) if ids.is_global \
            else self.table.to(ids.device)
        t_mask = flow.gather(mask, 1, src)
        t_ids = flow.gather(table, 0, flow.gather(ids, 1, src).flatten()).reshape(src.shape)
        t_ids = t_ids * t_mask + self.teacher_pad * (1 - t_mask)
        q = p[:, : input_ids.shape[1]]
        dst = flow.where(q <= split, q, q + self.extra)
        return t_ids.to(input_ids.dtype), t_mask.to(input_mask.dtype), (t_ids * 0).to(segment_ids.dtype), dst

    def to_student(self, states, dst, dims=(1,)):
        """``states`` with the teacher positions on ``dims`` gathered at the student's (``dst`` [B, L])."""
        if not self.extra:
            return states
        for dim in dims:
            shape = [dst.shape[0]] + [1] * (states.dim() - 1)
            shape[dim] = dst.shape[1]
            index = dst.reshape(shape).expand(*[s if i != dim else dst.shape[1]
                                                for i, s in enumerate(states.shape)])
            states = flow.gather(states, dim, index)
        return states
