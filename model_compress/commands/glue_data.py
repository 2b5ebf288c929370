"""GLUE data: download the task archives and build their OFRecord splits (the originals'
``run_download_glue_data.sh`` and ``glue_process.sh``; docs/scripts.md).

    python -m model_compress.commands.glue_data download [--data_dir data/glue_data] [--tasks all|CoLA,SST-2,...]
        [--from_dir DIR] [--force] [--manifest PATH] [--timeout S]
    python -m model_compress.commands.glue_data process [--data_dir data/glue_data] [--tasks all|...]
        [--seq_length 128] [--model_load_dir default] [--vocab_file FILE] [--resave_ofrecord]

Download: each archive named in ``models/glue_manifest.json`` is fetched into ``DATA_DIR/.downloads/``
(an interrupted download resumes from where it stopped), its sha256 checked when the manifest pins one,
unpacked with every member checked (``modeling.archive``) into a hidden folder beside ``DATA_DIR/TASK``,
verified (the expected files are there and the task's processor reads every row) and only then renamed
into place. A task folder already present is kept (``--force`` replaces it; the shipped synthetic SST-2
lives at ``data/glue_data/SST-2``). Any failure, offline included, is one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.parse
from typing import Any

from model_compress.cli import finite_number, user_errors
from model_compress.errors import RecipeError
from model_compress.files import sha256_file
from model_compress.modeling.archive import ARCHIVE_FORMATS, DownloadError, safe_unpack, single_top_dir
from model_compress.modeling.checkpoint.atomic import install_dir
from model_compress.modeling.download import REPO_ROOT, fetch, is_verified_sha256
from model_compress.recipes import glue_tasks

DEFAULT_MANIFEST = os.path.join(REPO_ROOT, "models", "glue_manifest.json")
CACHE = ".downloads"


def load_glue_manifest(path: str | None = None) -> dict[str, dict[str, Any]]:
    """The GLUE archives by task name (``{"tasks": {TASK: entry}}``); one-line DownloadError when malformed."""
    path = path or DEFAULT_MANIFEST
    try:
        with open(path, encoding="utf-8") as f:
            tasks = json.load(f).get("tasks")
    except (OSError, ValueError, AttributeError) as exc:
        raise DownloadError(f"GLUE manifest {path} cannot be read ({exc})") from None
    if not isinstance(tasks, dict):
        raise DownloadError(f"GLUE manifest {path} has no 'tasks' object")
    for name, entry in tasks.items():
        if entry.get("direct", True) and (not entry.get("url") or entry.get("format") not in ARCHIVE_FORMATS
                                          or not entry.get("expect")):
            raise DownloadError(f"GLUE manifest {path}: task {name!r} needs url, format {ARCHIVE_FORMATS} and expect")
    return tasks


def select_tasks(spec: str, known: list[str]) -> list[str]:
    """``all`` or a comma list of task names (any case; the originals' ``SST`` too) -> table spellings."""
    if spec.strip().lower() == "all":
        return list(known)
    chosen = []
    for name in (n for n in spec.split(",") if n.strip()):
        key = glue_tasks.task_key(name)
        if key is None or key not in known:
            raise DownloadError(f"--tasks: unknown or unsupported GLUE task {name.strip()!r}; "
                                f"known: {', '.join(known)}")
        chosen.append(key)
    return chosen


def _archive_name(entry: dict[str, Any]) -> str:
    return os.path.basename(urllib.parse.urlsplit(entry["url"]).path)


def _task_dir(root: str, expect: list[str]) -> str | None:
    """The folder of the unpacked archive that holds the expected files (the archive's root or one folder)."""
    top = single_top_dir(root)
    candidates = [top, root] + [os.path.join(root, n) for n in sorted(os.listdir(root))
                                if not n.startswith((".", "__MACOSX")) and os.path.isdir(os.path.join(root, n))]
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, name)) for name in expect):
            return folder
    return None


def verify_task_dir(task: str, folder: str) -> dict[str, int]:
    """Rows per split read through the task's processor (raises its one-line errors); counts that differ
    from the originals' table are reported, not refused (GLUE's releases differ by a few rows)."""
    from model_compress.data.processors import get_processor

    processor = get_processor(task)
    rows = {split: len(processor.get_examples(folder, split)) for split in ("train", "dev")}
    counts = glue_tasks.GLUE_TASKS[task]
    for split, expected in (("train", counts.train), ("dev", counts.dev)):
        if rows[split] != expected:
            print(f"[glue] note: {task} {split} has {rows[split]} rows, the originals' table says {expected}",
                  file=sys.stderr)
    return rows


def _fetch_archive(task: str, entry: dict[str, Any], cache: str, timeout: float) -> str:
    """The archive in the download cache, fetched (or resumed) when not complete there."""
    done = os.path.join(cache, _archive_name(entry))
    if os.path.isfile(done):
        return done
    os.makedirs(cache, exist_ok=True)
    part = done + ".part"
    url = entry["url"]
    try:
        fetch(url, part, timeout=timeout, progress=True, resume=True)
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"cannot download GLUE {task}: {url} answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc or "timed out"
        host = urllib.parse.urlsplit(url).netloc
        if os.path.isfile(part) and not os.path.getsize(part):
            os.remove(part)
        if not os.listdir(cache):
            os.rmdir(cache)
        raise DownloadError(
            f"cannot download GLUE {task}: {host} is unreachable ({reason}); fetch {url} on a machine with "
            f"internet access and rerun with --from_dir DIR (the folder holding {_archive_name(entry)})"
        ) from None
    os.replace(part, done)
    return done


def download_task(task: str, entry: dict[str, Any], data_dir: str, from_dir: str | None = None,
                  force: bool = False, timeout: float = 30.0) -> str:
    """Fetch, verify and install one GLUE task at ``data_dir/task``; return that folder."""
    dest = os.path.join(data_dir, task)
    if os.path.isdir(dest) and os.listdir(dest) and not force:
        what = "the shipped synthetic set" if glue_tasks.is_shipped(task, dest) else "already there"
        print(f"[glue] {task}: kept {dest} ({what}; --force replaces it)")
        return dest
    if not entry.get("direct", True):
        raise DownloadError(f"GLUE {task} cannot be downloaded automatically: {entry.get('note', '')}")
    if from_dir is not None:
        archive = os.path.join(from_dir, _archive_name(entry))
        if not os.path.isfile(archive):
            raise DownloadError(f"--from_dir {from_dir}: {_archive_name(entry)} (GLUE {task}) is not there")
    else:
        archive = _fetch_archive(task, entry, os.path.join(data_dir, CACHE), timeout)
    digest = sha256_file(archive)
    expected = entry.get("sha256")
    if is_verified_sha256(expected) and digest.lower() != expected.lower():
        raise DownloadError(f"GLUE {task}: sha256 mismatch for {archive} (got {digest}, manifest says {expected}); "
                            f"refusing it (delete it to download again)")
    os.makedirs(data_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{task}.download-", dir=data_dir)
    try:
        safe_unpack(archive, work, entry["format"])
        folder = _task_dir(work, entry["expect"])
        if folder is None:
            raise DownloadError(f"GLUE {task}: {archive} does not hold {', '.join(entry['expect'])} "
                                f"(at its top or in one folder); refusing it")
        rows = verify_task_dir(task, folder)
        install_dir(folder, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if from_dir is None:
        os.remove(archive)
    pinned = "pinned" if is_verified_sha256(expected) else "not pinned in the manifest; contents verified"
    print(f"[glue] {task}: {rows['train']} train / {rows['dev']} dev rows in {dest} (sha256 {digest}, {pinned})")
    return dest


def process_task(task: str, folder: str, seq_length: int, model_load_dir: str, vocab_file: str | None,
                 resave: bool) -> None:
    """Build (or reuse) the train and dev OFRecord splits of one task under ``folder/ofrecord``."""
    from model_compress.modeling.resolve import resolve_model
    from model_compress.recipes.common import find_vocab, load_task_data
    from model_compress.recipes.settings import DataSettings

    model_dir = resolve_model(model_load_dir)
    vocab = find_vocab(model_dir, vocab_file)
    settings = DataSettings(task_name=task, data_dir=folder, seq_length=seq_length, resave_ofrecord=resave)
    data = load_task_data(settings, vocab, ("train", "dev"))
    for split in ("train", "dev"):
        print(f"[glue] {task}: {split} -> {data.split(split)} ({len(data.examples[split])} rows, seq {seq_length})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Download GLUE tasks, or build their OFRecord splits.",
                                     allow_abbrev=False)
    sub = parser.add_subparsers(dest="command", required=True)
    down = sub.add_parser("download", help="fetch, verify and unpack GLUE task archives")
    down.add_argument("--from_dir", default=None, help="take the archives from this folder instead of the network")
    down.add_argument("--force", action="store_true", help="replace task folders that are already there")
    down.add_argument("--manifest", default=None, help=f"GLUE manifest json (default {DEFAULT_MANIFEST})")
    down.add_argument("--timeout", type=finite_number, default=30.0, help="network timeout in seconds")
    proc = sub.add_parser("process", help="build the train/dev OFRecord splits of downloaded tasks")
    proc.add_argument("--seq_length", type=int, default=int(glue_tasks.GLUE_SEQ_LENGTH))
    proc.add_argument("--model_load_dir", default="default", help="model whose vocab tokenises (default model)")
    proc.add_argument("--vocab_file", default=None, help="BERT vocab.txt (default: the model's own)")
    proc.add_argument("--resave_ofrecord", action="store_true", help="rebuild splits that are already there")
    for p in (down, proc):
        p.add_argument("--data_dir", default="data/glue_data", help="folder of the task folders")
        p.add_argument("--tasks", default="all", help="all, or a comma list such as CoLA,SST-2,RTE")
    return parser


@user_errors
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "download":
            manifest = load_glue_manifest(args.manifest)
            every = args.tasks.strip().lower() == "all"
            for task in select_tasks(args.tasks, [t for t in manifest if t in glue_tasks.GLUE_TASKS]):
                if every and not manifest[task].get("direct", True):
                    print(f"[glue] {task}: skipped, {manifest[task].get('note', 'no archive')}")
                    continue
                download_task(task, manifest[task], args.data_dir, args.from_dir, args.force, args.timeout)
            return
        tasks = select_tasks(args.tasks, list(glue_tasks.GLUE_TASKS))
        present = [t for t in tasks if os.path.isdir(os.path.join(args.data_dir, t))]
        if not present:
            raise RecipeError(f"--data_dir {args.data_dir} holds none of {', '.join(tasks)} "
                              f"(bash run_scripts/run_download_glue_data.sh fetches them)")
        for task in present:
            process_task(task, os.path.join(args.data_dir, task), args.seq_length, args.model_load_dir,
                         args.vocab_file, args.resave_ofrecord)
    except DownloadError as exc:
        raise RecipeError(str(exc)) from None


if __name__ == "__main__":
    main()
