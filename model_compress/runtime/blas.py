"""Route OneFlow's CPU matrix products to a current, multi-threaded OpenBLAS.

OneFlow 0.9 links an old, single-threaded OpenBLAS into ``liboneflow``. On the project's machines its
CPU detection picks a generic SSE kernel (about 40 GFLOP/s on an AVX-512 Xeon), and forcing an AVX
kernel makes every later ``exp``/``expf`` on the same thread 20-30x slower, because those kernels
return with the upper vector registers dirty (docs/runtime.md). All of OneFlow's CPU matmuls go
through its exported ``cblas_sgemm``; this module overwrites the first bytes of that function with a
jump to ``cblas_sgemm`` of the ``scipy-openblas32`` wheel (same LP64 CBLAS signature, runtime CPU
dispatch, pthreads). It must run right after ``import oneflow`` and before any kernel runs.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import struct

_PROT_READ, _PROT_WRITE, _PROT_EXEC = 1, 2, 4
_routed: dict = {}


def replacement_library() -> str | None:
    """Path of the scipy-openblas32 shared library, or None when the wheel is not installed."""
    try:
        import scipy_openblas32
    except ImportError:
        return None
    lib_dir = scipy_openblas32.get_lib_dir()
    path = os.path.join(lib_dir, f"lib{scipy_openblas32.get_library()}.so")
    return path if os.path.exists(path) else None


def loaded_liboneflow() -> str | None:
    """Path of the liboneflow shared object mapped into this process (after ``import oneflow``)."""
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split()[-1]
            if "liboneflow" in os.path.basename(path) and path.endswith(".so"):
                return path
    return None


def jump_to(target: int) -> bytes:
    """x86-64 code for an absolute jump: ``movabs r11, target; jmp r11`` (r11 is caller-saved)."""
    return b"\x49\xbb" + struct.pack("<Q", target) + b"\x41\xff\xe3"


def _write_code(address: int, code: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    page = address & ~(mmap.PAGESIZE - 1)
    length = address + len(code) - page
    length = (length + mmap.PAGESIZE - 1) // mmap.PAGESIZE * mmap.PAGESIZE
    if libc.mprotect(page, length, _PROT_READ | _PROT_WRITE | _PROT_EXEC) != 0:
        raise OSError(ctypes.get_errno(), "mprotect failed on liboneflow's code")
    ctypes.memmove(address, code, len(code))
    libc.mprotect(page, length, _PROT_READ | _PROT_EXEC)


def route_sgemm(threads: int) -> dict:
    """Send liboneflow's ``cblas_sgemm`` to scipy-openblas32 with ``threads`` threads.

    Returns a description (library, core name, threads). Raises RuntimeError when the replacement or
    liboneflow cannot be found; calling it twice is a no-op returning the first description.
    """
    if _routed:
        return dict(_routed)
    library = replacement_library()
    if library is None:
        raise RuntimeError("scipy-openblas32 is not installed")
    liboneflow = loaded_liboneflow()
    if liboneflow is None:
        raise RuntimeError("liboneflow is not loaded (import oneflow first)")
    blas = ctypes.CDLL(library, mode=ctypes.RTLD_LOCAL)
    blas.scipy_openblas_set_num_threads(ctypes.c_int(max(1, threads)))
    corename = blas.scipy_openblas_get_corename
    corename.restype = ctypes.c_char_p
    oneflow_lib = ctypes.CDLL(liboneflow)
    source = ctypes.cast(oneflow_lib.cblas_sgemm, ctypes.c_void_p).value
    target = ctypes.cast(blas.scipy_cblas_sgemm, ctypes.c_void_p).value
    _write_code(source, jump_to(target))
    _routed.update(
        library=library,
        core=corename().decode(),
        threads=max(1, threads),
        handle=blas,  # keeps the library loaded for the life of the process
    )
    return dict(_routed)


def routed() -> dict:
    """What route_sgemm set up in this process ({} when OneFlow's own OpenBLAS is in use)."""
    return {k: v for k, v in _routed.items() if k != "handle"}
