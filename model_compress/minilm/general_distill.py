"""PP-MiniLM task-agnostic distillation: a BERT student learns a teacher's self-attention relations."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.minilm", "main", __name__)
