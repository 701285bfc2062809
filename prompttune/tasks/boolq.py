"""BoolQ (Clark et al. 2019): a yes/no question about a Wikipedia passage; text_a = passage,
text_b = question; accuracy."""

from __future__ import annotations

from prompttune.tasks.base import Task, register_task
from prompttune.tasks.common import pair_reader, superglue_files, superglue_sizes
from prompttune.tasks.metrics import accuracy_metrics

LABELS = ("False", "True")


register_task(
    Task(
        name="BoolQ",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("no", "yes"),
        metric_names=("acc",),
        reader=pair_reader("passage", "question", LABELS),
        metric_fn=accuracy_metrics,
        files=superglue_files("BoolQ"),
        sizes=superglue_sizes(train=9427, val=3270),
        description="Answer a yes-or-no question about a passage.",
    )
)
