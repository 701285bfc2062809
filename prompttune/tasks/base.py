"""What a task is: a versioned declaration (files, fields, formatting, label words, metrics).

Classification tasks give one (text_a, text_b) pair per example and a class index; multiple-choice
tasks (COPA, ReCoRD) give one text_b per choice and the index of the correct choice. The model side
never looks inside a task; the task side never looks inside the model.

A task may declare a near-duplicate key (``near_duplicate_fields``): ``meta`` entries its reader fills
that examples with different text fields can share (WSC: the passage and the pronoun, asked about with
different candidate noun phrases). ``splits.py`` keeps examples sharing a key out of different splits, as
it does examples with the same content.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prompttune.registry import Registry


@dataclass(frozen=True)
class Example:
    """One model input. ``label`` is a class index (classification) or the correct choice index
    (multiple choice); ``None`` when the file carries no label. ``group`` ties MultiRC answer options
    to their question. ``meta`` carries what a metric needs beyond the label (ReCoRD gold answers) and
    what the task's near-duplicate key is made of (WSC's passage and pronoun)."""

    guid: str
    text_a: str
    text_b: str | None = None
    label: int | None = None
    choices: tuple[str, ...] = ()
    group: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class SplitSize:
    """Examples of a split, and the sequences (choices) per example: 1 for classification."""

    examples: int
    choices_max: int = 1
    choices_mean: float = 1.0


@dataclass(frozen=True)
class FileSize(SplitSize):
    """A data file of the official release: examples as the task's reader counts them (MultiRC: answer
    options, ReCoRD: queries) and its sampling units when they differ (MultiRC: questions)."""

    units: int | None = None


@dataclass(frozen=True)
class Task:
    """A task declaration (lm-evaluation-harness style). ``read`` turns a file into examples;
    ``compute_metrics`` scores predicted indices; ``score`` is the task's single number (the mean of its
    metrics, as the SuperGLUE leaderboard averages CB acc/F1, MultiRC F1a/EM, ReCoRD F1/EM)."""

    name: str
    version: int
    kind: Literal["classification", "multiple_choice"]
    labels: tuple[str, ...]  # raw label values in class-index order; () for multiple choice
    label_words: tuple[str, ...]  # verbalizer words, one per class (head init `label_words`)
    metric_names: tuple[str, ...]
    reader: Callable[[Path, str], list[Example]]  # (file, split name) -> examples
    metric_fn: Callable[[Sequence[Example], Sequence[int]], dict[str, float]]
    files: dict[str, str]  # source name -> path relative to the data root, e.g. {"fewglue_train": ...}
    sizes: dict[str, FileSize]  # source name -> the official file's size (the cost model, before a fetch)
    description: str = ""  # task description used by prompt init `text`
    near_duplicate_fields: tuple[str, ...] = ()  # `meta` entries making the near-duplicate key; () none

    @property
    def num_classes(self) -> int:
        return len(self.labels) if self.kind == "classification" else 1

    def read(self, path: Path, split: str) -> list[Example]:
        return self.reader(path, split)

    def compute_metrics(self, examples: Sequence[Example], predictions: Sequence[int]) -> dict[str, float]:
        return self.metric_fn(examples, predictions)

    def score(self, metrics: dict[str, float]) -> float:
        return sum(metrics[name] for name in self.metric_names) / len(self.metric_names)


TASKS: Registry[Task] = Registry("task")


def register_task(task: Task) -> Task:
    """Add a task; one whose ``sizes`` do not name exactly its ``files`` is a one-line error."""
    if set(task.sizes) != set(task.files):
        raise TypeError(
            f"task {task.name!r}: sizes must give every file of `files` and nothing else "
            f"(files {sorted(task.files)}, sizes {sorted(task.sizes)})"
        )
    TASKS.register(task.name)(task)
    return task
