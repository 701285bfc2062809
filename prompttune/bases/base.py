"""The prompt-base interface and its registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prompttune.config import PromptConfig
from prompttune.registry import Registry
from prompttune.tasks.base import Task


@dataclass
class BackboneInputs:
    """Keyword arguments for the backbone plus the mask of positions that hold the input (pooling)."""

    kwargs: dict[str, Any]
    input_mask: torch.Tensor  # (N, T_out) bool: non-pad input positions in the backbone's output


class PromptBase(nn.Module, ABC):
    """A prompt architecture. Subclasses set ``name`` and implement ``forward``."""

    name: str = ""

    def __init__(
        self, config: PromptConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task
    ) -> None:
        super().__init__()
        self.config = config

    @abstractmethod
    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> BackboneInputs: ...

    def prompt_vectors(self) -> torch.Tensor | None:
        """The prompt as ``n`` vectors of the hidden size (InfoPrompt's ``p_k``); ``None`` without prompt."""
        return None


BASES: Registry[type[PromptBase]] = Registry("prompt base")


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
