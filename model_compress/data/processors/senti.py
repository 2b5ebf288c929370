"""Amazon multi-domain sentiment (``senti``): TSV with domains and optional weights."""

from __future__ import annotations

import os

from model_compress.data.processors.base import (
    DataFormatError,
    DataProcessor,
    InputExample,
    check_columns,
    nonempty_text,
)
from model_compress.finite import NonFiniteError, finite_float


class SentiProcessor(DataProcessor):
    """Amazon reviews in four domains, ``train.tsv dev.tsv [test.tsv]`` with a header row.

    Accepted headers: ``guid text_a text_b label domain [weight]`` (text_b may be empty; an
    ``embeddings`` last column, as in EasyNLP's ``dev_standard.tsv``, is ignored) or the raw
    ``review domain sentiment``.
    """

    name = "senti"
    labels = ("positive", "negative")
    domains = ("books", "dvd", "electronics", "kitchen")

    def split_file(self, data_dir: str, split: str) -> str:
        return os.path.join(data_dir, f"{split}.tsv")

    def read_examples(self, path: str, split: str) -> list[InputExample]:
        rows = self._rows(path)
        first = next(rows, None)
        if first is None:
            return []
        header = [h.strip().lower() for h in first[1]]
        if header[:3] == ["review", "domain", "sentiment"]:
            return self._collect(path, rows, lambda n, c: self._raw_row(path, split, n, c))
        if header[:5] != ["guid", "text_a", "text_b", "label", "domain"]:
            raise DataFormatError(path, first[0], "header",
                                  "expected 'guid text_a text_b label domain [weight]' or "
                                  f"'review domain sentiment', found {first[1]}")
        has_weight = len(header) > 5 and header[5] == "weight"
        ncols = len(header)

        def make(number: int, cols: list[str]) -> InputExample:
            check_columns(path, number, cols, ncols, " ".join(header))
            text_a = nonempty_text(path, number, "text_a", cols[1])
            text_b = cols[2] if cols[2].strip() else None
            label = self.check_label(path, number, cols[3].strip())
            domain = self.check_domain(path, number, cols[4].strip())
            weight = None
            if has_weight:
                try:
                    weight = finite_float(cols[5])
                except NonFiniteError as exc:
                    raise DataFormatError(path, number, "weight", str(exc)) from None
                except ValueError:
                    raise DataFormatError(path, number, "weight", f"not a number: {cols[5]!r}") from None
            guid = cols[0].strip() or f"{split}-{number}"
            return InputExample(guid, text_a, text_b, label, domain, weight)

        return self._collect(path, rows, make)

    def _raw_row(self, path: str, split: str, number: int, cols: list[str]) -> InputExample:
        check_columns(path, number, cols, 3, "review, domain, sentiment")
        text = nonempty_text(path, number, "review", cols[0])
        domain = self.check_domain(path, number, cols[1].strip())
        label = self.check_label(path, number, cols[2].strip())
        return InputExample(f"{split}-{number}", text, None, label, domain)

