"""BERT-of-Theseus: module replacing (phase 1), successor-only fine-tuning (phase 2), evaluation."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.theseus", "main", __name__)
