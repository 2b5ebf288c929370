"""Meta-KD step 2: train the meta-teacher on all domains (sample weights + domain loss)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.metakd", "meta_teacher_main", __name__)
