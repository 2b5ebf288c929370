"""extract_embeddings.py, generate_meta_weights.py and generate_dev_file.py: each row's embedding, its
prototypical score (the `weight` column) and the dev table in the training tables' layout."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from model_compress.data.processors import DataFormatError, SentiProcessor, get_processor, read_rows
from model_compress.easynlp.flags import OneLineParser, UsageError, guarded, split_list
from model_compress.easynlp.metakd import TABLE_HEADER
from model_compress.easynlp.models import check_sequence_length, resolve_model
from model_compress.easynlp.schema import write_lines_atomic
from model_compress.finite import NonFiniteError, finite_float


def _read_senti(path: str, flag: str, task_name: str = "senti"):
    try:
        return get_processor(task_name).read_examples(path, "train")
    except DataFormatError as exc:
        raise UsageError(flag, exc.reason if exc.field is None else f"field '{exc.field}': {exc.reason}",
                         exc.path, exc.line) from None
    except FileNotFoundError:
        raise UsageError(flag, "file not found", path) from None


def extract_embeddings_main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineParser(prog="extract_embeddings.py",
                           description="Mean-pooled last-layer embedding of every row (the MFT embedder).")
    parser.add_argument("--bert_path", required=True, help="model directory, 'default' or an EasyNLP model name")
    parser.add_argument("--input", required=True, help="senti table (review domain sentiment, or guid text_a ...)")
    parser.add_argument("--output", required=True, help="tsv: guid text_a text_b label domain embeddings")
    parser.add_argument("--task_name", default="senti")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--gpu", type=int, default=0, help="GPU index (the CPU is used when there is no GPU)")
    args = parser.parse_args(argv)

    def run() -> None:
        from model_compress.data.tokenization import FullTokenizer
        from model_compress.easynlp.app import choose_device
        from model_compress.recipes.common import TaskData, find_vocab
        from model_compress.recipes.mft import embed_examples

        if args.task_name != "senti":
            raise UsageError("--task_name", f"{args.task_name!r}: the Meta-KD example runs on senti")
        model_dir = resolve_model(args.bert_path, "--bert_path")
        check_sequence_length(model_dir, args.max_seq_length, "--max_seq_length")
        examples = _read_senti(args.input, "--input")
        device = choose_device(1)
        if device == "cuda":
            os.environ.setdefault("CUDA_VISIBLE_DEVICES", str(args.gpu))
        data = TaskData(SentiProcessor(), FullTokenizer(find_vocab(model_dir, None)), os.path.dirname(args.input),
                        args.max_seq_length, False, {"train": examples})
        out = embed_examples(model_dir, data, "train", args.batch_size, device, eager=False)
        lines = ["\t".join((*TABLE_HEADER, "embeddings"))]
        for ex, vector in zip(examples, out["embeddings"]):
            lines.append("\t".join((ex.guid, ex.text_a, ex.text_b or "", ex.label, ex.domain,
                                    " ".join(f"{v:.6g}" for v in vector))))
        write_lines_atomic(args.output, lines)
        print(f"[metakd] {len(examples)} embeddings ({out['embeddings'].shape[1]} wide, {model_dir}) in {args.output}")

    guarded("extract_embeddings.py", run)


def read_embeddings_table(path: str, domains: Sequence[str]) -> tuple[list[list[str]], np.ndarray]:
    """Rows (first five fields) and [N, H] embeddings of an extract_embeddings.py table."""
    flag = "input"
    if not os.path.isfile(path):
        raise UsageError(flag, "file not found", path)
    rows, vectors, width = [], [], None
    try:
        for line, cols in read_rows(path):
            if line == 1 and cols[0] == "guid":
                continue
            if len(cols) != 6:
                raise UsageError(flag, f"expected 6 tab-separated fields ({' '.join(TABLE_HEADER)} embeddings), "
                                 f"found {len(cols)}", path, line)
            if cols[4] not in domains:
                raise UsageError("domains", f"domain {cols[4]!r} is not one of {','.join(domains)}", path, line)
            try:
                vector = [finite_float(v) for v in cols[5].split()]
            except NonFiniteError as exc:
                raise UsageError(flag, f"the embeddings field: {exc}", path, line) from None
            except ValueError:
                raise UsageError(flag, "the embeddings field is not space separated numbers", path, line) from None
            if width is not None and len(vector) != width:
                raise UsageError(flag, f"{len(vector)} embedding values, earlier rows have {width}", path, line)
            width = len(vector)
            rows.append(cols[:5])
            vectors.append(vector)
    except DataFormatError as exc:
        raise UsageError(flag, exc.reason, path, exc.line) from None
    if not rows:
        raise UsageError(flag, "has no rows", path)
    return rows, np.asarray(vectors, dtype=np.float32)


def generate_meta_weights_main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineParser(prog="generate_meta_weights.py",
                           description="Prototypical score of every row (the library's MFT score: cosine to its "
                                       "domain+class centroid and to the other domains' class centroids).")
    parser.add_argument("input", help="extract_embeddings.py output")
    parser.add_argument("output", help="tsv: guid text_a text_b label domain weight")
    parser.add_argument("domains", help="comma separated, e.g. books,dvd,electronics,kitchen")
    args = parser.parse_args(argv)

    def run() -> None:
        from model_compress.distill.meta import prototypical_scores
        from model_compress.recipes.mft import score_table

        domains = split_list("domains", args.domains)
        rows, vectors = read_embeddings_table(args.input, domains)
        labels = sorted({r[3] for r in rows})
        domain_ids = np.array([domains.index(r[4]) for r in rows])
        scores = prototypical_scores(vectors, domain_ids, np.array([labels.index(r[3]) for r in rows]))
        lines = ["\t".join((*TABLE_HEADER, "weight"))] + ["\t".join((*r, f"{s:.6g}")) for r, s in zip(rows, scores)]
        write_lines_atomic(args.output, lines)
        print(score_table(scores, domain_ids, domains))
        print(f"[metakd] weights of {len(rows)} rows in {args.output}")

    guarded("generate_meta_weights.py", run)


def generate_dev_file_main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineParser(prog="generate_dev_file.py",
                           description="The dev table in the training tables' layout (guid text_a text_b label domain "
                                       "embeddings, the last column 0).")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    def run() -> None:
        examples = _read_senti(args.input, "--input")
        stem = os.path.splitext(os.path.basename(args.input))[0]
        lines = ["\t".join((*TABLE_HEADER, "embeddings"))]
        for i, ex in enumerate(examples):
            lines.append("\t".join((f"{stem}-{i:05d}", ex.text_a, ex.text_b or "", ex.label, ex.domain, "0")))
        write_lines_atomic(args.output, lines)
        print(f"[metakd] {len(examples)} dev rows in {args.output}")

    guarded("generate_dev_file.py", run)
