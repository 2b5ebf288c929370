"""Prototypical scores (meta weights) of the rows of an embeddings table."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.easynlp.metakd.embeddings", "generate_meta_weights_main", __name__)
