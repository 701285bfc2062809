# Rules of the Snakefile (GRID, PROFILE and RUN come from it).
RUN_OUTPUTS = ["prompt.pt", "predictions.jsonl", "config.json", "provenance.json", "metrics.json", "curve.csv"]
TRAIN = "prompttune train --cell {wildcards.cell} --method {wildcards.method}"


def run_outputs(pattern, seeds):
    """A training job's files: one seed's, or with grid.stack_seeds every seed's of the cell × method and
    their headline metrics (``<method folder>.metrics.json``), as DVC's stage writes them."""
    if not GRID.get("stack_seeds"):
        return [f"{pattern}/{name}" for name in RUN_OUTPUTS]
    runs = [f"{pattern.replace('{seed}', str(seed))}/{name}" for seed in seeds for name in RUN_OUTPUTS]
    return [*runs, pattern.removesuffix("/seed{seed}") + ".metrics.json"]


SEED_FLAGS = " --grid-seeds" if GRID.get("stack_seeds") else " --seed {wildcards.seed}"


wildcard_constraints:
    cell=r"[^/]+",
    method=r"[^/@]+",
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
        TRAIN + SEED_FLAGS


rule train_variant:
    input:
        "data/{cell}",
    output:
        run_outputs(VARIANT_RUN, VARIANTS["seeds"]),
    shell:
        TRAIN + " --variant {wildcards.variant}" + SEED_FLAGS


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
