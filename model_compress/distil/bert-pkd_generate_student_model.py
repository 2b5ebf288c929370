"""Build a BERT-PKD student from chosen layers of a fine-tuned teacher."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.student", "generate_main", __name__)
