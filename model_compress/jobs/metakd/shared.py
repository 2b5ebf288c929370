"""Flags shared by the Meta-KD entries (the shared run pieces live in ``jobs/pipelines/metakd.py``)."""

from __future__ import annotations

from model_compress.distill.intermediate import ATTENTION_KINDS


def add_attention_flag(group) -> None:
    """`--attention_loss`: what stage 1's attention loss (and so the teacher dump) compares."""
    group.add_argument("--attention_loss", choices=ATTENTION_KINDS, default="probs",
                       help="probs: attention probabilities (the OneFlow original and EasyNLP); "
                            "scores: raw masked pre-softmax scores (TinyBERT)")
