"""Mean-pooled BERT embedding of every row of a senti table."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.easynlp.metakd.embeddings", "extract_embeddings_main", __name__)
