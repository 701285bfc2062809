"""``prompttune plan``: the active profile's training stages and how long they take on this machine, before a
long ``dvc repro``.

Each distinct (backbone, task, base, objective, batch size, max length, precision) of the grid is probed once:
the stage's own data and model, untimed warm-up steps, then training steps timed by
``torch.utils.benchmark`` until their spread is small (the median is the step's cost), and one timed
evaluation of the selection split. Probes are cached per machine (the CPU's model and flags, torch's CPU
capability and threads, ``ONEDNN_MAX_CPU_ISA``/``ATEN_CPU_CAPABILITY``, the device) in
``$PROMPTTUNE_CACHE/plan.json`` with the time each was taken, so a second ``plan`` costs nothing; a probe
taken while the machine is busy is used once and not cached. A stage's estimate is an upper bound:
its seeds × (the step cap × the step cost + the evaluations) + the process start. Runs that stop early
(the plateau rule) stop after ``patience`` evaluations without gain at the soonest, which gives the lower
bound; where between the two a run ends depends on its learning curve (the default's runs stopped at about
40 % of their caps).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prompttune import paths
from prompttune.config import Params, RunConfig, StageConfig, expand_stages
from prompttune.io import atomic_write_json
from prompttune.progress import Progress, counted, silent

WARMUP_STEPS = 2  # untimed steps before a probe's timing: the first kernels' set-up (choice)
PROBE_SPREAD = 0.1  # a probe times steps until their IQR is under this share of the median (choice)
PROBE_MIN_S, PROBE_MAX_S = 1.0, 20.0  # a probe's timed seconds: at least, at most (choice)
IDLE_LOAD = 0.5  # probes are cached only when the 1-minute load per CPU is under this (choice)
PROCESS_START_S = 7.0  # imports, backbone load and tokenisation of a stage (measured: 5–7 s on 2 cores)


@dataclass(frozen=True)
class StepCost:
    step_s: float  # one optimiser step at the stage's batch size
    eval_s: float  # one evaluation of the selection split
    precision: str


@dataclass(frozen=True)
class StageEstimate:
    key: str
    seeds: int
    step_cap: int
    evaluations: int
    cost: StepCost
    min_steps: int = 0  # the soonest the plateau rule can stop a run (the cap without early stopping)
    min_evaluations: int = 0

    def _seconds(self, steps: int, evaluations: int) -> float:
        return PROCESS_START_S + self.seeds * (steps * self.cost.step_s + evaluations * self.cost.eval_s)

    @property
    def upper_bound_s(self) -> float:
        return self._seconds(self.step_cap, self.evaluations)

    @property
    def lower_bound_s(self) -> float:
        return self._seconds(self.min_steps or self.step_cap, self.min_evaluations or self.evaluations)


def machine_key() -> str:
    """What a step's cost depends on besides the run: CPU, torch, threads, the ISA caps, the device."""
    import torch

    from prompttune.results import cpu_info

    cpu = cpu_info()
    parts = [
        cpu["model"],
        cpu["flags"],
        torch.__version__,
        torch.backends.cpu.get_cpu_capability(),
        str(torch.get_num_threads()),
        os.environ.get("ONEDNN_MAX_CPU_ISA", ""),
        os.environ.get("ATEN_CPU_CAPABILITY", ""),
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    ]
    return json.dumps(parts)


def probe_key(config: RunConfig) -> str:
    t = config.train
    fields = [config.backbone, config.setting, config.task, config.method, t.batch_size, t.max_length]
    return json.dumps([*fields, t.precision, config.prompt.length, t.device])


def probe(config: RunConfig, data_root: Path) -> StepCost:
    """Time training steps and one selection-split evaluation: ``WARMUP_STEPS`` untimed steps (the first
    kernels' set-up), then ``torch.utils.benchmark.Timer.adaptive_autorange`` over further steps until their
    spread is small (IQR under ``PROBE_SPREAD`` of the median, at most ``PROBE_MAX_S``); the step cost is the
    median, so a stray slow step does not set it."""
    import tempfile

    import torch
    from torch.utils import benchmark

    from prompttune import train

    probe_config = dataclasses.replace(
        config,
        train=dataclasses.replace(
            config.train, steps=10**6, eval_every=10**6, early_stopping=False, checkpoint_every=0
        ),
    )
    with tempfile.TemporaryDirectory() as tmp:
        setup, (run,) = train.open_runs([probe_config], data_root, [Path(tmp) / "probe"])
    order = train.train_order(
        setup.features["train"], config.train.batch_size, torch.Generator().manual_seed(0)
    )
    run.trained.train()
    steps = itertools.count(1)

    def step() -> None:
        losses = train.turn_step([run], [next(order)], setup)
        train.update([run], losses, next(steps), 0.0)

    for _ in range(WARMUP_STEPS):
        step()
    timer = benchmark.Timer(stmt="step()", globals={"step": step}, num_threads=torch.get_num_threads())
    measured = timer.adaptive_autorange(PROBE_SPREAD, min_run_time=PROBE_MIN_S, max_run_time=PROBE_MAX_S)
    tick = time.perf_counter()
    train.predict_split(run, setup, "select")
    return StepCost(step_s=measured.median, eval_s=time.perf_counter() - tick, precision=setup.precision.used)


def busy(max_load: float = IDLE_LOAD) -> str:
    """Why probes taken now would not describe this machine ("" when it is idle enough): the 1-minute load
    average, taken before probing, above ``max_load`` per CPU."""
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    return f"1-minute load {load:.1f} on {cpus} CPUs" if load > max_load * cpus else ""


def estimates(
    params: Params,
    data_root: Path = paths.DATA,
    fresh: bool = False,
    max_load: float | None = None,
    progress: Progress = silent,
) -> tuple[list[StageEstimate], str]:
    """Every training stage's estimate, probing what the per-machine cache lacks (a progress line per
    probe), and where the probes come from (the cache file and when each was taken). Probes taken on a
    busy machine are used but not cached."""
    from prompttune.train import evaluation_interval, number_of_steps

    cache_file = paths.user_cache("plan.json") or Path("plan.json")
    cache = {} if fresh or not cache_file.is_file() else json.loads(cache_file.read_text())
    machine = cache.setdefault(machine_key(), {})
    load = busy(IDLE_LOAD if max_load is None else max_load)
    out, taken = [], set()
    stages = expand_stages(params)
    missing, probed = len({probe_key(stage.run) for stage in stages} - set(machine)), 0
    started = time.perf_counter()
    for stage in stages:
        config = stage.run
        key = probe_key(config)
        if key not in machine:
            progress(counted(f"probing {stage.stage.key}; kinds of step", probed, missing, started))
            measured = dataclasses.asdict(probe(config, data_root / stage.stage.cell))
            probed += 1
            machine[key] = {**measured, "measured": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
            if not load:
                atomic_write_json(cache_file, cache)
        taken.add(machine[key]["measured"])
        n_train = _n_train(stage, data_root)
        cap = number_of_steps(config, n_train)
        interval = evaluation_interval(config, n_train)
        evaluations = cap // interval + 1
        soonest = min(cap, config.train.patience * interval) if config.train.early_stopping else cap
        cost = StepCost(**{k: v for k, v in machine[key].items() if k != "measured"})
        out.append(
            StageEstimate(
                stage.stage.key, len(stage.seeds), cap, evaluations, cost, soonest, soonest // interval + 1
            )
        )
    source = f"probes from {cache_file}, taken {', '.join(sorted(taken))}"
    if load:
        source += f"; probes taken now are not cached: the machine was busy ({load})"
    return out, source


def _n_train(stage: StageConfig, data_root: Path) -> int:
    from prompttune.splits import load_splits
    from prompttune.tasks import get_task

    config = stage.run
    return len(
        load_splits(
            data_root / stage.stage.cell, config.setting, get_task(config.task), config.data_seed
        ).train
    )


def studies_s(params: Params, rows: list[StageEstimate]) -> dict[str, float]:
    """Rough estimates of the studies from the probed evaluation costs: a landscape is points² forward
    passes over its examples for every seed (the study's seeds; with none named, as under grid.decide, every
    seed its stage trains here), plus a gradient; the MI check is full-batch GD (forward and double
    backward, about 3 passes) for every seed and its two controls, at a quarter of the length."""
    by_key = {row.key: row for row in rows}
    study = params.studies.landscape
    landscapes = sum(
        (len(study.seeds) or row.seeds) * (study.points**2 + 3) * row.cost.eval_s * study.n_examples / 32
        for row in (by_key.get(f"{cell}/{method}") for cell in study.cells for method in study.methods)
        if row is not None
    )
    mi = params.studies.mi_check
    evals = {row.key: row.cost.eval_s for row in rows}
    base = evals.get(f"{mi.cell}/pt", min(evals.values()))
    return {"landscapes": landscapes + PROCESS_START_S * len(study.cells) * len(study.methods),
            "MI check": (len(mi.seeds) + 2) * mi.steps * 3 * base / 4 + 60}  # fmt: skip


def table(rows: list[StageEstimate], studies: dict[str, float]) -> str:
    """The plan as text: one line per stage, the studies, then the total."""
    lines = [f"{'stage':46} {'seeds':>5} {'cap':>5} {'s/step':>7} {'precision':>9} {'≥ min':>9} {'≤ min':>9}"]
    for row in rows:
        lines.append(
            f"{row.key:46} {row.seeds:5d} {row.step_cap:5d} {row.cost.step_s:7.2f} {row.cost.precision:>9} "
            f"{row.lower_bound_s / 60:9.1f} {row.upper_bound_s / 60:9.1f}"
        )
    lines += [
        f"{name:46} {'':5} {'':5} {'':7} {'':9} {seconds / 60:9.1f} {seconds / 60:9.1f}"
        for name, seconds in studies.items()
    ]
    low = sum(row.lower_bound_s for row in rows) + sum(studies.values())
    high = sum(row.upper_bound_s for row in rows) + sum(studies.values())
    lines.append(
        f"total: {math.floor(low / 60)} min if every run stops at the soonest the plateau rule allows,"
        f" {math.ceil(high / 60)} min if every run trains to its step cap"
    )
    return "\n".join(lines)
