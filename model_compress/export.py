"""Export a classifier snapshot for serving: `python -m model_compress.export --model_dir SNAPSHOT
--format hf|onnx --output_dir DIR` (see model_compress/commands/export_model.py)."""

from model_compress.runtime import run_entry

run_entry("model_compress.commands.export_model", "main", __name__)
