"""Meta-KD step 3: dump the meta-teacher's logits, attentions, hidden states and domain representations."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.recipes.metakd", "teacher_eval_main", __name__)
