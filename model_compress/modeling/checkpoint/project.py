"""The project snapshot format: ``flow.save`` output plus ``snapshot.json`` (and ``config.json``)."""

from __future__ import annotations

import datetime
import json
import os
import shutil
from collections.abc import Mapping
from typing import Any

import numpy as np

from model_compress.modeling.checkpoint.atomic import install_dir, json_default, prepare_target, sibling, write_json
from model_compress.modeling.checkpoint.state import flow_module, to_numpy
from model_compress.modeling.config import BertConfig

SNAPSHOT_JSON = "snapshot.json"
SNAPSHOT_FORMAT = "model_compress.snapshot"
SNAPSHOT_VERSION = 1
CONFIG_JSON = "config.json"
FLOW_PICKLE = "pickled_data"  # written by flow.save


def save_snapshot(
    module_or_state: Any,
    path: str,
    config: BertConfig | None = None,
    meta: Mapping[str, Any] | None = None,
    extra_files: Mapping[str, str] | None = None,
) -> str:
    """Write a project snapshot directory atomically and return its path.

    ``module_or_state`` is an ``nn.Module`` or a mapping of numpy arrays / local tensors. The
    directory holds the ``flow.save`` output (so plain ``flow.load(path)`` works), ``snapshot.json``
    (``config``, ``meta`` such as score/step/task, creation time), ``config.json`` when a config is
    given, and copies of ``extra_files`` (name in snapshot -> source path, e.g. ``vocab.txt``).

    Everything is written under a hidden temporary sibling that is renamed to ``path`` at the end; an
    existing snapshot at ``path`` is replaced only once the new one is complete. On any error the
    temporary directory is removed and ``path`` is left as it was. In multi-process runs call it
    on one rank only, with local tensors (e.g. from :func:`module_state_numpy`).
    """
    flow = flow_module()
    state = module_or_state.state_dict() if hasattr(module_or_state, "state_dict") else module_or_state
    tensors = {}
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            value = flow.tensor(np.ascontiguousarray(value))
        elif getattr(value, "is_global", False):
            value = flow.tensor(to_numpy(value))
        tensors[str(key)] = value
    info = {
        "format": SNAPSHOT_FORMAT,
        "version": SNAPSHOT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "num_tensors": len(tensors),
        "config": config.to_dict() if config is not None else None,
        "meta": dict(meta or {}),
    }
    json.dumps(info, default=json_default)  # fail on unserialisable meta before touching the disk
    prepare_target(path)
    tmp = sibling(path, "tmp")
    try:
        flow.save(tensors, tmp)
        for name, source in (extra_files or {}).items():
            shutil.copyfile(source, os.path.join(tmp, name))
        if config is not None:
            config.to_json_file(os.path.join(tmp, CONFIG_JSON))
        write_json(os.path.join(tmp, SNAPSHOT_JSON), info)
        install_dir(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.errno is not None and (exc.filename is None or str(exc.filename).startswith(tmp)):
            # flow.save does not say which file failed, and the hidden temporary name means nothing
            # to a user: name the snapshot being written
            raise OSError(exc.errno, exc.strerror or str(exc), path) from exc
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path
