"""RTE (Recognising Textual Entailment, as collected in GLUE/SuperGLUE): two-way entailment;
text_a = premise, text_b = hypothesis; accuracy."""

from __future__ import annotations

from pathlib import Path

from prompttune.tasks.base import Example, Task, register_task
from prompttune.tasks.common import jsonl_rows, superglue_files
from prompttune.tasks.metrics import accuracy_metrics

LABELS = ("entailment", "not_entailment")


def read_rte(path: Path, split: str) -> list[Example]:
    return [
        Example(
            guid=f"{split}-{row.field('idx', int)}",
            text_a=row.field("premise", str),
            text_b=row.field("hypothesis", str),
            label=row.label(LABELS),
        )
        for row in jsonl_rows(path)
    ]


register_task(
    Task(
        name="RTE",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("yes", "no"),
        metric_names=("acc",),
        reader=read_rte,
        metric_fn=accuracy_metrics,
        files=superglue_files("RTE"),
        description="Decide whether the premise entails the hypothesis.",
    )
)
