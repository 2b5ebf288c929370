"""Train a TinyBERT student: intermediate-layer distillation, then prediction-layer distillation."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.tinybert", "main", __name__)
