"""Load a finished run back: its resolved config, the model with the selected prompt and head, and its
objective (with any parameters of its own) — for evaluation, landscapes and exports."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from prompttune.backbone import load_backbone
from prompttune.config import RunConfig, build
from prompttune.errors import PromptTuneError
from prompttune.model import PromptModel
from prompttune.objectives import Objective, build_objective
from prompttune.tasks import get_task


@dataclass
class LoadedRun:
    config: RunConfig
    model: PromptModel
    objective: Objective
    tokenizer: PreTrainedTokenizerBase


def load_run(run_dir: str | Path, device: str | torch.device = "cpu") -> LoadedRun:
    """Rebuild the model of ``run_dir`` (``config.json`` + ``prompt.pt``) in evaluation mode."""
    run_dir = Path(run_dir)
    config_path, state_path = run_dir / "config.json", run_dir / "prompt.pt"
    for path in (config_path, state_path):
        if not path.is_file():
            raise PromptTuneError(f"{path}: missing; is {run_dir} a finished run?")
    config = build(RunConfig, json.loads(config_path.read_text(encoding="utf-8")), str(config_path))
    task = get_task(config.task)
    backbone, tokenizer = load_backbone(config.backbone)
    model = PromptModel.build(config, backbone, tokenizer, task)
    objective = build_objective(config.objective, config.objective_options, model)
    state = torch.load(state_path, map_location="cpu")
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    if set(state["model"]) != trainable:
        raise PromptTuneError(
            f"{state_path}: holds {sorted(state['model'])}, the model trains {sorted(trainable)}"
        )
    model.load_state_dict(state["model"], strict=False)
    objective.load_state_dict(state["objective"])
    return LoadedRun(
        config=config, model=model.to(device).eval(), objective=objective.to(device), tokenizer=tokenizer
    )
