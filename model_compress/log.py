"""The toolkit's one logger: ``logger("tinybert").info(...)`` prints ``[tinybert] ...`` on stderr.

Standard ``logging`` under the ``model_compress`` name, set up on first use: information from the main
process only (rank 0 of a multi-process run, where every rank would print the same line), warnings and
errors from every rank. Messages go to the stderr of the moment, so redirection and test capture see them.
Progress bars (tqdm) are separate and unchanged. ``MODEL_COMPRESS_LOG_LEVEL`` (e.g. ``WARNING``) quiets it.
"""

from __future__ import annotations

import logging
import os
import sys

ROOT = "model_compress"


class _CurrentStderr(logging.Handler):
    """Writes each record to ``sys.stderr`` as it is when the record is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed or broken stream must not end the run
            self.handleError(record)


class _MainRankInfo(logging.Filter):
    """Information from rank 0 only; warnings and errors from every rank."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or main_rank()


def main_rank() -> bool:
    """Whether this process is rank 0: OneFlow's rank once it is imported, else the launcher's RANK."""
    flow = sys.modules.get("oneflow")
    if flow is not None and hasattr(flow, "env"):
        return flow.env.get_rank() == 0
    return (os.environ.get("RANK") or "0") in ("0", "-1")


def _configure(root: logging.Logger) -> None:
    handler = _CurrentStderr()
    handler.setFormatter(logging.Formatter("[%(short_name)s] %(message)s"))
    handler.addFilter(_MainRankInfo())
    root.addHandler(handler)
    root.setLevel(os.environ.get("MODEL_COMPRESS_LOG_LEVEL", "INFO").upper())
    root.propagate = False


class _Named(logging.LoggerAdapter):
    """Adds the short name (``tinybert``) the format prints."""

    def process(self, msg, kwargs):
        kwargs.setdefault("extra", {})["short_name"] = self.extra["short_name"]
        return msg, kwargs


def logger(name: str) -> logging.LoggerAdapter:
    """The logger of one part of the toolkit; its lines read ``[name] message``."""
    root = logging.getLogger(ROOT)
    if not root.handlers:
        _configure(root)
    return _Named(logging.getLogger(f"{ROOT}.{name}"), {"short_name": name})
