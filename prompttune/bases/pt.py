"""``pt``: shallow prompt tuning (Lester et al. 2021, paper): ``n`` trainable vectors in the input.

Choice (``prompt.position: after_first``, the default): the prompt is inserted right after the first
token (``[CLS]`` / ``<s>``); the attention mask is extended with ones, token types with zeros.
``prompt.position: start`` puts it before every token, as Lester et al. and PEFT's prompt tuning do;
token types are then not passed to the backbone (its default, all zeros), as PEFT's feature-extraction
prompt tuning drops them — so an export to PEFT gives the same hidden states (prompttune/export.py).
Either way ``input_mask`` marks only the input's own tokens: mean pooling skips the prompt and ``cls``
pooling reads the input's first token wherever it sits.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from prompttune.bases.base import BASES, BackboneInputs, PromptBase, init_token_ids
from prompttune.config import PromptConfig
from prompttune.tasks.base import Task


@BASES.register("pt")
class ShallowPrompt(PromptBase):
    name = "pt"

    def __init__(
        self, config: PromptConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task
    ) -> None:
        super().__init__(config, backbone, tokenizer, task)
        table = backbone.get_input_embeddings().weight.detach()
        if config.init == "random":
            std = config.init_std if config.init_std is not None else table.pow(2).mean().sqrt().item()
            init = torch.randn(config.length, table.shape[1]) * std
        else:
            init = table[init_token_ids(config, tokenizer, task)].clone()
        self.prompt = nn.Parameter(init.float())
        self.max_positions: int | None = getattr(backbone.config, "max_position_embeddings", None)

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> BackboneInputs:
        n_seq, length, _ = inputs_embeds.shape
        n = self.prompt.shape[0]
        if self.max_positions is not None and length + n > self.max_positions:
            raise ValueError(
                f"input length {length} + prompt {n} exceeds the backbone's {self.max_positions}"
            )
        prompt = self.prompt.to(inputs_embeds.dtype).unsqueeze(0).expand(n_seq, -1, -1)
        ones = attention_mask.new_ones(n_seq, n)
        if self.config.position == "start":
            embeds = torch.cat([prompt, inputs_embeds], dim=1)
            mask = torch.cat([ones, attention_mask], dim=1)
            input_mask = torch.cat([ones * 0, attention_mask], dim=1).bool()
            return BackboneInputs(
                kwargs={"inputs_embeds": embeds, "attention_mask": mask}, input_mask=input_mask
            )
        embeds = torch.cat([inputs_embeds[:, :1], prompt, inputs_embeds[:, 1:]], dim=1)
        mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
        kwargs = {"inputs_embeds": embeds, "attention_mask": mask}
        if token_type_ids is not None:
            zeros = token_type_ids.new_zeros(n_seq, n)
            kwargs["token_type_ids"] = torch.cat([token_type_ids[:, :1], zeros, token_type_ids[:, 1:]], dim=1)
        input_mask = torch.cat([attention_mask[:, :1], ones * 0, attention_mask[:, 1:]], dim=1).bool()
        return BackboneInputs(kwargs=kwargs, input_mask=input_mask)

    def prompt_vectors(self) -> torch.Tensor:
        return self.prompt
