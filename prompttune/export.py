"""Export a trained shallow prompt to PEFT's adapter format, with the task head beside it.

Only base ``pt`` with ``prompt.position: start`` is exported: PEFT's prompt tuning puts the virtual
tokens before every input token (and drops token types), which is exactly that configuration, so PEFT's
hidden states equal the project's. The folder holds

- ``adapter_config.json`` + ``adapter_model.safetensors``: written by PEFT itself (prompt tuning,
  task type ``FEATURE_EXTRACTION``, so ``PeftModel.from_pretrained(AutoModel.from_pretrained(base), dir)``
  applies the prompt); ``base_model_name_or_path`` is the run's backbone (embedded names resolved to
  their local folder);
- ``head.safetensors`` (``weight``, ``bias``) and ``prompttune_head.json``: the task head and how to
  feed it. Logits: PEFT's ``last_hidden_state`` → drop the first ``num_virtual_tokens`` positions →
  ``pooling`` over the attention mask (``mean``) or the first token (``cls``) → ``weight·x + bias``;
  multiple-choice tasks score each (context, choice) sequence with one logit.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from prompttune.backbone import resolve_backbone
from prompttune.checkpoint import load_run
from prompttune.errors import PromptTuneError
from prompttune.io import atomic_directory

HEAD_WEIGHTS = "head.safetensors"
HEAD_CONFIG = "prompttune_head.json"


def export_peft(run_dir: Path, out_dir: Path) -> Path:
    """Write ``run_dir``'s prompt as a PEFT prompt-tuning adapter plus its head into ``out_dir`` (replaced
    whole, atomically); return ``out_dir``. Runs that PEFT cannot reproduce are refused."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    loaded = load_run(run_dir)
    config = loaded.config
    if config.base != "pt" or config.prompt.position != "start":
        raise PromptTuneError(
            f"{run_dir}: cannot export method {config.method!r} (prompt.position {config.prompt.position!r})"
            " to PEFT; only base 'pt' with prompt.position 'start' matches PEFT's prompt tuning"
        )
    try:
        from peft import PromptTuningConfig, TaskType, get_peft_model
        from safetensors.torch import save_file
    except ImportError as exc:
        raise PromptTuneError(
            f"exporting {run_dir} to PEFT needs the package peft; pip install peft"
        ) from exc

    model = loaded.model
    backbone = model.backbone
    prompt = model.base.prompt.detach()  # in the input space (prompt_vectors() is hidden-wide on ALBERT)
    source = resolve_backbone(config.backbone)
    if Path(source).exists():
        source = str(Path(source).resolve())
    peft_config = PromptTuningConfig(
        task_type=TaskType.FEATURE_EXTRACTION,
        num_virtual_tokens=prompt.shape[0],
        token_dim=prompt.shape[1],
        num_transformer_submodules=1,
        num_attention_heads=backbone.config.num_attention_heads,
        num_layers=backbone.config.num_hidden_layers,
        base_model_name_or_path=source,
    )
    with warnings.catch_warnings():  # transformers' deprecation notices from inside PEFT, not the user's
        warnings.simplefilter("ignore", FutureWarning)
        peft_model = get_peft_model(backbone, peft_config)
    peft_model.peft_config["default"].base_model_name_or_path = source
    embedding = peft_model.prompt_encoder["default"].embedding.weight
    with torch.no_grad():
        embedding.copy_(prompt.to(embedding.dtype))
    task = model.task
    head = {
        "task": task.name,
        "kind": task.kind,
        "labels": list(task.labels),
        "pooling": model.pooling,
        "num_virtual_tokens": prompt.shape[0],
        "base_model_name_or_path": source,
        "run": {"dir": str(run_dir), "method": config.method, "seed": config.seed, "setting": config.setting},
    }
    head_state = {
        "weight": model.head.weight.detach().cpu().contiguous(),
        "bias": model.head.bias.detach().cpu().contiguous(),
    }
    with atomic_directory(out_dir) as tmp:
        peft_model.save_pretrained(str(tmp))
        save_file(head_state, str(tmp / HEAD_WEIGHTS))
        (tmp / HEAD_CONFIG).write_text(json.dumps(head, indent=2) + "\n", encoding="utf-8")
    return out_dir
