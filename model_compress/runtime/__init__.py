"""Process set-up that must happen before ``import oneflow``.

OneFlow 0.9.0 dlopens cuDNN 8 and cuBLAS 11 at import even on CPU machines, logs CUDA driver
warnings through glog, and its CPU speed depends on settings that are right on one CPU and wrong on
the next (which BLAS runs its matmuls, OpenBLAS's core type, oneDNN). Importing this module
(``model_compress`` does it first) applies the setting measured fastest on this CPU model (``tuning``,
cached per machine), preloads the CUDA libraries, imports OneFlow without its noise and, when chosen,
routes its sgemm to a multi-threaded OpenBLAS (``blas``). The user's own variables always win.
See docs/runtime.md for the measurements.
"""

from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import sys
import tempfile

from model_compress.runtime import blas, tuning
from model_compress.runtime.settings import BASELINE, BUNDLED, OPENBLAS, RuntimeSetting, threads_per_process
from model_compress.runtime.tuning import PROBE_FLAG

SETUP_HINT = (
    "model_compress needs OneFlow 0.9 in the project venv: run `bash run_scripts/setup_env.sh` "
    "and then `source .venv/bin/activate` (or call `.venv/bin/python` directly)."
)

# name -> default; see docs/runtime.md
CPU_DEFAULTS: dict[str, str] = {
    # glog: hide INFO/WARNING/ERROR lines such as "CUDA driver version is insufficient" on CPU-only
    # machines; real failures still surface as Python exceptions.
    "GLOG_minloglevel": "3",
}

_CUDA_LIBS = (
    "nvidia/cublas/lib/libcublasLt.so.11",
    "nvidia/cublas/lib/libcublas.so.11",
    "nvidia/cudnn/lib/libcudnn_ops_infer.so.8",
    "nvidia/cudnn/lib/libcudnn_ops_train.so.8",
    "nvidia/cudnn/lib/libcudnn_cnn_infer.so.8",
    "nvidia/cudnn/lib/libcudnn_cnn_train.so.8",
    "nvidia/cudnn/lib/libcudnn.so.8",
)

_prepared = False


def machine_setting() -> RuntimeSetting:
    """The CPU setting for this process: the user's MODEL_COMPRESS_BLAS if set, else the measured one."""
    if os.environ.get(PROBE_FLAG) or os.environ.get("MODEL_COMPRESS_BLAS"):
        return RuntimeSetting(
            blas=os.environ.get("MODEL_COMPRESS_BLAS", BUNDLED),
            coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
            threads=int(os.environ.get("MODEL_COMPRESS_BLAS_THREADS", os.cpu_count() or 1)),
            onednn=os.environ.get("ONEFLOW_ENABLE_ONEDNN_OPTS", "0") == "1",
        )
    if sys.version_info[:2] > (3, 10) or importlib.util.find_spec("oneflow") is None:
        return BASELINE  # nothing to tune; require_oneflow() explains how to set up
    try:
        return tuning.chosen_setting()
    except Exception as exc:  # a failed measurement must never stop the toolkit from running
        sys.stderr.write(f"model_compress: could not choose CPU settings ({exc}); using OneFlow's own\n")
        return BASELINE


def verbose() -> bool:
    """MODEL_COMPRESS_VERBOSE=1 keeps OneFlow's own log lines and import messages (hidden otherwise)."""
    return os.environ.get("MODEL_COMPRESS_VERBOSE", "").strip().lower() in ("1", "true", "yes", "on")


def _apply_env_defaults(setting: RuntimeSetting) -> None:
    if not verbose():
        for name, value in CPU_DEFAULTS.items():
            os.environ.setdefault(name, value)
    os.environ.setdefault("ONEFLOW_ENABLE_ONEDNN_OPTS", "1" if setting.onednn else "0")
    if setting.blas == BUNDLED and setting.coretype:
        os.environ.setdefault("OPENBLAS_CORETYPE", setting.coretype)


def _route_blas(setting: RuntimeSetting) -> None:
    """Send OneFlow's sgemm to the replacement OpenBLAS when that is the setting in force."""
    if os.environ.get("MODEL_COMPRESS_BLAS", setting.blas) != OPENBLAS or "oneflow" not in sys.modules:
        return
    explicit = os.environ.get("MODEL_COMPRESS_BLAS_THREADS")
    cores = tuning.cpu_info()["cores"]
    threads = int(explicit) if explicit else threads_per_process(
        setting.threads, cores, int(os.environ.get("WORLD_SIZE", "1")))
    try:
        blas.route_sgemm(threads)
    except (RuntimeError, OSError, AttributeError) as exc:
        sys.stderr.write(f"model_compress: keeping OneFlow's own BLAS ({exc})\n")


def _preload_cuda_libs() -> None:
    """dlopen the pip-installed cuBLAS/cuDNN globally so that OneFlow's import finds them."""
    for base in sys.path:
        if not base or not os.path.isdir(os.path.join(base, "nvidia")):
            continue
        for rel in _CUDA_LIBS:
            for path in glob.glob(os.path.join(base, rel)):
                try:
                    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
        return


# Lines OneFlow's native code prints at import on machines without GPU or InfiniBand.
_IMPORT_NOISE = ("libibverbs not available", "CUDA driver version is insufficient")


def _import_oneflow_quietly() -> None:
    """Import oneflow with native stderr captured, then re-emit whatever is not known noise."""
    if "oneflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import oneflow  # noqa: F401
        except ImportError:
            pass  # reported by require_oneflow() where oneflow is really needed
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode("utf-8", "replace")
    for line in text.splitlines():
        if line.strip() and (verbose() or not any(noise in line for noise in _IMPORT_NOISE)):
            sys.stderr.write(line + "\n")


def prepare() -> None:
    """Choose and apply the CPU settings, preload CUDA libraries, import oneflow quietly, route sgemm."""
    global _prepared
    if _prepared:
        return
    setting = machine_setting()
    _apply_env_defaults(setting)
    _preload_cuda_libs()
    _import_oneflow_quietly()
    _route_blas(setting)
    _prepared = True


def require_oneflow():
    """Import and return oneflow; an ImportError that says how to set the environment up when it is missing."""
    prepare()
    try:
        import oneflow
    except ImportError as exc:
        raise ImportError(f"cannot import oneflow ({exc}).\n{SETUP_HINT}") from None
    return oneflow


prepare()


def exit_without_oneflow() -> None:
    """For entry points: without an importable oneflow, end with two lines (why, and how to set up), exit 2."""
    try:
        require_oneflow()
    except ImportError as exc:
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None


def run_entry(module: str, function: str, caller: str) -> None:
    """Body of every entry script: check OneFlow, then call `module.function()` when run as a script."""
    if caller != "__main__":
        return
    exit_without_oneflow()
    import importlib

    getattr(importlib.import_module(module), function)()
