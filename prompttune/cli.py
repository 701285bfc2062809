"""``prompttune``: the one command line that both pipelines (DVC and Snakemake) call."""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import typer

from prompttune.errors import PromptTuneError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)

PARAMS = typer.Option(Path("params.yaml"), "--params", help="the grid definition")


@app.command()
def fetch(
    cell: str = typer.Option(..., help="<setting>.<task>, e.g. fewglue.CB"),
    dest: Path | None = typer.Option(None, help="data root for the cell (default data/<cell>)"),
) -> None:
    """Fetch and verify the data files of one cell (offline: from $PROMPTTUNE_DATA_MIRROR)."""
    from prompttune.config import split_cell
    from prompttune.data import fetch as fetch_files
    from prompttune.splits import required_files

    dest = dest or Path("data") / cell
    files = required_files(*split_cell(cell))
    manifest = fetch_files(files, dest)
    verified = sum(entry["verified"] for entry in manifest.values())
    typer.echo(f"{dest}: {len(files)} files, {verified} verified against the checksum table")


@app.command()
def train(
    cell: str = typer.Option(..., help="<setting>.<task>, e.g. fewglue.CB"),
    method: str = typer.Option(..., help="<base>[-<objective>], e.g. pt2 or pt-infoprompt"),
    seed: list[int] | None = typer.Option(
        None, help="training seed; repeat it to train several seeds of the cell in one process"
    ),
    grid_seeds: bool = typer.Option(
        False,
        "--grid-seeds",
        help="every seed of grid.seeds (grid.variants.seeds with --variant), in one process; also writes "
        "runs/<cell>/<method>[@<variant>].metrics.json (the pipelines' form)",
    ),
    variant: str | None = typer.Option(None, help="a key of run.variants (variant runs)"),
    params: Path = PARAMS,
    data: Path | None = typer.Option(None, help="data root (default data/<cell>, see `prompttune fetch`)"),
    out: Path | None = typer.Option(
        None, help="run folder, one seed only (default runs/<cell>/<method>[@<variant>]/seed<seed>)"
    ),
) -> None:
    """Train and evaluate one grid cell, for one seed or several (seed-parallel where the objective
    allows: see README, "Seed-parallel training")."""
    from prompttune.config import Cell, load_params, resolve_run, split_cell
    from prompttune.io import atomic_write_json
    from prompttune.train import train_seeds

    loaded = load_params(params)
    if grid_seeds == bool(seed):
        raise PromptTuneError("give --seed (repeatable) or --grid-seeds, not both and not neither")
    seed = (loaded.grid.variants.seeds if variant else loaded.grid.seeds) if grid_seeds else seed
    if len(set(seed)) != len(seed):
        raise PromptTuneError(f"--seed: repeated seed in {seed}")
    if out is not None and (len(seed) > 1 or grid_seeds):
        raise PromptTuneError(
            "--out names one run folder; it cannot be used with several seeds or --grid-seeds"
        )
    setting, task = split_cell(cell)
    runs = [Cell(setting=setting, task=task, method=method, seed=s, variant=variant) for s in seed]
    configs = [resolve_run(loaded, run) for run in runs]
    out_dirs = [out] if out is not None else [run.run_dir for run in runs]
    results = train_seeds(configs, data or Path("data") / cell, out_dirs)
    for run, metrics in zip(runs, results, strict=True):
        score = f"{100 * metrics.report.score:.1f}" if metrics.report else "—"
        split = metrics.report.name if metrics.report else "report"
        typer.echo(f"{run.run_dir}: {metrics.status}, {split} {score}")
    if grid_seeds:
        headlines = {f"seed{m.seed}": m.headline() for m in results}
        atomic_write_json(runs[0].seeds_metrics, headlines)


@app.command()
def grid(params: Path = PARAMS) -> None:
    """List the runs of the grid, one folder per line."""
    from prompttune.config import expand_grid, load_params

    for run in expand_grid(load_params(params)):
        typer.echo(str(run.run_dir))


@app.command()
def aggregate(params: Path = PARAMS, out: Path = typer.Option(Path("results"), help="output folder")) -> None:
    """Tabulate the grid's runs: results/runs.csv, summary.csv, summary.json."""
    from prompttune.aggregate import write_aggregate
    from prompttune.config import load_params

    summary = write_aggregate(load_params(params), out)
    typer.echo(f"{len(summary)} cells aggregated into {out}")


@app.command()
def report(
    params: Path = PARAMS,
    results: Path = typer.Option(Path("results"), help="output of `prompttune aggregate`"),
    out: Path | None = typer.Option(None, help="HTML file (default reports/<profile>.html)"),
) -> None:
    """Render the self-contained HTML report."""
    from prompttune.config import load_params
    from prompttune.report import render_report

    loaded = load_params(params)
    path = render_report(loaded, results, out or Path("reports") / f"{loaded.profile or 'custom'}.html")
    typer.echo(str(path.resolve()))


@app.command()
def profile(
    name: str = typer.Argument(..., help="a key of `profiles` in params.yaml"), params: Path = PARAMS
) -> None:
    """Make profile NAME the active grid: copy its grid and run blocks into place (comments kept)."""
    import io

    from ruamel.yaml import YAML

    from prompttune.config import load_params
    from prompttune.io import atomic_write_text

    loaded = load_params(params)
    if name not in loaded.profiles:
        known = ", ".join(sorted(loaded.profiles))
        raise PromptTuneError(f"{params}: unknown profile {name!r}; known: {known}")
    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 110  # the file's own width: folded text keeps its line breaks
    doc = yaml.load(params.read_text(encoding="utf-8"))
    doc["profile"] = name
    for section in ("grid", "run", "studies"):
        doc[section] = copy.deepcopy(doc["profiles"][name][section])
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    atomic_write_text(params, buffer.getvalue())
    load_params(params)
    typer.echo(f"{params}: active profile is now {name!r}")


@app.command()
def landscape(
    cell: str = typer.Option(..., help="<setting>.<task> of the grid"),
    method: str = typer.Option(..., help="a method of studies.landscape.methods"),
    params: Path = PARAMS,
    data: Path | None = typer.Option(None, help="data root of the cell (default data/<cell>)"),
    out: Path | None = typer.Option(None, help="output folder (default results/landscape/<cell>/<method>)"),
) -> None:
    """PTP's loss landscape of one (cell, method), every seed of studies.landscape: per seed
    surface.json (with sharpness) and surface.png, and surfaces.png on one colour scale."""
    from prompttune.config import Cell, load_params, split_cell
    from prompttune.landscape import landscape_for_method

    loaded = load_params(params)
    study = loaded.studies.landscape
    if cell not in study.cells or method not in study.methods:
        raise PromptTuneError(
            f"{params}: studies.landscape covers cells {study.cells} × methods {study.methods}"
        )
    runs = [Cell(*split_cell(cell), method, seed).run_dir for seed in study.seeds]
    out = out or Path("results/landscape") / cell / method
    surfaces = landscape_for_method(runs, data or Path("data") / cell, out, study)
    values = ", ".join(f"{s['sharpness']:.4f}" for s in surfaces)
    typer.echo(f"{out}: sharpness (rho {study.rho}) per seed: {values}")


@app.command("mi-check")
def mi_check(
    params: Path = PARAMS,
    data: Path | None = typer.Option(None, help="data root of studies.mi_check.cell (default data/<cell>)"),
    synthetic_only: bool = typer.Option(False, help="skip the real-model part"),
    out: Path = typer.Option(Path("results/mi_check"), help="output folder"),
    quick: bool = typer.Option(False, help="as studies.mi_check.quick: a reduced check (tests)"),
) -> None:
    """InfoPrompt's gradient-descent claim, checked empirically as studies.mi_check says (backbone:
    run.backbone): checks.json, synthetic.png, real.png. Checks that do not come out as expected are
    results (the report gives the verdict), not errors."""
    from prompttune.config import load_params
    from prompttune.mi_check import verify

    loaded = load_params(params)
    study = loaded.studies.mi_check
    data_root = None if synthetic_only else data or Path("data") / study.cell
    result = verify(
        out,
        data_root,
        backbone=loaded.run.backbone,
        seeds=tuple(study.seeds),
        steps=study.steps,
        quick=quick or study.quick,
    )
    checks = result["checks"]
    as_expected = sum(check["passed"] == check["expected"] for check in checks)
    typer.echo(f"{out}: {as_expected} of {len(checks)} checks came out as expected")


@app.command("export-peft")
def export_peft(
    run_dir: Path = typer.Argument(..., help="a finished run of base pt with prompt.position start"),
    out: Path = typer.Argument(..., help="output folder (replaced whole)"),
) -> None:
    """Export a run's shallow prompt as a PEFT prompt-tuning adapter, with the task head beside it
    (head.safetensors, prompttune_head.json)."""
    from prompttune.export import export_peft as export

    path = export(run_dir, out)
    typer.echo(f"{path}: PEFT adapter of {run_dir} (AutoModel + PeftModel.from_pretrained), head beside it")


def main() -> None:
    try:
        app()
    except PromptTuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
