"""EasyNLP's Meta-KD example scripts (examples/knowledge_distillation/metakd/*.py) over the toolkit's MFT/Meta-KD jobs.

    python generate_senti_data.py                      data/SENTI/{train,dev,test}.tsv (review domain sentiment)
    python extract_embeddings.py --bert_path M --input data/SENTI/train.tsv --output data/SENTI/train.embeddings.tsv
    python generate_meta_weights.py IN OUT books,dvd,electronics,kitchen   prototypical scores -> `weight` column
    python generate_dev_file.py --input data/SENTI/dev.tsv --output data/SENTI/dev_standard.tsv
    python -m oneflow.distributed.launch $DISTRIBUTED_ARGS meta_teacher_train.py --tables=... (EasyNLP flags)
    python -m oneflow.distributed.launch $DISTRIBUTED_ARGS meta_student_distill.py ... distill_stage=first|second
    python main_evaluate.py --mode evaluate ... pretrain_model_name_or_path=<student run> genre=books

The three training scripts read their ``--tables`` by ``--input_schema`` (``domain`` and, for sample
weights, ``weight`` columns), stage them for the jobs as a senti task folder beside the first table
(``<dir>/oneflow_metakd/<train>+<dev>/``: train.tsv, dev.tsv, weight.npy, OFRecords, the teacher dump,
shared by every step over the same tables) and call ``recipes.metakd`` (meta-teacher, two-stage student,
evaluation). See docs/easynlp.md.
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence

import numpy as np

from model_compress.data.processors import DataFormatError, SentiProcessor, get_processor, read_rows
from model_compress.easynlp import flags as udp_flags
from model_compress.easynlp.flags import (
    OneLineParser,
    UsageError,
    build_parser,
    check_choice,
    guarded,
    split_list,
)
from model_compress.easynlp.models import check_sequence_length, resolve_model
from model_compress.easynlp.schema import Table, make_spec, parse_schema, read_table, write_lines_atomic
from model_compress.finite import NonFiniteError, finite_float
from model_compress.recipes.common import find_vocab

SENTI_LABELS = SentiProcessor.labels
SENTI_DOMAINS = SentiProcessor.domains
RAW_HEADER = ("review", "domain", "sentiment")
TABLE_HEADER = ("guid", "text_a", "text_b", "label", "domain")


# ----------------------------------------------------------------------------------------------
# generate_senti_data.py


def read_review_file(path: str) -> list[str]:
    """The texts of a ``*.review`` file of the Amazon multi-domain data (lines between <review_text> tags)."""
    texts, current = [], None
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            tag = line.strip()
            if tag == "<review_text>":
                current = []
            elif tag == "</review_text>":
                if current is not None:
                    texts.append(" ".join(current).replace("\t", " ").strip())
                current = None
            elif current is not None and tag:
                current.append(tag)
    return [t for t in texts if t]


def _raw_reviews(source_dir: str) -> list[tuple[str, str, str]]:
    rows = []
    for folder in sorted(os.listdir(source_dir)):
        domain = folder.split("_")[0]
        if domain not in SENTI_DOMAINS:
            continue
        for label in SENTI_LABELS:
            path = os.path.join(source_dir, folder, f"{label}.review")
            if os.path.isfile(path):
                rows.extend((text, domain, label) for text in read_review_file(path))
    return rows


def _synthetic_reviews(rows_per_domain: int, seed: int) -> list[tuple[str, str, str]]:
    from model_compress.data.synthetic.generate import generate_domain
    from model_compress.data.synthetic.lexicon import POS

    rng = random.Random(f"easynlp-senti-{seed}")
    seen: set[str] = set()
    rows = []
    for domain in SENTI_DOMAINS:
        for item in generate_domain(domain, rows_per_domain, rng, "review", seen):
            rows.append((item.text, domain, "positive" if item.label == POS else "negative"))
    return rows


def stratified_split(rows: Sequence[tuple[str, str, str]], fraction: float, seed: int) -> tuple[list, list]:
    """(rest, held out): ``fraction`` of every (domain, label) group held out, after a seeded shuffle."""
    rng = random.Random(seed)
    shuffled = list(rows)
    rng.shuffle(shuffled)
    groups: dict[tuple[str, str], list] = {}
    for row in shuffled:
        groups.setdefault((row[1], row[2]), []).append(row)
    rest, held = [], []
    for key in sorted(groups):
        group = groups[key]
        n = max(1, round(len(group) * fraction)) if len(group) > 1 else 0
        held.extend(group[:n])
        rest.extend(group[n:])
    rng.shuffle(rest)
    rng.shuffle(held)
    return rest, held


def generate_senti_main(argv: Sequence[str] | None = None) -> None:
    parser = OneLineParser(prog="generate_senti_data.py",
                           description="data/SENTI/{train,dev,test}.tsv (review domain sentiment) from the Amazon "
                                       "multi-domain reviews in --source_dir, or from the project's generator when "
                                       "they are not there (nothing is downloaded here).")
    parser.add_argument("--source_dir", default="data/sorted_data_acl", help="the unpacked domain_sentiment_data")
    parser.add_argument("--output_dir", default="data/SENTI")
    parser.add_argument("--rows_per_domain", type=int, default=500, help="generated reviews per domain")
    parser.add_argument("--seed", type=int, default=11111)
    args = parser.parse_args(argv)

    def run() -> None:
        if os.path.isdir(args.source_dir):
            rows = _raw_reviews(args.source_dir)
            if not rows:
                raise UsageError("--source_dir", "holds no <domain>/{positive,negative}.review files", args.source_dir)
            origin = args.source_dir
        else:
            if args.rows_per_domain < 10:
                raise UsageError("--rows_per_domain", f"must be at least 10, got {args.rows_per_domain}")
            rows = _synthetic_reviews(args.rows_per_domain, args.seed)
            origin = f"generated ({args.source_dir} not found; the real data cannot be downloaded here)"
        rest, test = stratified_split(rows, 0.1, args.seed)
        train, dev = stratified_split(rest, 0.1, args.seed + 1)
        for name, part in (("train", train), ("dev", dev), ("test", test)):
            lines = ["\t".join(RAW_HEADER)] + ["\t".join(row) for row in part]
            write_lines_atomic(os.path.join(args.output_dir, f"{name}.tsv"), lines)
            counts = {d: sum(1 for r in part if r[1] == d) for d in SENTI_DOMAINS}
            print(f"{name}: {len(part)} rows ({', '.join(f'{d} {n}' for d, n in counts.items())})")
        print(f"[metakd] {args.output_dir}/{{train,dev,test}}.tsv from {origin}")

    guarded("generate_senti_data.py", run)


# ----------------------------------------------------------------------------------------------
# extract_embeddings.py, generate_meta_weights.py, generate_dev_file.py


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


# ----------------------------------------------------------------------------------------------
# the training scripts: EasyNLP flags -> a staged senti folder -> jobs.metakd


def _write_if_changed(path: str, lines: Sequence[str]) -> None:
    text = "".join(line + "\n" for line in lines)
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    write_lines_atomic(path, lines)


def stage_tables(args, need_weights: bool, vocab: str) -> tuple[str, dict[str, Table]]:
    """Read ``--tables`` (train, dev) by schema and stage them as the jobs' senti folder; returns (folder, tables).

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
    stems = "+".join(os.path.splitext(os.path.basename(p))[0] for p in tables[:2])
    folder = os.path.join(os.path.dirname(os.path.abspath(tables[0])), "oneflow_metakd", stems)
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


def _common_flags(args, folder: str, device: str) -> list[str]:
    return ["--task_name", "senti", "--data_dir", folder, "--seq_length", str(args.sequence_length),
            "--batch_size_per_device", str(args.micro_batch_size),
            "--eval_batch_size_per_device", str(args.micro_batch_size), "--num_epochs", str(args.epoch_num),
            "--learning_rate", str(args.learning_rate), "--seed", str(args.random_seed),
            "--weight_decay_rate", str(args.weight_decay), "--warmup_proportion", str(args.warmup_proportion),
            "--clip_grad_norm", str(args.max_grad_norm), "--device", device, f"--eager={args.eager}"]


def _parse(prog: str, argv: Sequence[str] | None, keys: Sequence[str], modes: Sequence[str]):
    args = build_parser(prog, f"EasyNLP's {prog} on OneFlow (Meta-KD example).").parse_args(argv)
    check_choice("--app_name", args.app_name, ("text_classify",))
    check_choice("--mode", args.mode, modes)
    return args, udp_flags.parse_user_defined_parameters(args.user_defined_parameters, keys)


def _device(args) -> str:
    """--worker_gpu as given; unset, a GPU when there is one (the examples are GPU scripts), else the CPU."""
    import oneflow as flow

    from model_compress.easynlp.app import choose_device

    if args.worker_gpu > 0:
        return choose_device(args.worker_gpu)
    return "cuda" if flow.cuda.is_available() else "cpu"


TEACHER_KEYS = ("pretrain_model_name_or_path", "use_sample_weights", "use_domain_loss", "domain_loss_weight")


def meta_teacher_train_main(argv: Sequence[str] | None = None) -> None:
    """meta_teacher_train.py: the meta-teacher (jobs.metakd.run_meta_teacher) on the staged tables."""
    from model_compress.cli import normalise_aliases
    from model_compress.recipes.metakd import meta_teacher_parser, run_meta_teacher

    def run() -> None:
        args, udp = _parse("meta_teacher_train.py", argv, TEACHER_KEYS, ("train", "evaluate"))
        if not args.checkpoint_dir:
            raise UsageError("--checkpoint_dir", "is required (where the meta-teacher goes)")
        weights = udp_flags.udp_bool(udp, "use_sample_weights", True)
        train = args.mode == "train"
        model = udp.get("pretrain_model_name_or_path", "default") if train else args.checkpoint_dir
        model_dir = resolve_model(model, "--user_defined_parameters pretrain_model_name_or_path" if train
                                  else "--checkpoint_dir")
        check_sequence_length(model_dir, args.sequence_length, "--sequence_length")
        folder, _ = stage_tables(args, weights and train, find_vocab(model_dir, None))
        job_flags = [*_common_flags(args, folder, _device(args)), "--model_load_dir", model_dir,
                 "--model_save_dir", args.checkpoint_dir,
                 "--eval_every_step_num", str(max(args.save_checkpoint_steps, 0)),
                 "--use_sample_weights", str(weights),
                 "--use_domain_loss", str(udp_flags.udp_bool(udp, "use_domain_loss", True)),
                 "--domain_loss_weight", str(udp_flags.udp_float(udp, "domain_loss_weight", 0.5, low=0.0)),
                 "--do_train", str(train)]
        run_meta_teacher(normalise_aliases(meta_teacher_parser().parse_args(job_flags)))

    guarded("meta_teacher_train.py", run)


STUDENT_KEYS = ("pretrain_model_name_or_path", "teacher_model_path", "domain_loss_weight", "distill_stage", "genre",
                "T", "student_num_hidden_layers", "use_sample_weights")


def _distill_flags(args, udp: dict[str, str], folder: str) -> list[str]:
    layers = udp.get("student_num_hidden_layers", "0")
    if not layers.isdigit():
        raise UsageError("--user_defined_parameters", f"student_num_hidden_layers={layers}: expected an integer >= 0")
    return [*_common_flags(args, folder, _device(args)), "--genre", udp.get("genre", "all"),
            "--temperature", str(udp_flags.udp_float(udp, "T", 2.0, low=1e-6)),
            "--domain_loss_weight", str(udp_flags.udp_float(udp, "domain_loss_weight", 0.5, low=0.0)),
            "--student_num_hidden_layers", layers,
            "--use_sample_weights", str(udp_flags.udp_bool(udp, "use_sample_weights", True))]


def meta_student_distill_main(argv: Sequence[str] | None = None) -> None:
    """meta_student_distill.py: stage ``first`` (intermediate layers) or ``second`` (soft labels) of the student."""
    from model_compress.cli import normalise_aliases
    from model_compress.recipes.metakd import distill_parser, run_meta_distill

    def run() -> None:
        args, udp = _parse("meta_student_distill.py", argv, STUDENT_KEYS, ("train",))
        flag = "--user_defined_parameters"
        stage = check_choice(f"{flag} distill_stage", udp.get("distill_stage", ""), ("first", "second"))
        if "teacher_model_path" not in udp:
            raise UsageError(flag, "teacher_model_path= is required (the meta_teacher_train.py --checkpoint_dir)")
        if not args.checkpoint_dir:
            raise UsageError("--checkpoint_dir", "is required (where this stage's student goes)")
        teacher = resolve_model(udp["teacher_model_path"], f"{flag} teacher_model_path")
        student = resolve_model(udp.get("pretrain_model_name_or_path", "default"),
                                f"{flag} pretrain_model_name_or_path")
        folder, _ = stage_tables(args, False, find_vocab(teacher, None))
        job_flags = [*_distill_flags(args, udp, folder), "--teacher_model", teacher, "--student_model", student,
                 "--distill_stage", stage, "--model_save_dir", args.checkpoint_dir,
                 "--eval_every_step_num", str(max(args.save_checkpoint_steps, 0))]
        run_meta_distill(normalise_aliases(distill_parser().parse_args(job_flags)))

    guarded("meta_student_distill.py", run)


def main_evaluate_main(argv: Sequence[str] | None = None) -> None:
    """main_evaluate.py: dev accuracy (per domain) of a student; results beside it (results_eval_<genre>.json)."""
    from model_compress.cli import normalise_aliases
    from model_compress.recipes.metakd import distill_parser, run_meta_distill

    def run() -> None:
        args, udp = _parse("main_evaluate.py", argv, ("pretrain_model_name_or_path", "genre"), ("evaluate",))
        given = udp.get("pretrain_model_name_or_path") or args.checkpoint_dir
        if not given:
            raise UsageError("--user_defined_parameters", "pretrain_model_name_or_path= (the student) is required")
        flag = ("--user_defined_parameters pretrain_model_name_or_path" if "pretrain_model_name_or_path" in udp
                else "--checkpoint_dir")
        snapshot = resolve_model(given, flag)
        folder, _ = stage_tables(args, False, find_vocab(snapshot, None))
        result_dir = given if os.path.isdir(given) and os.path.abspath(given) != os.path.abspath(snapshot) \
            else os.path.dirname(os.path.abspath(snapshot))
        job_flags = [*_distill_flags(args, udp, folder), "--student_model", snapshot, "--do_train", "False",
                 "--do_eval", "True", "--model_save_dir", result_dir]
        run_meta_distill(normalise_aliases(distill_parser().parse_args(job_flags)))

    guarded("main_evaluate.py", run)


__all__ = [
    "extract_embeddings_main",
    "generate_dev_file_main",
    "generate_meta_weights_main",
    "generate_senti_main",
    "main_evaluate_main",
    "meta_student_distill_main",
    "meta_teacher_train_main",
    "read_review_file",
    "stage_tables",
    "stratified_split",
]
