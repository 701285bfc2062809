"""BoolQ (Clark et al. 2019): a yes/no question about a Wikipedia passage; text_a = passage,
text_b = question; accuracy."""

from __future__ import annotations

from pathlib import Path

from prompttune.tasks.base import Example, Task, register_task
from prompttune.tasks.common import jsonl_rows, superglue_files
from prompttune.tasks.metrics import accuracy_metrics

LABELS = ("False", "True")


def read_boolq(path: Path, split: str) -> list[Example]:
    return [
        Example(
            guid=f"{split}-{row.field('idx', int)}",
            text_a=row.field("passage", str),
            text_b=row.field("question", str),
            label=row.label(LABELS),
        )
        for row in jsonl_rows(path)
    ]


register_task(
    Task(
        name="BoolQ",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("no", "yes"),
        metric_names=("acc",),
        reader=read_boolq,
        metric_fn=accuracy_metrics,
        files=superglue_files("BoolQ"),
        description="Answer a yes-or-no question about a passage.",
    )
)
