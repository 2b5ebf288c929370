"""Driver for the two-node test: a few nn.Graph training steps of a tiny BERT, data parallel.

Run by tests/training/test_distributed.py under `python -m oneflow.distributed.launch --nnodes 2 --node_rank K`.
Every rank writes what it ends with (loss, a parameter digest) to `<out>/rank<R>.json`.
"""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from model_compress.runtime import require_oneflow  # noqa: E402  (runtime set-up before oneflow)

flow = require_oneflow()
import numpy as np  # noqa: E402

from model_compress.modeling.bert import BertForSequenceClassification  # noqa: E402
from model_compress.modeling.config import BertConfig  # noqa: E402
from model_compress.training import distributed  # noqa: E402
from model_compress.training.graph import make_train_step  # noqa: E402
from model_compress.training.objectives import ClassificationObjective  # noqa: E402
from model_compress.training.optim import build_optimizer, build_scheduler  # noqa: E402


def main(out_dir: str) -> None:
    flow.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0)
    objective = distributed.setup_model(ClassificationObjective(BertForSequenceClassification(config)))
    optimizer = build_optimizer(objective, 1e-2)
    step = make_train_step(objective, optimizer, build_scheduler(optimizer, 100, 0.0))
    rank = distributed.rank()
    rs = np.random.RandomState(rank)  # each rank feeds its own half of the global batch
    ids = rs.randint(5, 100, (4, 16)).astype(np.int32)
    batch = [ids, np.ones_like(ids), np.zeros_like(ids), (ids[:, :1] % 2).astype(np.int32)]
    losses = []
    for _ in range(8):
        loss = step(*[distributed.shard_batch_tensor(flow.tensor(a)) for a in batch])[0]
        losses.append(float(distributed.to_local_numpy(loss)))
    digest = hashlib.sha256()
    for name, tensor in sorted(objective.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(distributed.to_local_numpy(tensor)).tobytes())
    report = {"rank": rank, "world_size": distributed.world_size(), "losses": losses, "params": digest.hexdigest()}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main(sys.argv[1])
