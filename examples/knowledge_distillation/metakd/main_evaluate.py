"""Evaluate a Meta-KD student on the dev table (EasyNLP flags)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.easynlp.metakd.training", "main_evaluate_main", __name__)
