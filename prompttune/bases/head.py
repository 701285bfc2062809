"""``head``: no prompt, only the task head trains on the frozen features (linear probe; reference)."""

from __future__ import annotations

import torch

from prompttune.bases.base import BASES, BackboneInputs, PromptBase, plain_inputs
from prompttune.schema import PromptConfig


@BASES.register("head")
class HeadOnly(PromptBase):
    name = "head"
    has_prompt = False

    @classmethod
    def sequence_lengths(cls, config: PromptConfig, max_length: int) -> tuple[int, int]:
        """The input alone."""
        return max_length, max_length

    @classmethod
    def prompt_parameters(cls, config: PromptConfig, layers: int, hidden: int) -> int:
        """No prompt."""
        return 0

    @classmethod
    def peft_refusal(cls, config: PromptConfig, precision: str) -> str | None:
        """No prompt, so no adapter."""
        return "it has no prompt to export (PEFT adapters hold prompts)"

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> BackboneInputs:
        return plain_inputs(inputs_embeds, attention_mask, token_type_ids)
