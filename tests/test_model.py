"""Prompt bases and the model on a tiny random BERT: gradients, shapes, masks, initialisation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from helpers import CB_EXAMPLES

from prompttune.backbone import load_backbone
from prompttune.bases.base import plain_inputs
from prompttune.batches import collate, encode
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.model import PromptModel, label_word_rows
from prompttune.objectives import build_objective
from prompttune.tasks import Example, get_task

COPA_EXAMPLES = [
    Example(guid="c-0", text_a="The glass fell.", choices=("so it broke.", "so it sang."), label=0),
    Example(guid="c-1", text_a="She was tired.", choices=("because she ran.", "because she slept."), label=0),
]


def make_config(base: str, backbone: str, **prompt: object) -> RunConfig:
    return RunConfig(
        setting="fewglue",
        task="CB",
        method=base,
        seed=1,
        backbone=backbone,
        prompt=PromptConfig(length=3, **prompt),
        head=HeadConfig(pooling="mean", init="label_words"),
        train=TrainConfig(),
    )


def build(base: str, backbone: str, task: str = "CB", **prompt: object) -> tuple[PromptModel, object]:
    torch.manual_seed(0)
    model, tokenizer = load_backbone(backbone)
    config = dataclasses.replace(make_config(base, backbone, **prompt), task=task)
    return PromptModel.build(config, model, tokenizer, get_task(task)), tokenizer


def batch_for(task: str, tokenizer: object) -> dict[str, torch.Tensor]:
    spec = get_task(task)
    examples = CB_EXAMPLES if task == "CB" else COPA_EXAMPLES
    return collate(encode(examples, spec, tokenizer, 32), tokenizer, spec.kind == "multiple_choice")


EXPECTED_TRAINABLE = {
    ("head", False): {"head.weight", "head.bias"},
    ("pt", False): {"head.weight", "head.bias", "base.prompt"},
    ("pt2", False): {"head.weight", "head.bias", "base.prefix"},
    ("pt2", True): {"head.weight", "head.bias", "base.embedding", "base.mlp.0.weight", "base.mlp.0.bias"}
    | {"base.mlp.2.weight", "base.mlp.2.bias"},
}


@pytest.mark.parametrize(("base", "reparam"), list(EXPECTED_TRAINABLE))
def test_gradients_reach_exactly_the_trainable_parameters(
    tiny_backbone: str, base: str, reparam: bool
) -> None:
    model, tokenizer = build(base, tiny_backbone, reparam=reparam)
    batch = batch_for("CB", tokenizer)
    objective = build_objective("ce", {}, model)
    loss, _ = objective.loss(model, batch)
    loss.backward()
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == EXPECTED_TRAINABLE[base, reparam]
    for name, parameter in model.named_parameters():
        if name in trainable:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, name


def test_shallow_prompt_sits_after_the_first_token_and_is_not_pooled(tiny_backbone: str) -> None:
    model, tokenizer = build("pt", tiny_backbone)
    batch = batch_for("CB", tokenizer)
    embeds = model.embed(batch["input_ids"])
    inputs = model.base(embeds, batch["attention_mask"], batch["token_type_ids"])
    n_seq, length = batch["input_ids"].shape
    out = inputs.kwargs["inputs_embeds"]
    assert out.shape == (n_seq, length + 3, 32)
    assert torch.equal(out[:, 0], embeds[:, 0])
    assert torch.equal(out[:, 1:4], model.base.prompt.unsqueeze(0).expand(n_seq, -1, -1))
    assert torch.equal(out[:, 4:], embeds[:, 1:])
    assert inputs.input_mask[:, 1:4].sum() == 0
    assert torch.equal(inputs.input_mask[:, 4:], batch["attention_mask"][:, 1:].bool())


def test_masked_deep_prefix_equals_no_prompt(tiny_backbone: str) -> None:
    """With the prefix positions masked out, pt2 must give exactly the backbone's own output with its
    position ids shifted by the prefix length (as the backbone places the input after the prefix)."""
    model, tokenizer = build("pt2", tiny_backbone)
    model.eval()
    batch = batch_for("CB", tokenizer)
    embeds = model.embed(batch["input_ids"])
    args = (embeds, batch["attention_mask"], batch["token_type_ids"])
    prefixed = model.base(*args)
    n = model.base.config.length
    prefixed.kwargs["attention_mask"][:, :n] = 0
    with torch.no_grad():
        masked = model.backbone(**prefixed.kwargs).last_hidden_state
        length = batch["input_ids"].shape[1]
        shifted = torch.arange(n, n + length).unsqueeze(0)
        plain = model.backbone(**plain_inputs(*args).kwargs, position_ids=shifted).last_hidden_state
        unmasked = model(batch).pooled
    torch.testing.assert_close(masked, plain, rtol=0, atol=1e-6)
    assert not torch.allclose(unmasked, model(batch, use_prompt=False).pooled)


def test_deep_prefix_from_text_is_the_backbones_own_keys_and_values(tiny_backbone: str) -> None:
    model, tokenizer = build("pt2", tiny_backbone, init="text")
    ids = tokenizer(get_task("CB").description, add_special_tokens=False)["input_ids"][:3]
    hidden = model.backbone(input_ids=torch.tensor([ids]), output_hidden_states=True).hidden_states
    first_layer = model.backbone.encoder.layer[0].attention.self
    expected_keys = first_layer.key(hidden[0])[0]
    torch.testing.assert_close(model.base.prefix[0, 0], expected_keys, rtol=1e-5, atol=1e-5)


def test_label_word_head_rows_are_mean_sub_token_embeddings(tiny_backbone: str) -> None:
    model, tokenizer = build("pt", tiny_backbone)
    table = model.backbone.get_input_embeddings().weight
    for row, word in zip(model.head.weight, get_task("CB").label_words, strict=True):
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        torch.testing.assert_close(row, table[ids].mean(0))
    assert label_word_rows(table, tokenizer, ("yes",)).shape == (1, 32)


def test_multiple_choice_scores_each_choice_with_one_logit(tiny_backbone: str) -> None:
    model, tokenizer = build("pt", tiny_backbone, task="COPA")
    batch = batch_for("COPA", tokenizer)
    assert batch["input_ids"].shape[0] == 4 and batch["choice_mask"].shape == (2, 2)
    out = model(batch)
    assert out.logits.shape == (2, 2)
    pooled = model.encode(batch)
    expected = model.head(pooled).view(2, 2)
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(
        F.cross_entropy(out.logits, batch["labels"]), F.cross_entropy(expected, torch.tensor([0, 0]))
    )


def test_padded_choices_are_masked_out_of_the_softmax(tiny_backbone: str) -> None:
    model, tokenizer = build("pt", tiny_backbone, task="COPA")
    spec = get_task("COPA")
    three = Example(guid="c-2", text_a="x", choices=("a", "b", "c"), label=2)
    batch = collate(encode([COPA_EXAMPLES[0], three], spec, tokenizer, 32), tokenizer, True)
    assert batch["choice_mask"].tolist() == [[True, True, False], [True, True, True]]
    probs = model(batch).logits.softmax(-1)
    assert probs[0, 2].item() == 0.0
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))


def test_text_mask_excludes_special_tokens_and_padding(tiny_backbone: str) -> None:
    _, tokenizer = build("head", tiny_backbone)
    batch = batch_for("CB", tokenizer)
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    for ids, mask in zip(batch["input_ids"], batch["text_mask"], strict=True):
        for token, is_text in zip(ids.tolist(), mask.tolist(), strict=True):
            assert is_text == (token not in special)
