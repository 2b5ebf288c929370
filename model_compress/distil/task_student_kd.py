"""Train a student by vanilla KD from a teacher logits file (EasyNLP convention)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.kd", "main", __name__)
