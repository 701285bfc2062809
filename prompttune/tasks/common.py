"""What the task declarations share: the data layout and row access with file:line errors.

``SOURCES`` maps each data source to its path under the data root (the layout of the public
SuperGLUE / FewGLUE releases, as a data mirror holds them). A :class:`Row` is one record of a data file
(a JSON-lines object or a TSV line) together with where it came from, so a reader asks for
``row.field("premise", str)`` and a missing or ill-typed value raises
``PromptTuneError("<file>:<line>: missing field 'premise'")``. Nested objects keep the path of keys
(``passage.questions[0].answers[2].label``) in the message.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from prompttune.errors import PromptTuneError
from prompttune.io import read_jsonl
from prompttune.tasks.base import Example, FileSize

T = TypeVar("T")

SOURCES = {
    "fewglue_train": "FewGLUE/{task}/train.jsonl",
    "fewglue_dev32": "FewGLUE_32dev/{task}/dev32.jsonl",
    "full_train": "SuperGLUE/{task}/train.jsonl",
    "val": "SuperGLUE/{task}/val.jsonl",
}


def superglue_files(task: str) -> dict[str, str]:
    """All four sources of a SuperGLUE task: its ``Task.files``."""
    return {source: pattern.format(task=task) for source, pattern in SOURCES.items()}


# Sizes (``Task.sizes``): SuperGLUE v2 and GLUE SST-2 rows per file as the Hugging Face `super_glue` / `glue`
# dataset cards list them (Wang et al. 2019, Table 1, rounds them), equal to the line counts of the files in
# the data mirror where it has them (tests/test_cost.py checks every file the mirror has); FewGLUE
# (timoschick/fewglue) and FewGLUE_32dev (THUDM/P-tuning): 32 examples each.


def superglue_sizes(train: int, val: int, fewglue: int = 32) -> dict[str, FileSize]:
    """A SuperGLUE classification task's ``Task.sizes``: ``fewglue`` examples in each FewGLUE file."""
    few = FileSize(fewglue)
    return {"fewglue_train": few, "fewglue_dev32": few, "full_train": FileSize(train), "val": FileSize(val)}


_TYPE_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "a list"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_instance(value: Any, kind: type) -> bool:
    # JSON true/false are Python bools, which are ints too; an integer field must not accept them.
    if kind is int and isinstance(value, bool):
        return False
    return isinstance(value, kind)


class Row:
    """One record of ``path`` at ``line``; ``prefix`` names the enclosing key for nested objects."""

    def __init__(self, path: Path, line: int, data: dict[str, Any], prefix: str = "") -> None:
        self.path = path
        self.line = line
        self.data = data
        self.prefix = prefix

    def name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, message: str) -> PromptTuneError:
        return PromptTuneError(f"{self.path}:{self.line}: {message}")

    def field(self, key: str, kind: type[T]) -> T:
        """The value of a required field, checked to be of ``kind``."""
        if key not in self.data:
            raise self.error(f"missing field '{self.name(key)}'")
        value = self.data[key]
        if not _is_instance(value, kind):
            raise self.error(f"field '{self.name(key)}' must be {_TYPE_NAMES[kind]}, got {_short(value)}")
        return value

    def sub(self, key: str) -> Row:
        """The nested object under ``key``, as a row at the same place."""
        return Row(self.path, self.line, self.field(key, dict), f"{self.name(key)}.")

    def items(self, key: str) -> list[Row]:
        """The list of objects under ``key``, each as a row at the same place."""
        rows = []
        for i, item in enumerate(self.field(key, list)):
            name = f"{self.name(key)}[{i}]"
            if not isinstance(item, dict):
                raise self.error(f"field '{name}' must be an object, got {_short(item)}")
            rows.append(Row(self.path, self.line, item, f"{name}."))
        return rows

    def label(self, labels: tuple[str, ...], key: str = "label") -> int | None:
        """Class index of the raw label (JSON booleans read as "False"/"True", integers as digits);
        ``None`` when the row has no label (unlabelled and test files)."""
        if key not in self.data:
            return None
        value = self.data[key]
        raw = str(value) if isinstance(value, bool | int | str) else None
        if raw not in labels:
            allowed = ", ".join(labels)
            raise self.error(f"field '{self.name(key)}' must be one of {allowed}, got {_short(value)}")
        return labels.index(raw)


def jsonl_rows(path: Path) -> list[Row]:
    """The objects of a JSON-lines file with their line numbers (blank lines skipped)."""
    return [Row(path, line, obj) for line, obj in read_jsonl(path)]


def pair_reader(text_a: str, text_b: str, labels: tuple[str, ...]) -> Callable[[Path, str], list[Example]]:
    """A reader for sentence-pair tasks: ``text_a`` / ``text_b`` name the JSON fields, ``labels`` the
    label values in class order."""

    def read(path: Path, split: str) -> list[Example]:
        return [
            Example(
                guid=f"{split}-{row.field('idx', int)}",
                text_a=row.field(text_a, str),
                text_b=row.field(text_b, str),
                label=row.label(labels),
            )
            for row in jsonl_rows(path)
        ]

    return read
