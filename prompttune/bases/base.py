"""The prompt-base interface and its registry (which backbones a base runs on: ``PromptBase.unsupported``;
which (backbone, base, objective) combinations run is ``objectives.check_support``, above both registries)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedTokenizerBase

from prompttune.backbone import architecture, backbone_label
from prompttune.errors import PromptTuneError
from prompttune.registry import DeclaredRegistry
from prompttune.schema import PromptConfig
from prompttune.tasks.base import Task

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel


@dataclass(frozen=True)
class PeftPrompt:
    """A trained prompt in PEFT's terms (prompttune/export.py writes it): PEFT's config class
    (``PromptTuningConfig``, ``PrefixTuningConfig``) and its options beyond the backbone's layers and heads
    (``num_virtual_tokens`` and ``token_dim`` included), the
    weights of PEFT's prompt encoder (n, width), where the prompt sits (the export's recipe and
    ``peft_logits`` read it), and whether PEFT's own forward reproduces the run."""

    config_class: str
    options: dict[str, Any]
    weights: torch.Tensor
    position: str
    peft_forward: str


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

    @classmethod
    @abstractmethod
    def sequence_lengths(cls, config: PromptConfig, max_length: int) -> tuple[int, int]:
        """``(T, T_k)`` for inputs of ``max_length`` tokens: the backbone's query length and the keys each
        position attends to (prompttune/cost.py's FLOPs and memory; no default)."""

    @classmethod
    @abstractmethod
    def prompt_parameters(cls, config: PromptConfig, layers: int, hidden: int) -> int:
        """What AdamW trains of the prompt on a backbone of ``layers`` × ``hidden`` (the head's and the
        objective's own parameters are counted by their owners; no default)."""

    @abstractmethod
    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> BackboneInputs: ...

    def prompt_vectors(self) -> torch.Tensor | None:
        """The prompt as ``n`` vectors of the hidden size (InfoPrompt's ``p_k``); ``None`` without prompt."""
        return None

    @classmethod
    @abstractmethod
    def peft_refusal(cls, config: PromptConfig, precision: str) -> str | None:
        """Why a run of this base, trained under ``precision``, cannot be exported as a PEFT adapter that
        reproduces it (one clause), or ``None`` (then ``peft_prompt`` gives the adapter; no default)."""

    def peft_prompt(self) -> PeftPrompt:
        """The trained prompt as PEFT holds it; a base whose ``peft_refusal`` can be ``None`` defines it
        (one that does not is refused here, in one line, before anything is written)."""
        raise PromptTuneError(f"base {self.name!r} allows a PEFT export but defines no peft_prompt()")


BASES = DeclaredRegistry(
    "prompt base",
    {
        "sequence_lengths": ("sequence lengths", "the classmethod sequence_lengths(config, max_length)"),
        "prompt_parameters": (
            "prompt parameters",
            "the classmethod prompt_parameters(config, layers, hidden)",
        ),
        "peft_refusal": (
            "PEFT export rule",
            "the classmethod peft_refusal(config, precision) and, where it can be None, peft_prompt()",
        ),
    },
)


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
