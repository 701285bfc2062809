"""Load a finished run back: its resolved config, the model with the selected prompt and head, and its
objective (with any parameters of its own) — for evaluation, landscapes and exports."""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from transformers import PreTrainedTokenizerBase

from prompttune.backbone import load_backbone
from prompttune.errors import PromptTuneError
from prompttune.model import PromptModel
from prompttune.objectives import Objective, build_objective
from prompttune.schema import RunConfig, build
from prompttune.tasks import get_task

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel


@dataclass
class LoadedRun:
    config: RunConfig
    model: PromptModel
    objective: Objective
    tokenizer: PreTrainedTokenizerBase


def read_config(run_dir: str | Path) -> RunConfig:
    """A finished run's resolved config (``config.json``)."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise PromptTuneError(f"{path}: missing; is {run_dir} a finished run?")
    return build(RunConfig, json.loads(path.read_text(encoding="utf-8")), str(path))


def load_run(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    backbone: tuple[PreTrainedModel, PreTrainedTokenizerBase] | None = None,
) -> LoadedRun:
    """Rebuild the model of ``run_dir`` (``config.json`` + ``prompt.pt``) in evaluation mode; on
    ``backbone`` (model, tokenizer) when given (several runs of one backbone share it, frozen)."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    state_path = run_dir / "prompt.pt"
    if not state_path.is_file():
        raise PromptTuneError(f"{state_path}: missing; is {run_dir} a finished run?")
    task = get_task(config.task)
    weights, tokenizer = backbone or load_backbone(config.backbone)
    model = PromptModel.build(config, weights, tokenizer, task)
    objective = build_objective(config.objective, config.objective_options, model)
    try:
        state = torch.load(state_path, map_location="cpu")
        if not (isinstance(state, dict) and {"model", "objective"} <= set(state)):
            raise ValueError("no model and objective state")
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError) as exc:
        raise PromptTuneError(
            f"{state_path}: not a readable prompt checkpoint ({type(exc).__name__}); train the run again"
        ) from None
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
