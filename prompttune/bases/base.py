"""The prompt-base interface, its registry, and which (backbone, base, objective) combinations run."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

from prompttune.backbone import ARCHITECTURES, architecture, backbone_label
from prompttune.config import PromptConfig
from prompttune.errors import PromptTuneError
from prompttune.registry import Registry
from prompttune.tasks.base import Task


@dataclass
class BackboneInputs:
    """Keyword arguments for the backbone plus the mask of positions that hold the input (pooling)."""

    kwargs: dict[str, Any]
    input_mask: torch.Tensor  # (N, T_out) bool: non-pad input positions in the backbone's output


class PromptBase(nn.Module, ABC):
    """A prompt architecture. Subclasses set ``name`` and implement ``forward``; ``has_prompt`` says
    whether ``prompt_vectors`` gives one, ``unsupported`` which backbones it refuses (at build too)."""

    name: str = ""
    has_prompt: ClassVar[bool] = True

    def __init__(
        self, config: PromptConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task
    ) -> None:
        super().__init__()
        reason = self.unsupported(backbone.config)
        if reason is not None:
            raise PromptTuneError(f"backbone {backbone_label(backbone.config)}: base {self.name!r}: {reason}")
        self.config = config

    @classmethod
    def unsupported(cls, backbone_config: PretrainedConfig) -> str | None:
        """Why this base cannot run on the backbone (one clause), or ``None``; unknown architectures are
        refused."""
        architecture(backbone_config)
        return None

    @abstractmethod
    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> BackboneInputs: ...

    def prompt_vectors(self) -> torch.Tensor | None:
        """The prompt as ``n`` vectors of the hidden size (InfoPrompt's ``p_k``); ``None`` without prompt."""
        return None


BASES: Registry[type[PromptBase]] = Registry("prompt base")


def _reason(base: str, objective: str, backbone_config: PretrainedConfig) -> str | None:
    """Why ``objective`` on ``base`` cannot run on the backbone (one clause), or ``None``; what an objective
    needs of its base it declares itself (``Objective.needs_prompt``)."""
    from prompttune.objectives import OBJECTIVES  # objectives build on bases: imported when asked

    if backbone_config.model_type not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        return f"model type {backbone_config.model_type!r} is not supported; known: {known}"
    base_class = BASES.get(base)
    reason = base_class.unsupported(backbone_config)
    if reason is not None:
        return reason
    if OBJECTIVES.get(objective).needs_prompt and not base_class.has_prompt:
        return f"the objective needs a prompt and base {base!r} has none (use pt or pt2)"
    return None


def check_support(base: str, objective: str, backbone_config: PretrainedConfig) -> None:
    """Refuse, before any work, a combination that would crash or train wrong: a one-line
    ``PromptTuneError`` naming the backbone, the base and the objective (called at config load)."""
    reason = _reason(base, objective, backbone_config)
    if reason is not None:
        label = backbone_label(backbone_config)
        raise PromptTuneError(f"backbone {label}: base {base!r} with objective {objective!r}: {reason}")


def plain_inputs(
    inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
) -> BackboneInputs:
    """The backbone's inputs with no prompt at all."""
    kwargs: dict[str, Any] = {"inputs_embeds": inputs_embeds, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    return BackboneInputs(kwargs=kwargs, input_mask=attention_mask.bool())


def init_token_ids(config: PromptConfig, tokenizer: PreTrainedTokenizerBase, task: Task) -> torch.Tensor:
    """Token ids that initialise the prompt (choice): ``vocab`` draws ``n`` non-special vocabulary
    tokens uniformly (global torch RNG, seeded by the run); ``text`` tokenises the task description
    and label words, repeated to ``n``."""
    n = config.length
    if config.init == "vocab":
        special = set(tokenizer.all_special_ids)
        candidates = torch.tensor([i for i in range(len(tokenizer)) if i not in special])
        return candidates[torch.randint(len(candidates), (n,))]
    text = " ".join([task.description, *task.label_words]).strip()
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"task {task.name} has no description to initialise a text prompt from")
    return torch.tensor((ids * (n // len(ids) + 1))[:n])
