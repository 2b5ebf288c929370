"""Train a BERT-PKD student: soft labels plus the patient loss on intermediate layers."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.pkd", "main", __name__)
