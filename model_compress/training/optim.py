"""AdamW with BERT's decay exclusions, gradient clipping, and linear warm-up then linear decay."""

from __future__ import annotations

import oneflow as flow
from oneflow import nn

NO_DECAY_MARKERS = ("bias", "LayerNorm.weight", "LayerNorm.bias", "layer_norm")
WORD_EMBEDDINGS = "word_embeddings.weight"


def freeze_word_embeddings(module: nn.Module) -> int:
    """Stop training every word-embedding matrix in `module`; returns how many parameters were frozen.

    On CPU the dense gradient and AdamW update of the 30522-row matrix are a large share of a step of a
    small BERT, while a small fine-tuning set touches only a few thousand of its rows.
    """
    frozen = 0
    for name, param in module.named_parameters():
        if name.endswith(WORD_EMBEDDINGS) and param.requires_grad:
            param.requires_grad_(False)
            frozen += param.numel()
    return frozen


def parameter_groups(
    module: nn.Module, weight_decay: float, clip_grad_norm: float | None = 1.0
) -> list[dict]:
    """Trainable parameters split into decayed and not decayed (biases and LayerNorm), with clipping."""
    decay, no_decay = [], []
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if any(m in name for m in NO_DECAY_MARKERS) else decay).append(param)
    groups = []
    for params, wd in ((decay, weight_decay), (no_decay, 0.0)):
        if not params:
            continue
        group = {"params": params, "weight_decay": wd}
        if clip_grad_norm:
            group["clip_grad_max_norm"] = float(clip_grad_norm)
            group["clip_grad_norm_type"] = 2.0
        groups.append(group)
    return groups


def build_optimizer(
    module: nn.Module,
    learning_rate: float,
    weight_decay: float = 0.01,
    clip_grad_norm: float | None = 1.0,
    fused: bool = False,
) -> flow.optim.Optimizer:
    """AdamW over `module`'s trainable parameters (eps 1e-6 as in BERT); `fused` for CUDA runs."""
    groups = parameter_groups(module, weight_decay, clip_grad_norm)
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return flow.optim.AdamW(groups, lr=learning_rate, eps=1e-6, fused=fused)


def build_scheduler(
    optimizer: flow.optim.Optimizer, total_steps: int, warmup_proportion: float = 0.1
) -> flow.optim.lr_scheduler.LRScheduler:
    """Linear warm-up from 0 over `warmup_proportion` of the steps, then linear decay to 0."""
    total_steps = max(1, int(total_steps))
    warmup = int(round(total_steps * warmup_proportion))
    decay = flow.optim.lr_scheduler.PolynomialLR(
        optimizer, decay_batch=max(1, total_steps - warmup), end_learning_rate=0.0, power=1.0
    )
    if warmup <= 0:
        return decay
    return flow.optim.lr_scheduler.WarmupLR(
        decay, warmup_factor=0.0, warmup_iters=warmup, warmup_method="linear", warmup_prefix=True
    )
