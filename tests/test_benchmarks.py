"""The verdict calibration benchmark runs through the claims code on a profile's own layout and ends with its
contract line (its rates are checked at scale by running it; tests/test_claims.py checks the rules)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_verdict_calibration_prints_a_table_per_profile_adaptive_design_included_and_the_worst_rate() -> None:
    script = ROOT / "benchmarks" / "verdict_calibration.py"
    args = [sys.executable, str(script), "--reps", "20", "--adaptive-reps", "4", "--jobs", "1"]
    args += ["--profiles", "smoke", "fixed", "default"]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True).stdout
    assert "profile smoke (20 replicates" in out and "profile fixed (20 replicates" in out
    assert "profile default (4 replicates" in out  # the adaptive design's whole loop, replayed per replicate
    assert re.search(r"\| IP-1 \| fewshot-256/pt \| ≤ \d+ \(adaptive\) × 1 \|", out)
    for claim in ("PTP-2", "PTP-3", "PTP-4", "PTP-5", "IP-1", "IP-2", "IP-3", "IP-4"):
        assert f"| {claim} | " in out
    assert "| IP-2 | fewshot-256/pt | 10 × 1 |" in out  # the fixed grid's own seed count, from its layout
    assert re.fullmatch(r"max false-verdict rate: (0|1)\.\d{4}", out.strip().splitlines()[-1])


def test_the_calibration_gives_sharpness_only_to_the_runs_the_landscape_study_covers() -> None:
    spec = importlib.util.spec_from_file_location(
        "verdict_calibration", ROOT / "benchmarks" / "verdict_calibration.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.layout("paper")
    studied = table[table["landscape"]]
    assert not studied.empty and (studied["variant"] == "").all()
    assert "fewglue.ReCoRD" in set(table["cell"]) and "fewglue.ReCoRD" not in set(studied["cell"])
    simulated = module.simulate(table, "null", "normal", np.random.default_rng(0))
    assert simulated.loc[table["landscape"], "sharpness"].notna().all()
    assert simulated.loc[~table["landscape"], "sharpness"].isna().all()


def test_first_look_prints_each_family_and_side_with_its_crossings_per_look() -> None:
    """The script behind the default profile's 4-seed first look: a row per noise family and side, the
    first crossings at every look and their total."""
    script = ROOT / "benchmarks" / "first_look.py"
    args = [sys.executable, str(script), "--looks", "4", "7", "--paths", "2000"]
    out = subprocess.run(
        args, cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=300, check=True
    )
    rows = [
        line for line in out.stdout.splitlines() if re.match(r"\| (normal|heavy|collapse|discrete) \|", line)
    ]
    assert len(rows) == 8
    for row in rows:
        cells = re.fullmatch(r"\| \w+ \| (less|greater) \| 4: (\S+), 7: (\S+) \| (\S+) \|", row)
        assert cells, row
        assert float(cells[4]) == pytest.approx(float(cells[2]) + float(cells[3]), abs=1e-4)
