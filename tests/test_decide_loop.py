"""The adaptive design's loop for real: ``prompttune decide`` runs rounds of ``dvc repro`` on a tiny grid
(PTP's random-noise variant against ``pt`` on FewGLUE CB, the embedded MiniLM, looks at 2 and 3 seeds).

- Each round's seeds live in seeds.yaml; the claims are judged at the looks; the page and claims.csv say
  what each arm got and what stopped each claim.
- Adding seeds to an arm trains only the new seeds, in DVC (persisted outputs, ``train.finished``) and in
  Snakemake (one job per seed, the seed's run config as the job's params).
- A loop killed mid-round resumes from seeds.yaml and ends with the same seeds and the same claims as one
  that was never interrupted.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import active_grid, write_profile
from test_pipelines import BIN, project_copy, run

from prompttune.decide import read_state

ARMS = ("fewglue/pt", "fewglue/pt-ptp-rn-emb")
VERDICT_COLUMNS = [
    "id", "scope", "verdict", "reason", "estimate", "low", "high", "n_seeds", "arm_seeds", "trajectory"
]  # fmt: skip


def decide_project(tmp_path: Path, mirror: Path) -> tuple[Path, dict[str, str]]:
    project, env = project_copy(tmp_path, mirror, "smoke")
    params = active_grid(project)
    params["grid"] = {
        # a pilot as large as the first look: the same runs, and the page names it
        "decide": {"budget_min": 60, "looks": [2, 3], "pilot": {"fewglue/pt-ptp-rn-emb": 2}},
        "blocks": {"ptp": {"cells": ["fewglue.CB"], "methods": ["pt", "pt-ptp-rn-emb"]}},
    }
    params["studies"]["landscape"] = {
        **params["studies"]["landscape"],
        "methods": ["pt"],
        "seeds": [],
    }
    # runs that meet the plateau rule (else every claim closes after the pilot: "runs not converged")
    params["run"]["train"].update(steps=12, eval_every=1, patience=2)
    write_profile(project, "decide-test", params, "two arms of PTP-2 on CB under the adaptive design")
    run(["git", "add", "-A"], project, env)
    run(["git", "commit", "-qm", "a grid with grid.decide"], project, env)
    return project, env


def decide(project: Path, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "prompttune"), "decide"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its dvc and training children are killed with it
    )


def verdicts(project: Path) -> pd.DataFrame:
    return pd.read_csv(project / "results/claims.csv", keep_default_na=False)[VERDICT_COLUMNS]


def set_seeds(project: Path, seeds: dict[str, int]) -> None:
    (project / "seeds.yaml").write_text(yaml.safe_dump({"seeds": seeds, "rounds": []}))


@pytest.mark.e2e
def test_added_seeds_train_alone_and_a_killed_loop_resumes_identically(tmp_path: Path, mirror: Path) -> None:
    clean, env = decide_project(tmp_path / "clean", mirror)
    dvc, snakemake = str(BIN / "dvc"), str(BIN / "snakemake")
    run([dvc, "repro"], clean, env)  # the pilot: the first look's seeds of every arm
    trained_seeds = sorted(p.parent.name for p in (clean / "runs").rglob("prompt.pt"))
    assert trained_seeds == ["seed1", "seed1", "seed2", "seed2"]
    killed = tmp_path / "killed" / "project"  # the same project after its pilot, for the killed loop below
    shutil.copytree(clean, killed, symlinks=True)
    before = {p: p.read_bytes() for p in sorted((clean / "runs").rglob("prompt.pt"))}
    surface = clean / "results/landscape/fewglue.CB/pt/seed1/surface.json"
    surface_before = surface.read_bytes()

    # One more seed of one arm trains that seed alone (DVC) and leaves every other run's bytes alone.
    set_seeds(clean, {"fewglue/pt": 3})
    repro = run([dvc, "repro"], clean, env)
    reported = re.findall(r"^(runs/\S+): (?:ok|collapsed|failed), ", repro, flags=re.M)
    kept = [line.split(":")[0] for line in repro.splitlines() if line.endswith("(already trained, kept)")]
    assert sorted(kept) == sorted(str(p.parent.relative_to(clean)) for p in before), "the pilot's runs"
    assert sorted(set(reported) - set(kept)) == ["runs/fewglue.CB/pt/seed3"]
    trained = {p for p in (clean / "runs").rglob("prompt.pt") if p not in before}
    assert [str(p.relative_to(clean)) for p in trained] == ["runs/fewglue.CB/pt/seed3/prompt.pt"]
    assert all(before[p] == p.read_bytes() for p in before)
    assert surface.read_bytes() == surface_before, "a kept seed's landscape is not recomputed"
    assert (clean / "results/landscape/fewglue.CB/pt/seed3/surface.json").is_file()

    # … and in Snakemake, one job per seed: one more seed of the other arm is one new training job.
    run([snakemake, "-c2"], clean, env, timeout=1500)
    set_seeds(clean, {"fewglue/pt": 3, "fewglue/pt-ptp-rn-emb": 3})
    dry = run([snakemake, "-n", "-c1"], clean, env, stderr=True).split("Job stats:")[1]
    assert [line.split() for line in dry.splitlines() if line.strip().startswith("train")] == [["train", "1"]]

    # The loop from the pilot; the copy's loop, killed while a round trains a seed after the pilot, resumes
    # from seeds.yaml and ends with the same rounds and the same verdicts.
    set_seeds(clean, {})
    loop = decide(clean, env)
    output, _ = loop.communicate(timeout=1500)
    assert loop.returncode == 0, output[-3000:]
    rounds = read_state(clean / "seeds.yaml")["rounds"]
    assert rounds[0]["seeds"] == dict.fromkeys(ARMS, 2), "the pilot: the first look's seeds"
    assert all(set(r["seeds"]) == set(ARMS) and max(r["seeds"].values()) <= 3 for r in rounds)
    assert len(rounds) >= 2 and rounds[-1]["seeds"] != rounds[0]["seeds"], "a round after the pilot"
    assert not rounds[-1]["served"] and "done after" in output
    table = verdicts(clean)
    final = rounds[-1]["seeds"]
    ptp2 = table[table["id"] == "PTP-2"].iloc[0]
    assert (
        ptp2["arm_seeds"]
        == f"fewglue/pt-ptp-rn-emb={final['fewglue/pt-ptp-rn-emb']} fewglue/pt={final['fewglue/pt']}"
    )
    claims = pd.read_csv(clean / "results/claims.csv", keep_default_na=False)
    served = claims[(claims["verdict"] == "inconclusive") & (claims["arm_seeds"] != "")]
    assert (served["stopped"] != "").all(), "every undecided claim the loop served says what closed it"
    page = (clean / "reports/decide-test.html").read_text()
    assert 'id="adaptive-design"' in page and "looks at 2, 3 seeds" in page
    assert "a pilot of 2 seeds of every arm but 2 of <code>fewglue/pt-ptp-rn-emb</code>)" in page
    # every claim's trajectory: one entry per look its seeds reached, on the page once one has two
    measured = claims[claims["arms"] != ""]
    for _, claim in measured.iterrows():
        looks = [look for look in (2, 3) if look <= claim["n_seeds"]]
        assert [int(entry.split(":")[0]) for entry in claim["trajectory"].split("; ")] == looks, claim
    assert ('id="trajectories"' in page) == bool((measured["n_seeds"] >= 3).any())

    set_seeds(killed, {})
    loop = decide(killed, env)
    deadline = time.monotonic() + 600
    while not list((killed / "runs").rglob("seed3")):
        assert loop.poll() is None and time.monotonic() < deadline, "no seed after the pilot started"
        time.sleep(0.2)
    os.killpg(loop.pid, signal.SIGKILL)
    loop.wait()
    again = decide(killed, env)
    output, _ = again.communicate(timeout=1500)
    assert again.returncode == 0, output[-3000:]
    resumed = read_state(killed / "seeds.yaml")["rounds"]
    assert [r["seeds"] for r in resumed] == [r["seeds"] for r in rounds]
    pd.testing.assert_frame_equal(verdicts(killed), table)
