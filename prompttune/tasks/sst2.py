"""SST-2 (Socher et al. 2013, GLUE version): binary sentiment of a movie-review sentence; text_a =
sentence; accuracy. GLUE ships it as tab-separated ``sentence<TAB>label`` with a header line; only
the full train set and the dev set (the reported split) exist, no FewGLUE files."""

from __future__ import annotations

from pathlib import Path

from prompttune.errors import PromptTuneError
from prompttune.tasks.base import Example, FileSize, Task, register_task
from prompttune.tasks.common import Row
from prompttune.tasks.metrics import accuracy_metrics

LABELS = ("0", "1")


def read_tsv(path: Path) -> list[Row]:
    """The data lines of a TSV file with a header, as rows keyed by the header's column names."""
    if not path.is_file():
        raise PromptTuneError(f"{path}: file not found")
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise PromptTuneError(f"{path}: file is empty")
    header = lines[0].split("\t")
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise PromptTuneError(
                f"{path}:{lineno}: expected {len(header)} tab-separated columns, got {len(cells)}"
            )
        rows.append(Row(path, lineno, dict(zip(header, cells, strict=True))))
    if not rows:
        raise PromptTuneError(f"{path}: no data lines after the header")
    return rows


def read_sst2(path: Path, split: str) -> list[Example]:
    """guid = f"{split}-{n}" with n the 0-based data line (GLUE's own index)."""
    return [
        Example(guid=f"{split}-{n}", text_a=row.field("sentence", str).strip(), label=row.label(LABELS))
        for n, row in enumerate(read_tsv(path))
    ]


register_task(
    Task(
        name="SST-2",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("negative", "positive"),
        metric_names=("acc",),
        reader=read_sst2,
        metric_fn=accuracy_metrics,
        files={"full_train": "GLUE/SST-2/train.tsv", "val": "GLUE/SST-2/dev.tsv"},
        sizes={"full_train": FileSize(67349), "val": FileSize(872)},
        description="Classify the sentiment of a movie review sentence as negative or positive.",
    )
)
