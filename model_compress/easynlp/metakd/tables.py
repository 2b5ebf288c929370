"""The Meta-KD training scripts' ``--tables`` (train, dev), read by ``--input_schema`` and staged as the
recipe's senti task folder: ``<dir of the first table>/oneflow_metakd/<train>+<dev>/`` with train.tsv, dev.tsv,
weight.npy, the OFRecords and the teacher dump, shared by every step over the same tables."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from model_compress.easynlp.flags import UsageError, split_list
from model_compress.easynlp.metakd import SENTI_DOMAINS, SENTI_LABELS, TABLE_HEADER
from model_compress.easynlp.schema import Table, make_spec, parse_schema, read_table, write_lines_atomic


def _write_if_changed(path: str, lines: Sequence[str]) -> None:
    """Rewrite ``path`` only when its text changes, so the OFRecords built from it stay valid."""
    text = "".join(line + "\n" for line in lines)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    write_lines_atomic(path, lines)


def staged_folder(tables: Sequence[str]) -> str:
    """Where the tables ``train, dev`` are staged."""
    stems = "+".join(os.path.splitext(os.path.basename(p))[0] for p in tables[:2])
    return os.path.join(os.path.dirname(os.path.abspath(tables[0])), "oneflow_metakd", stems)


def stage_tables(args, need_weights: bool, vocab: str) -> tuple[str, dict[str, Table]]:
    """Read ``--tables`` (train, dev) by schema and stage them as the recipe's senti folder; (folder, tables).

    With a ``weight`` column the train split is built with those weights and weight.npy kept beside it,
    as preprocess.py does with the scores it computes.
    """
    from model_compress.recipes import mft
    from model_compress.recipes.common import load_task_data
    from model_compress.recipes.settings import DataSettings
    from model_compress.training import distributed

    tables = split_list("--tables", args.tables)
    if len(tables) < 2:
        raise UsageError("--tables", f"needs train.tsv,dev.tsv, got {args.tables!r}")
    labels = split_list("--label_enumerate_values", args.label_enumerate_values)
    if tuple(labels) != SENTI_LABELS:
        raise UsageError("--label_enumerate_values", f"{args.label_enumerate_values!r}: the Meta-KD example runs on "
                         f"the senti task, labels {','.join(SENTI_LABELS)}")
    columns = parse_schema(args.input_schema)
    names = [c.name for c in columns]
    if need_weights and "weight" not in names:
        raise UsageError("--input_schema", "use_sample_weights=True needs a weight column (generate_meta_weights.py)")
    spec = make_spec(columns, args.first_sequence, args.second_sequence, args.label_name or "label", labels,
                     domain_name="domain", weight_name="weight" if "weight" in names else None)
    read = {split: read_table(path, spec, skip_first_line=True) for split, path in zip(("train", "dev"), tables)}
    for table in read.values():
        for ex, line in zip(table.examples, table.lines):
            if ex.domain not in SENTI_DOMAINS:
                raise UsageError("--tables", f"domain {ex.domain!r} is not one of {','.join(SENTI_DOMAINS)}",
                                 table.path, line)
    folder = staged_folder(tables)
    if distributed.rank() == 0:
        os.makedirs(folder, exist_ok=True)
        for split, table in read.items():
            lines = ["\t".join((*TABLE_HEADER, "weight"))]
            lines += ["\t".join((ex.guid, ex.text_a, ex.text_b or "", ex.label, ex.domain, f"{ex.weight or 0.0:.7g}"))
                      for ex in table.examples]
            _write_if_changed(os.path.join(folder, f"{split}.tsv"), lines)
    distributed.barrier()
    if "weight" in names:
        scores = np.array([ex.weight for ex in read["train"].examples], dtype=np.float32)
        data = load_task_data(DataSettings("senti", folder, args.sequence_length), vocab, ("train",))
        data.split("train", with_domain=True, weights=scores)
        mft.keep_weights(folder, scores)
    return folder, read
