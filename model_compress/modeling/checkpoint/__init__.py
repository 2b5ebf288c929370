"""Checkpoint I/O: project snapshots, the OneFlow originals' legacy layout and Hugging Face safetensors.

Every reader returns a flat ``dict[str, numpy.ndarray]`` keyed like Hugging Face
``BertForSequenceClassification`` (``bert.embeddings.word_embeddings.weight`` ... ``classifier.bias``),
so checkpoints are independent of the ``nn.Module`` that will receive them. ``load_state_into`` copies
such a dict into a OneFlow module and reports what was missing or unexpected.

Formats (see docs/checkpoints.md), one module each:

* project snapshot: a directory written by ``flow.save(state_dict)`` (``pickled_data`` plus
  ``tensor_<n>/`` folders) with ``snapshot.json`` (config, score, step, task, meta) beside it.
  ``flow.load`` unpickles, so loading one prints a notice naming the path: load only trusted files.
* legacy layout of the OneFlow 0.1-0.5 originals: one folder per variable holding ``out``, raw
  little-endian float32 with dense kernels stored [in, out]; optimizer moments ``<name>-m``/``-v``.
* Hugging Face directory: ``model.safetensors`` + ``config.json``, parsed with numpy only.
"""

from model_compress.modeling.checkpoint.hf import (
    SAFETENSORS_FILE,
    import_hf_safetensors,
    read_safetensors,
    write_safetensors,
)
from model_compress.modeling.checkpoint.legacy import (
    LEGACY_DONE,
    STUDENT_PREFIX,
    infer_legacy_config,
    read_legacy_snapshot,
    write_legacy_snapshot,
)
from model_compress.modeling.checkpoint.load import (
    CheckpointError,
    choose_legacy_prefix,
    load_snapshot,
    snapshot_config,
    snapshot_format,
)
from model_compress.modeling.checkpoint.names import hf_to_legacy_name, legacy_to_hf_name
from model_compress.modeling.checkpoint.project import (
    CONFIG_JSON,
    FLOW_PICKLE,
    SNAPSHOT_FORMAT,
    SNAPSHOT_JSON,
    SNAPSHOT_VERSION,
    save_snapshot,
)
from model_compress.modeling.checkpoint.shapes import (
    check_state_shapes,
    classifier_state,
    expected_shape,
    select_prefix,
)
from model_compress.modeling.checkpoint.state import LoadReport, State, load_state_into, module_state_numpy

__all__ = [
    "CONFIG_JSON",
    "FLOW_PICKLE",
    "LEGACY_DONE",
    "CheckpointError",
    "SAFETENSORS_FILE",
    "SNAPSHOT_FORMAT",
    "SNAPSHOT_JSON",
    "SNAPSHOT_VERSION",
    "STUDENT_PREFIX",
    "LoadReport",
    "State",
    "check_state_shapes",
    "classifier_state",
    "choose_legacy_prefix",
    "expected_shape",
    "hf_to_legacy_name",
    "import_hf_safetensors",
    "infer_legacy_config",
    "legacy_to_hf_name",
    "load_snapshot",
    "load_state_into",
    "module_state_numpy",
    "read_legacy_snapshot",
    "read_safetensors",
    "save_snapshot",
    "select_prefix",
    "snapshot_config",
    "snapshot_format",
    "write_legacy_snapshot",
    "write_safetensors",
]
