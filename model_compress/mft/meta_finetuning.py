"""MFT step 2: meta fine-tuning across the domains of a group."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.mft", "meta_finetuning_main", __name__)
