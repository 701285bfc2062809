"""Kill a real training run with SIGKILL mid-way; the same command resumes from its last checkpoint and
ends with metrics identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prompttune.data import fetch
from prompttune.splits import required_files

ROOT = Path(__file__).resolve().parents[1]
PROMPTTUNE = str(Path(sys.executable).parent / "prompttune")
TIMING = ("wall_time_s", "train_time_s", "train_examples_per_s", "peak_memory_mb")


@pytest.fixture
def project(tmp_path: Path, mirror: Path, tiny_backbone: str) -> Path:
    smoke = yaml.safe_load((ROOT / "profiles.yaml").read_text())["smoke"]
    params = {section: smoke[section] for section in ("grid", "run", "studies")}  # a grid of its own
    params["run"]["backbone"] = tiny_backbone
    params["run"]["train"].update(steps=300, eval_every=50, checkpoint_every=10, batch_size=8)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    shutil.copy(ROOT / "profiles.yaml", tmp_path / "profiles.yaml")
    fetch(required_files("fewglue", "CB"), tmp_path / "data" / "fewglue.CB", mirror=mirror)
    return tmp_path


def train(project: Path, out: str) -> subprocess.Popen:
    args = ["train", "--cell", "fewglue.CB", "--method", "pt2", "--seed", "1", "--out", out]
    return subprocess.Popen([PROMPTTUNE, *args], cwd=project, stderr=subprocess.PIPE, text=True)


def metrics(path: Path) -> dict:
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if k not in TIMING}


def test_sigkill_then_rerun_resumes_and_matches_an_uninterrupted_run(project: Path) -> None:
    state = project / "out.resume" / "killed" / "state.pt"
    proc = train(project, "out/killed")
    deadline = time.monotonic() + 240
    while not state.exists():
        assert proc.poll() is None, f"run ended before its first checkpoint: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    time.sleep(0.3)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (project / "out" / "killed").exists(), (
        "a killed run must not leave a folder that looks complete"
    )

    resumed = train(project, "out/killed")
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert "resuming killed from step" in stderr
    step = int(stderr.split("from step")[1].split()[0])
    assert 10 <= step < 300 and step % 10 == 0
    assert not state.parent.parent.exists(), "the resume state is removed once the run is complete"

    clean = train(project, "out/clean")
    _, stderr = clean.communicate(timeout=600)
    assert clean.returncode == 0 and "resuming" not in stderr
    assert metrics(project / "out/killed/metrics.json") == metrics(project / "out/clean/metrics.json")
    for name in ("predictions.jsonl", "curve.csv"):
        killed_text = (project / "out/killed" / name).read_text()
        clean_text = (project / "out/clean" / name).read_text()
        if name == "curve.csv":  # the last column is elapsed time
            killed_text = "\n".join(line.rsplit(",", 1)[0] for line in killed_text.splitlines())
            clean_text = "\n".join(line.rsplit(",", 1)[0] for line in clean_text.splitlines())
        assert killed_text == clean_text, name


def test_a_resume_state_of_another_configuration_is_ignored(project: Path) -> None:
    first = train(project, "out/run")
    state = project / "out.resume" / "run" / "state.pt"
    while not state.exists() and first.poll() is None:
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    text = (project / "params.yaml").read_text().replace("lr: 0.01", "lr: 0.02")
    (project / "params.yaml").write_text(text)
    again = train(project, "out/run")
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0
    assert "belongs to another configuration; starting afresh" in stderr
