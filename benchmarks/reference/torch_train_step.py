"""The yardstick for benchmarks/bench_train_step.py: the same training step in PyTorch eager.

Hugging Face BertForSequenceClassification at the same shape (384 wide, 12 heads, FFN 1536; 6 layers,
batch 32, seq 64 by default), AdamW, all cores; median seconds of --steps steps after two warm-up steps.
Runs in the reference venv (bash benchmarks/reference/setup.sh).

  .venv-reference/bin/python benchmarks/reference/torch_train_step.py --layers 6 --seq 64
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from transformers import BertConfig, BertForSequenceClassification


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=384, num_hidden_layers=args.layers, num_attention_heads=12,
                        intermediate_size=1536, num_labels=2)
    model = BertForSequenceClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
    ids = torch.randint(1000, 30000, (args.batch, args.seq))
    labels = torch.randint(0, 2, (args.batch,))
    times = []
    for i in range(args.steps + 2):
        start = time.perf_counter()
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= 2:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    print(f"pytorch {torch.__version__} eager, {args.threads} threads: layers {args.layers} seq {args.seq} "
          f"batch {args.batch}: {seconds:.3f} s/step, {args.batch / seconds:.1f} samples/s")


if __name__ == "__main__":
    main()
