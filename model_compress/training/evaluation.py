"""Running a model over a data split: logits, metrics and measured throughput."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import oneflow as flow
from oneflow import nn
from tqdm import tqdm

from model_compress.training import distributed
from model_compress.training.graph import make_eval_step
from model_compress.training.metrics import classification_metrics


class Predictor:
    """Compiles `module` once (nn.Graph unless eager) and runs it over any batch source."""

    def __init__(self, module: nn.Module, eager: bool = False) -> None:
        self.module = module
        self.input_names = list(module.input_names)
        self.eager = eager
        self._step = None
        self._warm: set = set()  # input shapes compiled so far (one graph each: length buckets)
        self._rows = None

    def _placed(self, tensor):
        # nn.Graph is compiled per shape, rows from the first batch; a smaller last batch is padded, its
        # extra outputs dropped. With several ranks each computes its block of the (padded) rows.
        if self.eager:
            return distributed.replicate_tensor(tensor)
        if self._rows is None:
            ranks = distributed.world_size()
            self._rows = -(-tensor.shape[0] // ranks) * ranks
        return distributed.split_rows_tensor(pad_rows(tensor, self._rows))

    def batches(self, source, epoch: int = 0) -> Iterator[tuple[Any, dict, float]]:
        """Per batch: (outputs trimmed to the batch's rows, the batch, seconds spent in the model).

        Every graph inference goes through here: the last, shorter batch is padded to the compiled
        shape; batches of another sequence length (length buckets) run their own compiled graph. A
        module returning a tuple gives a list of numpy arrays, else one array.
        """
        if self._step is None:
            self._step = make_eval_step(self.module, eager=self.eager, per_shape=True)
        self.module.eval()
        source.set_epoch(epoch)
        for batch in source:
            rows = batch[self.input_names[0]].shape[0]
            inputs = [self._placed(batch[n]) for n in self.input_names]
            shape = tuple(tuple(t.shape) for t in inputs)
            if shape not in self._warm:  # compile outside the timed region so throughput means steady state
                warm = self._step(*inputs)
                (warm[0] if isinstance(warm, tuple) else warm).numpy()
                self._warm.add(shape)
            start = time.perf_counter()
            out = self._step(*inputs)
            out = [distributed.to_local_numpy(t)[:rows] for t in out] if isinstance(out, tuple) else \
                distributed.to_local_numpy(out)[:rows]
            yield out, batch, time.perf_counter() - start

    def outputs(self, source, epoch: int = 0, progress: str | None = None) -> tuple:
        """(stacked outputs, stacked batch features as numpy, seconds spent in the model), in the source's
        batch order (a bucketed source groups rows by length: join by the ``idxs`` feature).

        A module returning a tuple gives a list of stacked arrays, one per output. `progress` names a
        progress bar (batches, on stderr, rank 0) for long passes; None shows none.
        """
        chunks, features, seconds = [], {}, 0.0
        batches = tqdm(self.batches(source, epoch), desc=progress, unit="batch",
                       total=len(source) if hasattr(source, "__len__") else None,
                       disable=progress is None or distributed.rank() != 0)
        for out, batch, spent in batches:
            seconds += spent
            chunks.append(out)
            for name, tensor in batch.items():
                features.setdefault(name, []).append(tensor.numpy())
        if not chunks:
            raise ValueError("the evaluation set is empty")
        stacked = {name: np.concatenate(pad_columns(parts)) for name, parts in features.items()}
        if isinstance(chunks[0], list):
            return [np.concatenate(parts) for parts in zip(*chunks)], stacked, seconds
        return np.concatenate(chunks), stacked, seconds


def pad_columns(parts: list[np.ndarray]) -> list[np.ndarray]:
    """Batches of a sequence feature sliced to different bounds (length buckets), zero-padded on the right
    to the widest: the values the unsliced records hold there."""
    width = max(p.shape[1] if p.ndim > 1 else 0 for p in parts)
    return [np.pad(p, [(0, 0), (0, width - p.shape[1])] + [(0, 0)] * (p.ndim - 2)) if p.ndim > 1 else p
            for p in parts]


def pad_rows(tensor, rows: int):
    """Repeat the last row so a short final batch has the shape the graph was compiled for."""
    missing = rows - tensor.shape[0]
    if missing <= 0:
        return tensor
    filler = tensor[-1:].repeat(missing, *([1] * (tensor.dim() - 1)))
    return flow.cat([tensor, filler], dim=0)


def evaluate_classifier(predictor: Predictor, source) -> dict[str, float]:
    """Metrics of argmax predictions against `label_ids`, plus eval samples/s."""
    logits, features, seconds = predictor.outputs(source)
    metrics = classification_metrics(features["label_ids"].reshape(-1), logits.argmax(-1))
    metrics["num_examples"] = int(logits.shape[0])
    metrics["eval_samples_per_second"] = float(logits.shape[0] / max(seconds, 1e-9))
    return metrics
