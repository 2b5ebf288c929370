"""Train a Distilled BiLSTM student from a BERT teacher's logits (vanilla KD), or evaluate one."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.bilstm", "main", __name__)
