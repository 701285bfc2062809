"""WSC (Winograd Schema Challenge, SuperGLUE form): does the pronoun refer to the noun phrase?
text_a = text with both spans marked, text_b = None; accuracy.

Project choice: the noun phrase (span1) is wrapped in asterisks, "*the city councilmen*", and the
pronoun (span2) in hashes, "#they#", located by the word indices span1_index/span2_index (words =
whitespace tokens). The span text must match the words there ignoring case, spacing, surrounding
punctuation and a possessive "'s" ("Emma" in "Emma's"); like PET's reader, an index off by one word is
tolerated (one SuperGLUE val row has it). A pronoun inside the noun phrase is marked inside it
("*#their# mothers*", SuperGLUE val); crossing spans and any other mismatch are file:line errors.

Near-duplicate key (choice): the passage and the pronoun (``text``, ``span2_text``, ``span2_index`` as
in the file, kept in ``meta``). The SuperGLUE files ask about one pronoun with several candidate noun
phrases, mostly with opposite labels (227 of the 228 such pronouns of train.jsonl); such rows differ in
content, so without the key a split could train on one and select or report on the other."""

from __future__ import annotations

import re
from pathlib import Path

from prompttune.tasks.base import Example, Task, register_task
from prompttune.tasks.common import Row, jsonl_rows, superglue_files, superglue_sizes
from prompttune.tasks.metrics import accuracy_metrics

LABELS = ("False", "True")
_TRAILER = re.compile(r"(?:['’]s)?\W*")  # what may follow the span text inside its last word


def _locate(text: str, words: list[re.Match[str]], index: int, span: str) -> tuple[int, int] | None:
    """Character range of ``span`` in the words starting at ``index`` (or one word off)."""
    pieces = span.split()
    pattern = re.compile(r"\s+".join(map(re.escape, pieces)), re.IGNORECASE)
    for start in (index, index - 1, index + 1):
        if start < 0 or start + len(pieces) > len(words):
            continue
        begin, end = words[start].start(), words[start + len(pieces) - 1].end()
        window = text[begin:end]
        found = pattern.search(window)
        if (
            found
            and not any(c.isalnum() for c in window[: found.start()])
            and _TRAILER.fullmatch(window[found.end() :])
        ):
            return begin + found.start(), begin + found.end()
    return None


def _marked_text(row: Row) -> str:
    text = row.field("text", str)
    target = row.sub("target")
    words = list(re.finditer(r"\S+", text))
    ranges = []
    for which, mark in (("1", "*"), ("2", "#")):
        index, span = target.field(f"span{which}_index", int), target.field(f"span{which}_text", str)
        found = _locate(text, words, index, span) if span.strip() else None
        if found is None:
            raise row.error(f"field 'target.span{which}_text' {span!r} is not at word {index} of 'text'")
        ranges.append((*found, mark))
    (start1, end1, _), (start2, end2, _) = ranges
    if start1 < start2 < end1 < end2 or start2 < start1 < end2 < end1 or (start1, end1) == (start2, end2):
        raise row.error("fields 'target.span1_index' and 'target.span2_index' give crossing or equal spans")
    # Marks in text order; at one position closing marks come first, then the outer span opens.
    events = sorted(
        [(start, 1, start - end, mark) for start, end, mark in ranges]
        + [(end, 0, end - start, mark) for start, end, mark in ranges]
    )
    pieces, previous = [], 0
    for position, _, _, mark in events:
        pieces += [text[previous:position], mark]
        previous = position
    return "".join(pieces) + text[previous:]


def _pronoun(row: Row) -> dict[str, str | int]:
    """What the near-duplicate key reads: the passage and the pronoun, as the file gives them."""
    target = row.sub("target")
    return {
        "text": row.field("text", str),
        "span2_text": target.field("span2_text", str),
        "span2_index": target.field("span2_index", int),
    }


def read_wsc(path: Path, split: str) -> list[Example]:
    return [
        Example(
            guid=f"{split}-{row.field('idx', int)}",
            text_a=_marked_text(row),
            label=row.label(LABELS),
            meta=_pronoun(row),
        )
        for row in jsonl_rows(path)
    ]


register_task(
    Task(
        name="WSC",
        version=1,
        kind="classification",
        labels=LABELS,
        label_words=("no", "yes"),
        metric_names=("acc",),
        reader=read_wsc,
        metric_fn=accuracy_metrics,
        files=superglue_files("WSC"),
        sizes=superglue_sizes(train=554, val=104),
        description="Decide whether the marked pronoun refers to the marked noun phrase.",
        near_duplicate_fields=("text", "span2_text", "span2_index"),
    )
)
