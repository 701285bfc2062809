"""Tests of prompttune.data: sources, the checksum table, mirror and (local-server) online fetches, verify."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import importlib
import json
import os
import re
import shutil
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from prompttune.data import (
    MANIFEST_NAME,
    MIRROR_ENV,
    fetch,
    known_relpaths,
    reference_checksums,
    sha256_file,
    source_for,
    sources,
    verify,
)
from prompttune.errors import PromptTuneError
from prompttune.tasks import TASKS, get_task

MIRROR = Path(os.environ.get(MIRROR_ENV) or Path(__file__).resolve().parents[1].parent / "shared" / "data")
# ``prompttune.data.fetch`` is the function; the module is reached by its import name.
fetch_module = importlib.import_module("prompttune.data.fetch")
CB_FILES = ["FewGLUE/CB/train.jsonl", "FewGLUE_32dev/CB/dev32.jsonl", "SuperGLUE/CB/val.jsonl"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No mirror from the environment and no proxy in front of the local test servers."""
    for name in (
        MIRROR_ENV,
        "http_proxy",
        "HTTP_PROXY",
        "https_proxy",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ):
        monkeypatch.delenv(name, raising=False)


def _files_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _parse_sha256sums(text: str) -> dict[str, str]:
    table = {}
    for line in text.splitlines():
        digest, path = line.split(maxsplit=1)
        table[path.strip().removeprefix("./")] = digest
    return table


# --- sources and the checksum table -----------------------------------------------------------------------


def test_checksum_table_equals_mirror_sha256sums() -> None:
    expected = _parse_sha256sums((MIRROR / "SHA256SUMS").read_text(encoding="utf-8"))
    assert len(expected) == 34
    assert reference_checksums() == expected


def test_sources_cover_the_table_and_match_official_urls() -> None:
    assert set(reference_checksums()) <= set(known_relpaths())
    assert len(known_relpaths()) == 16 + 8 + 24 + 3
    few = source_for("FewGLUE/WiC/unlabeled.jsonl")
    assert few.url == (
        "https://raw.githubusercontent.com/timoschick/fewglue/f52d9515de38cad663869c9e25b79107cda1d345"
        "/FewGLUE/WiC/unlabeled.jsonl"
    )
    assert few.zip_member is None
    dev32 = source_for("FewGLUE_32dev/ReCoRD/dev32.jsonl")
    assert dev32.url == (
        "https://raw.githubusercontent.com/THUDM/P-tuning/f4225d4d8003868b31ed659dfe9732a351ad42d9"
        "/FewGLUE_32dev/ReCoRD/dev32.jsonl"
    )
    record = source_for("SuperGLUE/ReCoRD/train.jsonl")
    assert (record.url, record.zip_member) == (
        "https://dl.fbaipublicfiles.com/glue/superglue/data/v2/ReCoRD.zip",
        "ReCoRD/train.jsonl",
    )
    sst = source_for("GLUE/SST-2/dev.tsv")
    assert (sst.url, sst.zip_member) == (
        "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip",
        "SST-2/dev.tsv",
    )


def test_a_new_task_joins_the_data_sources_by_declaring_its_files(tmp_path: Path, monkeypatch) -> None:
    """A task registered from outside the package (a user's plugin) gets its files' online sources from its
    declaration (``Task.files`` in a known release), and is fetched from a mirror like any other; the
    sources module names no task."""
    cb = get_task("CB")
    files = {"full_train": "SuperGLUE/Toy/train.jsonl", "val": "SuperGLUE/Toy/val.jsonl"}
    toy = dataclasses.replace(cb, name="Toy", files=files, sizes={name: cb.sizes[name] for name in files})
    monkeypatch.setitem(TASKS._items, "Toy", toy)
    assert {f"SuperGLUE/Toy/{f}" for f in ("train.jsonl", "val.jsonl", "test.jsonl")} <= set(known_relpaths())
    val = source_for("SuperGLUE/Toy/val.jsonl")
    assert (val.url, val.zip_member) == (f"{sources.BASE_URLS['SuperGLUE']}/Toy.zip", "Toy/val.jsonl")
    mirror = tmp_path / "mirror"
    (mirror / "SuperGLUE" / "Toy").mkdir(parents=True)
    shutil.copy(MIRROR / "SuperGLUE" / "CB" / "val.jsonl", mirror / "SuperGLUE" / "Toy" / "val.jsonl")
    manifest = fetch(["SuperGLUE/Toy/val.jsonl"], tmp_path / "data", mirror=mirror)
    assert manifest["SuperGLUE/Toy/val.jsonl"]["verified"] is False  # no reference checksum: recorded so
    assert (tmp_path / "data" / "SuperGLUE" / "Toy" / "val.jsonl").read_bytes() == (
        MIRROR / "SuperGLUE" / "CB" / "val.jsonl"
    ).read_bytes()
    text = Path(sources.__file__).read_text(encoding="utf-8")
    named = [name for name in TASKS.names() if re.search(rf"\b{re.escape(name)}\b", text)]
    assert not named, f"prompttune/data/sources.py names the tasks {named}"


@pytest.mark.parametrize("relpath", ["SuperGLUE/AX-b/val.jsonl", "FewGLUE/CB/dev32.jsonl", "../etc/passwd"])
def test_unknown_relpath_is_an_error(relpath: str, tmp_path: Path) -> None:
    with pytest.raises(PromptTuneError, match="unknown data file") as info:
        fetch([relpath], tmp_path, mirror=MIRROR)
    assert relpath in str(info.value)
    assert not any(tmp_path.iterdir())


# --- mirror ------------------------------------------------------------------------------------------------


def test_mirror_fetch_copies_verified_files_and_writes_manifest(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    table = reference_checksums()
    result = fetch(CB_FILES, dest, mirror=MIRROR)
    expected = {
        relpath: {
            "sha256": table[relpath],
            "verified": True,
            "origin": f"mirror:{MIRROR.resolve() / relpath}",
        }
        for relpath in CB_FILES
    }
    assert result == expected
    assert json.loads((dest / MANIFEST_NAME).read_text(encoding="utf-8")) == expected
    for relpath in CB_FILES:
        assert sha256_file(dest / relpath) == table[relpath]
        assert (dest / relpath).read_bytes() == (MIRROR / relpath).read_bytes()
    assert _files_under(dest) == sorted([MANIFEST_NAME, *CB_FILES])
    assert verify(dest, CB_FILES) == {relpath: table[relpath] for relpath in CB_FILES}


def test_mirror_from_env_merges_manifest_and_skips_present_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "data"
    fetch(CB_FILES[:1], dest, mirror=MIRROR)
    inode = (dest / CB_FILES[0]).stat().st_ino
    monkeypatch.setenv(MIRROR_ENV, str(MIRROR))
    result = fetch(CB_FILES, dest)
    assert sorted(result) == sorted(CB_FILES)
    assert json.loads((dest / MANIFEST_NAME).read_text(encoding="utf-8")) == result
    assert (dest / CB_FILES[0]).stat().st_ino == inode  # not copied again
    # A damaged destination file is replaced by a good copy.
    (dest / CB_FILES[1]).write_bytes(b"damaged\n")
    fetch(CB_FILES[1:2], dest)
    assert sha256_file(dest / CB_FILES[1]) == reference_checksums()[CB_FILES[1]]


def test_corrupted_mirror_file_is_rejected_and_not_installed(tmp_path: Path) -> None:
    relpath = "FewGLUE/RTE/train.jsonl"
    mirror = tmp_path / "mirror"
    (mirror / relpath).parent.mkdir(parents=True)
    data = bytearray((MIRROR / relpath).read_bytes())
    data[len(data) // 2] ^= 0x01
    (mirror / relpath).write_bytes(bytes(data))
    dest = tmp_path / "data"
    with pytest.raises(PromptTuneError) as info:
        fetch([relpath], dest, mirror=mirror)
    message = str(info.value)
    assert message.startswith(
        f"checksum mismatch for {relpath}: expected {reference_checksums()[relpath][:12]}…"
    )
    assert f"mirror:{mirror.resolve() / relpath}" in message
    assert not (dest / relpath).exists()
    assert _files_under(dest) == []  # no temp files, no manifest


def test_mirror_env_pointing_at_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-mirror"
    monkeypatch.setenv(MIRROR_ENV, str(missing))
    with pytest.raises(PromptTuneError) as info:
        fetch(CB_FILES, tmp_path / "data")
    assert str(info.value) == f"data mirror {missing} (from {MIRROR_ENV}) does not exist or is not a folder"


def test_file_absent_from_mirror_must_be_fetched_online(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    with pytest.raises(PromptTuneError) as info:
        fetch([CB_FILES[0], "SuperGLUE/BoolQ/train.jsonl"], dest, mirror=MIRROR)
    message = str(info.value)
    assert message.startswith("SuperGLUE/BoolQ/train.jsonl not in the data mirror")
    assert "must be fetched online" in message and "SOURCES.md" in message
    assert not dest.exists()  # checked before anything is copied


def test_verify_detects_corruption_and_missing_files(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    fetch(CB_FILES, dest, mirror=MIRROR)
    target = dest / CB_FILES[2]
    target.write_bytes(target.read_bytes().replace(b"entailment", b"neutral", 1))
    with pytest.raises(PromptTuneError, match=f"checksum mismatch for {CB_FILES[2]}: expected c6125587e960…"):
        verify(dest, CB_FILES)
    target.unlink()
    with pytest.raises(PromptTuneError, match="is missing; fetch it first"):
        verify(dest, CB_FILES)


# --- online, against a server on 127.0.0.1 -----------------------------------------------------------------


@dataclass
class _Server:
    root: Path
    url: str = ""
    requests: list[str] = field(default_factory=list)
    fail_first: int = 0
    fail_status: int = 503
    truncate_first: int = 0


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves a folder; can fail or truncate the first requests."""

    def log_message(self, *args: object) -> None:
        """Keep test output quiet."""

    def do_GET(self) -> None:
        state: _Server = self.server.state  # type: ignore[attr-defined]
        state.requests.append(self.path)
        if state.fail_first > 0:
            state.fail_first -= 1
            self.send_error(state.fail_status)
        elif state.truncate_first > 0:
            state.truncate_first -= 1
            body = (state.root / self.path.lstrip("/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
        else:
            super().do_GET()


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Server]:
    """A local HTTP server; ``sources.BASE_URLS`` point into its folder."""
    state = _Server(root=tmp_path / "www")
    state.root.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(state.root))
    )
    httpd.state = state  # type: ignore[attr-defined]
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    for folder in ("FewGLUE", "SuperGLUE"):
        monkeypatch.setitem(sources.BASE_URLS, folder, f"{state.url}/{folder}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _publish(server: _Server, relpath: str, data: bytes) -> None:
    (server.root / relpath).parent.mkdir(parents=True, exist_ok=True)
    (server.root / relpath).write_bytes(data)


def test_online_fetch_downloads_extracts_and_records(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table = reference_checksums()
    val = (MIRROR / "SuperGLUE/CB/val.jsonl").read_bytes()
    train = b'{"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}\n'
    (server.root / "SuperGLUE").mkdir()
    with zipfile.ZipFile(server.root / "SuperGLUE/CB.zip", "w") as zf:
        zf.writestr("CB/val.jsonl", val)
        zf.writestr("CB/train.jsonl", train)
    _publish(server, "FewGLUE/CB/train.jsonl", (MIRROR / "FewGLUE/CB/train.jsonl").read_bytes())
    wanted = ["SuperGLUE/CB/val.jsonl", "SuperGLUE/CB/train.jsonl", "FewGLUE/CB/train.jsonl"]
    dest = tmp_path / "data"

    result = fetch(wanted, dest, retries=0)

    zip_url = f"{server.url}/SuperGLUE/CB.zip"
    train_sha = sha256_file(dest / "SuperGLUE/CB/train.jsonl")
    assert result == {
        "SuperGLUE/CB/val.jsonl": {
            "sha256": table["SuperGLUE/CB/val.jsonl"],
            "verified": True,
            "origin": f"{zip_url}#CB/val.jsonl",
        },
        "SuperGLUE/CB/train.jsonl": {
            "sha256": train_sha,
            "verified": False,
            "origin": f"{zip_url}#CB/train.jsonl",
        },
        "FewGLUE/CB/train.jsonl": {
            "sha256": table["FewGLUE/CB/train.jsonl"],
            "verified": True,
            "origin": f"{server.url}/FewGLUE/CB/train.jsonl",
        },
    }
    assert json.loads((dest / MANIFEST_NAME).read_text(encoding="utf-8")) == result
    assert (dest / "SuperGLUE/CB/val.jsonl").read_bytes() == val
    assert (dest / "SuperGLUE/CB/train.jsonl").read_bytes() == train
    assert server.requests == ["/SuperGLUE/CB.zip", "/FewGLUE/CB/train.jsonl"]  # the zip is fetched once
    assert (dest / ".downloads/CB.zip").is_file()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warning: SuperGLUE/CB/train.jsonl has no reference checksum")
    assert "unverified" in err[0]
    # verify() falls back to the manifest's sha256 for files the table lacks; a re-fetch downloads nothing.
    assert verify(dest, wanted)["SuperGLUE/CB/train.jsonl"] == train_sha
    assert fetch(wanted, dest, retries=0) == result
    assert len(server.requests) == 2


def test_online_checksum_mismatch_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    relpath = "FewGLUE/CB/train.jsonl"
    _publish(server, relpath, (MIRROR / relpath).read_bytes() + b"\n")
    dest = tmp_path / "data"
    with pytest.raises(PromptTuneError) as info:
        fetch([relpath], dest, retries=0)
    assert str(info.value).startswith(f"checksum mismatch for {relpath}: expected e6f446e5f117…")
    assert str(info.value).endswith(f"({server.url}/{relpath})")
    assert _files_under(dest) == []


def test_transient_failures_are_retried_with_exponential_backoff(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    relpath = "FewGLUE/CB/train.jsonl"
    _publish(server, relpath, (MIRROR / relpath).read_bytes())
    sleeps: list[float] = []
    monkeypatch.setattr(fetch_module.time, "sleep", sleeps.append)
    server.fail_first, server.truncate_first = 2, 1  # 503, 503, truncated body, then success
    result = fetch([relpath], tmp_path / "data", retries=3, backoff_s=0.01)
    assert result[relpath]["verified"] is True
    assert server.requests == [f"/{relpath}"] * 4
    assert sleeps == pytest.approx([0.01, 0.02, 0.04])


def test_persistent_failure_names_url_and_mirror(server: _Server, tmp_path: Path) -> None:
    server.fail_first = 100
    dest = tmp_path / "data"
    with pytest.raises(PromptTuneError) as info:
        fetch(["SuperGLUE/WiC/train.jsonl"], dest, retries=2, backoff_s=0.01)
    url = f"{server.url}/SuperGLUE/WiC.zip"
    assert str(info.value) == (
        f"download of {url} failed after 3 attempts (HTTP 503 Service Unavailable); "
        f"without network access, set {MIRROR_ENV} to an offline mirror of the data"
    )
    assert len(server.requests) == 3
    assert _files_under(dest) == []


def test_not_found_is_not_retried(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(PromptTuneError) as info:
        fetch(["FewGLUE/BoolQ/unlabeled.jsonl"], tmp_path / "data", retries=3, backoff_s=0.01)
    assert (
        str(info.value)
        == f"download of {server.url}/FewGLUE/BoolQ/unlabeled.jsonl failed: HTTP 404 File not found"
    )
    assert len(server.requests) == 1


def test_corrupt_cached_archive_is_reported_and_removed(server: _Server, tmp_path: Path) -> None:
    dest = tmp_path / "data"
    (dest / ".downloads").mkdir(parents=True)
    shutil.copyfile(MIRROR / "SuperGLUE/CB/val.jsonl", dest / ".downloads/CB.zip")
    with pytest.raises(PromptTuneError, match=r"archive .*CB\.zip .* is corrupt"):
        fetch(["SuperGLUE/CB/val.jsonl"], dest)
    assert not (dest / ".downloads/CB.zip").exists()
    assert server.requests == []
