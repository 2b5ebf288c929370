"""Fine-tune a teacher classifier (seed: task_teacher.py)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
from model_compress.runtime import require_oneflow  # noqa: E402

require_oneflow()
from model_compress.jobs.teacher import main  # noqa: E402

if __name__ == "__main__":
    main()
