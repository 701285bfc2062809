"""The tokenisation cache: equal to fresh tokenisation, keyed on everything it depends on, and safe when
several processes build the same entry at once."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from prompttune import tokens
from prompttune.batches import encode
from prompttune.tasks import get_task
from prompttune.tasks.base import Example

CB = [
    Example(f"cb-{i}", f"premise number {i} is long enough", f"hypothesis {i}", label=i % 3) for i in range(7)
]
COPA = [
    Example(f"copa-{i}", f"context {i}", choices=(f"first {i}", f"second choice {i}"), label=i % 2)
    for i in range(5)
]


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMPTTUNE_CACHE", str(tmp_path))
    return tmp_path / "tokens"


def entries(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir()) if cache.is_dir() else []


@pytest.mark.parametrize(("task", "examples"), [("CB", CB), ("COPA", COPA)])
def test_cache_returns_exactly_what_tokenisation_gives(
    cache: Path, tiny_backbone: str, task: str, examples: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    fresh = encode(examples, get_task(task), tokenizer, 16)
    assert tokens.encode_cached(examples, get_task(task), tokenizer, 16) == fresh
    assert len(entries(cache)) == 1
    monkeypatch.setattr(tokens, "encode", lambda *args: pytest.fail("tokenised again despite the cache"))
    assert tokens.encode_cached(examples, get_task(task), tokenizer, 16) == fresh


def test_key_changes_with_every_input(tiny_backbone: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    cb = get_task("CB")
    base = tokens.cache_key(CB, cb, tokenizer, 16)
    changed = [
        tokens.cache_key(CB, cb, tokenizer, 32),
        tokens.cache_key(CB[:-1], cb, tokenizer, 16),
        tokens.cache_key([Example("cb-0", "other text", "hypothesis 0", 0), *CB[1:]], cb, tokenizer, 16),
        tokens.cache_key([Example("cb-0", CB[0].text_a, CB[0].text_b, 1), *CB[1:]], cb, tokenizer, 16),
        tokens.cache_key(CB, get_task("RTE"), tokenizer, 16),
    ]
    assert base not in changed and len(set(changed)) == len(changed)
    assert tokens.cache_key(list(CB), cb, tokenizer, 16) == base


def test_second_writer_loses_and_the_first_entry_stands(cache: Path, tiny_backbone: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    first = encode(CB, get_task("CB"), tokenizer, 16)
    path = cache / "entry"
    assert tokens.store(path, first) is True
    assert tokens.store(path, encode(CB[:2], get_task("CB"), tokenizer, 16)) is False
    assert tokens.load(path) == first
    assert entries(cache) == ["entry"]  # the loser's temporary folder is gone


def test_damaged_entry_is_rebuilt(
    cache: Path, tiny_backbone: str, capsys: pytest.CaptureFixture[str]
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    fresh = tokens.encode_cached(CB, get_task("CB"), tokenizer, 16)
    (entry,) = cache.iterdir()
    (entry / "keys.json").write_text("{not json")
    assert tokens.encode_cached(CB, get_task("CB"), tokenizer, 16) == fresh
    assert "unreadable" in capsys.readouterr().err
    assert tokens.load(entry) == fresh


def test_off_writes_nothing(tmp_path: Path, tiny_backbone: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTTUNE_CACHE", "off")
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tiny_backbone)
    assert tokens.encode_cached(CB, get_task("CB"), tokenizer, 16) == encode(
        CB, get_task("CB"), tokenizer, 16
    )
    assert list(tmp_path.iterdir()) == []


def _build(args: tuple[str, str, multiprocessing.synchronize.Barrier]) -> list:
    cache_dir, backbone, barrier = args
    import os

    os.environ["PROMPTTUNE_CACHE"] = cache_dir
    tokenizer = AutoTokenizer.from_pretrained(backbone)
    barrier.wait()  # every process starts building the same entry at the same moment
    return tokens.encode_cached(CB, get_task("CB"), tokenizer, 16)


def test_concurrent_processes_build_one_entry(cache: Path, tiny_backbone: str) -> None:
    n = 4
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(n)
        with context.Pool(n) as pool:
            results = pool.map(_build, [(str(cache.parent), tiny_backbone, barrier)] * n)
    reference = encode(CB, get_task("CB"), AutoTokenizer.from_pretrained(tiny_backbone), 16)
    assert all(result == reference for result in results)
    (entry,) = entries(cache)  # one entry, no temporary folder left behind
    assert tokens.load(cache / entry) == reference
