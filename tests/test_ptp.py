"""PTP objectives on a tiny random BERT: where perturbations land, their size, PGD, HotFlip, the loss."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import CB_EXAMPLES, tiny_config

from prompttune import cost
from prompttune.backbone import load_backbone
from prompttune.batches import collate, encode
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.errors import PromptTuneError
from prompttune.model import PromptModel
from prompttune.objectives import OBJECTIVES, build_objective
from prompttune.objectives.ptp import PTPObjective, embedding_rms, hotflip_ids, pgd_delta, project
from prompttune.tasks import Example, get_task

VARIANTS = [name for name in OBJECTIVES.names() if issubclass(OBJECTIVES.get(name), PTPObjective)]
COPA_EXAMPLES = [
    Example(guid="c-0", text_a="The glass fell.", choices=("so it broke.", "so it sang."), label=0),
    Example(guid="c-1", text_a="She was tired.", choices=("because she ran.", "because she slept."), label=1),
]


def build(backbone: str, base: str = "pt2", task: str = "CB") -> tuple[PromptModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model, tokenizer = load_backbone(backbone)
    config = RunConfig(
        setting="fewglue",
        task=task,
        method=base,
        seed=1,
        backbone=backbone,
        prompt=PromptConfig(length=3),
        head=HeadConfig(pooling="mean", init="random"),
        train=TrainConfig(),
    )
    spec = get_task(task)
    prompt_model = PromptModel.build(config, model, tokenizer, spec)
    examples = CB_EXAMPLES if task == "CB" else COPA_EXAMPLES
    batch = collate(encode(examples, spec, tokenizer, 32), tokenizer, spec.kind == "multiple_choice")
    return prompt_model, batch


def clean_ce(model: PromptModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(batch).logits, batch["labels"])


def perturbed(objective, model: PromptModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """x̃ as the objective builds it inside ``loss`` (embeddings or token ids)."""
    embeds = model.embed(batch["input_ids"]).requires_grad_(objective.input_grad)
    ce = F.cross_entropy(model(batch, inputs_embeds=embeds).logits, batch["labels"])
    return objective.perturb(model, batch, embeds, ce)


STRONG = {
    "ptp-rn-emb": {"sigma": 1.0},
    "ptp-adv-emb": {"epsilon": 0.5},
    "ptp-rn-text": {"p": 1.0},
    "ptp-adv-text": {"fraction": 1.0},
}


@pytest.mark.parametrize("task", ["CB", "COPA"])
@pytest.mark.parametrize("name", VARIANTS)
def test_only_text_positions_are_perturbed(tiny_backbone: str, name: str, task: str) -> None:
    model, batch = build(tiny_backbone, task=task)
    objective = build_objective(name, STRONG[name], model)
    out = perturbed(objective, model, batch)
    text = batch["text_mask"]
    assert (~text).any() and text.any()
    if objective.space == "emb":
        clean = model.embed(batch["input_ids"])
        assert torch.equal(out[~text], clean[~text])
        assert (out[text] != clean[text]).any(dim=-1).all()
    else:
        assert torch.equal(out[~text], batch["input_ids"][~text])
        assert (out[text] != batch["input_ids"][text]).all()  # p = 1, fraction = 1: every text token


@pytest.mark.parametrize("name", ["ptp-rn-emb", "ptp-adv-emb"])
def test_shallow_prompt_vectors_are_never_perturbed(tiny_backbone: str, name: str) -> None:
    model, batch = build(tiny_backbone, base="pt")
    out = perturbed(build_objective(name, STRONG[name], model), model, batch)
    inputs = model.base(out, batch["attention_mask"], batch["token_type_ids"]).kwargs["inputs_embeds"]
    prompt = model.base.prompt.unsqueeze(0).expand(len(out), -1, -1)
    assert torch.equal(inputs[:, 1:4], prompt)


def test_random_embedding_noise_has_the_configured_std(tiny_backbone: str) -> None:
    model, batch = build(tiny_backbone)
    objective = build_objective("ptp-rn-emb", {"sigma": 0.3}, model)
    table = model.backbone.get_input_embeddings().weight
    assert objective.rms == pytest.approx(table.pow(2).mean().sqrt().item())
    batch = {key: value.repeat(60, *[1] * (value.dim() - 1)) for key, value in batch.items()}
    torch.manual_seed(1)
    noise = (perturbed(objective, model, batch) - model.embed(batch["input_ids"]))[batch["text_mask"]]
    assert noise.numel() > 50_000
    assert noise.std().item() == pytest.approx(0.3 * objective.rms, rel=0.02)
    assert abs(noise.mean().item()) < 0.02 * 0.3 * objective.rms


def test_projection_keeps_inner_points_and_scales_outer_ones_to_the_sphere() -> None:
    delta = torch.tensor([[0.3, 0.4], [3.0, 4.0], [0.0, 0.0]])
    torch.testing.assert_close(project(delta, 1.0), torch.tensor([[0.3, 0.4], [0.6, 0.8], [0.0, 0.0]]))


def test_pgd_stays_in_the_ball_increases_ce_and_leaves_parameters_without_gradient(
    tiny_backbone: str,
) -> None:
    model, batch = build(tiny_backbone)
    objective = build_objective("ptp-adv-emb", {"epsilon": 0.5, "steps": 5}, model)
    assert objective.config.step_size == 0.25
    radius = 0.5 * objective.rms * math.sqrt(32)
    embeds = model.embed(batch["input_ids"])
    torch.manual_seed(0)
    delta = pgd_delta(model, batch, embeds, radius, 0.25 * objective.rms * math.sqrt(32), 5)
    norms = delta.norm(dim=-1)
    assert (norms[batch["text_mask"]] <= radius + 1e-5).all()
    assert (norms[batch["text_mask"]] > 0.5 * radius).all()
    assert torch.equal(norms[~batch["text_mask"]], torch.zeros_like(norms[~batch["text_mask"]]))
    assert all(p.grad is None for p in model.parameters())
    with torch.no_grad():
        adversarial = F.cross_entropy(model(batch, inputs_embeds=embeds + delta).logits, batch["labels"])
        random = F.cross_entropy(
            model(
                batch, inputs_embeds=embeds + delta.norm() * torch.randn_like(delta) / delta.numel() ** 0.5
            ).logits,
            batch["labels"],
        )
        clean = clean_ce(model, batch)
    assert adversarial > clean + 0.01
    assert adversarial > random


def brute_force_hotflip(ids, embeds, grad, table, text_mask, k, allowed):
    """Best set of k substitutions with distinct positions, by enumerating every set."""
    pairs = [
        (i, v, float((table[v] - embeds[i]) @ grad[i]))
        for i in range(len(ids))
        if text_mask[i]
        for v in range(len(table))
        if allowed[v] and v != ids[i]
    ]
    best, best_gain = None, -math.inf
    for subset in itertools.combinations(pairs, k):
        if len({i for i, _, _ in subset}) == k and sum(g for _, _, g in subset) > best_gain:
            best, best_gain = subset, sum(g for _, _, g in subset)
    out = ids.clone()
    for i, v, _ in best:
        out[i] = v
    return out


def test_hotflip_picks_the_first_order_best_substitutions() -> None:
    generator = torch.Generator().manual_seed(0)
    vocab, dim, length = 9, 4, 6
    table = torch.randn(vocab, dim, generator=generator)
    allowed = torch.ones(vocab, dtype=torch.bool)
    allowed[[0, 1]] = False  # "special" tokens: never replacements
    ids = torch.tensor([[0, 3, 4, 5, 1, 2], [0, 6, 7, 1, 2, 2]])
    text_mask = torch.tensor([[0, 1, 1, 1, 0, 1], [0, 1, 1, 0, 0, 0]], dtype=torch.bool)
    embeds = table[ids]
    grad = torch.randn(2, length, dim, generator=generator)
    counts = torch.tensor([2, 1])
    out = hotflip_ids(ids, embeds, grad, table, text_mask, counts, allowed, chunk=5)
    for n in range(2):
        expected = brute_force_hotflip(
            ids[n], embeds[n], grad[n], table, text_mask[n], int(counts[n]), allowed
        )
        assert torch.equal(out[n], expected)
    # token 8 far out along the gradient of position 2, the only non-zero one: that single flip wins
    table[8] = torch.tensor([100.0, 0.0, 0.0, 0.0])
    grad = torch.zeros(2, length, dim)
    grad[0, 2, 0] = 1.0
    out = hotflip_ids(ids, table[ids], grad, table, text_mask, torch.tensor([1, 0]), allowed)
    assert out[0].tolist() == [0, 3, 8, 5, 1, 2] and torch.equal(out[1], ids[1])


def test_hotflip_objective_flips_ceil_fraction_of_text_tokens_with_ordinary_tokens(
    tiny_backbone: str,
) -> None:
    model, batch = build(tiny_backbone)
    objective = build_objective("ptp-adv-text", {"fraction": 0.25}, model)
    out = perturbed(objective, model, batch)
    changed = out != batch["input_ids"]
    lengths = batch["text_mask"].sum(dim=1)
    assert changed.sum(dim=1).tolist() == [math.ceil(0.25 * n) for n in lengths.tolist()]
    assert not (changed & ~batch["text_mask"]).any()
    assert not set(out[changed].tolist()) & set(model.special_token_ids)


def test_random_text_without_mask_token_draws_ordinary_tokens(tiny_backbone: str) -> None:
    model, batch = build(tiny_backbone)
    with_mask = perturbed(build_objective("ptp-rn-text", {"p": 1.0}, model), model, batch)
    assert set(with_mask[batch["text_mask"]].tolist()) == {model.mask_token_id}
    model.mask_token_id = None
    out = perturbed(build_objective("ptp-rn-text", {"p": 1.0}, model), model, batch)
    replaced = out[batch["text_mask"]].tolist()
    assert len(set(replaced)) > len(replaced) // 2
    assert not set(replaced) & set(model.special_token_ids)


@pytest.mark.parametrize("name", VARIANTS)
def test_zero_weight_gives_exactly_plain_cross_entropy(tiny_backbone: str, name: str) -> None:
    model, batch = build(tiny_backbone)
    reference = build_objective("ce", {}, model).loss(model, batch)[0]
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad(set_to_none=True)
    loss, logs = build_objective(name, {"weight": 0.0}, model).loss(model, batch)
    assert loss.item() == reference.item() == logs["ce"]
    loss.backward()
    for n, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p.grad, expected[n]), n


EXTRA_PASSES = {"ptp-rn-emb": 1.0, "ptp-adv-emb": 3.0, "ptp-rn-text": 1.0, "ptp-adv-text": 2.0}


@pytest.mark.parametrize("task", ["CB", "COPA"])
@pytest.mark.parametrize("base", ["pt", "pt2"])
@pytest.mark.parametrize("name", VARIANTS)
def test_gradients_reach_exactly_the_trainable_parameters(
    tiny_backbone: str, name: str, base: str, task: str
) -> None:
    model, batch = build(tiny_backbone, base=base, task=task)
    method = f"{base}-{name}"
    objective = build_objective(name, {}, model)
    loss, logs = objective.loss(model, batch)
    assert set(logs) == {"ce", "ce_perturbed", "extra_passes"}
    # one source of the facts: the logged count is that of the passes the cost model reads
    assert logs["extra_passes"] == EXTRA_PASSES[name] == cost.passes(tiny_config(tiny_backbone, method)).extra
    assert loss.item() == pytest.approx(logs["ce"] + logs["ce_perturbed"], rel=1e-6)
    loss.backward()
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias", "base.prefix" if base == "pt2" else "base.prompt"}
    for n, p in model.named_parameters():
        if n in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n


def train_losses(backbone: str, name: str, seed: int) -> list[float]:
    model, batch = build(backbone)
    model.backbone_dropout = True
    model.train()
    objective = build_objective(name, {}, model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.05)
    torch.manual_seed(seed)
    losses = []
    for _ in range(3):
        loss, _ = objective.loss(model, batch)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", VARIANTS)
def test_same_seed_gives_the_same_losses(tiny_backbone: str, name: str) -> None:
    first = train_losses(tiny_backbone, name, seed=3)
    assert first == train_losses(tiny_backbone, name, seed=3)
    if name != "ptp-adv-text":  # HotFlip is deterministic given the weights; dropout still differs
        assert first != train_losses(tiny_backbone, name, seed=4)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("ptp-rn-emb", {"sigma": -1}, "sigma must be > 0"),
        ("ptp-rn-emb", {"weight": -0.5}, "weight must be ≥ 0"),
        ("ptp-adv-emb", {"steps": 0}, "steps must be ≥ 1"),
        ("ptp-adv-emb", {"epsilon": 0}, "epsilon must be > 0"),
        ("ptp-adv-emb", {"alpha": -0.1}, "alpha must be > 0"),
        ("ptp-rn-text", {"p": 1.5}, "p must be in (0, 1]"),
        ("ptp-adv-text", {"fraction": 0}, "fraction must be in (0, 1]"),
        ("ptp-adv-text", {"k": 3}, "unknown key"),
        ("ptp-rn-emb", {"sigma": "big"}, "expected a number"),
    ],
)
def test_invalid_options_are_one_line_errors_naming_the_key(
    tiny_backbone: str, name: str, options: dict, message: str
) -> None:
    model, _ = build(tiny_backbone, base="head")
    with pytest.raises(PromptTuneError, match=rf"run\.objectives\.{name}") as info:
        build_objective(name, options, model)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_defaults_and_rms_scale(tiny_backbone: str) -> None:
    model, _ = build(tiny_backbone, base="head")
    adv = build_objective("ptp-adv-emb", {}, model)
    assert (adv.config.weight, adv.config.steps, adv.config.epsilon, adv.config.step_size) == (
        1.0,
        2,
        0.05,
        0.025,
    )
    assert build_objective("ptp-adv-emb", {"alpha": 0.01}, model).config.step_size == 0.01
    assert build_objective("ptp-rn-emb", {}, model).config.sigma == 0.1
    assert build_objective("ptp-rn-text", {}, model).config.p == 0.1
    assert build_objective("ptp-adv-text", {}, model).config.fraction == 0.1
    assert adv.rms == embedding_rms(model) > 0
    assert adv.state_dict() == {}  # nothing of its own to save with the prompt
