"""The three data settings (docs/methods.md#settings): which examples train, which select, which are
reported.

| setting     | train                                  | select                         | report |
| ----------- | -------------------------------------- | ------------------------------ | ------ |
| fewglue     | FewGLUE train.jsonl (32)               | FewGLUE_32dev dev32.jsonl      | val    |
| superglue   | full train minus a seeded 10 %         | that held-out 10 % ("heldout") | val    |
| fewshot-k   | k drawn from the full train set        | dev32, else 32 more drawn      | val    |

Disjoint by content (choice): an example's content is its text fields (lower-cased, whitespace
collapsed); the official files overlap (FewGLUE_32dev's rows are rows of the SuperGLUE training set,
GLUE's SST-2 training set repeats sentences), so before anything is drawn, examples whose content is in
the report split are removed from the selection and training pools, and those whose content is in the
selection split from the training pool. ``Splits.removed_overlap`` counts them; every run records it.

Near-duplicates (choice): a task may declare a near-duplicate key (``Task.near_duplicate_fields``; WSC:
the passage and the pronoun, shared by rows that ask about different candidate noun phrases, mostly with
opposite labels). After the content check and with its precedence, examples whose key is in the report
split leave the selection and training pools, and those whose key is in the selection split the training
pool; a draw passes over (leaves out) a unit whose key an earlier draw from the same pool holds —
superglue draws the held-out selection first, so train is what remains of the rest; fewshot-k without
dev32 draws train first, so both keep their sizes. Keys are normalised as content is. ``removed_overlap``
then also counts the examples this removed or passed over, as ``near_duplicate_train`` and
``near_duplicate_select`` (like the content counts, a pool's removals count for both splits it feeds); a
task without the declaration has neither key and the very splits it had before.

Sampling (project choice) is over units: a MultiRC question (its ``group``, all answer options
together) or one content elsewhere — a text the full training file repeats is one unit, drawn once (its
first occurrence) — so neither a question nor a repeated text ever straddles train and select. Units
are sorted by name and shuffled with ``random.Random(data_seed)``, so a split depends on the data seed
alone, never on the training seed or on global random state. For ``fewshot-k``, ``k`` counts units
(questions for MultiRC). Within a split, examples keep their file order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from prompttune.errors import PromptTuneError
from prompttune.tasks import Example, Task, get_task
from prompttune.tasks.common import SOURCES

HELDOUT_FRACTION = 0.1  # superglue: share of the full train set held out for selection
FEWSHOT_SELECT = 32  # fewshot-k: units drawn for selection when FewGLUE has no dev32

_VALID = "fewglue, superglue, fewshot-<k> (k a positive integer, e.g. fewshot-64)"


@dataclass(frozen=True)
class Setting:
    """A parsed setting name: ``fewglue``, ``superglue`` or ``fewshot`` with its ``k``."""

    name: str
    k: int | None = None

    @property
    def label(self) -> str:
        """The name as written on the command line (``fewshot-64``)."""
        return f"{self.name}-{self.k}" if self.k is not None else self.name


@dataclass(frozen=True)
class Splits:
    train: list[Example]
    select: list[Example]
    report: list[Example]
    select_name: str
    report_name: str
    files: list[str]  # relative data files used, in the order train, select, report
    # dropped for their content: in a later split ("train", "select"), repeats ("repeats"); for a task
    # with a near-duplicate key, also for it ("near_duplicate_train", "near_duplicate_select")
    removed_overlap: dict[str, int]

    def require_labels(self) -> None:
        """Training, selection and the report need every example labelled; the first that is not is
        an error naming its file."""
        select_file = self.files[1] if len(self.files) == 3 else self.files[0]
        for examples, file in (
            (self.train, self.files[0]),
            (self.select, select_file),
            (self.report, self.files[-1]),
        ):
            for example in examples:
                if example.label is None:
                    raise PromptTuneError(
                        f"{file}: example {example.guid!r} has no label; training needs labels"
                    )


def parse_setting(name: str) -> Setting:
    """``"fewglue"``, ``"superglue"`` or ``"fewshot-<k>"``; anything else is a one-line error."""
    if name in ("fewglue", "superglue"):
        return Setting(name)
    prefix, _, k = name.partition("-")
    if prefix == "fewshot" and k.isdigit() and int(k) > 0:
        return Setting("fewshot", int(k))
    raise PromptTuneError(f"unknown setting {name!r}; valid: {_VALID}")


@dataclass(frozen=True)
class Take:
    """Where a split comes from: the task file ``source`` (a key of ``Task.files``), whole (``units``
    None: what the file holds after the removals, less what another split draws from it) or ``units``
    sampling units drawn from it."""

    source: str
    units: int | None = None


@dataclass(frozen=True)
class Plan:
    """A setting's rule for one task (the table above): where train, select and report come from."""

    train: Take
    select: Take
    report: Take

    @property
    def sources(self) -> list[str]:
        """The files it reads, in the order train, select, report."""
        return list(dict.fromkeys(take.source for take in (self.train, self.select, self.report)))


def plan(setting: Setting, task: Task, full_units: int = 0) -> Plan:
    """The setting's rule for ``task``; ``full_units``: the sampling units of the full training pool, of
    which superglue holds out ``HELDOUT_FRACTION`` (at least one) for selection. Read by ``load_splits``
    and by the cost model's sizes before any fetch (prompttune/cost.py), so both follow one rule."""
    if setting.name == "fewglue":
        rule = Plan(Take("fewglue_train"), Take("fewglue_dev32"), Take("val"))
    elif setting.name == "superglue":
        rule = Plan(
            Take("full_train"), Take("full_train", max(1, round(HELDOUT_FRACTION * full_units))), Take("val")
        )
    else:
        dev32 = "fewglue_dev32" in task.files
        select = Take("fewglue_dev32") if dev32 else Take("full_train", FEWSHOT_SELECT)
        rule = Plan(Take("full_train", setting.k), select, Take("val"))
    for source in rule.sources:
        if source not in task.files:
            path = SOURCES[source].format(task=task.name)
            raise PromptTuneError(
                f"setting {setting.label!r} needs {path}, which task {task.name} does not have"
            )
    return rule


def required_files(setting: str, task: str) -> list[str]:
    """The data files (relative to the data root) that ``load_splits`` reads; nothing is read."""
    task_ = get_task(task)
    return [task_.files[source] for source in plan(parse_setting(setting), task_).sources]


def _read(data_root: Path, task: Task, source: str) -> list[Example]:
    path = data_root / task.files[source]
    examples = task.read(path, source)
    seen: set[str] = set()
    for example in examples:
        if example.guid in seen:
            raise PromptTuneError(f"{path}: duplicate example id {example.guid!r}; splits need unique ids")
        seen.add(example.guid)
    return examples


def _normal(text: str) -> str:
    return " ".join(text.lower().split())


def content(example: Example) -> tuple[str, ...]:
    """What an example says: its text fields, lower-cased, whitespace collapsed (choice)."""
    return tuple(map(_normal, [example.text_a, example.text_b or "", *example.choices]))


def near_duplicate_key(example: Example, task: Task) -> tuple[str | int, ...] | None:
    """The values of the task's ``near_duplicate_fields`` in ``example.meta``, texts normalised as by
    ``content``; ``None`` when the task declares no key."""
    if not task.near_duplicate_fields:
        return None
    values = (example.meta[name] for name in task.near_duplicate_fields)
    return tuple(_normal(value) if isinstance(value, str) else value for value in values)


def _unit(example: Example) -> str:
    return example.group if example.group is not None else repr(content(example))


def _keys(examples: list[Example], task: Task) -> set[tuple[str | int, ...]]:
    return {key for example in examples if (key := near_duplicate_key(example, task)) is not None}


def _without(task: Task, examples: list[Example], *later: list[Example]) -> tuple[list[Example], int, int]:
    """``examples`` minus those whose content is in any of the ``later`` splits, then minus those whose
    near-duplicate key is; how many went for their content and how many for their key."""
    taken = {content(example) for split in later for example in split}
    kept = [example for example in examples if content(example) not in taken]
    keys = set().union(*(_keys(split, task) for split in later))
    distinct = [example for example in kept if near_duplicate_key(example, task) not in keys]
    return distinct, len(examples) - len(kept), len(kept) - len(distinct)


def _once(examples: list[Example]) -> tuple[list[Example], int]:
    """The first occurrence of each repeated text (MultiRC's answer options are kept: their question
    groups them), and how many repeats went."""
    seen: set[tuple[str, ...]] = set()
    kept = []
    for example in examples:
        key = content(example)
        if example.group is None and key in seen:
            continue
        seen.add(key)
        kept.append(example)
    return kept, len(examples) - len(kept)


def _draw(
    task: Task, examples: list[Example], counts: list[int | None], data_seed: int, path: Path
) -> tuple[list[list[Example]], list[int]]:
    """Disjoint draws of ``counts[i]`` units each (``None``: every unit left) from the examples read from
    ``path``, seeded by ``data_seed`` alone; a unit whose near-duplicate key an earlier draw holds is
    passed over and left out. The draws, and per draw how many examples it passed over."""
    units = sorted({_unit(example) for example in examples})
    wanted = " + ".join(str(count) for count in counts if count is not None)
    if sum(count or 0 for count in counts) > len(units):
        raise PromptTuneError(
            f"{path}: cannot draw {wanted} examples, the file has {len(units)} distinct ones"
        )
    random.Random(data_seed).shuffle(units)
    members: dict[str, list[Example]] = {}
    for example in examples:
        members.setdefault(_unit(example), []).append(example)
    left = iter(units)
    draws, passed_over, held = [], [], set()
    for count in counts:
        chosen, keys, skipped = set(), set(), 0
        for unit in left:
            unit_keys = _keys(members[unit], task)
            if unit_keys & held:
                skipped += len(members[unit])
                continue
            chosen.add(unit)
            keys |= unit_keys
            if len(chosen) == count:
                break
        if count is not None and len(chosen) < count:
            raise PromptTuneError(
                f"{path}: cannot draw {wanted} examples without near-duplicates across the draws"
            )
        held |= keys
        draws.append([example for example in examples if _unit(example) in chosen])
        passed_over.append(skipped)
    return draws, passed_over


def load_splits(data_root: Path, setting: str, task: Task, data_seed: int) -> Splits:
    """Read and split a task's data for a setting (see the module docstring)."""
    data_root = Path(data_root)
    parsed = parse_setting(setting)
    rule = plan(parsed, task)
    files = [task.files[source] for source in rule.sources]
    missing = [str(data_root / file) for file in files if not (data_root / file).is_file()]
    if missing:
        raise PromptTuneError(f"data file not found: {', '.join(missing)}; run `prompttune fetch` first")
    report = _read(data_root, task, "val")
    if parsed.name == "fewglue":
        select, dropped_select, near_select = _without(task, _read(data_root, task, "fewglue_dev32"), report)
        train, dropped_train, near_train = _without(
            task, _read(data_root, task, "fewglue_train"), select, report
        )
        removed = {"train": dropped_train, "select": dropped_select, "repeats": 0}
        near = {"train": near_train, "select": near_select}
        return Splits(train, select, report, "dev32", "val", files, _counts(task, removed, near))
    full_path = data_root / task.files["full_train"]
    full, repeats = _once(_read(data_root, task, "full_train"))
    if rule.select.source == "fewglue_dev32":
        select, dropped_select, near_select = _without(task, _read(data_root, task, "fewglue_dev32"), report)
        full, dropped_train, near_train = _without(task, full, select, report)
        (train,), _ = _draw(task, full, [parsed.k], data_seed, full_path)
        removed = {"train": dropped_train, "select": dropped_select, "repeats": repeats}
        near = {"train": near_train, "select": near_select}
        return Splits(train, select, report, "dev32", "val", files, _counts(task, removed, near))
    full, dropped, near_pool = _without(task, full, report)
    if (
        parsed.name == "superglue"
    ):  # the held-out selection first (its size from the pool's): train is the rest
        rule = plan(parsed, task, len({_unit(example) for example in full}))
        counts: list[int | None] = [rule.select.units, rule.train.units]
        (select, train), (over_select, over_train) = _draw(task, full, counts, data_seed, full_path)
    else:  # fewshot-k without dev32: train first, so both keep their sizes
        counts = [rule.train.units, rule.select.units]
        (train, select), (over_train, over_select) = _draw(task, full, counts, data_seed, full_path)
    removed = {"train": dropped, "select": dropped, "repeats": repeats}
    near = {"train": near_pool + over_train, "select": near_pool + over_select}
    return Splits(train, select, report, "heldout", "val", files, _counts(task, removed, near))


def _counts(task: Task, removed: dict[str, int], near: dict[str, int]) -> dict[str, int]:
    """``Splits.removed_overlap``: the content counts, and the near-duplicate ones if the task has a key."""
    if not task.near_duplicate_fields:
        return removed
    return removed | {f"near_duplicate_{split}": count for split, count in near.items()}
