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
    seed: int = typer.Option(..., help="training seed"),
    params: Path = PARAMS,
    data: Path | None = typer.Option(None, help="data root (default data/<cell>, see `prompttune fetch`)"),
    out: Path | None = typer.Option(None, help="run folder (default runs/<cell>/<method>/seed<seed>)"),
) -> None:
    """Train and evaluate one grid cell."""
    from prompttune.config import Cell, load_params, resolve_run, split_cell
    from prompttune.train import train_run

    setting, task = split_cell(cell)
    run = Cell(setting=setting, task=task, method=method, seed=seed)
    config = resolve_run(load_params(params), run)
    metrics = train_run(config, data or Path("data") / cell, out or run.run_dir)
    score = f"{100 * metrics.report.score:.1f}" if metrics.report else "—"
    typer.echo(
        f"{run.run_dir}: {metrics.status}, {metrics.report.name if metrics.report else 'report'} {score}"
    )


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
    doc = yaml.load(params.read_text(encoding="utf-8"))
    doc["profile"] = name
    doc["grid"] = copy.deepcopy(doc["profiles"][name]["grid"])
    doc["run"] = copy.deepcopy(doc["profiles"][name]["run"])
    buffer = io.StringIO()
    yaml.dump(doc, buffer)
    atomic_write_text(params, buffer.getvalue())
    load_params(params)
    typer.echo(f"{params}: active profile is now {name!r}")


@app.command()
def landscape(
    run_dir: Path = typer.Argument(..., help="a finished run folder, e.g. runs/fewglue.CB/pt2/seed1"),
    data: Path | None = typer.Option(None, help="data root of the run's cell (default data/<cell>)"),
    out: Path | None = typer.Option(None, help="output folder (default results/landscape/<run>)"),
    radius: float = typer.Option(0.2, help="grid half-width, in units of rms(E)·√(perturbed coordinates)"),
    points: int = typer.Option(21, help="grid points per axis (odd)"),
    rho: float = typer.Option(0.1, help="sharpness radius (≤ radius)"),
    n_examples: int = typer.Option(16, help="first N examples of the report split"),
) -> None:
    """PTP's loss landscape of a finished run: surface.json (with sharpness) and surface.png."""
    from prompttune.landscape import landscape_for_run

    cell = run_dir.parent.parent.name
    out = out or Path("results/landscape") / run_dir.relative_to(run_dir.parents[2])
    data = data or Path("data") / cell
    result = landscape_for_run(
        run_dir, data, out, radius=radius, points=points, rho=rho, n_examples=n_examples
    )
    typer.echo(f"{out}: sharpness {result['sharpness']:.4f} (rho {rho})")


@app.command("mi-check")
def mi_check(
    data: Path = typer.Option(Path("data/fewglue.CB"), help="FewGLUE CB data root for the real-model part"),
    synthetic_only: bool = typer.Option(False, help="skip the real-model part"),
    out: Path = typer.Option(Path("results/mi_check"), help="output folder"),
    backbone: str = typer.Option("minilm", help="backbone of the real-model part"),
    seeds: list[int] = typer.Option([1, 2, 3], "--seed", help="seeds of the real-model part (repeatable)"),
    steps: int | None = typer.Option(None, help="GD steps of the real-model part (default 60)"),
    quick: bool = typer.Option(False, help="a few steps only (tests)"),
) -> None:
    """InfoPrompt's gradient-descent claim, checked empirically: checks.json, synthetic.png, real.png."""
    from prompttune.mi_check import verify

    data_root = None if synthetic_only else data
    result = verify(out, data_root, backbone=backbone, seeds=tuple(seeds), steps=steps, quick=quick)
    checks = result["checks"]
    as_expected = sum(check["passed"] == check["expected"] for check in checks)
    typer.echo(f"{out}: {as_expected} of {len(checks)} checks came out as expected")
    if not result["passed"]:
        raise PromptTuneError(f"{out / 'checks.json'}: some checks did not come out as expected")


def main() -> None:
    try:
        app()
    except PromptTuneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
