"""Meta-KD step 4: distil the meta-teacher into a student (--distill_stage first/second/all/vanilla)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.metakd", "distill_main", __name__)
