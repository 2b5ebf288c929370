"""One nn.Graph wrapper for training and one for evaluation, shared by every job.

An *objective* is an nn.Module whose forward takes the batch tensors (in the order of its
`input_names`) and returns a tuple whose first element is the scalar loss; the rest (logits, ...)
are passed through. The same objective runs eagerly when `--eager` is asked for, for debugging.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import oneflow as flow
from oneflow import nn


class TrainGraph(nn.Graph):
    """Forward, backward and the optimizer/scheduler step compiled into one static graph.

    `amp` turns on OneFlow's automatic mixed precision with a dynamic loss scale (CUDA only).
    """

    def __init__(self, objective: nn.Module, optimizer, scheduler=None, amp: bool = False) -> None:
        super().__init__()
        self.objective = objective
        if scheduler is not None:
            self.add_optimizer(optimizer, lr_sch=scheduler)
        else:
            self.add_optimizer(optimizer)
        if amp:
            self.config.enable_amp(True)
            self.set_grad_scaler(flow.amp.GradScaler(init_scale=2**15, growth_factor=2.0, backoff_factor=0.5,
                                                     growth_interval=1000))

    def build(self, *inputs):
        outputs = self.objective(*inputs)
        outputs[0].backward()
        return outputs


class EvalGraph(nn.Graph):
    """Inference of any callable module (no gradients, dropout off)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def build(self, *inputs):
        return self.module(*inputs)


class EagerTrainStep:
    """The eager twin of TrainGraph: same objective, optimizer and schedule, step by step."""

    def __init__(self, objective: nn.Module, optimizer, scheduler=None) -> None:
        self.objective = objective
        self.optimizer = optimizer
        self.scheduler = scheduler

    def __call__(self, *inputs):
        outputs = self.objective(*inputs)
        outputs[0].backward()
        self._clip()
        self.optimizer.step()
        self.optimizer.zero_grad()
        if self.scheduler is not None:
            self.scheduler.step()
        return outputs

    def _clip(self) -> None:
        for group in self.optimizer.param_groups:
            max_norm = group.get("clip_grad_max_norm") if hasattr(group, "get") else None
            if max_norm:
                flow.nn.utils.clip_grad_norm_(group["params"], max_norm, group["clip_grad_norm_type"])


def make_train_step(
    objective: nn.Module, optimizer, scheduler=None, eager: bool = False, amp: bool = False
) -> Callable[..., Sequence[flow.Tensor]]:
    """A callable running one training step: a compiled TrainGraph (mixed precision if `amp`), or its
    eager twin (always float32)."""
    objective.train()
    if eager:
        return EagerTrainStep(objective, optimizer, scheduler)
    return TrainGraph(objective, optimizer, scheduler, amp=amp)


def make_eval_step(module: nn.Module, eager: bool = False) -> Callable[..., Sequence[flow.Tensor]]:
    """A callable running inference with `module` in eval mode."""
    module.eval()
    if eager:
        def run(*inputs):
            with flow.no_grad():
                return module(*inputs)
        return run
    return EvalGraph(module)


def graph_free_copy(model: nn.Module) -> nn.Module:
    """A fresh module with `model`'s weights, for a second TrainGraph.

    OneFlow 0.9 cannot compile a module that already took part in one TrainGraph into another
    (`Check failed: input_tensor->is_eager()`); a job training the same model in two stages continues
    from this copy. `model` must be constructible from its `config`.
    """
    from model_compress.modeling.checkpoint import load_state_into, module_state_numpy

    copy = type(model)(model.config)
    load_state_into(copy, module_state_numpy(model), verbose=False)
    return copy
