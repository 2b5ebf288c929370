"""Split the Amazon multi-domain reviews (or generated ones) into data/SENTI/{train,dev,test}.tsv."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "..", ".."))
from model_compress.runtime import run_entry  # noqa: E402

run_entry("model_compress.easynlp.metakd.senti_data", "generate_senti_main", __name__)
