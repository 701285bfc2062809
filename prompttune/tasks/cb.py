"""CommitmentBank (de Marneffe et al. 2019): three-way entailment; text_a = premise,
text_b = hypothesis; accuracy and macro-F1 over the three classes (official)."""

from __future__ import annotations

from pathlib import Path

from prompttune.tasks.base import Example, Task, register_task
from prompttune.tasks.common import jsonl_rows, superglue_files
from prompttune.tasks.metrics import cb_metrics

LABELS = ("entailment", "contradiction", "neutral")


def read_cb(path: Path, split: str) -> list[Example]:
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
        name="CB",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("yes", "no", "maybe"),
        metric_names=("acc", "f1_macro"),
        reader=read_cb,
        metric_fn=cb_metrics,
        files=superglue_files("CB"),
        description="Decide whether the premise entails, contradicts or is neutral towards the hypothesis.",
    )
)
