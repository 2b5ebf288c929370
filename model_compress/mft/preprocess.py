"""MFT step 1: prototypical scores of the training examples (weight.npy + OFRecord splits)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.mft", "preprocess_main", __name__)
