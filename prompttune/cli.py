"""prompttune: the one command line that both pipelines (DVC and Snakemake) call.

The pipelines run: configure → fetch → train → landscape, mi-check → aggregate → report (DVC: one stage each,
over every stage of the grid; Snakemake: a job per training stage, or per seed, and per landscape).
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from prompttune.errors import PromptTuneError

if TYPE_CHECKING:
    from prompttune.schema import Stage, StageConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help=__doc__,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

PARAMS = typer.Option(Path("params.yaml"), "--params", help="the grid definition")
VERBOSITY = {"level": 1}  # 0: quiet, 1: a line per evaluation, 2: and a line per training step


def say(line: str, level: int = 1) -> None:
    """Progress for people (stderr), at the verbosity asked for."""
    if VERBOSITY["level"] >= level:
        print(line, file=sys.stderr, flush=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"prompttune {metadata.version('prompttune')}")
        raise typer.Exit()


@app.callback()
def main_options(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="more progress lines"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines, only results and errors"),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="print the version"
    ),
) -> None:
    """Reproducible soft prompt tuning benchmarks: PTP and InfoPrompt on SuperGLUE, FewGLUE and SST-2."""
    if verbose and quiet:
        raise PromptTuneError("--verbose and --quiet exclude each other")
    VERBOSITY["level"] = 0 if quiet else 2 if verbose else 1


@app.command()
def configure(params: Path = PARAMS) -> None:
    """Resolve params.yaml into configs/: one file per training stage and per landscape (every default
    explicit), the MI check's settings and the grid record."""
    from prompttune.config import load_params
    from prompttune.pipeline import configure as write

    changed = write(load_params(params))
    typer.echo(f"configs: {len(changed)} file(s) changed")


@app.command()
def fetch(
    cell: str | None = typer.Option(
        None, help="<setting>.<task>, e.g. fewglue.CB (default: every cell of --cells)"
    ),
    dest: Path | None = typer.Option(None, help="data root for the cell (default data/<cell>)"),
    cells: Path = typer.Option(
        Path("configs/cells.json"),
        help="without --cell: the grid's cells (`prompttune configure`; DVC's form)",
    ),
) -> None:
    """Fetch and verify the data files of one cell, or of every cell the grid trains (offline: from
    $PROMPTTUNE_DATA_MIRROR)."""
    from prompttune import paths
    from prompttune.config import check_cell, split_cell
    from prompttune.data import fetch as fetch_files
    from prompttune.io import read_json
    from prompttune.splits import required_files

    if cell is None and dest is not None:
        raise PromptTuneError("--dest names one cell's folder; give --cell with it")
    names = [cell] if cell is not None else read_json(cells)
    if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
        raise PromptTuneError(f"{cells}: expected a list of cells; run `prompttune configure`")
    for index, name in enumerate(names):  # every name checked before any file is fetched
        check_cell(name, "--cell" if cell is not None else f"{cells}: [{index}]")
    for name in names:
        folder = dest or paths.data_dir(name)
        files = required_files(*split_cell(name))
        manifest = fetch_files(files, folder)
        verified = sum(entry["verified"] for entry in manifest.values())
        typer.echo(f"{folder}: {len(files)} files, {verified} verified against the checksum table")


@app.command()
def train(
    config: Path | None = typer.Option(
        None,
        help="a stage config from `prompttune configure`, or a folder of them: every stage in it",
    ),
    cell: str | None = typer.Option(None, help="<setting>.<task>, e.g. fewglue.CB (with --params)"),
    method: str | None = typer.Option(None, help="<base>[-<objective>], e.g. pt2 or pt-infoprompt"),
    variant: str | None = typer.Option(None, help="a key of run.variants (variant runs)"),
    seed: list[int] | None = typer.Option(
        None, help="training seed; repeat it for several (default: the stage's)"
    ),
    params: Path = PARAMS,
    data: Path | None = typer.Option(None, help="data root (default data/<cell>, see `prompttune fetch`)"),
    out: Path | None = typer.Option(
        None, help="run folder, one seed only (default runs/<cell>/<method>/seed<N>)"
    ),
    prune: bool = typer.Option(
        False, help="with a folder: remove the runs, headlines and curves of stages not in it (DVC's form)"
    ),
) -> None:
    """Train and evaluate one stage's seeds in one process (seed-parallel where the objective allows:
    README, "Seed-parallel training"); with every seed of the stage, also its headline metrics. With a
    folder of stage configs (DVC's form: configs/train --prune), every stage in it, one after another; a
    run already finished under the same config, code and data is kept, and one in the run store
    (prompttune.run_store) is taken from it, so a grid given more methods or seeds trains only those."""
    from prompttune import paths
    from prompttune.config import (
        Stage,
        check_cell,
        check_method,
        load_params,
        read_stage_config,
        stage_config,
    )

    if (config is None) == (cell is None or method is None):
        raise PromptTuneError("give --config FILE or FOLDER, or --cell and --method (with --params)")
    if config is not None and (variant or cell or method):
        raise PromptTuneError(
            "--config names the stage; it cannot be used with --cell, --method or --variant"
        )
    if prune and (config is None or not config.is_dir()):
        raise PromptTuneError("--prune goes with --config FOLDER (the folder is the whole grid)")
    if config is not None and config.is_dir():
        if seed or out or data:
            raise PromptTuneError(
                f"--config {config}: a folder trains each stage's own seeds on its own data; "
                "it cannot be used with --seed, --out or --data"
            )
        stages = [read_stage_config(path) for path in sorted(config.rglob("*.json"))]  # all checked first
        if not stages:
            raise PromptTuneError(f"{config}: no stage configs; run `prompttune configure`")
        for cell in sorted({resolved.stage.cell for resolved in stages}):  # before any work
            if not paths.data_dir(cell).is_dir():
                raise PromptTuneError(f"{paths.data_dir(cell)}: not found; run `prompttune fetch`")
        if prune:
            _remove_stale_stages([resolved.stage for resolved in stages])
        for number, resolved in enumerate(stages, 1):
            say(f"stage {number} of {len(stages)}: {resolved.stage.key}")
            _train_stage(resolved, resolved.seeds, None, None)
        return
    if config is not None:
        resolved = read_stage_config(config)
    else:
        check_cell(str(cell), "--cell")
        check_method(str(method), "--method")
        resolved = stage_config(load_params(params), Stage(str(cell), str(method), variant))
    _train_stage(resolved, seed or resolved.seeds, out, data)


def _remove_stale_stages(stages: list[Stage]) -> None:
    """Delete the run folders (resume states included), headlines and curves of stages not in ``stages``
    (the whole grid): what ``runs/`` and ``metrics/`` hold is then the grid's. A commit's outputs stay in
    the DVC cache; runs never committed are gone."""
    import shutil

    from prompttune import paths
    from prompttune.schema import Stage

    keep = {paths.method_dir(stage) for stage in stages}
    keep |= {folder.with_name(folder.name + ".resume") for folder in keep}
    keep |= {paths.headline(stage) for stage in stages} | {paths.curves(stage) for stage in stages}
    for pattern in (paths.RUNS / "*" / "*", paths.headline(Stage("*", "*")), paths.curves(Stage("*", "*"))):
        for stale in sorted(Path().glob(str(pattern))):
            if stale not in keep:
                say(f"{stale}: not in the grid, removed")
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()


def _train_stage(resolved: StageConfig, seeds: list[int], out: Path | None, data: Path | None) -> None:
    """Train the seeds of one stage that are not already finished; print each run's line; with every
    seed of the stage and no --out, write its headline and curves and remove the seeds it no longer has."""
    import dataclasses
    import shutil

    from prompttune import paths
    from prompttune.io import atomic_write_json, atomic_write_text
    from prompttune.results import RunMetrics, curves_csv, stage_headline
    from prompttune.run_store import finished, put, take
    from prompttune.scheduler import MEMORY_KILLS, memory_kills, memory_reason
    from prompttune.train import Resume, resume_folder, train_seeds, write_unstarted

    if len(set(seeds)) != len(seeds):
        raise PromptTuneError(f"--seed: repeated seed in {seeds}")
    if out is not None and len(seeds) > 1:
        raise PromptTuneError("--out names one run folder; give exactly one --seed with it")
    stage = resolved.stage
    data_root = data or paths.data_dir(stage.cell)
    runs = [dataclasses.replace(resolved.run, seed=s) for s in seeds]
    out_dirs = [out] if out is not None else [paths.run_dir(stage, run.seed) for run in runs]
    done: dict[Path, tuple[RunMetrics, str]] = {}  # each run folder's metrics and how it came
    for run, d in zip(runs, out_dirs, strict=True):
        if (kept := finished(run, d, data_root)) is not None:
            done[d] = (kept, " (already trained, kept)")
        elif (stored := take(run, d, data_root)) is not None:
            done[d] = (stored, " (from the run store)")
    todo = [(run, d) for run, d in zip(runs, out_dirs, strict=True) if d not in done]
    if todo:
        todo_dirs = [d for _, d in todo]
        kills = memory_kills()  # under SLURM: earlier attempts of this submission killed for memory
        if len(kills) >= MEMORY_KILLS:
            reason = memory_reason(kills)
            say(f"{reason}: recording the runs as failed")
            trained = [write_unstarted(run, data_root, d, reason) for run, d in todo]
            Resume(resume_folder(todo_dirs), [run.to_dict() for run, _ in todo]).remove()  # of no use now
        else:
            trained = train_seeds([r for r, _ in todo], data_root, todo_dirs, say)
        for run_dir, metrics in zip(todo_dirs, trained, strict=True):
            put(run_dir, metrics)
            done[run_dir] = (metrics, "")
    results = [done[d][0] for d in out_dirs]
    for run_dir in out_dirs:
        metrics, how = done[run_dir]
        score = f"{100 * metrics.report.score:.1f}" if metrics.report else "—"
        split = metrics.report.name if metrics.report else "report"
        typer.echo(f"{run_dir}: {metrics.status}, {split} {score}{how}")
    if out is None and sorted(seeds) == sorted(resolved.seeds):
        for stale in sorted(paths.method_dir(stage).glob("seed*")):  # seeds the stage no longer has
            if stale not in out_dirs:
                shutil.rmtree(stale)
        atomic_write_json(paths.headline(stage), stage_headline(results))
        atomic_write_text(paths.curves(stage), curves_csv(out_dirs))


@app.command()
def decide(
    params: Path = PARAMS,
    engine: str = typer.Option("dvc", help="the pipeline each round runs: dvc (dvc repro) or snakemake"),
    cores: int = typer.Option(2, help="snakemake --cores"),
    budget: str | None = typer.Option(
        None, help="wall time for the whole loop, e.g. 60m or 2h (default: the profile's grid.decide)"
    ),
) -> None:
    """The adaptive design: rounds of seeds where the claims can still be decided, within a budget. Each
    round writes seeds.yaml and runs the pipeline; a killed loop resumes from seeds.yaml."""
    import re

    from prompttune.decide import run_loop

    if engine not in ("dvc", "snakemake"):
        raise PromptTuneError(f"--engine: {engine!r} is not one of 'dvc', 'snakemake'")
    minutes = None
    if budget is not None:
        match = re.fullmatch(r"(\d+(?:\.\d+)?)([mh])", budget)
        if not match or float(match[1]) <= 0:
            raise PromptTuneError(f"--budget: {budget!r} is not a duration like 60m or 1.5h")
        minutes = float(match[1]) * (60 if match[2] == "h" else 1)
    run_loop(params, engine, cores, say, minutes)  # type: ignore[arg-type]


@app.command()
def plan(
    params: Path = PARAMS,
    fresh: bool = typer.Option(False, help="probe again instead of reading this machine's cached probes"),
    max_load: float | None = typer.Option(
        None,
        help="cache probes only when the 1-minute load per CPU, before probing, is at most this "
        "(default: prompttune.plan.IDLE_LOAD)",
    ),
    gpu: bool = typer.Option(
        False,
        "--gpu",
        help="the GPU cluster's cost model instead of probes (also when the backbone is not here)",
    ),
    gpu_type: str | None = typer.Option(
        None, help="with --gpu: the GPU the runtimes are costed on, h100 or a100 (default h100)"
    ),
    group_minutes: float | None = typer.Option(
        None,
        help="with --gpu: short jobs grouped to so many minutes (default 30, the SLURM profile's; 0: none)",
    ),
) -> None:
    """Before a long `dvc repro`: the active profile's stages and their expected wall time on this machine
    (a short probe of each kind of step, cached per machine; under grid.decide, the round the pipeline would
    train now), or with --gpu each job's GPU-hours, peak memory and micro-batching from the cost model
    (prompttune/cost.py) the cluster profile asks for, and the submissions they make once short jobs are
    grouped."""
    from prompttune import cost, paths
    from prompttune.config import expand_stages, load_params, local_backbone_config, split_cell
    from prompttune.data import fetch as fetch_files
    from prompttune.plan import estimates, studies_s, table
    from prompttune.precision import resolve_precision
    from prompttune.splits import required_files
    from prompttune.train import resolve_device

    loaded = load_params(params)
    stages = expand_stages(loaded)
    missing = sorted({c.run.backbone for c in stages if local_backbone_config(c.run.backbone) is None})
    if gpu or missing:
        if missing and not gpu:
            say(f"backbone {', '.join(missing)} is not on this machine: the GPU cost model instead of probes")
        cluster = cost.Node(gpu_model=gpu_type or cost.DEFAULT_GPU).cluster()
        jobs = cost.ProfileCost(loaded, per_seed=not loaded.grid.stacked_jobs, cluster=cluster).jobs()
        typer.echo(cost.table(jobs, cost.GROUP_MINUTES if group_minutes is None else group_minutes), nl=False)
        return
    for cell in {config.stage.cell for config in stages}:
        fetch_files(required_files(*split_cell(cell)), paths.data_dir(cell))
    device = resolve_device(stages[0].run.train.device)
    precision = resolve_precision(stages[0].run.train.precision, device)
    say(f"probing each kind of step on {device} ({precision.used}: {precision.reason})")
    rows, source = estimates(loaded, fresh=fresh, max_load=max_load, progress=say)
    say(source)
    typer.echo(table(rows, studies_s(loaded, rows)))
    if loaded.grid.decide is not None:
        round_ = "seeds.yaml's round" if loaded.arm_seeds else "the pilot"
        typer.echo(
            f"grid.decide: the seeds above are {round_}; `prompttune decide` (make reproduce) adds rounds "
            f"until its {loaded.grid.decide.budget_min:g}-minute budget is spent or every claim is closed"
        )


@app.command()
def grid(params: Path = PARAMS) -> None:
    """List the grid's training stages with their seeds, one per line."""
    from prompttune.config import expand_stages, load_params

    for config in expand_stages(load_params(params)):
        typer.echo(f"{config.stage.key}  seeds {' '.join(map(str, config.seeds))}")


@app.command()
def aggregate(
    grid_record: Path = typer.Option(Path("configs/grid.json"), "--grid", help="from `prompttune configure`"),
    out: Path = typer.Option(Path("results"), help="output folder"),
) -> None:
    """Tabulate the grid's runs from their records: results/runs.csv, curves.csv, summary.csv."""
    from prompttune.aggregate import write_aggregate
    from prompttune.pipeline import read_grid_record

    summary = write_aggregate(read_grid_record(grid_record), out)
    typer.echo(f"{len(summary)} cells aggregated into {out}")


@app.command()
def report(
    results: Path = typer.Option(Path("results"), help="output of `prompttune aggregate`"),
    grid_record: Path = typer.Option(Path("configs/grid.json"), "--grid", help="from `prompttune configure`"),
    out: Path | None = typer.Option(None, help="HTML file (default reports/<profile>.html)"),
) -> None:
    """Render the self-contained HTML report (and results/claims.csv, metrics/claims.json); print each
    claim's verdict, as the page's claims table has it, and the page's path."""
    from prompttune import paths
    from prompttune.pipeline import read_grid_record
    from prompttune.report import render_report, verdict_lines

    record = read_grid_record(grid_record)
    if not (results / "runs.csv").is_file():
        raise PromptTuneError(f"{results / 'runs.csv'}: not found; run `prompttune aggregate` first")
    path = render_report(record, results, out or paths.report(record.profile))
    for line in verdict_lines(results / "claims.csv"):
        typer.echo(line)
    typer.echo(str(path.resolve()))


@app.command()
def profile(
    name: str = typer.Argument(..., help="a profile of profiles.yaml (beside params.yaml)"),
    params: Path = PARAMS,
) -> None:
    """Make profile NAME the active grid: name it in params.yaml (``profile: NAME``, comments and overrides
    kept), then configure. Under DVC, ``dvc exp run -S profile=NAME`` does the same as an experiment."""
    import io

    from ruamel.yaml import YAML

    from prompttune.config import PROFILES, load_params, params_from_dict
    from prompttune.io import atomic_write_text
    from prompttune.pipeline import configure as write

    presets = params.with_name(PROFILES)
    if not presets.is_file():
        raise PromptTuneError(f"{presets}: not found (the profiles, beside {params.name})")
    known = load_params(params).profiles  # both files valid before either is touched
    if name not in known:
        raise PromptTuneError(f"{presets}: unknown profile {name!r}; known: {', '.join(sorted(known))}")
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 110  # the file's own width: folded text keeps its line breaks
    doc = yaml.load(params.read_text(encoding="utf-8"))
    doc["profile"] = name
    try:  # params.yaml's overrides must hold for the new profile too: checked before the file is written
        chosen = params_from_dict(dict(doc), params, known)
    except PromptTuneError as exc:
        raise PromptTuneError(f"{params}: with profile {name!r}: {exc}") from exc
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    atomic_write_text(params, buffer.getvalue())
    write(chosen, params.parent)
    overrides = [key for key in ("grid", "run", "studies") if doc.get(key)]
    kept = f" (its overrides of {', '.join(overrides)} kept)" if overrides else ""
    typer.echo(f"{params}: active profile is now {name!r}{kept}")


@app.command()
def landscape(
    config: Path = typer.Option(
        ..., help="configs/landscape/<cell>/<method>.json, or the folder configs/landscape: every one in it"
    ),
    data: Path | None = typer.Option(None, help="data root of the cell (default data/<cell>)"),
    prune: bool = typer.Option(False, help="with a folder: remove results of pairs not in it"),
) -> None:
    """PTP's loss landscape of one (cell, method), every seed of the study: per seed surface.json (with
    sharpness) and surface.png, and surfaces.png on one colour scale. With a folder (DVC's form:
    configs/landscape --prune), every (cell, method) in it; a seed's surface is kept while its inputs
    are."""

    from prompttune import paths
    from prompttune.io import read_json
    from prompttune.landscape import landscape_for_method

    files = sorted(config.rglob("*.json")) if config.is_dir() else [config]
    if config.is_dir() and data is not None:
        raise PromptTuneError(f"--config {config}: a folder reads each cell's own data; drop --data")
    if prune and not config.is_dir():
        raise PromptTuneError("--prune goes with --config FOLDER (the folder is the whole study)")
    specs = [read_json(path) for path in files]
    if prune:
        _remove_stale_pairs({Path(spec["out"]) for spec in specs})
    for spec in specs:
        surfaces = landscape_for_method(spec, data or paths.data_dir(spec["cell"]), say)
        values = ", ".join(
            "failed" if s["sharpness"] is None else f"{s['sharpness']:.4f} (score {s['centre_score']:.2f})"
            for s in surfaces
        )
        typer.echo(
            f"{spec['out']}: calibrated sharpness (rho {spec['rho']}) per seed, at its score: {values}"
        )


def _remove_stale_pairs(outs: set[Path]) -> None:
    """Delete the landscape results of (cell, method) pairs whose folder is not in ``outs`` (the whole
    study)."""
    import shutil

    from prompttune import paths

    for stale in sorted(Path().glob(str(paths.landscape_dir("*", "*")))):
        if stale.is_dir() and stale not in outs:
            say(f"{stale}: not in the study, removed")
            shutil.rmtree(stale)


@app.command("mi-check")
def mi_check(
    config: Path = typer.Option(Path("configs/mi_check.json"), help="from `prompttune configure`"),
    data: Path | None = typer.Option(None, help="data root of the study's cell (default data/<cell>)"),
    synthetic_only: bool = typer.Option(
        False, help="skip the real-model part (the verdict is then inconclusive)"
    ),
    out: Path = typer.Option(Path("results/mi_check"), help="output folder"),
) -> None:
    """InfoPrompt's gradient-descent claim, checked empirically and falsifiably (mi_check.py):
    checks.json, synthetic.png, real.png. Checks that fail are results (the report gives the verdict)."""
    from prompttune import paths
    from prompttune.io import read_json
    from prompttune.mi_check import verify

    spec = read_json(config)
    data_root = None if synthetic_only else data or paths.data_dir(spec["cell"])
    result = verify(out, data_root, spec, say)
    checks = [c for c in result["checks"] if c["role"] == "check"]
    controls = [c for c in result["checks"] if c["role"] == "control"]
    typer.echo(
        f"{out}: {sum(c['passed'] for c in checks)} of {len(checks)} checks passed, "
        f"{sum(not c['passed'] for c in controls)} of {len(controls)} negative controls failed"
    )


@app.command("export-peft")
def export_peft(
    run_dir: Path = typer.Argument(..., help="a finished run of base pt (either prompt position) or pt2"),
    out: Path = typer.Argument(..., help="output folder (replaced whole)"),
) -> None:
    """Export a run's prompt as a PEFT prompt- or prefix-tuning adapter, with the task head and the recipe
    beside it (head.safetensors, prompttune_head.json; prompttune.export.peft_logits reproduces the run)."""
    from prompttune.export import export_peft as export

    path = export(run_dir, out)
    typer.echo(f"{path}: PEFT adapter of {run_dir} (AutoModel + PeftModel.from_pretrained), head beside it")


def main() -> None:
    try:
        app()
    except PromptTuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
