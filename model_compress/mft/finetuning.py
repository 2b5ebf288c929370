"""MFT step 3: fine-tune a meta-learnt snapshot on one domain, then test it."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.mft", "finetuning_main", __name__)
