"""ReCoRD (Zhang et al. 2018): fill the ``@placeholder`` of a query with an entity of the passage.

Multiple choice, one example per query: text_a = passage text with each "\\n@highlight\\n" turned
into ". " (project choice: the highlights read as sentences); the choices are the query with
``@placeholder`` replaced by each candidate, the candidates being the distinct entity strings of the
passage (``text[start:end + 1]``, the end offset is inclusive) in order of first appearance.
``meta = {"candidates": [...], "answers": [gold texts]}``; the label is the first candidate equal to
a gold answer (None without one). Token F1 and EM, max over gold answers (official)."""

from __future__ import annotations

from pathlib import Path

from prompttune.tasks.base import Example, FileSize, Task, register_task
from prompttune.tasks.common import Row, jsonl_rows, superglue_files
from prompttune.tasks.metrics import record_metrics

PLACEHOLDER = "@placeholder"


def _candidates(passage: Row, text: str) -> list[str]:
    spans = []
    for entity in passage.items("entities"):
        start, end = entity.field("start", int), entity.field("end", int)
        if not 0 <= start <= end < len(text):
            raise entity.error(f"entity offsets {start}..{end} fall outside the passage ({len(text)} chars)")
        spans.append((start, end))
    if not spans:
        raise passage.error(f"field '{passage.name('entities')}' is empty: a query needs candidates")
    return list(dict.fromkeys(text[start : end + 1] for start, end in sorted(spans)))


def read_record(path: Path, split: str) -> list[Example]:
    examples = []
    for row in jsonl_rows(path):
        passage_idx = row.field("idx", int)
        passage = row.sub("passage")
        text = passage.field("text", str)
        candidates = _candidates(passage, text)
        context = text.replace("\n@highlight\n", ". ")
        for qa in row.items("qas"):
            query = qa.field("query", str)
            if PLACEHOLDER not in query:
                raise qa.error(f"field '{qa.name('query')}' has no {PLACEHOLDER}")
            answers = (
                list(dict.fromkeys(answer.field("text", str) for answer in qa.items("answers")))
                if "answers" in qa.data
                else []
            )
            label = next((i for i, candidate in enumerate(candidates) if candidate in answers), None)
            examples.append(
                Example(
                    guid=f"{split}-{passage_idx}-{qa.field('idx', int)}",
                    text_a=context,
                    label=label,
                    choices=tuple(query.replace(PLACEHOLDER, candidate) for candidate in candidates),
                    meta={"candidates": candidates, "answers": answers},
                )
            )
    return examples


register_task(
    Task(
        name="ReCoRD",
        version=1,
        kind="multiple_choice",
        labels=(),
        label_words=(),
        metric_names=("f1", "em"),
        reader=read_record,
        metric_fn=record_metrics,
        files=superglue_files("ReCoRD"),
        # queries, with their choice counts measured on the mirror's FewGLUE files; the full train and val
        # files are not in the mirror: their choice counts are assumed (choice: the FewGLUE files' mean, and
        # twice their largest count, 25) until fetched
        sizes={
            "fewglue_train": FileSize(32, 23, 12.4),
            "fewglue_dev32": FileSize(32, 25, 11.5),
            "full_train": FileSize(100730, 50, 12.0),
            "val": FileSize(10000, 50, 12.0),
        },
        description="Fill in the masked entity of the query with an entity from the passage.",
    )
)
