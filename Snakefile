# The grid of params.yaml as a Snakemake workflow: the same DAG, files and `prompttune` commands as dvc.yaml.
# Local: `snakemake -c2`. Cluster: `snakemake --profile pipelines/profiles/slurm`. What runs is Snakemake's own
# config — params.yaml, then any `--configfile other.yaml` and `--config key=value` on top — resolved here with
# prompttune's validation and written to configs/ as `prompttune configure` does (a file only when its content
# changes), so every job reads its own resolved config and a training job reruns exactly when that changed.
# Each job's threads and resources (runtime, mem_mb, gpu) come from the cost model, prompttune/cost.py.
from pathlib import Path

from prompttune import cost, paths
from prompttune.config import params_from_dict
from prompttune.errors import PromptTuneError
from prompttune.pipeline import configure, records

configfile: "params.yaml"

try:
    PARAMS = params_from_dict(config, Path("params.yaml"))
    configure(PARAMS)
except PromptTuneError as exc:
    raise SystemExit(f"error: snakemake config: {exc}")
_, STAGES, LANDSCAPES = records(PARAMS)  # training stages with their seeds; the landscapes' (cell, method)
PROFILE = PARAMS.profile or "custom"
STACK = PARAMS.grid.stack_seeds
COST = cost.ProfileCost(PARAMS, per_seed=not STACK)  # each job costed when Snakemake first asks


rule all:
    input:
        str(paths.report(PROFILE)),


include: "pipelines/grid.smk"
