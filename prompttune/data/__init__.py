"""Data files: their official sources, reference checksums, and a verified fetch into a data root."""

from prompttune.data.fetch import MANIFEST_NAME, MIRROR_ENV, fetch, sha256_file, verify
from prompttune.data.sources import Source, known_relpaths, reference_checksums, source_for

__all__ = [
    "MANIFEST_NAME",
    "MIRROR_ENV",
    "Source",
    "fetch",
    "known_relpaths",
    "reference_checksums",
    "sha256_file",
    "source_for",
    "verify",
]
