"""The cluster route of the Snakemake workflow, by dry runs on temporary copies of the project, and the GPU
check script's parts that run without a GPU.

- The paper profile through the SLURM profile: every train, landscape and mi_check job asks for one GPU and
  the cost model's runtime, mem_mb and threads, and runs its `prompttune` command (DVC's) after
  HF_HUB_OFFLINE=1 with the prefetched backbone as an input; the hub backbone is prefetched once; fetch,
  prefetch, aggregate and report are local rules; the SLURM profile holds no runtime, memory or CPU numbers.
- The smoke profile's local dry run (`snakemake -c2`) runs exactly the grid's commands, as before the cluster
  route: none offline, none on a GPU, no prefetch, torch with both cores.
- benchmarks/gpu_check.sh stops at once without a GPU; ``--dry-run`` runs its measurements on CPU, tiny.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_pipelines import BIN, LOG_SUFFIX, project_copy, run

from prompttune import cost, paths
from prompttune.config import expand_stages, load_params

ROOT = Path(__file__).resolve().parents[1]
GPU_RULES = ("train", "landscape", "mi_check")


def dry_run(project: Path, env: dict[str, str], *args: str, force: bool = True) -> list[dict[str, object]]:
    """Every job of a dry run (forced: every job of the DAG): rule, wildcards, threads, resources, inputs,
    shell command (``shell``; the copy of its stderr into its log file apart, as ``log``) and the group it
    runs in (``group``; None: a submission of its own; a group's jobs are listed indented under it)."""
    forced = ["--forceall"] if force else []
    out = run([str(BIN / "snakemake"), "-n", "-p", *forced, *args], project, env, stderr=True)
    headers = [(m.start(), m[1]) for m in re.finditer(r"^\[[^]]*\] Group job (\S+) ", out, flags=re.M)]
    jobs = []
    for match in re.finditer(r"^( *)rule (\w+):\n(.*?)^Shell command: ([^\n]*)$", out, flags=re.M | re.S):
        fields = dict(re.findall(r"^ {4,8}(\w+): (.*)$", match[3], flags=re.M))
        group = [name for start, name in headers if start < match.start()][-1] if match[1] else None
        jobs.append(
            {
                "group": group,
                "rule": match[2],
                "wildcards": dict(
                    item.split("=", 1) for item in fields.get("wildcards", "").split(", ") if item
                ),
                "threads": int(fields.get("threads", 1)),
                "resources": dict(item.split("=", 1) for item in fields["resources"].split(", ")),
                "input": fields.get("input", "").split(", "),
                "shell": LOG_SUFFIX.sub("", match[4]),
                "log": (LOG_SUFFIX.search(match[4]) or [None, None])[1],
            }
        )
    return jobs


def localrules(project: Path, env: dict[str, str]) -> set[str]:
    """The workflow's local rules. A dry run cannot show them (Snakemake 9 leaves the local-or-remote decision
    out of dry runs), so they are read from the parsed workflow."""
    script = (
        "from pathlib import Path\n"
        "from snakemake.api import SnakemakeApi\n"
        "from snakemake.settings.types import OutputSettings, Quietness, ResourceSettings\n"
        "with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:\n"
        "    workflow = api.workflow(ResourceSettings(), snakefile=Path('Snakefile'), workdir=Path('.'))\n"
        "    print(' '.join(sorted(workflow._workflow._localrules)))\n"
    )
    return set(run([sys.executable, "-c", script], project, env).split())


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory, mirror: Path) -> tuple[Path, dict[str, str]]:
    return project_copy(tmp_path_factory.mktemp("paper"), mirror, "paper")


def test_paper_jobs_ask_the_cluster_for_what_the_cost_model_says(paper: tuple[Path, dict[str, str]]) -> None:
    project, env = paper
    params = load_params(project / "params.yaml")
    costs = cost.ProfileCost(params, per_seed=True, data_root=project / "data")  # no data yet: the table
    stages = {(stage.cell, paths.method_dir(stage).name): stage for stage in costs.stages}
    # --cores only lifts the dry run's default cap of 1 thread per job; on SLURM the threads are not capped
    jobs = dry_run(project, env, "--profile", "pipelines/profiles/slurm", "--cores", "64")
    by_rule: dict[str, list[dict]] = {}
    for job in jobs:
        by_rule.setdefault(str(job["rule"]), []).append(job)
    assert len(by_rule["train"]) == sum(len(c.seeds) for c in expand_stages(params))
    assert len(by_rule["landscape"]) == len(costs.landscapes) and len(by_rule["mi_check"]) == 1
    groups = cost.group_jobs(costs.jobs(), cost.GROUP_MINUTES)  # the profile's group_minutes
    for rule in GPU_RULES:
        for job in by_rule[rule]:
            w, resources = job["wildcards"], job["resources"]
            if rule == "train":
                stage = stages[w["cell"], w["name"]]
                expected = costs.train(stage)
                command = f"prompttune train --config {paths.stage_config(stage)} --seed {w['seed']}"
                key = str(paths.run_dir(stage, int(w["seed"])) / "metrics.json")
            elif rule == "landscape":
                expected = costs.landscape(w["cell"], w["method"])
                command = f"prompttune landscape --config {paths.landscape_config(w['cell'], w['method'])}"
                key = str(paths.landscape_dir(w["cell"], w["method"]))
            else:
                expected, command, key = costs.mi_check(), "prompttune mi-check", str(paths.MI_CHECK_DIR)
            assert job["shell"] == f"HF_HUB_OFFLINE=1 {command}"
            assert "backbones/roberta-large.json" in job["input"]
            assert resources["gpu"] == "1" and resources["slurm_partition"] == "gpu"
            assert int(resources["mem_mb"]) == expected.mem_mb
            assert job["threads"] == expected.cpus > 1
            group = groups.get(key)
            assert job["group"] == (group.name if group else None)
            if group is None:  # a submission of its own: the job's request, at least the minimum
                assert int(resources["runtime"]) == expected.runtime_min
                continue
            assert int(resources["runtime"]) == expected.work_request_min  # the group asks for the sum
            index = group.members.index(key)
            assert (group.members[index - 1] in job["input"]) == (index > 0)  # one after another
    submissions = {job["group"] or id(job) for job in jobs if job["rule"] in GPU_RULES}
    assert len(submissions) < len(by_rule["train"]) / 3, "the paper's short training jobs are grouped"
    short: dict[tuple[str, bool], list[str]] = {}  # each kind's jobs under the target
    for key, job in costs.jobs():
        if job.work_request_min < cost.GROUP_MINUTES:
            short.setdefault((job.rule, job.gpu), []).append(key)
    for kind, keys in short.items():
        kind_groups = {groups[key] for key in keys if key in groups}
        alone = [key for key in keys if key not in groups]
        assert not alone or len(keys) == 1, f"{kind}: short jobs alone beside others: {alone}"
        assert all(g.runtime_min >= cost.GROUP_MINUTES for g in kind_groups) or len(kind_groups) == 1, kind
    assert [job["wildcards"] for job in by_rule["prefetch"]] == [{"backbone": "roberta-large"}]
    for rule in ("fetch", "prefetch", "aggregate", "report"):
        for job in by_rule[rule]:
            assert job["resources"]["gpu"] == "0" and job["resources"]["slurm_partition"] == "cpu"
            assert not str(job["shell"]).startswith("HF_HUB_OFFLINE")
    assert localrules(project, env) == {"all", "fetch", "prefetch", "aggregate", "report"}


def test_the_slurm_profile_says_only_where_jobs_go_and_on_what_machines() -> None:
    """The profile declares placement and the machines (the cost model sizes every request); it has no
    set-resources, so a command-line --set-resources changes only what it names."""
    profile = yaml.safe_load((ROOT / "pipelines/profiles/slurm/config.yaml").read_text())
    declared = {"slurm_account", "slurm_partition", "gpu_partition", "gpu_type", "node_cpus", "node_mem_mb"}
    declared.add("group_minutes")
    assert set(profile["default-resources"]) <= declared
    assert "set-resources" not in profile
    assert profile["slurm-status-command"] == "squeue", "sacct's 'CANCELLED by <uid>' would hang the workflow"
    assert profile["default-resources"]["group_minutes"] == cost.GROUP_MINUTES
    assert "input" not in profile["rerun-triggers"], "a regrouping would rerun the jobs it reorders"


def test_smoke_profile_local_dry_run_is_the_grid(tmp_path: Path, mirror: Path) -> None:
    project, env = project_copy(tmp_path, mirror, "smoke")
    params = load_params(project / "params.yaml")
    stages = expand_stages(params)
    landscapes = cost.ProfileCost(params, per_seed=False).landscapes
    expected = {
        *(f"prompttune fetch --cell {cell} --dest data/{cell}" for cell in {c.stage.cell for c in stages}),
        *(f"prompttune train --config {paths.stage_config(c.stage)}" for c in stages),
        *(f"prompttune landscape --config {paths.landscape_config(*pair)}" for pair in landscapes),
        "prompttune mi-check",
        "prompttune aggregate --out results",
        "prompttune report --out reports/smoke.html",
    }
    jobs = [job for job in dry_run(project, env, "-c2") if job["rule"] != "all"]
    assert sorted(job["shell"] for job in jobs) == sorted(expected)  # one job per command, nothing else
    assert all(job["resources"]["gpu"] == "0" for job in jobs)
    train = [job for job in jobs if job["rule"] == "train"]
    assert train and all(job["threads"] == 2 for job in train)  # torch gets both cores, not 1
    for job in jobs:  # each compute job keeps its progress lines in its own log
        assert (job["log"] or "").startswith("logs/") == (job["rule"] in GPU_RULES), job


def hub_cache(home: Path, repo: str, revision: str) -> None:
    """A Hugging Face cache under ``home`` holding ``repo`` at ``revision``: a tiny random BERT with MiniLM's
    tokenizer, laid out as a download leaves it (no internet here: the download itself is not exercised)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from prompttune.backbone import resolve_backbone

    folder = home / "hub" / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(revision)
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm"))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
    )
    torch.manual_seed(0)
    BertModel(config, add_pooling_layer=False).save_pretrained(folder / "snapshots" / revision)
    tokenizer.save_pretrained(folder / "snapshots" / revision)


def test_prefetch_puts_a_hub_backbone_in_the_cache_once(tmp_path: Path, mirror: Path) -> None:
    project, env = project_copy(tmp_path, mirror, "smoke")
    repo, revision = "tinyorg/tiny-bert", "a" * 40
    hub_cache(tmp_path / "hf", repo, revision)
    env = {**env, "HF_HOME": str(tmp_path / "hf")}
    params = project / "params.yaml"
    params.write_text(params.read_text() + f"run: {{backbone: {repo}}}\n")  # an override of the profile's
    record = "backbones/tinyorg--tiny-bert.json"
    run([str(BIN / "snakemake"), "-c1", record], project, env)
    assert json.loads((project / record).read_text())["revision"] == revision
    jobs = dry_run(project, env, "-c1", force=False)
    assert not [job for job in jobs if job["rule"] == "prefetch"], "prefetched once, then up to date"
    for job in jobs:
        if job["rule"] in GPU_RULES:
            assert record in job["input"] and str(job["shell"]).startswith("HF_HUB_OFFLINE=1 prompttune ")
            assert job["resources"]["gpu"] == "1"  # a hub backbone is a GPU job (choice, cost.needs_gpu)


# --- benchmarks/gpu_check.sh --------------------------------------------------------------------------


CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHON": sys.executable}


def test_gpu_check_stops_at_once_without_a_gpu(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu_check.sh"), str(tmp_path)],
        cwd=ROOT, env=CPU_ONLY, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "error: no CUDA GPU" in proc.stderr
    assert not list(tmp_path.iterdir()), "nothing is measured or written"


def test_gpu_check_dry_run_measures_tiny_models_on_cpu(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks/gpu_check.sh"), "--dry-run", str(tmp_path)],
        cwd=ROOT, env=CPU_ONLY, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((tmp_path / "gpu_check.json").read_text())
    assert summary["device"]["name"].startswith("cpu")
    for base in ("pt", "pt2"):
        step = summary["step"][base]
        assert step["step_ms"] > 0 and step["flops_per_step"] > 0 and step["mfu"] is None  # no peak on CPU
    record = summary["record"]
    assert record["micro_batches"] >= 1 and record["measured_peak_gib"] is None  # CUDA counters only
    assert record["predicted_peak_gib"] > 0
    assert [row["seeds"] for row in summary["stacked"]] == [1, 4, 8]
    assert all(row["examples_per_s"] > 0 for row in summary["stacked"])
    assert summary["smoke"]["status"] == "skipped (dry run)"
    assert "| step |" in (tmp_path / "gpu_check.md").read_text()
