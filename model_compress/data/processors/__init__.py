"""Task processors: read a task's text files into :class:`InputExample` lists, validating every row.

Supported layouts (see docs/formats.md):

* GLUE TSV files with a header (CoLA has none), as GLUE ships them: SST-2, CoLA, MRPC, QQP, RTE, QNLI,
  MNLI (dev = ``dev_matched.tsv``).
* MFT / K-shot CSV files ``text<TAB>domain<TAB>label`` without header: ``train.csv dev.csv test.csv``.
  ``g1`` mixes the SST-2, MR and CR domains (``data/k-shot-cross/g1/16-42``); ``sst-2``, ``mr`` and
  ``cr`` read one domain (``data/k-shot-single/<TASK>/16-42``). ``sst-2`` reads the GLUE ``.tsv`` files
  instead when those are what ``data_dir`` holds.
* Amazon multi-domain sentiment ``senti``: TSV with header ``guid text_a text_b label domain [weight]``
  (or the raw ``review domain sentiment`` header of EasyNLP's ``generate_senti_data.py``).

Every bad row (wrong column count, unknown label or domain, empty text, undecodable bytes, bad weight)
raises :class:`DataFormatError` naming the file, the 1-based line number and the field.

One module per task family (``glue``, ``kshot``, ``senti``) over ``base``; this module holds the registry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from model_compress.data.processors.base import (
    SPLIT_NAMES,
    DataFormatError,
    DataProcessor,
    InputExample,
    read_rows,
)
from model_compress.data.processors.glue import (
    ColaProcessor,
    GlueProcessor,
    MnliProcessor,
    MrpcProcessor,
    QnliProcessor,
    QqpProcessor,
    RteProcessor,
    Sst2Processor,
)
from model_compress.data.processors.kshot import G1Processor, KShotProcessor, KShotSingleProcessor
from model_compress.data.processors.senti import SentiProcessor

__all__ = [
    "SPLIT_NAMES",
    "ColaProcessor",
    "DataFormatError",
    "DataProcessor",
    "G1Processor",
    "GlueProcessor",
    "InputExample",
    "KShotProcessor",
    "KShotSingleProcessor",
    "MnliProcessor",
    "MrpcProcessor",
    "QnliProcessor",
    "QqpProcessor",
    "RteProcessor",
    "SentiProcessor",
    "Sst2Processor",
    "get_processor",
    "known_tasks",
    "read_rows",
    "select_domains",
]

_REGISTRY: dict[str, Callable[..., DataProcessor]] = {
    "sst-2": Sst2Processor,
    "cola": ColaProcessor,
    "mrpc": MrpcProcessor,
    "qqp": QqpProcessor,
    "rte": RteProcessor,
    "qnli": QnliProcessor,
    "mnli": MnliProcessor,
    "g1": G1Processor,
    "mr": lambda strict=True: KShotSingleProcessor("MR", strict=strict),
    "cr": lambda strict=True: KShotSingleProcessor("CR", strict=strict),
    "senti": SentiProcessor,
}
_ALIASES = {"sst2": "sst-2", "sst": "sst-2", "mnli-m": "mnli"}


def known_tasks() -> list[str]:
    """Task names accepted by :func:`get_processor`."""
    return sorted(_REGISTRY)


def get_processor(task_name: str, strict: bool = True) -> DataProcessor:
    """The processor of a task, by case-insensitive name (``SST-2``, ``g1``, ``senti``, ...).

    Raises:
        ValueError: unknown task; the message lists the known ones.
    """
    key = task_name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        raise ValueError(f"unknown task {task_name!r}; known tasks: {', '.join(known_tasks())}")
    return _REGISTRY[key](strict=strict)


def select_domains(
    examples: Sequence[InputExample], domains: str | Sequence[str] | None
) -> list[InputExample]:
    """Keep the examples of the given domain(s); None or ``"mix"`` keeps everything.

    ``domains`` may be a comma separated string (``"books,dvd"``).
    """
    if domains is None or domains == "mix":
        return list(examples)
    wanted = set(domains.split(",")) if isinstance(domains, str) else set(domains)
    return [e for e in examples if e.domain in wanted]
