"""COPA (Roemmele et al. 2011): pick the more plausible cause or effect of a premise; accuracy.

Multiple choice: text_a = premise; each choice reads as a continuation, "because <choice>" when
the question is the cause and "so <choice>" when it is the effect, with the choice's first letter
lower-cased (project choice, as PET's COPA patterns do)."""

from __future__ import annotations

from pathlib import Path

from prompttune.tasks.base import Example, FileSize, Task, register_task
from prompttune.tasks.common import jsonl_rows, superglue_files
from prompttune.tasks.metrics import accuracy_metrics

CONNECTIVES = {"cause": "because", "effect": "so"}


def _continuation(connective: str, choice: str) -> str:
    return f"{connective} {choice[:1].lower()}{choice[1:]}"


def read_copa(path: Path, split: str) -> list[Example]:
    examples = []
    for row in jsonl_rows(path):
        question = row.field("question", str)
        if question not in CONNECTIVES:
            raise row.error(f"field 'question' must be one of cause, effect, got {question!r}")
        connective = CONNECTIVES[question]
        choices = (row.field("choice1", str), row.field("choice2", str))
        examples.append(
            Example(
                guid=f"{split}-{row.field('idx', int)}",
                text_a=row.field("premise", str),
                label=row.label(("0", "1")),
                choices=tuple(_continuation(connective, choice) for choice in choices),
            )
        )
    return examples


register_task(
    Task(
        name="COPA",
        version=1,
        kind="multiple_choice",
        labels=(),
        label_words=(),
        metric_names=("acc",),
        reader=read_copa,
        metric_fn=accuracy_metrics,
        files=superglue_files("COPA"),
        sizes={
            "fewglue_train": FileSize(32, 2, 2.0),
            "fewglue_dev32": FileSize(32, 2, 2.0),
            "full_train": FileSize(400, 2, 2.0),
            "val": FileSize(100, 2, 2.0),
        },
        description="Choose the more plausible cause or effect of the premise.",
    )
)
