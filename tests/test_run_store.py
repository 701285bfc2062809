"""The run store: a run trained in one workspace is taken, byte for byte, by another workspace that holds the
same run (config, code and data), and by no other; failed runs are not stored; ``off`` turns it off."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from test_cli_errors import project, prompttune, template  # noqa: F401 — the project fixture and its template

from prompttune import run_store
from prompttune.checkpoint import read_config
from prompttune.results import load_metrics
from prompttune.run_store import RUN_FILES, entry, finished, put, take

TRAIN = ["train", "--cell", "fewglue.CB", "--method", "pt2"]


def files(folder: Path) -> dict[str, bytes]:
    return {name: (folder / name).read_bytes() for name in RUN_FILES}


def test_a_run_trained_in_one_workspace_is_taken_by_another(
    project: Path,  # noqa: F811
    template: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    store = tmp_path_factory.mktemp("store")
    first = prompttune([*TRAIN, "--seed", "1", "--seed", "2"], project, PROMPTTUNE_RUN_STORE=str(store))
    assert first.returncode == 0, first.stderr
    assert "(from the run store)" not in first.stdout and len(list(store.iterdir())) == 2

    other = tmp_path_factory.mktemp("other")
    shutil.copytree(template, other, dirs_exist_ok=True)
    second = prompttune([*TRAIN, "--seed", "1", "--seed", "3"], other, PROMPTTUNE_RUN_STORE=str(store))
    assert second.returncode == 0, second.stderr
    lines = second.stdout.splitlines()
    assert lines[0].startswith("runs/fewglue.CB/pt2/seed1: ") and lines[0].endswith("(from the run store)")
    assert lines[1].startswith("runs/fewglue.CB/pt2/seed3: ") and "(" not in lines[1]  # not stored: trained
    seed1 = "runs/fewglue.CB/pt2/seed1"
    assert files(other / seed1) == files(project / seed1)  # its provenance says where it was trained
    assert len(list(store.iterdir())) == 3

    again = prompttune([*TRAIN, "--seed", "1"], other, PROMPTTUNE_RUN_STORE=str(store))
    assert again.stdout.strip().endswith("(already trained, kept)"), again.stdout  # the workspace's own copy
    off = prompttune([*TRAIN, "--seed", "2"], other, PROMPTTUNE_RUN_STORE="off")
    assert off.returncode == 0 and "(" not in off.stdout, off.stdout  # no store: trained


def test_a_run_is_finished_only_under_its_config_code_and_data(
    project: Path,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proc = prompttune([*TRAIN, "--seed", "1"], project)
    assert proc.returncode == 0, proc.stderr
    folder, data = project / "runs/fewglue.CB/pt2/seed1", project / "data/fewglue.CB"
    config = read_config(folder)
    assert finished(config, folder, data) == load_metrics(folder / "metrics.json")
    assert finished(dataclasses.replace(config, seed=2), folder, data) is None

    moved = tmp_path / "moved"  # another record of the data it read: a changed checksum table
    shutil.copytree(folder, moved)
    provenance = json.loads((moved / "provenance.json").read_text())
    relpath = next(iter(provenance["data_sha256"]))
    provenance["data_sha256"][relpath] = "0" * 64
    (moved / "provenance.json").write_text(json.dumps(provenance))
    assert finished(config, moved, data) is None

    store = tmp_path / "store"
    monkeypatch.setenv("PROMPTTUNE_RUN_STORE", str(store))
    stored = entry(config)
    assert stored is not None and stored.parent == store
    metrics = load_metrics(folder / "metrics.json")
    put(folder, dataclasses.replace(metrics, status="failed"))
    assert not stored.exists(), "a failed run is not stored"
    put(folder, metrics)
    assert files(stored) == files(folder)
    assert take(config, tmp_path / "taken", data) == metrics and files(tmp_path / "taken") == files(folder)

    monkeypatch.setattr(run_store, "code_sha256", lambda: "other code")
    assert entry(config) != stored and take(config, tmp_path / "none", data) is None
    assert finished(config, folder, data) is None
    monkeypatch.setenv("PROMPTTUNE_RUN_STORE", "off")
    assert entry(config) is None
