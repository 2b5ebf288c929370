"""Driver for tests/recipes/test_metakd.py under `python -m oneflow.distributed.launch --nproc_per_node 2`.

`objectives OUT`: one compiled training step of the layer-wise objectives (Meta-KD stage 1 and 2, PKD with
hidden-state MSE) on a batch split over the two ranks, and the same objective run eagerly on the whole
batch in this process; every rank writes both losses to `OUT/rank<R>.json`.
`fail OUT`: rank 1 raises while rank 0 waits for it in a barrier; the launcher must end, non-zero.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from model_compress.runtime import require_oneflow  # noqa: E402  (runtime set-up before oneflow)

flow = require_oneflow()
import numpy as np  # noqa: E402

from model_compress.cli import user_errors  # noqa: E402
from model_compress.distill.metakd import MetaDistillFirstStage, MetaDistillSecondStage  # noqa: E402
from model_compress.distill.objectives import PKDSequenceMSEObjective  # noqa: E402
from model_compress.modeling.bert import BertForSequenceClassification  # noqa: E402
from model_compress.modeling.config import BertConfig  # noqa: E402
from model_compress.training import distributed  # noqa: E402
from model_compress.training.graph import make_train_step  # noqa: E402
from model_compress.training.optim import build_optimizer  # noqa: E402

BATCH, SEQ, HEADS, WIDTH, TEACHER_WIDTH, LAYERS = 8, 16, 4, 32, 48, 2


def batch_arrays() -> dict[str, np.ndarray]:
    """The same 8 examples on every rank: encoder inputs, labels, domains, weights and teacher outputs."""
    rs = np.random.RandomState(0)
    mask = np.ones((BATCH, SEQ), np.int32)
    mask[1, 9:] = 0
    mask[6, 4:] = 0
    attention = rs.rand(BATCH, LAYERS, HEADS, SEQ, SEQ).astype(np.float32)
    return {
        "input_ids": (rs.randint(5, 100, (BATCH, SEQ)) * mask).astype(np.int32),
        "input_mask": mask,
        "segment_ids": np.zeros((BATCH, SEQ), np.int32),
        "label_ids": rs.randint(0, 2, BATCH).astype(np.int32),
        "domain": rs.randint(0, 4, BATCH).astype(np.int32),
        "weights": rs.uniform(-0.5, 1.0, BATCH).astype(np.float32),
        "teacher_logits": rs.randn(BATCH, 2).astype(np.float32),
        "teacher_attention": attention / attention.sum(-1, keepdims=True),
        "teacher_hidden": rs.randn(BATCH, LAYERS + 1, SEQ, TEACHER_WIDTH).astype(np.float32),
        "teacher_domain": rs.randn(BATCH, TEACHER_WIDTH).astype(np.float32),
    }


def objectives() -> dict:
    """name -> a function building the objective around a fresh student (same seed, same weights)."""
    def student():
        flow.manual_seed(0)
        return BertForSequenceClassification(BertConfig(
            vocab_size=100, hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
            intermediate_size=64, max_position_embeddings=SEQ, hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0))

    return {
        "metakd_first_probs": lambda: MetaDistillFirstStage(student(), TEACHER_WIDTH, 4, [0, 1], [0, 1, 2]),
        "metakd_first_scores": lambda: MetaDistillFirstStage(student(), TEACHER_WIDTH, 4, [0, 1], [0, 1, 2],
                                                             attention="scores"),
        "metakd_second": lambda: MetaDistillSecondStage(student(), 2.0, use_sample_weights=True),
        "pkd_hidden_mse": lambda: PKDSequenceMSEObjective(student(), [0, 1, 2], TEACHER_WIDTH, 2.0, 0.5, 1.0),
    }


@user_errors  # a failing rank ends the launch instead of hanging
def run_objectives(out_dir: str) -> None:
    arrays, rank = batch_arrays(), distributed.rank()
    rows = slice(rank * BATCH // 2, (rank + 1) * BATCH // 2)
    report = {}
    for name, build in objectives().items():
        reference = build()
        objective = build()
        objective.load_state_dict({k: v.clone() for k, v in reference.state_dict().items()})
        names = objective.input_names
        with flow.no_grad():
            local = reference.eval()(*[flow.tensor(arrays[n]) for n in names])[0]
        objective = distributed.setup_model(objective, "cpu")
        step = make_train_step(objective, build_optimizer(objective, 1e-3, 0.0, 0.0))
        outputs = step(*[distributed.shard_batch_tensor(flow.tensor(arrays[n][rows])) for n in names])
        report[name] = {"split": float(distributed.to_local_numpy(outputs[0])), "local": float(local.numpy())}
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(report, f)


@user_errors
def fail_on_one_rank(out_dir: str) -> None:
    distributed.setup_model(flow.nn.Linear(2, 2), "cpu")
    if distributed.rank() == 1:
        raise RuntimeError("rank 1 fails alone")
    distributed.barrier()  # never passed: rank 1 is gone
    open(os.path.join(out_dir, "rank0_passed_the_barrier"), "w").close()


if __name__ == "__main__":
    mode, out = sys.argv[1], sys.argv[2]
    run_objectives(out) if mode == "objectives" else fail_on_one_rank(out)
