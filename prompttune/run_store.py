"""Finished runs: when a run folder holds a run, and the run store that shares runs between workspaces.

A run is finished in a folder when the folder's ``config.json`` is the run's resolved config, its
``provenance.json`` names this code (``code_sha256``, plugins included) and the data files it read still
hash as they did (``data_sha256``). That is everything a run's numbers depend on (every seed trains under
its own RNG state, so a run does not depend on which seeds share its process), so a finished run is kept
instead of trained again: a grid given more seeds or methods trains only those.

The run store (choice) extends this across workspaces. A queued DVC experiment trains in a temporary copy
of the project, a Snakemake job on a cluster node in its own; each puts its finished runs in the store,
and a later grid that holds the same runs (the workspace's ``dvc repro`` after the queue, a rerun in a
fresh clone) takes them from it instead of training them again. It is DVC's run-cache at the grain of one
run: one entry per run, keyed by the SHA-256 of its config and code digest, used only where the data
matches too. Location: ``paths.run_store()`` (``$PROMPTTUNE_RUN_STORE``, default
``$PROMPTTUNE_CACHE/runs``; ``off`` turns it off). Failed runs are not stored: a memory kill or a crash
says more about the machine than about the config, and such a run trains again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path

from prompttune import paths
from prompttune.data.fetch import verify
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_directory, cache_entry
from prompttune.results import RunMetrics, code_sha256, load_metrics
from prompttune.schema import RunConfig

RUN_FILES = ("metrics.json", "config.json", "provenance.json", "curve.csv", "predictions.jsonl", "prompt.pt")
STORED = ("ok", "collapsed")  # the statuses a stored run may have


@functools.cache
def _data_sha256(data_root: Path, relpaths: tuple[str, ...]) -> dict[str, str] | None:
    """The files' sha256 (checked against the checksum table), or None when one is missing or altered."""
    try:
        return verify(data_root, relpaths)
    except PromptTuneError:
        return None


def finished(config: RunConfig, folder: Path, data_root: Path) -> RunMetrics | None:
    """The run's metrics when ``folder`` holds it finished under exactly ``config``, this code and the data
    under ``data_root``; else None."""
    if not all((folder / name).is_file() for name in RUN_FILES):
        return None
    try:
        same_config = json.loads((folder / "config.json").read_text(encoding="utf-8")) == json.loads(
            json.dumps(config.to_dict())
        )
        provenance = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    except ValueError:
        return None
    if not same_config or provenance.get("code_sha256") != code_sha256():
        return None
    read = provenance.get("data_sha256") or {}
    if _data_sha256(Path(data_root).resolve(), tuple(sorted(read))) != read:
        return None
    return load_metrics(folder / "metrics.json")


def entry(config: RunConfig) -> Path | None:
    """The store's folder for ``config`` (whether or not it exists), or None with no store."""
    root = paths.run_store()
    if root is None:
        return None
    key = hashlib.sha256(json.dumps([config.to_dict(), code_sha256()], sort_keys=True).encode()).hexdigest()
    return root / f"{config.task}-{key[:32]}"


def take(config: RunConfig, out_dir: Path, data_root: Path) -> RunMetrics | None:
    """Copy the stored run of ``config`` into ``out_dir`` (atomically) and return its metrics, when the store
    holds it finished on the same data; else None."""
    stored = entry(config)
    if stored is None or (metrics := finished(config, stored, data_root)) is None:
        return None
    with atomic_directory(out_dir) as tmp:
        for name in RUN_FILES:
            shutil.copyfile(stored / name, tmp / name)
    return metrics


def put(out_dir: Path, metrics: RunMetrics) -> None:
    """Store the finished run in ``out_dir`` (a run that failed is not stored); the first writer of an entry
    keeps it."""
    stored = entry(metrics.config)
    if stored is None or stored.is_dir() or metrics.status not in STORED:
        return

    def fill(tmp: Path) -> None:
        for name in RUN_FILES:
            shutil.copyfile(out_dir / name, tmp / name)

    cache_entry(stored, fill)
