# Rules of the Snakefile (PARAMS, STAGES, LANDSCAPES, PROFILE and STACK come from it): the same jobs as dvc.yaml's
# stages, with the same outputs; with grid.stack_seeds false, one training job per seed instead. Each rule's code inputs
# are the ones dvc.yaml declares for the same stage (one list, checked against the import closure by
# tests/test_pipelines.py), so an edit to the code a job imports reruns it in both pipelines.
import yaml

RUN_FILES = ["prompt.pt", "predictions.jsonl", "config.json", "provenance.json", "metrics.json", "curve.csv"]
DVC_STAGES = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]


def code(stage):
    """The project's files dvc.yaml declares for ``stage`` (folders expanded: Snakemake reads file times)."""
    deps = DVC_STAGES[stage].get("do", DVC_STAGES[stage])["deps"]
    files = []
    for dep in (Path(d) for d in deps if d.startswith("prompttune")):
        files += sorted(str(f) for f in dep.rglob("*") if f.is_file() and "__pycache__" not in f.parts) if dep.is_dir() else [str(dep)]
    return files


rule fetch:
    input:
        code("fetch"),
    output:
        directory("data/{cell}"),
    wildcard_constraints:
        cell=r"[^/]+",
    shell:
        "prompttune fetch --cell {wildcards.cell} --dest {output}"


STAGE_OF = {(stage.cell, paths.method_dir(stage).name): stage for stage in STAGES}  # runs/<cell>/<name>


def stage_config(w):
    return str(paths.stage_config(STAGE_OF[w.cell, w.name]))


if STACK:  # one job per stage, every seed in one process, as DVC's stages

    rule train:
        input:
            config=stage_config,
            data="data/{cell}",
            code=code("train"),
        output:
            directory("runs/{cell}/{name}"),
            "metrics/{cell}/{name}.json",
            "metrics/curves/{cell}/{name}.csv",
        wildcard_constraints:
            cell=r"[^/]+",
            name=r"[^/]+",
        shell:
            "prompttune train --config {input.config}"

    RUN_INPUTS = {stage: [str(paths.method_dir(stage))] for stage in STAGES}

else:  # one job per seed, for a cluster to spread

    rule train:
        input:
            config=stage_config,
            data="data/{cell}",
            code=code("train"),
        output:
            [f"runs/{{cell}}/{{name}}/seed{{seed}}/{name}" for name in RUN_FILES],
        wildcard_constraints:
            cell=r"[^/]+",
            name=r"[^/]+",
            seed=r"\d+",
        shell:
            "prompttune train --config {input.config} --seed {wildcards.seed}"

    RUN_INPUTS = {stage: [f"{paths.run_dir(stage, seed)}/metrics.json" for seed in seeds] for stage, seeds in STAGES.items()}


rule landscape:
    input:
        config="configs/landscape/{cell}/{method}.json",
        data="data/{cell}",
        runs=lambda w: RUN_INPUTS[STAGE_OF[w.cell, w.method]],
        code=code("landscape"),
    output:
        directory("results/landscape/{cell}/{method}"),
    wildcard_constraints:
        cell=r"[^/]+",
        method=r"[^/]+",
    shell:
        "prompttune landscape --config {input.config}"


rule mi_check:
    input:
        config=str(paths.MI_CHECK_CONFIG),
        data=f"data/{PARAMS.studies.mi_check.cell}",
        code=code("mi-check"),
    output:
        directory(str(paths.MI_CHECK_DIR)),
    shell:
        "prompttune mi-check"


rule aggregate:
    input:
        str(paths.GRID_RECORD),
        [f for files in RUN_INPUTS.values() for f in files],
        [str(paths.landscape_dir(cell, method)) for cell, method in LANDSCAPES],
        code("aggregate"),
    output:
        "results/runs.csv",
        "results/curves.csv",
        "results/summary.csv",
    shell:
        "prompttune aggregate --out results"


rule report:
    input:
        str(paths.GRID_RECORD),
        "results/runs.csv",
        "results/curves.csv",
        str(paths.MI_CHECK_DIR),
        [str(paths.landscape_dir(cell, method)) for cell, method in LANDSCAPES],
        code("report"),
    output:
        "results/claims.csv",
        str(paths.report(PROFILE)),
    shell:
        "prompttune report --out {output[1]}"
