"""Reference fine-tuning with Hugging Face transformers + PyTorch, for comparing the toolkit's teacher recipe.

A plain, standard recipe: BertForSequenceClassification from the same pretrained weights, AdamW with
biases and LayerNorm excluded from weight decay, linear warm-up then linear decay, gradient clipping of
the global norm, dropout as configured, evaluation of dev at every epoch end keeping the best model,
whose dev and test accuracy are printed as one JSON line. ``--dynamic_padding`` pads each training batch only
to its longest row (what a dynamic-padding collator such as DataCollatorWithPadding gives) instead of to
--seq_length; ``epoch_seconds`` is the mean time of one epoch's training steps (evaluation excluded). It
runs in its own venv (benchmarks/reference/setup.sh); nothing here imports the toolkit or OneFlow.

  .venv-reference/bin/python benchmarks/reference/hf_finetune.py --data_dir ../shared/data/CR \
      --model_dir <dir with config.json, vocab.txt, model.safetensors> --seed 1
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import time

import numpy as np
import torch
from transformers import BertForSequenceClassification, BertTokenizerFast, get_linear_schedule_with_warmup


def read_split(data_dir: str, split: str) -> tuple[list[str], np.ndarray]:
    """Sentences and integer labels of a GLUE SST-2-layout file (header ``sentence<TAB>label``)."""
    with open(os.path.join(data_dir, f"{split}.tsv"), newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    return [r[0] for r in rows], np.array([int(r[1]) for r in rows])


def encode(tokenizer, texts: list[str], seq: int) -> dict[str, torch.Tensor]:
    return dict(tokenizer(texts, max_length=seq, truncation=True, padding="max_length", return_tensors="pt"))


@torch.no_grad()
def accuracy(model, inputs: dict[str, torch.Tensor], labels: np.ndarray, batch: int = 64) -> float:
    model.eval()
    predictions = []
    for start in range(0, len(labels), batch):
        part = {k: v[start:start + batch] for k, v in inputs.items()}
        predictions.append(model(**part).logits.argmax(-1).numpy())
    model.train()
    return float((np.concatenate(predictions) == labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning_rate", type=float, default=5e-5)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_length", type=int, default=64)
    parser.add_argument("--weight_decay", type=float, default=0.01)
    parser.add_argument("--warmup_proportion", type=float, default=0.1)
    parser.add_argument("--adam_epsilon", type=float, default=1e-8)
    parser.add_argument("--clip_grad_norm", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--dynamic_padding", action="store_true", help="pad each batch to its longest row")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    tokenizer = BertTokenizerFast(os.path.join(args.model_dir, "vocab.txt"), do_lower_case=True)
    splits = {name: read_split(args.data_dir, name) for name in ("train", "dev", "test")}
    inputs = {name: encode(tokenizer, texts, args.seq_length) for name, (texts, _) in splits.items()}
    model = BertForSequenceClassification.from_pretrained(args.model_dir, num_labels=2)
    no_decay = ("bias", "LayerNorm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(m in n for m in no_decay)],
         "weight_decay": args.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(m in n for m in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=args.learning_rate, eps=args.adam_epsilon)
    train_labels = torch.tensor(splits["train"][1])
    steps_per_epoch = len(train_labels) // args.batch_size
    total = steps_per_epoch * args.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(round(total * args.warmup_proportion)), total)
    generator = torch.Generator().manual_seed(args.seed)
    best_dev, best_state, start, stepping = -1.0, None, time.time(), 0.0
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(train_labels), generator=generator)
        epoch_start = time.perf_counter()
        for step in range(steps_per_epoch):
            rows = order[step * args.batch_size:(step + 1) * args.batch_size]
            batch = {k: v[rows] for k, v in inputs["train"].items()}
            if args.dynamic_padding:  # right padding: the longest row's mask length is the batch's width
                width = int(batch["attention_mask"].sum(1).max())
                batch = {k: v[:, :width] for k, v in batch.items()}
            loss = model(**batch, labels=train_labels[rows]).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
        stepping += time.perf_counter() - epoch_start
        dev = accuracy(model, inputs["dev"], splits["dev"][1])
        if dev > best_dev:
            best_dev, best_state = dev, copy.deepcopy(model.state_dict())
    train_seconds = time.time() - start
    model.load_state_dict(best_state)
    print(json.dumps({"seed": args.seed, "dev_accuracy": best_dev,
                      "test_accuracy": accuracy(model, inputs["test"], splits["test"][1]),
                      "train_seconds": round(train_seconds, 1), "epoch_seconds": round(stepping / args.epochs, 1),
                      "steps": total, "flags": vars(args)}))


if __name__ == "__main__":
    main()
