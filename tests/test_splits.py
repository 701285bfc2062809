"""The three settings: sizes, disjointness by content on every setting × task of the mirror, determinism in
the data seed, group integrity."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from prompttune.errors import PromptTuneError
from prompttune.splits import Setting, Splits, content, load_splits, parse_setting, required_files
from prompttune.tasks import TASKS, Example, get_task


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


def test_every_setting_and_task_of_the_mirror_is_disjoint_by_content(mirror: Path) -> None:
    cells = mirror_cells(mirror)
    assert len(cells) >= 14  # FewGLUE's 8 tasks, full RTE, WSC and SST-2, few-shot RTE, WSC and SST-2
    for setting, task in cells:
        splits = load_splits(mirror, setting, get_task(task), data_seed=13)
        assert_disjoint(splits)
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
