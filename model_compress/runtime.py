"""Process set-up that must happen before ``import oneflow``.

OneFlow 0.9.0 dlopens cuDNN 8 and cuBLAS 11 at import even on CPU machines, logs CUDA driver
warnings through glog, and ships an OpenBLAS and a oneDNN path that are slow on this project's CPUs
unless told otherwise. Importing this module (``model_compress`` does it first) fixes all of that.
Every default is applied only when the user has not set the variable: explicit settings win.
See docs/runtime.md for the measurements behind each default.
"""

from __future__ import annotations

import ctypes
import glob
import os
import sys
import tempfile

SETUP_HINT = (
    "model_compress needs OneFlow 0.9 in the project venv: run `bash run_scripts/setup_env.sh` "
    "and then `source .venv/bin/activate` (or call `.venv/bin/python` directly)."
)

# name -> (default, why); see docs/runtime.md
CPU_DEFAULTS: dict[str, str] = {
    # glog: hide INFO/WARNING/ERROR lines such as "CUDA driver version is insufficient" on CPU-only
    # machines; real failures still surface as Python exceptions.
    "GLOG_minloglevel": "3",
    # oneDNN fused paths made mean-subtraction 150x and LayerNorm 11x slower on this CPU.
    "ONEFLOW_ENABLE_ONEDNN_OPTS": "0",
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


def _cpu_has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return " avx2 " in f" {line.split(':', 1)[1].strip()} "
    except OSError:
        pass
    return False


def _apply_env_defaults() -> None:
    for name, value in CPU_DEFAULTS.items():
        os.environ.setdefault(name, value)
    # OneFlow's bundled OpenBLAS misdetects some AMD CPUs and falls back to a generic sgemm kernel
    # (22 vs 59 GFLOP/s measured). Forcing the Haswell kernel is safe whenever AVX2 is present.
    if _cpu_has_avx2():
        os.environ.setdefault("OPENBLAS_CORETYPE", "Haswell")


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
        if line.strip() and not any(noise in line for noise in _IMPORT_NOISE):
            sys.stderr.write(line + "\n")


def prepare() -> None:
    """Apply environment defaults, preload CUDA libraries and import oneflow without its noise."""
    global _prepared
    if _prepared:
        return
    _apply_env_defaults()
    _preload_cuda_libs()
    _import_oneflow_quietly()
    _prepared = True


def require_oneflow():
    """Import and return oneflow, or exit with one line telling how to set the environment up."""
    prepare()
    try:
        import oneflow
    except ImportError as exc:
        sys.stderr.write(f"error: cannot import oneflow ({exc}).\n{SETUP_HINT}\n")
        raise SystemExit(2) from None
    return oneflow


prepare()


def run_entry(module: str, function: str, caller: str) -> None:
    """Body of every entry script: check OneFlow, then call `module.function()` when run as a script."""
    if caller != "__main__":
        return
    require_oneflow()
    import importlib

    getattr(importlib.import_module(module), function)()
