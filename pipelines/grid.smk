# Rules of the Snakefile (GRID, PROFILE and RUN come from it).
RUN_OUTPUTS = ["prompt.pt", "predictions.jsonl", "config.json", "provenance.json", "metrics.json", "curve.csv"]


wildcard_constraints:
    cell=r"[^/]+",
    method=r"[^/]+",
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
        "prompttune train --cell {wildcards.cell} --method {wildcards.method} --seed {wildcards.seed}"


rule aggregate:
    input:
        expand(f"{RUN}/metrics.json", cell=GRID["cells"], method=GRID["methods"], seed=GRID["seeds"]),
    output:
        "results/runs.csv",
        "results/summary.csv",
        "results/summary.json",
    shell:
        "prompttune aggregate --out results"


rule report:
    input:
        "results/runs.csv",
        "results/summary.csv",
    output:
        f"reports/{PROFILE}.html",
    shell:
        "prompttune report --out {output}"
