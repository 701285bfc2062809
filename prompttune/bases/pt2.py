"""``pt2``: deep prompt tuning, P-tuning v2 (Liu et al. 2022, paper/code): trainable key/value
prefixes of length ``n`` in every attention layer, handed to the backbone as a pre-filled cache.

- No reparameterisation by default (P-tuning v2's default for NLU); ``reparam: true`` adds its MLP
  (embedding → Linear → tanh → Linear to all layers' keys and values).
- Init ``random``: N(0, init_std²), init_std default 1.0 (code: ``nn.Embedding``'s default). Choice:
  ``vocab`` / ``text`` take the keys and values the frozen backbone itself computes, layer by layer,
  for the chosen tokens — the deep analogue of initialising a shallow prompt from word embeddings.
- The input sits after the prefix: its position ids shift by ``n``, as P-tuning v2's backbones do when
  handed ``input_ids`` and an ``n``-long cache. They are passed explicitly (``Positions``; BERT
  ``n, n + 1, …``, RoBERTa ``padding_idx + n + 1, …`` skipping pads), since transformers ignores the
  cache length when given ``inputs_embeds`` (RoBERTa), and input plus prefix must fit the position
  table.
- Backbones whose attention takes no key/value cache (ALBERT) are refused: transformers would drop
  the prefix without a word (``unsupported``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedTokenizerBase
from transformers.cache_utils import DynamicCache

from prompttune.backbone import Positions, architecture
from prompttune.bases.base import BASES, BackboneInputs, PeftPrompt, PromptBase, init_token_ids
from prompttune.schema import PromptConfig
from prompttune.tasks.base import Task

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel


def _shape(backbone: PreTrainedModel) -> tuple[int, int, int]:
    cfg = backbone.config
    heads = cfg.num_attention_heads
    return cfg.num_hidden_layers, heads, cfg.hidden_size // heads


@torch.no_grad()
def backbone_key_values(backbone: PreTrainedModel, input_ids: torch.Tensor) -> torch.Tensor:
    """Keys and values every layer of the frozen backbone computes for ``input_ids`` (moved to the
    backbone's device): (L, 2, n, d)."""
    cache = DynamicCache(config=backbone.config)
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    backbone(input_ids=input_ids.to(device).unsqueeze(0), past_key_values=cache)
    backbone.train(was_training)
    layers = [torch.stack([layer.keys[0], layer.values[0]]) for layer in cache.layers]  # (2, H, n, dh)
    return torch.stack(layers).permute(0, 1, 3, 2, 4).flatten(3)


@BASES.register("pt2")
class DeepPrompt(PromptBase):
    name = "pt2"

    @classmethod
    def sequence_lengths(cls, config: PromptConfig, max_length: int) -> tuple[int, int]:
        """The prefix adds ``n`` keys and values at every layer, no query."""
        return max_length, max_length + config.length

    @classmethod
    def prompt_parameters(cls, config: PromptConfig, layers: int, hidden: int) -> int:
        """A key and a value of ``n`` positions per layer; with ``reparam``, the embedding and the MLP that
        produce them instead."""
        n, d = config.length, hidden
        if not config.reparam:
            return layers * 2 * n * d
        h = config.reparam_hidden
        return n * d + d * h + h + h * layers * 2 * d + layers * 2 * d

    @classmethod
    def unsupported(cls, backbone_config: PretrainedConfig) -> str | None:
        if not architecture(backbone_config).key_value_cache:
            return (
                f"P-tuning v2's prefix needs attention that takes a key/value cache; "
                f"{backbone_config.model_type}'s takes none (the prefix would be dropped silently)"
            )
        return None

    def __init__(
        self, config: PromptConfig, backbone: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: Task
    ) -> None:
        super().__init__(config, backbone, tokenizer, task)
        self.layers, self.heads, self.head_dim = _shape(backbone)
        self.cache_config = backbone.config
        self.positions = Positions.of(backbone.config)
        n, d = config.length, self.heads * self.head_dim
        if config.init == "random":
            std = config.init_std if config.init_std is not None else 1.0
            prefix = torch.randn(self.layers, 2, n, d) * std
            embedding = torch.randn(n, d) * std
        else:
            ids = init_token_ids(config, tokenizer, task)
            prefix = backbone_key_values(backbone, ids).float()
            table = backbone.get_input_embeddings().weight.detach()
            embedding = table[ids.to(table.device)].float().clone()
        if config.reparam:
            self.embedding = nn.Parameter(embedding)
            self.mlp = nn.Sequential(
                nn.Linear(d, config.reparam_hidden),
                nn.Tanh(),
                nn.Linear(config.reparam_hidden, self.layers * 2 * d),
            )
        else:
            self.prefix = nn.Parameter(prefix)

    def key_values(self) -> torch.Tensor:
        """The prefix as (L, 2, n, d)."""
        if self.config.reparam:
            n, d = self.embedding.shape
            return self.mlp(self.embedding).view(n, self.layers, 2, d).permute(1, 2, 0, 3)
        return self.prefix

    def forward(
        self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
    ) -> BackboneInputs:
        n_seq, length, _ = inputs_embeds.shape
        kv = self.key_values().to(inputs_embeds.dtype)
        n = kv.shape[2]
        self.positions.check(length + n, f"input length {length} + prefix {n}")
        kv = kv.view(self.layers, 2, n, self.heads, self.head_dim).transpose(2, 3)  # (L, 2, H, n, dh)
        cache = DynamicCache(config=self.cache_config)
        for layer in range(self.layers):
            keys = kv[layer, 0].unsqueeze(0).expand(n_seq, -1, -1, -1)
            values = kv[layer, 1].unsqueeze(0).expand(n_seq, -1, -1, -1)
            cache.update(keys, values, layer)
        mask = torch.cat([attention_mask.new_ones(n_seq, n), attention_mask], dim=1)
        kwargs = {
            "inputs_embeds": inputs_embeds,
            "attention_mask": mask,
            "past_key_values": cache,
            "position_ids": self.positions.ids(attention_mask, start=n),
        }
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        return BackboneInputs(kwargs=kwargs, input_mask=attention_mask.bool())

    def prompt_vectors(self) -> torch.Tensor:
        """Choice: the mean over layers and over keys/values of the prefix, (n, d)."""
        return self.key_values().mean(dim=(0, 1))

    @classmethod
    def peft_refusal(cls, config: PromptConfig, precision: str) -> str | None:
        """``reparam: true`` trained in bf16/fp16: autocast recomputed the MLP's prefix in low precision at
        every forward, which a stored fp32 prefix is close to, not equal."""
        if config.reparam and precision != "fp32":
            return (
                f"cannot export pt2 with reparam: true trained in {precision}: its prefix was the MLP's "
                f"output under {precision} autocast at every forward, which a stored prefix does not "
                "reproduce exactly"
            )
        return None

    def peft_prompt(self) -> PeftPrompt:
        """PEFT's prefix tuning (``PrefixTuningConfig``, ``prefix_projection=False``): PEFT's ``get_prompt``
        reads ``embedding.weight`` (n, L·2·d) as ``view(N, n, 2L, H, d/H).permute(2, 0, 3, 1, 4).split(2)``
        — row t holds layer 0's key, layer 0's value, layer 1's key, … of virtual token t, heads in order —
        which is ``prefix.permute(2, 0, 1, 3).reshape(n, -1)`` (PEFT's own
        ``prompt_embeddings_from_past_key_values`` packs a cache the same way). Positions agree: BERT and
        RoBERTa number the input after an n-long cache, the shift this base applies. With ``reparam`` the
        MLP's prefix is exported (what PEFT saves for a ``prefix_projection`` adapter; the MLP is not, so
        the adapter is for inference)."""
        prefix = self.key_values().detach()  # (L, 2, n, d)
        n, width = prefix.shape[2], prefix.shape[3]
        return PeftPrompt(
            "PrefixTuningConfig",
            {"num_virtual_tokens": n, "token_dim": width, "prefix_projection": False},
            prefix.permute(2, 0, 1, 3).reshape(n, -1),
            "key_value_prefix",
            "PEFT's forward drops token types: the run only where they are all zero; peft_logits passes them",
        )
