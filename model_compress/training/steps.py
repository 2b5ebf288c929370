"""Step-counted training that resumes: no epochs and no evaluation, a fixed number of steps over an endless
batch stream, the loss logged every few steps and a step snapshot (``model_<step>``) written every few more.

The learning-rate schedule and the snapshots come from ``training.resume``; a run stopped at any step
continues from its newest snapshot with the same curve.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator

import numpy as np
import oneflow as flow
from oneflow import nn
from tqdm import tqdm

from model_compress.training import distributed, graph
from model_compress.training.nonfinite import LossCheck
from model_compress.training.resume import lr_at, resumed_optimization


@dataclasses.dataclass(frozen=True)
class StepConfig:
    """The step run: total steps, optimisation, logging/snapshot cadence and device."""

    max_steps: int  # the run's total, counted from step 0 whatever step it resumes at
    learning_rate: float
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    warmup_steps: int = 0  # linear warm-up, then linear decay to 0 at max_steps
    logging_steps: int = 100
    save_steps: int = 100
    device: str = "cpu"
    eager: bool = False
    use_amp: bool = False  # CUDA + nn.Graph only
    sequences_per_step: int = 1  # the global batch size, for the sequences/s figure
    micro_batches: int = 1  # each batch split into equal micro-batches, gradients averaged (TrainGraph)
    desc: str = "train"


@dataclasses.dataclass
class StepResult:
    step: int
    snapshot: str | None
    losses: list  # [(step, loss)] at the logged steps
    seconds: float


def resumed_step_optimization(
    module: nn.Module, config: StepConfig, start_step: int
) -> tuple[flow.optim.Optimizer, object]:
    """AdamW and the warm-up/decay schedule of ``config`` continuing from ``start_step``."""
    fused = config.device.startswith("cuda") and not config.eager  # the fused kernel is CUDA-only
    return resumed_optimization(module, config.learning_rate, config.weight_decay, config.max_grad_norm,
                                config.max_steps, start_step, config.warmup_steps, fused=fused)


def amp_active(config: StepConfig) -> bool:
    """Mixed precision applies on CUDA in graph mode only."""
    return graph.amp_active(config.use_amp, config.device, config.eager)


def build_step(objective: nn.Module, config: StepConfig, start_step: int) -> Callable:
    """One training step of ``objective`` (graph or eager, mixed precision if asked) resumed at ``start_step``."""
    optimizer, scheduler = resumed_step_optimization(objective, config, start_step)
    return graph.make_train_step(objective, optimizer, scheduler, eager=config.eager, amp=amp_active(config),
                                 micro_batches=config.micro_batches)


def run_steps(
    step_fn: Callable,
    input_names: list[str],
    batches: Iterator[dict[str, np.ndarray]],
    start_step: int,
    save: Callable[[int, float | None], str],
    config: StepConfig,
) -> StepResult:
    """Steps ``start_step + 1 .. config.max_steps``: loss every ``logging_steps`` (and at the end), ``save(step,
    last logged loss)`` every ``save_steps`` (and at the end); raises ``NonFiniteLoss`` on a NaN/inf loss."""
    is_main = distributed.rank() == 0
    result = StepResult(start_step, None, [], 0.0)
    bar = tqdm(total=config.max_steps, initial=start_step, desc=config.desc, unit="step", disable=not is_main)
    start, window_start, window_steps = time.perf_counter(), time.perf_counter(), 0
    step, loss_value = start_step, None
    losses = LossCheck(lambda: result.snapshot)
    try:
        while step < config.max_steps:
            batch = next(batches)
            outputs = step_fn(*[distributed.shard_batch_tensor(flow.tensor(batch[name])) for name in input_names])
            step += 1
            window_steps += 1
            bar.update(1)
            losses.push(step, outputs[0])  # checks the step before: this one runs meanwhile
            logged = step % config.logging_steps == 0 or step == config.max_steps
            saved = step % config.save_steps == 0 or step == config.max_steps
            if logged or saved:
                losses.flush()  # this step's loss: logged, and finite before a snapshot is written
            if logged:
                loss_value = losses.value
                result.losses.append((step, loss_value))
                rate = window_steps * config.sequences_per_step / max(time.perf_counter() - window_start, 1e-9)
                lr = lr_at(step, config.learning_rate, config.max_steps, config.warmup_steps)
                bar.set_postfix(loss=f"{loss_value:.4f}")
                if is_main:
                    tqdm.write(f"step {step}: loss {loss_value:.5f}, lr {lr:.3e}, {rate:.1f} sequences/s")
                window_start, window_steps = time.perf_counter(), 0
            if saved:
                result.snapshot = save(step, loss_value)
    finally:
        bar.close()
    result.step = step
    result.seconds = time.perf_counter() - start
    return result
