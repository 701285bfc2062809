# Rules of the Snakefile (GRID, PROFILE and RUN come from it).
RUN_OUTPUTS = ["prompt.pt", "predictions.jsonl", "config.json", "provenance.json", "metrics.json", "curve.csv"]
TRAIN = "prompttune train --cell {wildcards.cell} --method {wildcards.method}"


def run_outputs(pattern, seeds):
    """A training job's files: one seed's, or with grid.stack_seeds every seed's of the cell × method."""
    if not GRID.get("stack_seeds"):
        return [f"{pattern}/{name}" for name in RUN_OUTPUTS]
    return [f"{pattern.replace('{seed}', str(seed))}/{name}" for seed in seeds for name in RUN_OUTPUTS]


def seed_flags(seeds):
    if not GRID.get("stack_seeds"):
        return " --seed {wildcards.seed}"
    return "".join(f" --seed {seed}" for seed in seeds)


wildcard_constraints:
    cell=r"[^/]+",
    method=r"[^/]+",
    variant=r"[^/]+",
    seed=r"\d+",


rule fetch:
    output:
        directory("data/{cell}"),
    shell:
        "prompttune fetch --cell {wildcards.cell} --dest {output}"


rule train:
    input:
        "data/{cell}",
    output:
        run_outputs(RUN, GRID["seeds"]),
    shell:
        TRAIN + seed_flags(GRID["seeds"])


rule train_variant:
    input:
        "data/{cell}",
    output:
        run_outputs(VARIANT_RUN, VARIANTS["seeds"]),
    shell:
        TRAIN + seed_flags(VARIANTS["seeds"]) + " --variant {wildcards.variant}"


rule landscape:
    input:
        "data/{cell}",
        expand(f"{RUN}/prompt.pt", cell="{cell}", method="{method}", seed=STUDIES["landscape"]["seeds"]),
    output:
        directory("results/landscape/{cell}/{method}"),
    shell:
        "prompttune landscape --cell {wildcards.cell} --method {wildcards.method}"


rule mi_check:
    input:
        f"data/{STUDIES['mi_check']['cell']}",
    output:
        "results/mi_check/checks.json",
        "results/mi_check/synthetic.png",
        "results/mi_check/real.png",
    shell:
        "prompttune mi-check"


rule aggregate:
    input:
        expand(f"{RUN}/metrics.json", cell=GRID["cells"], method=GRID["methods"], seed=GRID["seeds"]),
        expand(
            f"{VARIANT_RUN}/metrics.json",
            cell=VARIANTS["cells"],
            method=VARIANTS["methods"],
            variant=VARIANTS["names"],
            seed=VARIANTS["seeds"],
        ),
        LANDSCAPES,
    output:
        "results/runs.csv",
        "results/curves.csv",
        "results/summary.csv",
        "results/summary.json",
    shell:
        "prompttune aggregate --out results"


rule report:
    input:
        "results/runs.csv",
        "results/curves.csv",
        "results/summary.csv",
        "results/mi_check/checks.json",
        LANDSCAPES,
    output:
        f"reports/{PROFILE}.html",
    shell:
        "prompttune report --out {output}"
