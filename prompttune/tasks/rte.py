"""RTE (Recognising Textual Entailment, as collected in GLUE/SuperGLUE): two-way entailment;
text_a = premise, text_b = hypothesis; accuracy."""

from __future__ import annotations

from prompttune.tasks.base import Task, register_task
from prompttune.tasks.common import pair_reader, superglue_files, superglue_sizes
from prompttune.tasks.metrics import accuracy_metrics

LABELS = ("entailment", "not_entailment")


register_task(
    Task(
        name="RTE",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("yes", "no"),
        metric_names=("acc",),
        reader=pair_reader("premise", "hypothesis", LABELS),
        metric_fn=accuracy_metrics,
        files=superglue_files("RTE"),
        sizes=superglue_sizes(train=2490, val=277),
        description="Decide whether the premise entails the hypothesis.",
    )
)
