"""Augment a task's training set for TinyBERT (words replaced by neighbours in the model's vocabulary)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.tinybert", "augment_main", __name__)
