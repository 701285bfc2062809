"""MultiRC (Khashabi et al. 2018): true/false for each answer option of a question about a passage.

One example per answer option: text_a = passage text, text_b = question + " " + answer text,
``group`` = f"{split}-{passage idx}-{question idx}" (the question, the unit of EM and of sampling);
F1a over all options and question-level EM (official)."""

from __future__ import annotations

from pathlib import Path

from prompttune.tasks.base import Example, FileSize, Task, register_task
from prompttune.tasks.common import jsonl_rows, superglue_files
from prompttune.tasks.metrics import multirc_metrics

LABELS = ("0", "1")


def read_multirc(path: Path, split: str) -> list[Example]:
    examples = []
    for row in jsonl_rows(path):
        passage_idx = row.field("idx", int)
        passage = row.sub("passage")
        text = passage.field("text", str)
        for question in passage.items("questions"):
            group = f"{split}-{passage_idx}-{question.field('idx', int)}"
            query = question.field("question", str)
            for answer in question.items("answers"):
                examples.append(
                    Example(
                        guid=f"{group}-{answer.field('idx', int)}",
                        text_a=text,
                        text_b=f"{query} {answer.field('text', str)}",
                        label=answer.label(LABELS),
                        group=group,
                    )
                )
    return examples


register_task(
    Task(
        name="MultiRC",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("false", "true"),
        metric_names=("f1a", "em"),
        reader=read_multirc,
        metric_fn=multirc_metrics,
        files=superglue_files("MultiRC"),
        sizes={  # answer options; their questions are the sampling units (FewGLUE: 32 questions)
            "fewglue_train": FileSize(154, units=32),
            "fewglue_dev32": FileSize(167, units=32),
            "full_train": FileSize(27243, units=5100),
            "val": FileSize(4848, units=953),
        },
        description="Decide whether each answer to a question about a passage is true or false.",
    )
)
