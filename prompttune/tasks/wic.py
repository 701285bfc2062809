"""WiC (Pilehvar & Camacho-Collados 2019): is the target word used in the same sense in both
sentences? text_a = sentence1, text_b = sentence2; accuracy.

Project choice: the target word is marked in both sentences by wrapping the span given by the
character offsets (start1/end1, start2/end2; end exclusive) in asterisks, "*word*", so the model
knows which word is meant without a template."""

from __future__ import annotations

from pathlib import Path

from prompttune.tasks.base import Example, Task, register_task
from prompttune.tasks.common import Row, jsonl_rows, superglue_files, superglue_sizes
from prompttune.tasks.metrics import accuracy_metrics

LABELS = ("False", "True")


def _marked(row: Row, which: str) -> str:
    sentence = row.field(f"sentence{which}", str)
    start, end = row.field(f"start{which}", int), row.field(f"end{which}", int)
    if not 0 <= start < end <= len(sentence):
        raise row.error(
            f"fields 'start{which}'/'end{which}' ({start}, {end}) are not a span of 'sentence{which}'"
        )
    return f"{sentence[:start]}*{sentence[start:end]}*{sentence[end:]}"


def read_wic(path: Path, split: str) -> list[Example]:
    return [
        Example(
            guid=f"{split}-{row.field('idx', int)}",
            text_a=_marked(row, "1"),
            text_b=_marked(row, "2"),
            label=row.label(LABELS),
        )
        for row in jsonl_rows(path)
    ]


register_task(
    Task(
        name="WiC",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("no", "yes"),
        metric_names=("acc",),
        reader=read_wic,
        metric_fn=accuracy_metrics,
        files=superglue_files("WiC"),
        sizes=superglue_sizes(train=5428, val=638),
        description="Decide whether the marked word has the same meaning in both sentences.",
    )
)
