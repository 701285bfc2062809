# Rules of the Snakefile (PARAMS, TEXTS, STAGES, LANDSCAPES, PROFILE, STACK and COST come from it): the files of dvc.yaml's
# stages, one job per cell (fetch), training stage (train) and landscape, each running the command DVC runs over the
# whole grid on that one record; with grid.stack_seeds false or grid.decide, one training job per seed instead. Each
# rule's code inputs are the ones dvc.yaml declares for the same stage (one list, checked against the import closure by
# tests/test_pipelines.py), so an edit to the code a job imports reruns it in both pipelines.
#
# The cluster route: fetch, prefetch, aggregate and report run where Snakemake runs (the login node, which reaches the
# internet); every rule declares its threads (Snakemake exports OMP_NUM_THREADS and the other BLAS thread counts as the
# job's threads, the SLURM executor asks for them as --cpus-per-task); train, landscape and mi_check take their
# runtime and mem_mb (both scaled by the attempt: a job retried after a timeout or a kill for memory gets more of both,
# memory at most a node's) and gpu from prompttune/cost.py on the NODE the profile declares, which also places GPU
# jobs in its GPU partition (here, not in the profile's set-resources: `--set-resources` on the command line then
# changes only what it names). With the profile's group_minutes, short train and landscape jobs run in groups of at
# least that length (`groups`), one after another in one submission. A hub
# backbone is downloaded once by `prefetch` into the Hugging Face cache (which the compute nodes must share, e.g. through
# HF_HOME), and with such a backbone in the profile the compute jobs run HF_HUB_OFFLINE=1 before their `prompttune`
# command.
import functools
import json

import yaml

from prompttune.backbone import EMBEDDED

RUN_FILES = ["prompt.pt", "predictions.jsonl", "config.json", "provenance.json", "metrics.json", "curve.csv"]
DVC_STAGES = yaml.safe_load(Path("dvc.yaml").read_text())["stages"]


def code(stage):
    """The project's files dvc.yaml declares for ``stage`` (folders expanded: Snakemake reads file times)."""
    deps = DVC_STAGES[stage].get("do", DVC_STAGES[stage])["deps"]
    files = []
    for dep in (Path(d) for d in deps if d.startswith("prompttune")):
        files += sorted(str(f) for f in dep.rglob("*") if f.is_file() and "__pycache__" not in f.parts) if dep.is_dir() else [str(dep)]
    return files


localrules:
    all,
    fetch,
    prefetch,
    aggregate,
    report,


def hub_id(backbone):
    """A backbone the jobs read from the Hugging Face hub: neither embedded nor a local folder."""
    return backbone not in EMBEDDED and not Path(backbone).exists()


BACKBONES = {name.replace("/", "--"): name for name in {c.run.backbone for c in COST.stages.values()} if hub_id(name)}


def prefetched(backbone):
    """The prefetch record a job reading ``backbone`` waits for (none for an embedded or local one); ancient: a
    repeated prefetch reruns nothing."""
    return [ancient(f"backbones/{backbone.replace('/', '--')}.json")] if hub_id(backbone) else []


# Each compute job's progress lines (stderr) go to the console and to its log under logs/ (kept after the job).
LOG = " 2> >(tee {log} >&2)"

# The compute jobs' shell prefix when the profile reads the hub (none otherwise: the commands stay DVC's, unchanged).
OFFLINE = "HF_HUB_OFFLINE=1 " if BACKBONES else ""


@functools.cache
def groups():
    """Short jobs grouped to the profile's group_minutes (cost.group_jobs: jobs of one rule and device, in the
    pipeline's order, each group at least that long unless it holds every short job of its kind), by the output
    that names each job; none without group_minutes."""
    return cost.group_jobs(COST.jobs(), GROUP_MINUTES) if GROUP_MINUTES else {}


def group_of(key):
    """A job's Snakemake group: the jobs one submission runs (None: a submission of its own)."""
    return lambda w: groups()[key(w)].name if key(w) in groups() else None


def after(key):
    """The output of the job before this one in its group, as an ancient input: the group's jobs run one after
    another (so the submission asks for one GPU and the sum of their runtimes), and the order never reruns a job
    (the profile leaves out Snakemake's input trigger, which would see a regrouping as a change)."""

    def before(w):
        group = groups().get(key(w))
        if group is None or group.members[0] == key(w):
            return []
        return [ancient(group.members[group.members.index(key(w)) - 1])]

    return before


def job_resources(job_cost, key=None):
    """A rule's resources from its jobs' cost records (``job_cost(wildcards)``): runtime and memory × attempt, memory
    capped by the node (a first request above it stops at submission); a job in a group (``key(wildcards)``, the
    output that names it) asks for its runtime without the per-job minimum, so its group asks for the sum; with a GPU
    partition declared, the partition."""

    def runtime(w, attempt):
        job = job_cost(w)
        return (job.work_request_min if key and key(w) in groups() else job.runtime_min) * attempt

    resources = dict(
        runtime=runtime,
        mem_mb=lambda w, attempt: NODE.mem_request(job_cost(w), attempt),
        gpu=lambda w: int(job_cost(w).gpu),
    )
    if NODE.gpu_partition:
        other = declared("slurm_partition", "")
        resources["slurm_partition"] = lambda w: NODE.gpu_partition if job_cost(w).gpu else other
    return resources


rule prefetch:
    output:
        "backbones/{backbone}.json",
    wildcard_constraints:
        backbone=r"[^/]+",
    threads: 1
    resources:
        **cost.LOCAL_JOB,
    run:
        from huggingface_hub import snapshot_download

        from prompttune.backbone import load_backbone

        name = BACKBONES[wildcards.backbone]
        load_backbone(name)  # the files every job loads, into the cache, and proof that they load
        snapshot = snapshot_download(name, local_files_only=True, allow_patterns=["config.json"])
        record = {"backbone": name, "revision": Path(snapshot).name, "snapshot": snapshot}
        Path(output[0]).write_text(json.dumps(record, indent=2) + "\n")


rule fetch:
    input:
        code("fetch"),
    output:
        directory("data/{cell}"),
    wildcard_constraints:
        cell=r"[^/]+",
    threads: 1
    resources:
        **cost.LOCAL_JOB,
    shell:
        "prompttune fetch --cell {wildcards.cell} --dest {output}"


STAGE_OF = {(stage.cell, paths.method_dir(stage).name): stage for stage in STAGES}  # runs/<cell>/<name>


def stage_config(w):
    return str(paths.stage_config(STAGE_OF[w.cell, w.name]))


def record(path):
    """A job's params: the resolved record it reads (configs/…), so a change to it reruns the job (Snakemake's
    params trigger) whether or not the file was written yet."""
    return lambda w: TEXTS[path(w) if callable(path) else str(path)]


def stage_backbone(w):
    return COST.stages[STAGE_OF[w.cell, w.name]].run.backbone


def train_cost(w):
    return COST.train(STAGE_OF[w.cell, w.name])


if STACK:  # one job per stage, every seed in one process, as DVC's stages

    def train_key(w):
        return str(paths.headline(STAGE_OF[w.cell, w.name]))

    rule train:
        input:
            config=stage_config,
            data="data/{cell}",
            backbone=lambda w: prefetched(stage_backbone(w)),
            code=code("train"),
            after=after(train_key),
        params:
            run=record(stage_config),
        output:
            directory("runs/{cell}/{name}"),
            "metrics/train/{cell}/{name}.json",
            "metrics/curves/{cell}/{name}.csv",
        wildcard_constraints:
            cell=r"[^/]+",
            name=r"[^/]+",
        log:
            "logs/train/{cell}/{name}.log",
        group: group_of(train_key)
        threads: lambda w: train_cost(w).cpus
        resources:
            **job_resources(train_cost, train_key),
        shell:
            OFFLINE + "prompttune train --config {input.config}" + LOG

    RUN_INPUTS = {stage: [str(paths.method_dir(stage))] for stage in STAGES}

else:  # one job per seed, for a cluster to spread

    def seed_run(w):
        """The seed's resolved run config: a change reruns the job (Snakemake's params trigger), while the
        stage config file it shares with other seeds is ancient, so adding seeds trains only the new ones."""
        return json.dumps(COST.stages[STAGE_OF[w.cell, w.name]].run.to_dict() | {"seed": int(w.seed)}, sort_keys=True)

    def train_key(w):
        return str(paths.run_dir(STAGE_OF[w.cell, w.name], int(w.seed)) / "metrics.json")

    rule train:
        input:
            config=ancient(stage_config),
            data="data/{cell}",
            backbone=lambda w: prefetched(stage_backbone(w)),
            code=code("train"),
            after=after(train_key),
        params:
            run=seed_run,
        output:
            [f"runs/{{cell}}/{{name}}/seed{{seed}}/{name}" for name in RUN_FILES],
        wildcard_constraints:
            cell=r"[^/]+",
            name=r"[^/]+",
            seed=r"\d+",
        log:
            "logs/train/{cell}/{name}/seed{seed}.log",
        group: group_of(train_key)
        threads: lambda w: train_cost(w).cpus
        resources:
            **job_resources(train_cost, train_key),
        shell:
            OFFLINE + "prompttune train --config {input.config} --seed {wildcards.seed}" + LOG

    RUN_INPUTS = {stage: [f"{paths.run_dir(stage, seed)}/metrics.json" for seed in seeds] for stage, seeds in STAGES.items()}


def landscape_backbone(w):
    return COST.stages[STAGE_OF[w.cell, w.method]].run.backbone


def landscape_cost(w):
    return COST.landscape(w.cell, w.method)


def landscape_key(w):
    return str(paths.landscape_dir(w.cell, w.method))


rule landscape:
    input:
        config="configs/landscape/{cell}/{method}.json",
        data="data/{cell}",
        runs=lambda w: RUN_INPUTS[STAGE_OF[w.cell, w.method]],
        backbone=lambda w: prefetched(landscape_backbone(w)),
        code=code("landscape"),
        after=after(landscape_key),
    params:
        spec=record(lambda w: str(paths.landscape_config(w.cell, w.method))),
    output:
        directory("results/landscape/{cell}/{method}"),
    wildcard_constraints:
        cell=r"[^/]+",
        method=r"[^/]+",
    log:
        "logs/landscape/{cell}/{method}.log",
    group: group_of(landscape_key)
    threads: lambda w: landscape_cost(w).cpus
    resources:
        **job_resources(landscape_cost, landscape_key),
    shell:
        OFFLINE + "prompttune landscape --config {input.config}" + LOG


rule mi_check:
    input:
        config=str(paths.MI_CHECK_CONFIG),
        data=f"data/{PARAMS.studies.mi_check.cell}",
        backbone=prefetched(COST.mi_spec["backbone"]),
        code=code("mi-check"),
    params:
        spec=record(paths.MI_CHECK_CONFIG),
    output:
        directory(str(paths.MI_CHECK_DIR)),
    log:
        "logs/mi_check.log",
    threads: lambda w: COST.mi_check().cpus
    resources:
        **job_resources(lambda w: COST.mi_check()),
    shell:
        OFFLINE + "prompttune mi-check" + LOG


# The loop's seeds (grid.decide): a dry run, which writes no record, still sees a round's new seeds by them.
LOOP_SEEDS = [name for name in ["seeds.yaml"] if PARAMS.grid.decide and Path(name).is_file()]


rule aggregate:
    input:
        str(paths.GRID_RECORD),
        LOOP_SEEDS,
        [f for files in RUN_INPUTS.values() for f in files],
        [str(paths.landscape_dir(cell, method)) for cell, method in LANDSCAPES],
        code("aggregate"),
    params:
        grid=record(paths.GRID_RECORD),
    output:
        "results/runs.csv",
        "results/curves.csv",
        "results/summary.csv",
    threads: 1
    resources:
        **cost.LOCAL_JOB,
    shell:
        "prompttune aggregate --out results"


rule report:
    input:
        str(paths.GRID_RECORD),
        LOOP_SEEDS,  # and the loop's log
        "results/runs.csv",
        "results/curves.csv",
        str(paths.MI_CHECK_DIR),
        [str(paths.landscape_dir(cell, method)) for cell, method in LANDSCAPES],
        code("report"),
    params:
        grid=record(paths.GRID_RECORD),
    output:
        "results/claims.csv",
        str(paths.report(PROFILE)),
        str(paths.CLAIMS_METRICS),
    threads: 1
    resources:
        **cost.LOCAL_JOB,
    shell:
        "prompttune report --out {output[1]}"
