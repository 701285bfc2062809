# The grid of params.yaml as a Snakemake workflow: the same DAG, files and `prompttune` commands as
# dvc.yaml. Local: `snakemake -c2`. Cluster: `snakemake --profile pipelines/profiles/slurm`.
configfile: "params.yaml"


include: "pipelines/grid.smk"
