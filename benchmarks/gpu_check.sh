#!/usr/bin/env bash
# The cluster route's GPU check, on one GPU, in at most 8 minutes, with no internet (benchmarks/gpu_check.py
# says what it measures): step time and MFU of pt and pt2 at the paper's shapes, the peak memory of a
# ReCoRD-shaped step in the cost model's micro-batches, seed-stacked MiniLM throughput, the smoke grid end to end.
#
#   benchmarks/gpu_check.sh [--dry-run] [OUT]     # summary: OUT/gpu_check.json and OUT/gpu_check.md
#
# OUT: the argument, else $OUT, else benchmarks/gpu_check. Python: $PYTHON, else .venv/bin/python, else python3,
# with torch (CUDA) and the project's dependencies; this checkout goes first on PYTHONPATH. The smoke grid needs
# $PROMPTTUNE_DATA_MIRROR and snakemake (it is skipped, and says so, without them). --dry-run: the CPU, tiny shapes,
# no smoke grid, a few seconds (tests/test_cluster.py).
set -euo pipefail
dry_run=()
if [[ "${1:-}" == "--dry-run" ]]; then
  dry_run=(--dry-run)
  shift
fi
dest="$(realpath -m "${1:-${OUT:-benchmarks/gpu_check}}")"
cd "$(dirname "$0")/.."
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
  if [[ -x .venv/bin/python ]]; then python=.venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
if [[ ${#dry_run[@]} -eq 0 ]] && ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  echo "error: no CUDA GPU visible to torch ($python: torch.cuda.is_available() is false, or no torch);" \
    "this check needs one GPU (--dry-run runs its parts on the CPU, tiny)" >&2
  exit 2
fi
exec timeout --signal=INT --kill-after=15 480 "$python" benchmarks/gpu_check.py --out "$dest" "${dry_run[@]}" --budget-s 450
