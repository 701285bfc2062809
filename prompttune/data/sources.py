"""Where each data file comes from online, and the project's table of reference checksums.

Files are named by their path relative to a data root (the layout of the offline mirror):
``FewGLUE/<Task>/{train,unlabeled}.jsonl``, ``FewGLUE_32dev/<Task>/dev32.jsonl``,
``SuperGLUE/<Task>/{train,val,test}.jsonl`` and ``GLUE/SST-2/{train,dev,test-labeled}.tsv``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from prompttune.errors import PromptTuneError

SUPERGLUE_TASKS: tuple[str, ...] = ("BoolQ", "CB", "COPA", "MultiRC", "ReCoRD", "RTE", "WiC", "WSC")

#: Base URL of each top-level folder; module-level so tests can point it at a local server.
BASE_URLS: dict[str, str] = {
    "FewGLUE": "https://raw.githubusercontent.com/timoschick/fewglue/f52d9515de38cad663869c9e25b79107cda1d345/FewGLUE",
    "FewGLUE_32dev": "https://raw.githubusercontent.com/THUDM/P-tuning/f4225d4d8003868b31ed659dfe9732a351ad42d9/FewGLUE_32dev",
    "SuperGLUE": "https://dl.fbaipublicfiles.com/glue/superglue/data/v2",
    "GLUE": "https://dl.fbaipublicfiles.com/glue/data",
    # The labelled SST-2 test set is not in the official zip (its test split is unlabelled).
    "GLUE-test-labeled": "https://raw.githubusercontent.com/eyalbd2/Reproducing-AutoPrompt/53e9e221b58e5ed882a56c9d8be838b895351165/glue_data",
}

_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64})\t(\S+)$")


@dataclass(frozen=True)
class Source:
    """One file's online origin: a plain ``url``, or member ``zip_member`` of the zip archive at ``url``."""

    relpath: str
    url: str
    zip_member: str | None = None


def known_relpaths() -> list[str]:
    """Every relative path this module knows a source for."""
    paths = [f"FewGLUE/{t}/{f}" for t in SUPERGLUE_TASKS for f in ("train.jsonl", "unlabeled.jsonl")]
    paths += [f"FewGLUE_32dev/{t}/dev32.jsonl" for t in SUPERGLUE_TASKS]
    paths += [
        f"SuperGLUE/{t}/{f}" for t in SUPERGLUE_TASKS for f in ("train.jsonl", "val.jsonl", "test.jsonl")
    ]
    paths += [f"GLUE/SST-2/{f}" for f in ("train.tsv", "dev.tsv", "test-labeled.tsv")]
    return paths


def source_for(relpath: str) -> Source:
    """The online source of ``relpath``; an unknown path raises a one-line ``PromptTuneError``."""
    if relpath not in known_relpaths():
        raise PromptTuneError(
            f"unknown data file {relpath!r}; expected FewGLUE/<Task>/{{train,unlabeled}}.jsonl, "
            f"FewGLUE_32dev/<Task>/dev32.jsonl, SuperGLUE/<Task>/{{train,val,test}}.jsonl or "
            f"GLUE/SST-2/{{train,dev,test-labeled}}.tsv with <Task> one of {', '.join(SUPERGLUE_TASKS)}"
        )
    folder, rest = relpath.split("/", 1)
    if folder in ("FewGLUE", "FewGLUE_32dev"):
        return Source(relpath, f"{BASE_URLS[folder]}/{rest}")
    if folder == "SuperGLUE":
        task = rest.split("/", 1)[0]
        return Source(relpath, f"{BASE_URLS['SuperGLUE']}/{task}.zip", zip_member=rest)
    if rest == "SST-2/test-labeled.tsv":
        return Source(relpath, f"{BASE_URLS['GLUE-test-labeled']}/{rest}")
    return Source(relpath, f"{BASE_URLS['GLUE']}/SST-2.zip", zip_member=rest)


def reference_checksums() -> dict[str, str]:
    """The project's checksum table (``checksums.tsv``: ``sha256<TAB>relpath``) as ``{relpath: sha256}``."""
    text = resources.files("prompttune.data").joinpath("checksums.tsv").read_text(encoding="utf-8")
    table: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = _CHECKSUM_LINE.match(line)
        if match is None or match.group(2) in table:
            raise PromptTuneError(
                f"prompttune/data/checksums.tsv:{lineno}: expected a unique '<sha256><TAB><relpath>' line"
            )
        table[match.group(2)] = match.group(1)
    return table
