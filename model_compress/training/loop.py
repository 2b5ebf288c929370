"""The training loop every job shares: steps, periodic evaluation, best-dev snapshot, progress bar.

Read top to bottom: build the step (nn.Graph by default), run epochs over the batch source, evaluate
every `eval_every_step_num` steps and at each epoch end, and keep only the best snapshot so far.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from typing import Protocol

import oneflow as flow
from oneflow import nn
from tqdm import tqdm

from model_compress.modeling.checkpoint.atomic import clean_leftovers, finish_retirement, plan_retirement
from model_compress.training import distributed
from model_compress.training.graph import amp_active, make_train_step
from model_compress.training.nonfinite import LossCheck
from model_compress.training.optim import build_optimizer, build_scheduler, freeze_word_embeddings


class BatchSource(Protocol):
    """Batches of one epoch per `iter()`, as dicts of feature name -> tensor (OFRecordLoader's shape)."""

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self) -> Iterator[dict[str, flow.Tensor]]: ...


@dataclasses.dataclass
class LoopConfig:
    num_epochs: float = 3.0
    learning_rate: float = 2e-5
    weight_decay: float = 0.01
    warmup_proportion: float = 0.1
    clip_grad_norm: float = 1.0
    eval_every_step_num: int = 0  # 0: only at epoch ends
    metric: str = "accuracy"
    eager: bool = False
    device: str = "cpu"
    output_dir: str = "output"
    max_steps: int = 0  # 0: num_epochs decides
    show_progress: bool = True
    freeze_word_embeddings: bool = False
    use_amp: bool = False  # mixed precision: CUDA + nn.Graph only
    micro_batches: int = 1  # each batch split into equal micro-batches, gradients averaged (TrainGraph)


@dataclasses.dataclass
class LoopResult:
    best_score: float
    best_step: int
    best_snapshot: str | None
    history: list  # [(step, metrics dict)]
    train_seconds: float
    steps: int
    final_loss: float

    def best_metrics(self) -> dict:
        """The metrics of the evaluation that chose the best snapshot."""
        return next(metrics for step, metrics in self.history if step == self.best_step)


def check_micro_batches(rows: int, micro_batches: int) -> None:
    """Refuse a batch that does not split into equal micro-batches (before a graph is compiled for it)."""
    if rows % micro_batches:
        raise ValueError(f"a training batch of {rows} rows does not split into {micro_batches} equal "
                         "micro-batches: choose a batch size divisible by the gradient accumulation steps")


def _batches(source: BatchSource, total_steps: int) -> Iterator[tuple[int, dict]]:
    """(epoch, batch) pairs until `total_steps` batches were produced."""
    produced, epoch = 0, 0
    while produced < total_steps:
        source.set_epoch(epoch)
        for batch in source:
            yield epoch, batch
            produced += 1
            if produced >= total_steps:
                return
        epoch += 1


def train(
    objective: nn.Module,
    train_source: BatchSource,
    evaluate: Callable[[], dict] | None,
    save_snapshot: Callable[[str, dict], None] | None,
    snapshot_name: Callable[[dict], str],
    config: LoopConfig,
) -> LoopResult:
    """Train `objective` (forward returns (loss, ...)) and keep the best-scoring snapshot.

    `evaluate()` returns a metrics dict holding `config.metric`; `save_snapshot(path, metrics)` writes
    a snapshot; `snapshot_name(metrics)` names it (the seeds' `snapshot_best...` conventions).
    """
    names = list(objective.input_names)
    steps_per_epoch = len(train_source)
    if steps_per_epoch <= 0:
        raise ValueError("the training set yields no batch: check --train_example_num and the batch size")
    total_steps = config.max_steps or max(1, int(round(config.num_epochs * steps_per_epoch)))
    if config.freeze_word_embeddings:
        freeze_word_embeddings(objective)
    optimizer = build_optimizer(
        objective, config.learning_rate, config.weight_decay, config.clip_grad_norm,
        fused=config.device.startswith("cuda") and not config.eager,  # the fused kernel is CUDA-only
    )
    scheduler = build_scheduler(optimizer, total_steps, config.warmup_proportion)
    step_fn = make_train_step(objective, optimizer, scheduler, eager=config.eager, per_shape=True,
                              amp=amp_active(config.use_amp, config.device, config.eager),
                              micro_batches=config.micro_batches)

    best = LoopResult(float("-inf"), -1, None, [], 0.0, 0, float("nan"))
    is_main = distributed.rank() == 0
    if is_main and save_snapshot is not None:
        clean_leftovers(config.output_dir)  # what a killed run left there (see plan_retirement)

    losses = LossCheck(lambda: best.best_snapshot)

    def run_eval(step: int) -> None:
        if evaluate is None or (best.history and best.history[-1][0] == step):
            return
        losses.flush()  # the queued step finishes (not timed as evaluation) and was finite
        objective.eval()
        metrics = evaluate()
        objective.train()
        best.history.append((step, metrics))
        score = metrics[config.metric]
        if score > best.best_score:
            best.best_score, best.best_step = score, step
            if save_snapshot is not None:
                # every rank takes part (global tensors are gathered), rank 0 writes
                path = os.path.join(config.output_dir, snapshot_name(metrics))
                stale = best.best_snapshot
                # planned before the save: a kill between the save and the retirement is finished by
                # the next writer in this folder, so two bests never stay side by side
                plan = plan_retirement(stale, path) if is_main and stale and stale != path else None
                try:
                    save_snapshot(path, {**metrics, "step": step})
                except BaseException:
                    if plan:
                        os.unlink(plan)  # nothing new was installed: the old best stays
                    raise
                if plan:
                    finish_retirement(plan)  # renamed aside first: never visible half-deleted
                best.best_snapshot = path
                distributed.barrier()
        if is_main:
            shown = ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))
            tqdm.write(f"step {step}: {shown} (best {config.metric} {best.best_score:.4f} @ {best.best_step})")

    bar = tqdm(total=total_steps, desc="train", unit="step", disable=not (config.show_progress and is_main))
    start = time.perf_counter()
    step, last_epoch = 0, 0
    try:
        for epoch, batch in _batches(train_source, total_steps):
            if epoch != last_epoch:
                run_eval(step)  # end of the previous epoch
                last_epoch = epoch
            if step == 0:
                check_micro_batches(batch[names[0]].shape[0], config.micro_batches)
            outputs = step_fn(*[distributed.shard_batch_tensor(batch[n]) for n in names])
            step += 1
            losses.push(step, outputs[0])  # checks the step before: this one runs meanwhile
            if step % 10 == 0 or step == total_steps:
                bar.set_postfix(loss=f"{losses.value:.4f}", epoch=epoch)
            bar.update(1)
            if config.eval_every_step_num and step % config.eval_every_step_num == 0 and step != total_steps:
                run_eval(step)
        loss_value = losses.flush()
    finally:
        bar.close()
    best.train_seconds = time.perf_counter() - start
    best.steps = step
    best.final_loss = loss_value
    run_eval(step)
    return best
