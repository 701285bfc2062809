# The grid of params.yaml as a Snakemake workflow: the same DAG, files and `prompttune` commands as
# dvc.yaml. Local: `snakemake -c2`. Cluster: `snakemake --profile pipelines/profiles/slurm`.
configfile: "params.yaml"


GRID = config["grid"]
VARIANTS = GRID["variants"]
STUDIES = config["studies"]
PROFILE = config.get("profile") or "custom"
RUN = "runs/{cell}/{method}/seed{seed}"
VARIANT_RUN = "runs/{cell}/{method}@{variant}/seed{seed}"
LANDSCAPE = STUDIES["landscape"]
LANDSCAPES = expand("results/landscape/{cell}/{method}", cell=LANDSCAPE["cells"], method=LANDSCAPE["methods"])


rule all:
    input:
        f"reports/{PROFILE}.html",


include: "pipelines/grid.smk"
