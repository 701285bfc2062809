# Rules of the Snakefile (GRID, PROFILE and RUN come from it).
RUN_OUTPUTS = ["prompt.pt", "predictions.jsonl", "config.json", "provenance.json", "metrics.json", "curve.csv"]
TRAIN = "prompttune train --cell {wildcards.cell} --method {wildcards.method} --seed {wildcards.seed}"


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
        [f"{RUN}/{name}" for name in RUN_OUTPUTS],
    shell:
        TRAIN


rule train_variant:
    input:
        "data/{cell}",
    output:
        [f"{VARIANT_RUN}/{name}" for name in RUN_OUTPUTS],
    shell:
        TRAIN + " --variant {wildcards.variant}"


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
