"""Safe unpacking of downloaded archives (tar.gz, zip): every member is checked before it is written
(no absolute paths, no ``..``, no links or files resolving outside the destination, no device files).
Standard library only."""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from typing import BinaryIO

ARCHIVE_FORMATS = ("tar.gz", "zip")


class DownloadError(RuntimeError):
    """A download, verification or unpacking step failed; the message is one line for the user."""


def _checked_relpath(name: str, archive: str) -> str:
    """The member path as a clean relative path, or DownloadError if it is absolute or has ``..``."""
    cleaned = name.replace("\\", "/")
    if cleaned.startswith("/") or (len(cleaned) > 1 and cleaned[1] == ":"):
        raise DownloadError(f"{archive}: refusing member with absolute path {name!r}")
    parts = [p for p in cleaned.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DownloadError(f"{archive}: refusing member with '..' in its path {name!r}")
    return "/".join(parts)


def _inside(root: str, path: str) -> bool:
    root = os.path.realpath(root)
    path = os.path.realpath(path)
    return path == root or path.startswith(root + os.sep)


def _target(root: str, rel: str, archive: str) -> str:
    """Absolute destination of ``rel`` after checking that its parent really lies inside ``root``."""
    target = os.path.join(root, *rel.split("/"))
    if not _inside(root, os.path.dirname(target)) or (os.path.islink(target) and not _inside(root, target)):
        raise DownloadError(f"{archive}: refusing member {rel!r}, it resolves outside the destination")
    return target


def _write_stream(source: BinaryIO, target: str, mode: int) -> None:
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.lexists(target):
        os.remove(target)
    with open(target, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    os.chmod(target, 0o644 | (0o111 if mode & 0o111 else 0))


def _make_symlink(root: str, rel: str, link: str, archive: str) -> None:
    if link.startswith("/") or os.path.isabs(link):
        raise DownloadError(f"{archive}: refusing symlink {rel!r} -> {link!r} (absolute target)")
    target = _target(root, rel, archive)
    resolved = os.path.normpath(os.path.join(os.path.dirname(target), link))
    escape = f"{archive}: refusing symlink {rel!r} -> {link!r}, it points outside the destination"
    if not _inside(root, resolved):
        raise DownloadError(escape)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    os.symlink(link, target)
    if not _inside(root, target):  # a chain of links can still escape: check the real result
        os.remove(target)
        raise DownloadError(escape)


def _selected(rel: str, prefix: str) -> str | None:
    """``rel`` relative to the wanted ``prefix`` folder, or None when it lies elsewhere."""
    if not prefix:
        return rel
    if rel == prefix:
        return ""
    return rel[len(prefix) + 1 :] if rel.startswith(prefix + "/") else None


def _extract_tar(archive: str, root: str, prefix: str) -> int:
    count = 0
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            rel = _selected(_checked_relpath(member.name, archive), prefix)
            if rel is None:
                continue
            if member.isdir():
                if rel:
                    os.makedirs(_target(root, rel, archive), exist_ok=True)
            elif member.issym():
                _make_symlink(root, rel, member.linkname, archive)
            elif member.islnk():
                source = _selected(_checked_relpath(member.linkname, archive), prefix)
                source_path = _target(root, source, archive) if source else None
                if not source_path or not os.path.isfile(source_path) or not _inside(root, source_path):
                    raise DownloadError(
                        f"{archive}: refusing hard link {member.name!r} -> {member.linkname!r}"
                    )
                with open(source_path, "rb") as src:
                    _write_stream(src, _target(root, rel, archive), member.mode)
            elif member.isfile():
                if not rel:
                    raise DownloadError(f"{archive}: the archive root {prefix!r} is a file, not a folder")
                extracted = tar.extractfile(member)
                assert extracted is not None
                with extracted:
                    _write_stream(extracted, _target(root, rel, archive), member.mode)
            else:
                raise DownloadError(f"{archive}: refusing special member {member.name!r} (device or fifo)")
            count += 1
    return count


def _extract_zip(archive: str, root: str, prefix: str) -> int:
    count = 0
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            rel = _selected(_checked_relpath(info.filename, archive), prefix)
            if rel is None:
                continue
            mode = info.external_attr >> 16
            if info.is_dir():
                if rel:
                    os.makedirs(_target(root, rel, archive), exist_ok=True)
            elif stat.S_ISLNK(mode):
                _make_symlink(root, rel, zf.read(info).decode("utf-8"), archive)
            else:
                if not rel:
                    raise DownloadError(f"{archive}: the archive root {prefix!r} is a file, not a folder")
                with zf.open(info) as extracted:
                    _write_stream(extracted, _target(root, rel, archive), mode)
            count += 1
    return count


def safe_unpack(archive: str, root: str, fmt: str, prefix: str = "") -> int:
    """Unpack ``archive`` (``tar.gz`` or ``zip``) into the existing directory ``root`` with checks.

    Only members under ``prefix`` (a folder inside the archive) are kept, re-rooted at ``root``.
    Returns the number of members written; raises DownloadError on the first unsafe member.
    """
    prefix = _checked_relpath(prefix, archive) if prefix else ""
    try:
        if fmt == "tar.gz":
            count = _extract_tar(archive, root, prefix)
        elif fmt == "zip":
            count = _extract_zip(archive, root, prefix)
        else:
            raise DownloadError(f"unsupported archive format {fmt!r}; expected one of {ARCHIVE_FORMATS}")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DownloadError(f"{archive}: not a valid {fmt} archive ({exc})") from None
    if count == 0:
        raise DownloadError(f"{archive}: nothing to unpack{f' under {prefix!r}' if prefix else ''}")
    return count


def detect_archive_format(path: str) -> str | None:
    """``"zip"`` or ``"tar.gz"`` (any tar tarfile reads) by content, None for anything else."""
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        return "tar.gz" if tarfile.is_tarfile(path) else None
    except OSError:
        return None


def single_top_dir(root: str) -> str:
    """``root`` itself, or its only entry when the archive wrapped everything in one folder."""
    entries = os.listdir(root)
    if len(entries) == 1:
        only = os.path.join(root, entries[0])
        if os.path.isdir(only) and not os.path.islink(only):
            return only
    return root

