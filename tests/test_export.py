"""Prompt position ``start`` and the export of shallow prompts to PEFT: PEFT's logits equal the project's,
runs PEFT cannot reproduce are refused without writing anything."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import CB_EXAMPLES, tiny_config

from prompttune.backbone import load_backbone
from prompttune.batches import collate, encode
from prompttune.checkpoint import load_run
from prompttune.config import HeadConfig
from prompttune.data import fetch
from prompttune.errors import PromptTuneError
from prompttune.export import export_peft
from prompttune.model import PromptModel
from prompttune.objectives import build_objective
from prompttune.splits import load_splits, required_files
from prompttune.tasks import get_task
from prompttune.train import train_run

peft = pytest.importorskip("peft")
safetensors_torch = pytest.importorskip("safetensors.torch")

PROMPTTUNE = str(Path(sys.executable).parent / "prompttune")


@pytest.fixture(scope="module")
def cb_data(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("data")
    fetch(required_files("fewglue", "CB"), dest, mirror=mirror)
    return dest


def run_config(backbone: str, method: str = "pt", position: str = "start", pooling: str = "mean"):
    config = tiny_config(backbone, method)
    return dataclasses.replace(
        config,
        prompt=dataclasses.replace(config.prompt, position=position),
        head=HeadConfig(pooling=pooling, init="random"),
    )


@pytest.fixture(scope="module")
def trained(
    tiny_backbone: str, cb_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """A finished tiny CB run per (method, position, pooling), trained once per module."""
    root = tmp_path_factory.mktemp("runs")
    runs: dict[tuple[str, str, str], Path] = {}

    def get(method: str = "pt", position: str = "start", pooling: str = "mean") -> Path:
        key = (method, position, pooling)
        if key not in runs:
            runs[key] = root / "-".join(key)
            train_run(run_config(tiny_backbone, *key), cb_data, runs[key])
        return runs[key]

    return get


def cb_batch(tokenizer, cb_data: Path) -> dict[str, torch.Tensor]:
    """Hand-made and real CB pairs of different lengths (padding inside the batch)."""
    task = get_task("CB")
    examples = [*CB_EXAMPLES, *load_splits(cb_data, "fewglue", task, 13).report[:5]]
    return collate(encode(examples, task, tokenizer, 48), tokenizer, False)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers deprecations raised inside PEFT
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_peft_loads_the_export_with_equal_logits(
    trained: Callable[..., Path], tiny_backbone: str, cb_data: Path, tmp_path: Path, pooling: str
) -> None:
    from peft import PeftModel
    from transformers import AutoModel

    run_dir = trained(pooling=pooling)
    out = export_peft(run_dir, tmp_path / "export")
    assert out == tmp_path / "export"
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "head.safetensors",
        "prompttune_head.json",
    } <= {p.name for p in out.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "PROMPT_TUNING" and adapter["num_virtual_tokens"] == 4
    assert adapter["base_model_name_or_path"] == str(Path(tiny_backbone).resolve())
    head_info = json.loads((out / "prompttune_head.json").read_text())
    assert head_info["pooling"] == pooling and head_info["task"] == "CB"
    assert head_info["labels"] == list(get_task("CB").labels)

    run = load_run(run_dir)
    batch = cb_batch(run.tokenizer, cb_data)
    with torch.no_grad():
        expected = run.model(batch).logits

    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(tiny_backbone), out).eval()
    head = safetensors_torch.load_file(out / "head.safetensors")
    n = head_info["num_virtual_tokens"]
    with torch.no_grad():
        hidden = peft_model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state[:, n:]
    if pooling == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    logits = pooled @ head["weight"].T + head["bias"]
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize(("method", "position"), [("pt2", "start"), ("pt", "after_first")])
def test_runs_peft_cannot_reproduce_are_refused_and_nothing_is_written(
    trained: Callable[..., Path], tmp_path: Path, method: str, position: str
) -> None:
    run_dir = trained(method, position)
    out = tmp_path / "exports" / "adapter"
    with pytest.raises(PromptTuneError) as excinfo:
        export_peft(run_dir, out)
    message = str(excinfo.value)
    assert "\n" not in message and str(run_dir) in message and "start" in message
    assert not (tmp_path / "exports").exists()


def test_console_script_exports_and_refuses_with_one_line(
    trained: Callable[..., Path], tmp_path: Path
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    good = subprocess.run(
        [PROMPTTUNE, "export-peft", str(trained()), str(tmp_path / "good")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert good.returncode == 0, good.stderr
    assert len(good.stdout.strip().splitlines()) == 1 and (tmp_path / "good/adapter_config.json").is_file()
    bad = subprocess.run(
        [PROMPTTUNE, "export-peft", str(trained("pt", "after_first")), str(tmp_path / "bad")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), bad.stderr
    assert not (tmp_path / "bad").exists()


def build(backbone: str, position: str, pooling: str = "mean") -> tuple[PromptModel, object]:
    torch.manual_seed(0)
    model, tokenizer = load_backbone(backbone)
    config = run_config(backbone, position=position, pooling=pooling)
    return PromptModel.build(config, model, tokenizer, get_task("CB")).eval(), tokenizer


def test_start_puts_the_prompt_before_every_token_and_changes_the_logits(tiny_backbone: str) -> None:
    after, tokenizer = build(tiny_backbone, "after_first")
    start, _ = build(tiny_backbone, "start")
    torch.testing.assert_close(start.base.prompt, after.base.prompt, rtol=0, atol=0)  # same seed, same init
    batch = collate(encode(CB_EXAMPLES, get_task("CB"), tokenizer, 32), tokenizer, False)
    embeds = start.embed(batch["input_ids"])
    inputs = start.base(embeds, batch["attention_mask"], batch["token_type_ids"])
    n_seq, n = batch["input_ids"].shape[0], 4
    out = inputs.kwargs["inputs_embeds"]
    assert torch.equal(out[:, :n], start.base.prompt.unsqueeze(0).expand(n_seq, -1, -1))
    assert torch.equal(out[:, n:], embeds)
    assert torch.equal(inputs.kwargs["attention_mask"][:, :n], torch.ones(n_seq, n, dtype=torch.long))
    assert "token_type_ids" not in inputs.kwargs  # as PEFT's prompt tuning: the backbone's default
    assert not inputs.input_mask[:, :n].any()
    assert torch.equal(inputs.input_mask[:, n:], batch["attention_mask"].bool())
    with torch.no_grad():
        assert not torch.allclose(start(batch).logits, after(batch).logits, atol=1e-4)


def test_cls_pooling_reads_the_inputs_first_token_wherever_the_prompt_sits(tiny_backbone: str) -> None:
    for position, cls_index in (("after_first", 0), ("start", 4)):
        model, tokenizer = build(tiny_backbone, position, pooling="cls")
        batch = collate(encode(CB_EXAMPLES, get_task("CB"), tokenizer, 32), tokenizer, False)
        inputs = model.base(model.embed(batch["input_ids"]), batch["attention_mask"], batch["token_type_ids"])
        with torch.no_grad():
            hidden = model.backbone(**inputs.kwargs).last_hidden_state
            assert torch.equal(model.encode(batch), hidden[:, cls_index])


def test_gradients_reach_only_prompt_and_head_with_start(tiny_backbone: str) -> None:
    model, tokenizer = build(tiny_backbone, "start")
    batch = collate(encode(CB_EXAMPLES, get_task("CB"), tokenizer, 32), tokenizer, False)
    loss, _ = build_objective("ce", {}, model.train()).loss(model, batch)
    loss.backward()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"base.prompt", "head.weight", "head.bias"}
    for name, parameter in model.named_parameters():
        if name in trainable:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name
