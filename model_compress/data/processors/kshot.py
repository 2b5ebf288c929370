"""MFT / K-shot CSV tasks (``text<TAB>domain<TAB>label``): ``g1`` across domains, ``mr``/``cr``/``sst-2`` single."""

from __future__ import annotations

import os

from model_compress.data.processors.base import (
    DataProcessor,
    InputExample,
    check_columns,
    nonempty_text,
)


class KShotProcessor(DataProcessor):
    """K-shot CSV files ``train.csv dev.csv test.csv`` with rows ``text<TAB>domain<TAB>label``."""

    def split_file(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, f"{split}.csv")

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        def make(number: int, cols: list[str]) -> InputExample:
            check_columns(path, number, cols, 3, "text, domain, label")
            text = nonempty_text(path, number, "text", cols[0])
            domain = self.check_domain(path, number, cols[1].strip())
            label = self.check_label(path, number, cols[2].strip())
            return InputExample(f"{split}-{number}", text, None, label, domain)

        return self._collect(path, self._rows(path), make)


class G1Processor(KShotProcessor):
    """MFT group g1: binary sentiment over the SST-2, MR and CR domains."""

    name = "g1"
    labels = ("0", "1")
    domains = ("SST-2", "MR", "CR")


class KShotSingleProcessor(KShotProcessor):
    """One domain of a K-shot group (``data/k-shot-single/<TASK>/<K>-<seed>``)."""

    labels = ("0", "1")

    def __init__(self, domain: str, strict: bool = True) -> None:
        super().__init__(strict)
        self.name = domain.lower()
        self.domains = (domain,)

