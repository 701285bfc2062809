# The grid of params.yaml as a Snakemake workflow: the files and `prompttune` commands of dvc.yaml, a job per stage.
# Local: `snakemake -c2`. Cluster: `snakemake --profile pipelines/profiles/slurm`. What runs is Snakemake's own
# config — params.yaml, then any `--configfile other.yaml` and `--config key=value` on top — resolved here with
# prompttune's validation and written to configs/ as `prompttune configure` does (a file only when its content
# changes), so every job reads its own resolved config; each job also carries that record as its params, so a
# job reruns exactly when its record changed, and a dry run (which writes nothing) lists the same jobs.
# Each job's threads and resources (runtime, mem_mb, gpu) come from the cost model, prompttune/cost.py, on the machines
# a cluster profile declares among its default-resources (pipelines/profiles/slurm/config.yaml: the GPU model, the
# node's CPUs and memory, the GPU partition, the length short jobs are grouped to); without a profile, on this
# machine's, ungrouped.
import sys
from pathlib import Path

from prompttune import cost, paths
from prompttune.config import params_from_dict
from prompttune.errors import PromptTuneError
from prompttune.pipeline import configure, records

configfile: "params.yaml"

# What only looks (a dry run, lint, summaries, graphs) writes nothing: those runs see each job's resolved
# record as its params, which is what decides a rerun, so they list the same jobs without the files.
LOOK_ONLY = {"--dry-run", "--dryrun", "--lint", "--summary", "--detailed-summary", "--list-rules", "--list",
             "--dag", "--rulegraph", "--filegraph", "--d3dag", "--list-changes", "--lc", "--list-code-changes",
             "--list-input-changes", "--li", "--list-params-changes", "--lp", "--list-untracked", "--lu"}


def looks_only(argv):
    """Whether Snakemake was asked only to look: a long flag of LOOK_ONLY, or -n / -l in a group of short flags
    (letters only, as `-np`; a short option with its value attached, as `-c1`, is not a group)."""
    shorts = [a[1:] for a in argv if a.startswith("-") and not a.startswith("--") and a[1:].isalpha() and len(a) <= 5]
    return bool(LOOK_ONLY & {a.split("=")[0] for a in argv}) or any(letter in "nl" for group in shorts for letter in group)


try:
    PARAMS = params_from_dict(config, Path("params.yaml"))
    if not looks_only(sys.argv[1:]):
        configure(PARAMS)
except PromptTuneError as exc:
    raise SystemExit(f"error: snakemake config: {exc}")
TEXTS, STAGES, LANDSCAPES = records(PARAMS)  # records (path → text); stages' seeds; landscapes' (cell, method)
PROFILE = PARAMS.profile or "custom"
STACK = PARAMS.grid.stacked_jobs


def declared(name, default):
    """A setting the profile declares among its default-resources, where `--set-resources` on the command line leaves
    it alone (a command-line `--default-resources` replaces the profile's: give them all there)."""
    resources = workflow.resource_settings.default_resources
    found = resources.get(name) if resources is not None else None
    if found is None or found.raw is None:  # not declared (get gives an empty Resource for an unknown name)
        return default
    return str(found.raw).strip("'\"") if isinstance(default, str) or default is None else int(found.raw)


NODE = cost.Node(
    gpu_model=declared("gpu_type", cost.DEFAULT_GPU),
    cpus=declared("node_cpus", 0),
    mem_mb=declared("node_mem_mb", 0),
    gpu_partition=declared("gpu_partition", None),
)
try:
    CLUSTER = NODE.cluster()
except PromptTuneError as exc:
    raise SystemExit(f"error: cluster profile: {exc}")
COST = cost.ProfileCost(PARAMS, per_seed=not STACK, cluster=CLUSTER)  # each job costed when Snakemake first asks
GROUP_MINUTES = declared("group_minutes", 0)  # short jobs grouped to this length (pipelines/grid.smk; 0: none)


rule all:
    input:
        str(paths.report(PROFILE)),


include: "pipelines/grid.smk"
