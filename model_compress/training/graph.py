"""One nn.Graph wrapper for training and one for evaluation, shared by every job.

Length buckets give batches of a few shapes; nn.Graph is static, so ``GraphPerShape`` compiles one
graph per input shape on first use. They share the module's parameters, and training graphs also the
optimizer's state (Adam moments, the step counter that drives the learning-rate schedule and bias
correction, a loss scale): see ``share_optimizer_state``.

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
    `micro_batches` > 1 splits each batch into that many equal micro-batches run one after another with
    their gradients averaged before the one optimizer step (OneFlow's gradient accumulation): the same
    update for a loss that is a mean over rows, at a fraction of the activation memory (a CPU graph
    keeps a buffer for every intermediate tensor, see docs/runtime.md). The loss then comes back with
    one value per micro-batch; the other outputs are the micro-batches' outputs concatenated in order.
    """

    def __init__(self, objective: nn.Module, optimizer, scheduler=None, amp: bool = False,
                 micro_batches: int = 1) -> None:
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
        if micro_batches > 1:
            self.config.set_gradient_accumulation_steps(micro_batches)

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


def optimizer_state(graph: nn.Graph) -> dict[str, flow.Tensor]:
    """The state a compiled graph holds besides its modules' parameters: optimizer moments, the train
    step counter, the loss scale (OneFlow calls them additional variables)."""
    return {name: value for name, value in graph.state_dict().items() if name not in graph._blocks}


def share_optimizer_state(source: nn.Graph, target: nn.Graph) -> None:
    """Make the not yet compiled ``target`` run on ``source``'s optimizer state tensors (not copies).

    OneFlow 0.9 has no graph sharing API; a graph compiled after ``load_state_dict`` of additional
    variables registers the given tensors as its variables (a local tensor is wrapped into a global one
    without a copy), so both graphs then read and update the same memory, in the order they run.
    """
    if not source.is_compiled:
        raise ValueError("the source graph must be compiled before its state can be shared")
    if target.is_compiled:
        raise ValueError("the target graph is already compiled: its state can no longer be shared")
    target.load_state_dict(optimizer_state(source), strict=False)


class GraphPerShape:
    """One graph per distinct shape of the inputs, built by ``make_graph`` and compiled on first use.

    All graphs share the module parameters (they wrap the same modules); with ``share_state`` a new
    graph also runs on the first graph's optimizer state, so stepping graphs of different shapes in any
    order is one optimisation. Inputs of one shape only give exactly one graph (no buckets).
    """

    def __init__(self, make_graph: Callable[[], nn.Graph], share_state: bool, module: nn.Module | None = None) -> None:
        self.make_graph = make_graph
        self.share_state = share_state
        self.module = module  # the trained module, whose parameters' traced grads are cleared per new graph
        self.graphs: dict[tuple, nn.Graph] = {}

    def __call__(self, *inputs):
        key = tuple(tuple(t.shape) for t in inputs)
        graph = self.graphs.get(key)
        if graph is None:
            graph = self.make_graph()
            if self.share_state and self.graphs:
                share_optimizer_state(next(iter(self.graphs.values())), graph)
                # tracing a train graph leaves lazy tensors in the parameters' .grad; the next trace
                # would add to them and fail (`Check failed: input_tensor->is_eager()`)
                for param in self.module.parameters() if self.module is not None else ():
                    param.grad = None
            self.graphs[key] = graph
        return graph(*inputs)


class EagerTrainStep:
    """The eager twin of TrainGraph: same objective, optimizer and schedule (and micro-batches), step by
    step; the loss comes back as the mean over micro-batches."""

    def __init__(self, objective: nn.Module, optimizer, scheduler=None, micro_batches: int = 1) -> None:
        self.objective = objective
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.micro_batches = micro_batches

    def __call__(self, *inputs):
        if self.micro_batches == 1:
            outputs = self.objective(*inputs)
            outputs[0].backward()
        else:
            outputs = self._accumulate(inputs)
        self._clip()
        self.optimizer.step()
        self.optimizer.zero_grad()
        if self.scheduler is not None:
            self.scheduler.step()
        return outputs

    def _accumulate(self, inputs):
        parts = [self.objective(*micro) for micro in zip(*(t.chunk(self.micro_batches, dim=0) for t in inputs))]
        for part in parts:
            (part[0] / self.micro_batches).backward()
        loss = flow.stack([part[0].detach() for part in parts]).mean()
        rest = [flow.cat([part[i] for part in parts], dim=0) for i in range(1, len(parts[0]))]
        return (loss, *rest)

    def _clip(self) -> None:
        for group in self.optimizer.param_groups:  # OneFlow's ParamGroup has `in` and `[]`, no `get`
            max_norm = group["clip_grad_max_norm"] if "clip_grad_max_norm" in group else None
            if max_norm:
                flow.nn.utils.clip_grad_norm_(group.parameters, max_norm, group["clip_grad_norm_type"])


def amp_active(use_amp: bool, device: str, eager: bool) -> bool:
    """Whether mixed precision applies: asked for, on CUDA, in graph mode."""
    return use_amp and device != "cpu" and not eager


def make_train_step(
    objective: nn.Module, optimizer, scheduler=None, eager: bool = False, amp: bool = False, per_shape: bool = False,
    micro_batches: int = 1,
) -> Callable[..., Sequence[flow.Tensor]]:
    """A callable running one training step: a compiled TrainGraph (mixed precision if `amp`; with
    `per_shape` one per input shape, sharing the optimizer state), or its eager twin (always float32);
    each batch split into `micro_batches` (see TrainGraph)."""
    if micro_batches < 1:
        raise ValueError(f"micro_batches must be at least 1, got {micro_batches}")
    objective.train()
    if eager:
        return EagerTrainStep(objective, optimizer, scheduler, micro_batches)
    if per_shape:
        return GraphPerShape(lambda: TrainGraph(objective, optimizer, scheduler, amp, micro_batches), True, objective)
    return TrainGraph(objective, optimizer, scheduler, amp=amp, micro_batches=micro_batches)


def make_eval_step(
    module: nn.Module, eager: bool = False, per_shape: bool = False
) -> Callable[..., Sequence[flow.Tensor]]:
    """A callable running inference with `module` in eval mode (an EvalGraph; with `per_shape` one per
    input shape)."""
    module.eval()
    if eager:
        def run(*inputs):
            with flow.no_grad():
                return module(*inputs)
        return run
    if per_shape:
        return GraphPerShape(lambda: EvalGraph(module), False)
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
