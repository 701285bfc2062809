"""Where each data file comes from online, and the project's table of reference checksums.

Files are named by their path relative to a data root (the layout of the offline mirror):
``<release>/<Task>/<file>``. The registered tasks say which release folders hold their files
(``Task.files``, e.g. ``FewGLUE/<Task>/train.jsonl``); this module knows each release: the files it ships per
task and where it is published. So a task joins the data sources by declaring its files, and this module
names no task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources

from prompttune.errors import PromptTuneError
from prompttune.tasks import TASKS

#: Base URL of each release; module-level so tests can point it at a local server.
BASE_URLS: dict[str, str] = {
    "FewGLUE": "https://raw.githubusercontent.com/timoschick/fewglue/f52d9515de38cad663869c9e25b79107cda1d345/FewGLUE",
    "FewGLUE_32dev": "https://raw.githubusercontent.com/THUDM/P-tuning/f4225d4d8003868b31ed659dfe9732a351ad42d9/FewGLUE_32dev",
    "SuperGLUE": "https://dl.fbaipublicfiles.com/glue/superglue/data/v2",
    "GLUE": "https://dl.fbaipublicfiles.com/glue/data",
    # GLUE's labelled test files are not in the official zips (their test splits are unlabelled).
    "GLUE-test-labeled": "https://raw.githubusercontent.com/eyalbd2/Reproducing-AutoPrompt/53e9e221b58e5ed882a56c9d8be838b895351165/glue_data",
}

_CHECKSUM_LINE = re.compile(r"^([0-9a-f]{64})\t(\S+)$")


@dataclass(frozen=True)
class Release:
    """A published dataset release: the files it ships in each task's folder; ``zipped``: one zip per
    task (``<Task>.zip`` holding ``<Task>/<file>``) instead of plain files; ``elsewhere``: files of the
    layout published at another base URL (a key of ``BASE_URLS``)."""

    files: tuple[str, ...]
    zipped: bool
    elsewhere: dict[str, str] = field(default_factory=dict)


RELEASES: dict[str, Release] = {
    "FewGLUE": Release(("train.jsonl", "unlabeled.jsonl"), zipped=False),
    "FewGLUE_32dev": Release(("dev32.jsonl",), zipped=False),
    "SuperGLUE": Release(("train.jsonl", "val.jsonl", "test.jsonl"), zipped=True),
    "GLUE": Release(
        ("train.tsv", "dev.tsv", "test-labeled.tsv"),
        zipped=True,
        elsewhere={"test-labeled.tsv": "GLUE-test-labeled"},
    ),
}


@dataclass(frozen=True)
class Source:
    """One file's online origin: a plain ``url``, or member ``zip_member`` of the zip archive at ``url``."""

    relpath: str
    url: str
    zip_member: str | None = None


def known_relpaths() -> list[str]:
    """Every file of every release folder a registered task reads from (its ``Task.files``), the
    release's other files included (FewGLUE's unlabeled examples, SuperGLUE's test files)."""
    folders = {
        tuple(relpath.split("/")[:2]) for name in TASKS.names() for relpath in TASKS.get(name).files.values()
    }
    return [
        f"{release}/{task}/{file}"
        for release, task in sorted(folders)
        if release in RELEASES
        for file in RELEASES[release].files
    ]


def source_for(relpath: str) -> Source:
    """The online source of ``relpath``; an unknown path raises a one-line ``PromptTuneError``."""
    if relpath not in known_relpaths():
        layouts = "; ".join(f"{name}/<Task>/{{{','.join(r.files)}}}" for name, r in RELEASES.items())
        raise PromptTuneError(
            f"unknown data file {relpath!r}; expected one of {layouts}, with <Task> a registered task's "
            f"folder ({', '.join(TASKS.names())})"
        )
    release, rest = relpath.split("/", 1)
    file = rest.rsplit("/", 1)[1]
    spec = RELEASES[release]
    if file in spec.elsewhere:
        return Source(relpath, f"{BASE_URLS[spec.elsewhere[file]]}/{rest}")
    if spec.zipped:
        return Source(relpath, f"{BASE_URLS[release]}/{rest.split('/', 1)[0]}.zip", zip_member=rest)
    return Source(relpath, f"{BASE_URLS[release]}/{rest}")


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
