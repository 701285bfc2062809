"""The papers' published numbers, from ``data/paper_numbers.csv``: one entry per paper / table / setting /
backbone / method / task, with its source. The file ships with only what is public here (the PTP
abstract's average gains and P-tuning v2's README scores); anyone with the PDFs can add rows, and a
cell without an entry shows "—", never a guess."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

import pandas as pd

COLUMNS = ["paper", "table", "setting", "backbone", "method", "task", "kind", "value", "source"]


@cache
def paper_numbers() -> pd.DataFrame:
    with files("prompttune.data").joinpath("paper_numbers.csv").open(encoding="utf-8") as handle:
        table = pd.read_csv(handle, dtype={"backbone": str}, keep_default_na=False)
    if list(table.columns) != COLUMNS:
        raise ValueError(f"paper_numbers.csv: expected columns {', '.join(COLUMNS)}")
    return table


@cache
def score(setting: str, backbone: str, method: str, task: str) -> tuple[float, str] | None:
    """A published score (points) and its source, if the file has one."""
    table = paper_numbers()
    hit = table[
        (table["kind"] == "score")
        & (table["setting"] == setting)
        & (table["backbone"] == backbone)
        & (table["method"] == method)
        & (table["task"] == task)
    ]
    return (
        (float(hit["value"].iloc[0]), f"{hit['paper'].iloc[0]} {hit['table'].iloc[0]}") if len(hit) else None
    )


@cache
def difference(paper: str, setting: str, base: str) -> float | None:
    """A published average gain (points) against ``base`` in ``setting``, if the file has one: the entry's
    method reads "best PTP variant − <base>", so a gain measured against another base never borrows it."""
    table = paper_numbers()
    hit = table[
        (table["paper"] == paper)
        & (table["kind"] == "difference")
        & (table["setting"] == setting)
        & (table["method"] == f"best PTP variant − {base}")
    ]
    return float(hit["value"].iloc[0]) if len(hit) else None
