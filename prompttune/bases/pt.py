"""``pt``: shallow prompt tuning (Lester et al. 2021, paper): ``n`` trainable vectors in the input.

Choice (``prompt.position: after_first``, the default): the prompt is inserted right after the first
token (``[CLS]`` / ``<s>``); the attention mask is extended with ones, token types with zeros.
``prompt.position: start`` puts it before every token, as Lester et al. and PEFT's prompt tuning do;
token types are then not passed to the backbone (its default, all zeros), as PEFT's feature-extraction
prompt tuning drops them — so an export to PEFT gives the same hidden states (prompttune/export.py).
Either way ``input_mask`` marks only the input's own tokens: mean pooling skips the prompt and ``cls``
pooling reads the input's first token wherever it sits.

Positions (choice, what the backbone itself does with a prompted ``input_ids``): the prompt vectors
are tokens like any other, so the sequence with the prompt is numbered by the backbone's own rule,
handed over as explicit ``position_ids`` (``prompttune.backbone.Positions``: BERT and ALBERT from 0,
RoBERTa from ``padding_idx + 1`` skipping pads). Sequences longer than the position table are refused.

The prompt lives in the word-embedding space (ALBERT: ``embedding_size`` wide); ``prompt_vectors``
maps it to the hidden size through the backbone's own embedding→hidden map (choice; the identity on
BERT and RoBERTa).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import PreTrainedTokenizerBase

from prompttune.backbone import Positions, embedding_to_hidden
from prompttune.bases.base import BASES, BackboneInputs, PeftPrompt, PromptBase, init_token_ids
from prompttune.schema import PromptConfig
from prompttune.tasks.base import Task

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel


@BASES.register("pt")
class ShallowPrompt(PromptBase):
    name = "pt"

    @classmethod
    def sequence_lengths(cls, config: PromptConfig, max_length: int) -> tuple[int, int]:
        """The ``n`` prompt tokens join the input: every position, prompt included, is a query and a key."""
        return max_length + config.length, max_length + config.length

    @classmethod
    def prompt_parameters(cls, config: PromptConfig, layers: int, hidden: int) -> int:
        """``n`` vectors (the word-embedding width; the hidden size on BERT and RoBERTa)."""
        return config.length * hidden

    def __init__(
        self, config: PromptConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task
    ) -> None:
        super().__init__(config, backbone, tokenizer, task)
        table = backbone.get_input_embeddings().weight.detach()
        if config.init == "random":
            std = config.init_std if config.init_std is not None else table.pow(2).mean().sqrt().item()
            init = torch.randn(config.length, table.shape[1]) * std
        else:
            init = table[init_token_ids(config, tokenizer, task).to(table.device)].clone()
        self.prompt = nn.Parameter(init.float())
        self.positions = Positions.of(backbone.config)
        self.to_hidden = embedding_to_hidden(backbone)  # the backbone's own (frozen) module

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> BackboneInputs:
        n_seq, length, _ = inputs_embeds.shape
        n = self.prompt.shape[0]
        self.positions.check(length + n, f"input length {length} + prompt {n}")
        prompt = self.prompt.to(inputs_embeds.dtype).unsqueeze(0).expand(n_seq, -1, -1)
        ones = attention_mask.new_ones(n_seq, n)
        types = None  # token types: none with the prompt at the start (the backbone's zeros), see above
        if self.config.position == "start":
            embeds = torch.cat([prompt, inputs_embeds], dim=1)
            mask = torch.cat([ones, attention_mask], dim=1)
            input_mask = torch.cat([ones * 0, attention_mask], dim=1).bool()
        else:
            embeds = torch.cat([inputs_embeds[:, :1], prompt, inputs_embeds[:, 1:]], dim=1)
            mask = torch.cat([attention_mask[:, :1], ones, attention_mask[:, 1:]], dim=1)
            input_mask = torch.cat([attention_mask[:, :1], ones * 0, attention_mask[:, 1:]], dim=1).bool()
            if token_type_ids is not None:
                zeros = token_type_ids.new_zeros(n_seq, n)
                types = torch.cat([token_type_ids[:, :1], zeros, token_type_ids[:, 1:]], dim=1)
        kwargs = {"inputs_embeds": embeds, "attention_mask": mask, "position_ids": self.positions.ids(mask)}
        if types is not None:
            kwargs["token_type_ids"] = types
        return BackboneInputs(kwargs=kwargs, input_mask=input_mask)

    def prompt_vectors(self) -> torch.Tensor:
        """The prompt in the hidden space: ``to_hidden(prompt)`` (the prompt itself on BERT/RoBERTa)."""
        return self.to_hidden(self.prompt)

    @classmethod
    def peft_refusal(cls, config: PromptConfig, precision: str) -> str | None:
        """Every run exports."""
        return None

    def peft_prompt(self) -> PeftPrompt:
        """PEFT's prompt tuning (``PromptTuningConfig``, task type ``FEATURE_EXTRACTION``): the n prompt
        vectors in the word-embedding space (``prompt_encoder.embedding``). PEFT's forward puts them before
        every input token (``torch.cat((prompts, inputs_embeds), dim=1)``), ignores position ids and drops
        token types (``_adjust_prompt_learning_kwargs``; read in PEFT 0.21): that is ``position: start``
        exactly. It cannot place them after the first token (``after_first``): the same adapter is
        written, and ``export.peft_logits`` reproduces the run from it (choice)."""
        start = self.config.position == "start"
        weights = self.prompt.detach()  # the word-embedding space (prompt_vectors() is hidden-wide)
        n, width = weights.shape
        return PeftPrompt(
            "PromptTuningConfig",
            {"num_virtual_tokens": n, "token_dim": width},
            weights,
            self.config.position,
            "PEFT's own forward is the run (both put the prompt first and drop token types)"
            if start
            else "PEFT's forward puts the prompt before the first token, not after it: use peft_logits",
        )
