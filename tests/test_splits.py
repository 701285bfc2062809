"""The three settings: sizes, disjointness by content and by near-duplicate key on every setting × task of
the mirror, determinism in the data seed, group integrity; WSC's near-duplicates counted against the raw
files, and tasks without a near-duplicate key split exactly as before it existed."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from prompttune.errors import PromptTuneError
from prompttune.splits import (
    Setting,
    Splits,
    content,
    load_splits,
    near_duplicate_key,
    parse_setting,
    required_files,
)
from prompttune.tasks import TASKS, Example, Task, get_task


def guids(examples: list[Example]) -> list[str]:
    return [e.guid for e in examples]


def texts(examples: list[Example]) -> set[tuple[str, ...]]:
    return {content(e) for e in examples}


def assert_disjoint(splits: Splits) -> None:
    """Disjoint by content (the text fields, not the ids, which carry their file's prefix), and no
    MultiRC question in two splits."""
    assert not texts(splits.train) & texts(splits.select)
    assert not texts(splits.select) & texts(splits.report)
    assert not texts(splits.train) & texts(splits.report)
    assert not {e.group for e in splits.train if e.group} & {e.group for e in splits.select if e.group}


def mirror_cells(mirror: Path) -> list[tuple[str, str]]:
    """Every setting × task whose files the mirror has."""
    cells = []
    for setting in ("fewglue", "superglue", "fewshot-64", "fewshot-256"):
        for task in TASKS.names():
            try:
                files = required_files(setting, task)
            except PromptTuneError:
                continue
            if all((mirror / file).is_file() for file in files):
                cells.append((setting, task))
    return cells


SPLITS = ("train", "select", "report")


def assert_no_shared_key(splits: Splits, task: Task) -> None:
    """No near-duplicate key in two splits (vacuous for a task that declares none)."""
    keys = {name: {near_duplicate_key(e, task) for e in getattr(splits, name)} - {None} for name in SPLITS}
    for first, second in [("train", "select"), ("select", "report"), ("train", "report")]:
        assert not keys[first] & keys[second], (task.name, first, second)


def test_every_setting_and_task_of_the_mirror_is_disjoint_by_content(mirror: Path) -> None:
    cells = mirror_cells(mirror)
    assert len(cells) >= 14  # FewGLUE's 8 tasks, full RTE, WSC and SST-2, few-shot RTE, WSC and SST-2
    for setting, task in cells:
        splits = load_splits(mirror, setting, get_task(task), data_seed=13)
        assert_disjoint(splits)
        assert_no_shared_key(splits, get_task(task))
        assert len(texts(splits.train)) == len(splits.train) or task == "MultiRC", (setting, task)


def test_dev32_rows_that_are_training_rows_leave_the_training_pool(mirror: Path) -> None:
    # FewGLUE_32dev's RTE rows are rows of the SuperGLUE training set: none may be drawn to train on.
    task = get_task("RTE")
    full = task.read(mirror / "SuperGLUE/RTE/train.jsonl", "full_train")
    dev32 = task.read(mirror / "FewGLUE_32dev/RTE/dev32.jsonl", "fewglue_dev32")
    assert texts(dev32) <= texts(full)
    splits = load_splits(mirror, "fewshot-256", task, data_seed=13)
    assert splits.removed_overlap["train"] >= len(dev32)
    assert not texts(splits.train) & texts(dev32)


def test_repeated_texts_are_one_unit(mirror: Path) -> None:
    # GLUE's SST-2 training file repeats sentences; each is drawn at most once, and never on both sides.
    splits = load_splits(mirror, "superglue", get_task("SST-2"), data_seed=0)
    assert splits.removed_overlap["repeats"] > 0
    assert len(texts(splits.train)) == len(splits.train)


def test_parse_setting() -> None:
    assert parse_setting("fewglue") == Setting("fewglue", None)
    assert parse_setting("superglue") == Setting("superglue", None)
    assert parse_setting("fewshot-64") == Setting("fewshot", 64)
    assert parse_setting("fewshot-256").label == "fewshot-256"
    for bad in ("fewshot", "fewshot-0", "fewshot-x", "FewGLUE", "fewshot--3"):
        with pytest.raises(
            PromptTuneError, match=f"unknown setting '{bad}'; valid: fewglue, superglue, fewshot-<k>"
        ):
            parse_setting(bad)


def test_required_files() -> None:
    assert required_files("fewglue", "CB") == [
        "FewGLUE/CB/train.jsonl",
        "FewGLUE_32dev/CB/dev32.jsonl",
        "SuperGLUE/CB/val.jsonl",
    ]
    assert required_files("superglue", "RTE") == ["SuperGLUE/RTE/train.jsonl", "SuperGLUE/RTE/val.jsonl"]
    assert required_files("fewshot-64", "RTE") == [
        "SuperGLUE/RTE/train.jsonl",
        "FewGLUE_32dev/RTE/dev32.jsonl",
        "SuperGLUE/RTE/val.jsonl",
    ]
    assert required_files("fewshot-256", "SST-2") == ["GLUE/SST-2/train.tsv", "GLUE/SST-2/dev.tsv"]
    with pytest.raises(
        PromptTuneError,
        match="^setting 'fewglue' needs FewGLUE/SST-2/train.jsonl, which task SST-2 does not have$",
    ):
        required_files("fewglue", "SST-2")


def test_missing_file_suggests_fetch(tmp_path: Path) -> None:
    with pytest.raises(
        PromptTuneError, match=f"data file not found: {tmp_path}/FewGLUE/CB/train.jsonl, .*prompttune fetch"
    ):
        load_splits(tmp_path, "fewglue", get_task("CB"), data_seed=0)


def test_fewglue_sizes(mirror: Path) -> None:
    splits = load_splits(mirror, "fewglue", get_task("CB"), data_seed=0)
    assert (len(splits.train), len(splits.select), len(splits.report)) == (32, 32, 56)
    assert (splits.select_name, splits.report_name) == ("dev32", "val")
    assert splits.files == required_files("fewglue", "CB")
    assert splits.train[0].guid.startswith("fewglue_train-") and splits.report[0].guid.startswith("val-")


@pytest.fixture(scope="module")
def sst2_fewshot(mirror: Path) -> dict[int, Splits]:
    random.seed(1234)  # global random state must not matter
    first = load_splits(mirror, "fewshot-256", get_task("SST-2"), data_seed=1)
    random.seed(99)
    return {
        1: first,
        -1: load_splits(mirror, "fewshot-256", get_task("SST-2"), data_seed=1),
        2: load_splits(mirror, "fewshot-256", get_task("SST-2"), data_seed=2),
    }


def test_fewshot_sst2_sizes_and_disjointness(sst2_fewshot: dict[int, Splits]) -> None:
    splits = sst2_fewshot[1]
    assert (len(splits.train), len(splits.select), len(splits.report)) == (256, 32, 872)
    assert (splits.select_name, splits.report_name) == ("heldout", "val")
    assert splits.files == ["GLUE/SST-2/train.tsv", "GLUE/SST-2/dev.tsv"]
    assert_disjoint(splits)
    assert all(g.startswith("full_train-") for g in guids(splits.train) + guids(splits.select))


def test_fewshot_is_determined_by_the_data_seed(sst2_fewshot: dict[int, Splits]) -> None:
    same, other = sst2_fewshot[-1], sst2_fewshot[2]
    assert guids(same.train) == guids(sst2_fewshot[1].train)
    assert guids(same.select) == guids(sst2_fewshot[1].select)
    assert set(guids(other.train)) != set(guids(same.train))
    assert set(guids(other.select)) != set(guids(same.select))


def test_fewshot_uses_dev32_where_fewglue_has_one(mirror: Path) -> None:
    splits = load_splits(mirror, "fewshot-64", get_task("RTE"), data_seed=3)
    assert (len(splits.train), len(splits.select), len(splits.report)) == (64, 32, 277)
    assert splits.select_name == "dev32" and splits.select[0].guid.startswith("fewglue_dev32-")


def test_superglue_holds_out_ten_percent(mirror: Path) -> None:
    splits = load_splits(mirror, "superglue", get_task("RTE"), data_seed=0)
    distinct = 2490 - splits.removed_overlap["repeats"] - splits.removed_overlap["train"]
    assert len(splits.select) == round(0.1 * distinct) and len(splits.train) == distinct - len(splits.select)
    assert splits.select_name == "heldout"
    assert_disjoint(splits)
    other = load_splits(mirror, "superglue", get_task("RTE"), data_seed=1)
    assert set(guids(other.select)) != set(guids(splits.select))


def test_too_few_examples_to_draw(mirror: Path) -> None:
    with pytest.raises(
        PromptTuneError, match=r"cannot draw 5000 examples, the file has 24\d\d distinct ones"
    ):
        load_splits(mirror, "fewshot-5000", get_task("RTE"), data_seed=0)


def test_multirc_questions_are_never_split(mirror: Path, tmp_path: Path) -> None:
    # The full MultiRC train set is not mirrored; its unlabelled FewGLUE pool (456 passages) stands in.
    for relative, source in [
        ("SuperGLUE/MultiRC/train.jsonl", "FewGLUE/MultiRC/unlabeled.jsonl"),
        ("SuperGLUE/MultiRC/val.jsonl", "SuperGLUE/MultiRC/val.jsonl"),
        ("FewGLUE_32dev/MultiRC/dev32.jsonl", "FewGLUE_32dev/MultiRC/dev32.jsonl"),
    ]:
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).symlink_to(mirror / source)
    task = get_task("MultiRC")
    full = task.read(tmp_path / "SuperGLUE/MultiRC/train.jsonl", "full_train")
    options = Counter(e.group for e in full)  # answer options per question

    splits = load_splits(tmp_path, "superglue", task, data_seed=0)
    assert_disjoint(splits)
    held = {e.group for e in splits.select}
    assert len(held) == round(0.1 * len(options))
    assert len(splits.train) + len(splits.select) == len(full)
    for part in (splits.train, splits.select):
        assert all(options[group] == n for group, n in Counter(e.group for e in part).items())

    fewshot = load_splits(tmp_path, "fewshot-64", task, data_seed=0)
    assert len({e.group for e in fewshot.train}) == 64
    assert len(fewshot.train) == sum(options[g] for g in {e.group for e in fewshot.train})


# --- near-duplicates: WSC against its raw files; tasks without a key as before ------------------------------

WSC_FILES = {
    "fewglue_train": "FewGLUE/WSC/train.jsonl",
    "fewglue_dev32": "FewGLUE_32dev/WSC/dev32.jsonl",
    "full_train": "SuperGLUE/WSC/train.jsonl",
    "val": "SuperGLUE/WSC/val.jsonl",
}


def norm(text: str) -> str:
    return " ".join(text.lower().split())


def raw_rows(mirror: Path, source: str) -> dict[str, dict[str, Any]]:
    """A WSC file's rows by the guid the reader gives them, read here without the task's reader."""
    lines = (mirror / WSC_FILES[source]).read_text().splitlines()
    return {f"{source}-{row['idx']}": row for row in map(json.loads, filter(None, lines))}


def raw_key(row: dict[str, Any]) -> tuple[str, str, int]:
    """The passage and the pronoun."""
    return norm(row["text"]), norm(row["target"]["span2_text"]), row["target"]["span2_index"]


def raw_content(row: dict[str, Any]) -> tuple[Any, ...]:
    """The passage and both spans: what the marked text says."""
    target = row["target"]
    spans = (
        target["span1_index"],
        norm(target["span1_text"]),
        target["span2_index"],
        norm(target["span2_text"]),
    )
    return norm(row["text"]), *spans


def pool(rows: dict[str, dict[str, Any]], *later: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The rows whose content is in none of ``later`` (the content check, which this does not test)."""
    taken = {raw_content(row) for split in later for row in split.values()}
    return {guid: row for guid, row in rows.items() if raw_content(row) not in taken}


def sharing(rows: dict[str, dict[str, Any]], *later: dict[str, dict[str, Any]]) -> set[str]:
    """The guids of ``rows`` whose key is in any of ``later``."""
    keys = {raw_key(row) for split in later for row in split.values()}
    return {guid for guid, row in rows.items() if raw_key(row) in keys}


def first_occurrences(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    seen: set[tuple[Any, ...]] = set()
    kept = {}
    for guid, row in rows.items():
        if raw_content(row) not in seen:
            seen.add(raw_content(row))
            kept[guid] = row
    return kept


def rows_of(raw: dict[str, dict[str, Any]], examples: Iterable[Example]) -> dict[str, dict[str, Any]]:
    return {e.guid: raw[e.guid] for e in examples}


# What the mirror gives, (setting, data seed) -> WSC examples removed from train for their near-duplicate key
# (none from select: no dev32 or held-out row asks about a val pronoun).
WSC_NEAR_DUPLICATES = {
    **{("fewglue", seed): 4 for seed in (0, 13)},  # FewGLUE train rows asking about a dev32 pronoun
    ("superglue", 0): 41,  # training rows asking about a pronoun of the held-out 10 %
    ("superglue", 13): 50,
    **{(f"fewshot-{k}", seed): 28 for k in (64, 256) for seed in (0, 13)},  # full-train rows, a dev32 pronoun
}


@pytest.mark.parametrize("setting", ["fewglue", "superglue", "fewshot-64", "fewshot-256"])
@pytest.mark.parametrize("data_seed", [0, 13])
def test_wsc_near_duplicates_are_removed_and_counted(mirror: Path, setting: str, data_seed: int) -> None:
    splits = load_splits(mirror, setting, get_task("WSC"), data_seed)
    raw = {guid: row for source in WSC_FILES for guid, row in raw_rows(mirror, source).items()}
    train, select, report = (rows_of(raw, getattr(splits, name)) for name in SPLITS)
    for first, second in [(train, select), (select, report), (train, report)]:
        assert not {raw_key(r) for r in first.values()} & {raw_key(r) for r in second.values()}
    if setting == "superglue":
        # One pool: rows asking about a val pronoun leave it, the draw passes over those of held-out pronouns.
        full = pool(first_occurrences(raw_rows(mirror, "full_train")), report)
        near_report = sharing(full, report)
        passed_over = set(full) - near_report - set(train) - set(select)
        assert passed_over == sharing(full, select) - set(select)
        expected = {"train": len(near_report) + len(passed_over), "select": len(near_report)}
    else:
        # dev32 selects; the training rows (or pool) lose those asking about its or val's pronouns.
        dev32 = pool(raw_rows(mirror, "fewglue_dev32"), report)
        if setting == "fewglue":
            candidates = pool(raw_rows(mirror, "fewglue_train"), select, report)
            assert set(candidates) - set(train) == sharing(candidates, select, report)
        else:
            candidates = pool(first_occurrences(raw_rows(mirror, "full_train")), select, report)
            assert len(train) == parse_setting(setting).k, "few-shot train keeps its k units"
        expected = {"train": len(sharing(candidates, select, report)), "select": len(sharing(dev32, report))}
    measured = {split: splits.removed_overlap[f"near_duplicate_{split}"] for split in ("train", "select")}
    assert measured == expected
    assert measured == {"train": WSC_NEAR_DUPLICATES[setting, data_seed], "select": 0}


def digest(splits: Splits) -> str:
    names = [[e.guid for e in getattr(splits, name)] for name in SPLITS]
    return hashlib.sha256(json.dumps([*names, splits.removed_overlap]).encode()).hexdigest()


# Recorded before near-duplicate keys existed: a task that declares none splits exactly as it did.
BEFORE = {
    ("fewglue", "CB"): "d5a963dd8c63e880847bff8e054d9fcd28751eac33a0d8b7ebdf3afdcc6c46c0",
    ("superglue", "RTE"): "1957eb8624b8d61c25c3cde204d78d9d27a03f43b70f9a9369e67249196b6f4e",
    ("fewshot-64", "RTE"): "45175f573d054e820e407fc906aa99f4316f987318cf72ad76cac18879b3020f",
    ("fewshot-256", "SST-2"): "0c3827f0ff52623d91dd891020e1dc171a54c6631b01e013fc6283f9bbee21ad",
    ("fewglue", "WSC"): "17475673ac94a6319c48cd29f99a8423e4bbb83096115860e6c610496de66af0",
    ("superglue", "WSC"): "feecf8d1e6aed09b4fdde53e9875b59db49dcdd468f7054727dff6575d502053",
    ("fewshot-64", "WSC"): "55d5d9d44cc5b6c926c983a05947a8a7462febc80de04084140870defdf014d3",
}


@pytest.mark.parametrize(("setting", "task_name"), list(BEFORE))
def test_a_task_without_a_near_duplicate_key_splits_as_before(
    mirror: Path, setting: str, task_name: str
) -> None:
    task = dataclasses.replace(get_task(task_name), near_duplicate_fields=())  # WSC: its key taken away
    splits = load_splits(mirror, setting, task, data_seed=13)
    assert set(splits.removed_overlap) == {"train", "select", "repeats"}
    assert digest(splits) == BEFORE[setting, task_name]


def test_a_draw_passes_over_the_near_duplicates_of_an_earlier_draw(mirror: Path) -> None:
    # WSC as if FewGLUE had no dev32: fewshot-k draws train, then 32 selection units from the same pool.
    wsc = get_task("WSC")
    task = dataclasses.replace(wsc, files={s: f for s, f in wsc.files.items() if s in ("full_train", "val")})
    splits = load_splits(mirror, "fewshot-64", task, data_seed=13)
    assert (len(splits.train), len(splits.select)) == (64, 32), "both draws keep their sizes"
    assert_no_shared_key(splits, task)
    assert splits.removed_overlap["near_duplicate_train"] == 0  # train was drawn first: it keeps its keys
    assert splits.removed_overlap["near_duplicate_select"] > 0
    with pytest.raises(PromptTuneError, match=r"cannot draw 500 \+ 32 examples without near-duplicates"):
        load_splits(mirror, "fewshot-500", task, data_seed=13)
