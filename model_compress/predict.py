"""Predict with a classifier over a tsv table, EasyNLP style: `python -m model_compress.predict --tables IN
--outputs OUT --checkpoint_path SNAPSHOT_OR_ONNX --output_schema predictions,probabilities,logits`
(see model_compress/commands/predict_tables.py)."""

from model_compress.runtime import run_entry

run_entry("model_compress.commands.predict_tables", "main", __name__)
