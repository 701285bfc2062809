"""Fetch data files into a data root, from an offline mirror or their official online sources.

Every file is streamed to a temporary file beside its destination, hashed, checked against the project's
checksum table (``checksums.tsv``) and only then renamed into place, so a corrupted or truncated file never
reaches its final path. ``dest/MANIFEST.json`` records each file's sha256, whether it was verified against
the table, and where it came from.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from prompttune.data.sources import Source, reference_checksums, source_for
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_write_json, umask

MIRROR_ENV = "PROMPTTUNE_DATA_MIRROR"
MANIFEST_NAME = "MANIFEST.json"
DOWNLOADS_DIR = ".downloads"
_CHUNK = 1 << 20
_TIMEOUT_S = 60.0
_TRANSIENT_HTTP = frozenset({408, 425, 429, 500, 502, 503, 504})


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mismatch(relpath: str, expected: str, got: str, origin: str) -> PromptTuneError:
    return PromptTuneError(
        f"checksum mismatch for {relpath}: expected {expected[:12]}…, got {got[:12]}… ({origin})"
    )


def _install(
    src: IO[bytes], final: Path, relpath: str, expected: str | None, origin: str, size: int | None = None
) -> str:
    """Stream ``src`` to a temporary file beside ``final``, check its size and sha256, then rename it into
    place; return the sha256. On any failure the temporary file is removed and ``final`` is untouched."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    try:
        digest = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size is not None and written != size:
            raise ConnectionError(f"connection closed after {written} of {size} bytes")
        got = digest.hexdigest()
        if expected is not None and got != expected:
            raise _mismatch(relpath, expected, got, origin)
        os.chmod(tmp, 0o666 & ~umask())
        os.replace(tmp, final)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return got


def _download(
    url: str, final: Path, relpath: str, expected: str | None, origin: str, retries: int, backoff_s: float
) -> str:
    """Download ``url`` into ``final`` via ``_install``, retrying network errors, truncated bodies and
    transient HTTP statuses up to ``retries`` more times with exponential back-off; return the sha256."""
    if retries < 0:
        raise ValueError("retries must be >= 0")
    for attempt in range(retries + 1):
        try:
            with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                length = response.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else None
                return _install(response, final, relpath, expected, origin, size)
        except urllib.error.HTTPError as exc:
            if exc.code not in _TRANSIENT_HTTP:
                raise PromptTuneError(f"download of {url} failed: HTTP {exc.code} {exc.reason}") from exc
            reason = f"HTTP {exc.code} {exc.reason}"
        except (OSError, http.client.HTTPException) as exc:
            reason = str(getattr(exc, "reason", exc)) or type(exc).__name__
        if attempt < retries:
            time.sleep(backoff_s * 2**attempt)
    raise PromptTuneError(
        f"download of {url} failed after {retries + 1} attempts ({reason}); "
        f"without network access, set {MIRROR_ENV} to an offline mirror of the data"
    )


def _fetch_zip_member(
    source: Source, dest: Path, expected: str | None, origin: str, retries: int, backoff_s: float
) -> str:
    """Extract ``source.zip_member`` into ``dest/<relpath>``, downloading the archive into
    ``dest/.downloads/`` first unless an earlier fetch left it there."""
    assert source.zip_member is not None
    archive = dest / DOWNLOADS_DIR / source.url.rsplit("/", 1)[-1]
    if not archive.is_file():
        _download(source.url, archive, archive.name, None, source.url, retries, backoff_s)
    try:
        with zipfile.ZipFile(archive) as zf:
            if source.zip_member not in zf.namelist():
                raise PromptTuneError(
                    f"archive {archive} (from {source.url}) has no member {source.zip_member}"
                )
            with zf.open(source.zip_member) as member:
                return _install(member, dest / source.relpath, source.relpath, expected, origin)
    except zipfile.BadZipFile as exc:
        archive.unlink(missing_ok=True)
        raise PromptTuneError(
            f"archive {archive} (from {source.url}) is corrupt ({exc}); it was deleted, run the fetch again"
        ) from exc


def _resolve_mirror(mirror: Path | None) -> Path | None:
    """The mirror folder to use: ``mirror``, else ``$PROMPTTUNE_DATA_MIRROR``, else none."""
    if mirror is None:
        env = os.environ.get(MIRROR_ENV)
        if not env:
            return None
        if not Path(env).is_dir():
            raise PromptTuneError(f"data mirror {env} (from {MIRROR_ENV}) does not exist or is not a folder")
        return Path(env).resolve()
    if not Path(mirror).is_dir():
        raise PromptTuneError(f"data mirror {mirror} does not exist or is not a folder")
    return Path(mirror).resolve()


def _read_manifest(dest: Path) -> dict[str, dict[str, Any]]:
    path = dest / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PromptTuneError(f"{path}: not valid JSON ({exc}); delete it and fetch again") from exc
    if not isinstance(manifest, dict) or not all(
        isinstance(entry, dict) and isinstance(entry.get("sha256"), str) for entry in manifest.values()
    ):
        raise PromptTuneError(
            f"{path}: expected {{relpath: {{sha256, verified, origin}}}}; delete it and fetch again"
        )
    return manifest


def fetch(
    relpaths: Iterable[str],
    dest: Path,
    *,
    mirror: Path | None = None,
    retries: int = 3,
    backoff_s: float = 1.0,
) -> dict[str, dict[str, Any]]:
    """Put each of ``relpaths`` at ``dest/<relpath>``, verified, and record it in ``dest/MANIFEST.json``.

    Files come from ``mirror`` (default ``$PROMPTTUNE_DATA_MIRROR``) when one is given, else from their
    official sources (``retries`` extra attempts per download, sleeping ``backoff_s * 2**attempt``). A file
    already at its destination with its reference checksum is kept. A file without a table checksum is
    recorded with ``verified: false`` and a warning on stderr. Returns the whole merged manifest.
    """
    dest = Path(dest)
    sources = {relpath: source_for(relpath) for relpath in dict.fromkeys(relpaths)}
    mirror_root = _resolve_mirror(mirror)
    if mirror_root is not None:
        missing = [relpath for relpath in sources if not (mirror_root / relpath).is_file()]
        if missing:
            raise PromptTuneError(
                f"{', '.join(missing)} not in the data mirror {mirror_root}: must be fetched online "
                f"(without a mirror; the mirror's SOURCES.md lists what is not mirrored)"
            )
    table = reference_checksums()
    manifest = _read_manifest(dest)
    before = dict(manifest)
    try:
        for relpath, source in sources.items():
            expected = table.get(relpath)
            previous = manifest.get(relpath)
            if mirror_root is not None:
                origin = f"mirror:{mirror_root / relpath}"
            elif source.zip_member is not None:
                origin = f"{source.url}#{source.zip_member}"
            else:
                origin = source.url
            reference = expected or (previous or {}).get("sha256")
            final = dest / relpath
            if reference is not None and final.is_file() and sha256_file(final) == reference:
                if previous is not None and previous["sha256"] == reference:
                    origin = previous.get("origin", origin)
                manifest[relpath] = {"sha256": reference, "verified": expected is not None, "origin": origin}
                continue
            if mirror_root is not None:
                with open(mirror_root / relpath, "rb") as src:
                    got = _install(src, final, relpath, expected, origin)
            elif source.zip_member is not None:
                got = _fetch_zip_member(source, dest, expected, origin, retries, backoff_s)
            else:
                got = _download(source.url, final, relpath, expected, origin, retries, backoff_s)
            if expected is None:
                print(
                    f"warning: {relpath} has no reference checksum in prompttune/data/checksums.tsv; "
                    f"recorded its sha256 {got[:12]}… as unverified ({origin})",
                    file=sys.stderr,
                )
            manifest[relpath] = {"sha256": got, "verified": expected is not None, "origin": origin}
    finally:
        manifest = dict(sorted(manifest.items()))
        if manifest != before:
            atomic_write_json(dest / MANIFEST_NAME, manifest)
    return manifest


def verify(dest: Path, relpaths: Iterable[str]) -> dict[str, str]:
    """Re-hash ``dest/<relpath>`` for each path and compare with the checksum table (or, for files the table
    lacks, the sha256 that ``MANIFEST.json`` recorded); a missing or mismatching file raises. Returns
    ``{relpath: sha256}``."""
    dest = Path(dest)
    table = reference_checksums()
    manifest = _read_manifest(dest)
    hashes: dict[str, str] = {}
    for relpath in dict.fromkeys(relpaths):
        path = dest / relpath
        if not path.is_file():
            raise PromptTuneError(f"data file {path} is missing; fetch it first")
        expected = table.get(relpath) or manifest.get(relpath, {}).get("sha256")
        if expected is None:
            raise PromptTuneError(
                f"{relpath}: no reference checksum in checksums.tsv or {dest / MANIFEST_NAME}; fetch it first"
            )
        got = sha256_file(path)
        if got != expected:
            raise _mismatch(relpath, expected, got, str(path))
        hashes[relpath] = got
    return hashes
