"""InfoPrompt on a tiny random BERT: closed-form losses, bounds, gradients, r⁻ cache, ablations, errors."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from helpers import CB_EXAMPLES as THREE_CB_EXAMPLES

from prompttune.backbone import load_backbone
from prompttune.batches import collate, encode
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.errors import PromptTuneError
from prompttune.model import PromptModel
from prompttune.objectives import build_objective
from prompttune.objectives.infoprompt import example_rows, head_loss, info_nce, mi_bound, rep_loss
from prompttune.tasks import Example, get_task

CB_EXAMPLES = [
    *THREE_CB_EXAMPLES,
    Example(guid="t-3", text_a="No one knew the answer.", text_b="Someone knew.", label=1),
]

COPA_EXAMPLES = [
    Example(guid="c-0", text_a="The glass fell.", choices=("so it broke.", "so it sang."), label=0),
    Example(
        guid="c-1", text_a="She was tired.", choices=("because she ran a lot.", "because she slept."), label=1
    ),
]


def run_config(backbone: str, base: str = "pt", task: str = "CB", dropout: bool = False) -> RunConfig:
    return RunConfig(
        setting="fewglue",
        task=task,
        method=f"{base}-infoprompt",
        seed=1,
        backbone=backbone,
        prompt=PromptConfig(length=3),
        head=HeadConfig(pooling="mean", init="label_words"),
        train=TrainConfig(backbone_dropout=dropout),
    )


def build(
    backbone: str, base: str = "pt", task: str = "CB", dropout: bool = False
) -> tuple[PromptModel, object]:
    torch.manual_seed(0)
    weights, tokenizer = load_backbone(backbone)
    config = run_config(backbone, base, task, dropout)
    return PromptModel.build(config, weights, tokenizer, get_task(task)), tokenizer


def batch_of(examples: list[Example], tokenizer: object, task: str = "CB") -> dict[str, torch.Tensor]:
    spec = get_task(task)
    return collate(encode(examples, spec, tokenizer, 32), tokenizer, spec.kind == "multiple_choice")


def test_hand_made_losses_equal_their_closed_form() -> None:
    e = math.e
    prompt = torch.tensor([[1.0, 0, 0, 0], [1, 2, 0, 0]])  # mean (1, 1, 0, 0)
    head = torch.tensor([[2.0, 0, 0, 0], [0, 2, 0, 0]])  # h̄ = (1, 1, 0, 0); s(p̄, h̄) = 2/√4 = 1
    tokens = torch.tensor(
        [
            [[1.0, 0, 0, 0], [0, 0, 2, 0], [9, 9, 9, 9]],  # scores 1/2, 0, pad
            [[0.0, 2, 0, 0], [0, 0, 0, 0], [2, 2, 0, 0]],  # scores 1, 0, 2
        ]
    )
    mask = torch.tensor([[True, True, False], [True, True, True]])
    losses, n = head_loss(prompt, head, tokens, mask)
    expected = [math.log(e + e**0.5 + 1) - 1, math.log(e + 1 + e**2 + e) - 1]
    torch.testing.assert_close(losses, torch.tensor(expected), rtol=1e-6, atol=1e-6)
    assert n.tolist() == [2, 3]

    w_c = torch.diag(torch.tensor([1.0, 2, 0, 0]))  # c = W_c·p̄ = (1, 2, 0, 0)
    positives = torch.tensor([[2.0, 0, 0, 0], [0, 0, 0, 2]])  # scores 1, 0
    negatives = torch.tensor([[0.0, 1, 0, 0], [0, 0, 5, 0]])  # scores 1, 0 (shared by both examples)
    expected_rep = [math.log(2 * e + 1) - 1, math.log(2 + e)]
    torch.testing.assert_close(
        rep_loss(prompt, w_c, positives, negatives), torch.tensor(expected_rep), rtol=1e-6, atol=1e-6
    )


def test_the_bound_never_exceeds_log_n_plus_one() -> None:
    torch.manual_seed(0)
    positive = torch.cat([torch.randn(60), torch.tensor([1e4, -1e4, 0.0, 80.0])])
    negatives = torch.cat([torch.randn(60, 7), torch.full((4, 7), -1e4)])
    losses = info_nce(positive, negatives)
    bound = mi_bound(losses, 7)
    assert (losses >= 0).all()
    assert (bound <= math.log(8)).all()
    assert bound.max().item() == pytest.approx(math.log(8))  # a perfectly separated positive reaches it
    torch.testing.assert_close(bound, math.log(8) - losses)


def test_loss_is_ce_plus_weighted_terms_and_logs_the_bounds(tiny_backbone: str) -> None:
    model, tokenizer = build(tiny_backbone)
    batch = batch_of(CB_EXAMPLES, tokenizer)
    objective = build_objective("infoprompt", {}, model)
    model.eval()
    loss, logs = objective.loss(model, batch)
    assert set(logs) == {"ce", "l_head", "mi_head", "l_rep", "mi_rep"}
    assert loss.item() == pytest.approx(logs["ce"] + 0.1 * logs["l_head"] + 0.2 * logs["l_rep"], rel=1e-6)
    n_tokens = batch["attention_mask"].sum(1).float()
    assert logs["mi_head"] == pytest.approx(
        (torch.log(n_tokens + 1).mean() - logs["l_head"]).item(), abs=1e-5
    )
    assert logs["mi_rep"] == pytest.approx(math.log(len(CB_EXAMPLES) + 1) - logs["l_rep"], abs=1e-5)


@pytest.mark.parametrize(
    ("name", "base", "own"),
    [("infoprompt", "pt", {"w_c"}), ("infoprompt-head", "pt", set()), ("infoprompt-rep", "pt", {"w_c"})]
    + [("infoprompt", "pt2", {"w_c"})],
)
def test_gradients_reach_exactly_prompt_head_and_w_c(
    tiny_backbone: str, name: str, base: str, own: set
) -> None:
    model, tokenizer = build(tiny_backbone, base)
    objective = build_objective(name, {}, model)
    loss, _ = objective.loss(model, batch_of(CB_EXAMPLES, tokenizer))
    loss.backward()
    prompt = "base.prompt" if base == "pt" else "base.prefix"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {prompt, "head.weight", "head.bias"}
    for n, p in model.named_parameters():
        if n in trainable:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert p.grad is None, n
    assert {n for n, _ in objective.named_parameters()} == own
    for n, p in objective.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, n


def test_each_term_reaches_only_its_own_parameters(tiny_backbone: str) -> None:
    model, tokenizer = build(tiny_backbone)
    objective = build_objective("infoprompt", {}, model)
    terms = objective.mi_terms(model, batch_of(CB_EXAMPLES, tokenizer))
    params = {"prompt": model.base.prompt, "head.weight": model.head.weight, "head.bias": model.head.bias}
    params["w_c"] = objective.w_c

    def reached(term: torch.Tensor) -> set[str]:
        grads = torch.autograd.grad(term, list(params.values()), allow_unused=True, retain_graph=True)
        return {n for n, g in zip(params, grads, strict=True) if g is not None and g.abs().sum() > 0}

    assert reached(terms.l_head) == {"prompt", "head.weight"}
    assert reached(terms.l_rep) == {"prompt", "w_c"}
    torch.testing.assert_close(objective.w_c.detach(), torch.eye(32))  # init: identity (choice)


def test_cached_negatives_equal_fresh_eval_mode_ones_and_are_computed_once(
    tiny_backbone: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, tokenizer = build(tiny_backbone, dropout=True)
    objective = build_objective("infoprompt", {}, model)
    encoded: list[int] = []
    original = model.encode

    def counting(batch, inputs_embeds=None, use_prompt=True):  # type: ignore[no-untyped-def]
        if not use_prompt:
            encoded.append(batch["input_ids"].shape[0])
        return original(batch, inputs_embeds, use_prompt)

    monkeypatch.setattr(model, "encode", counting)
    first = batch_of(CB_EXAMPLES[:3], tokenizer)
    model.train()
    assert model.backbone.training  # dropout on during the step
    objective.loss(model, first)
    assert encoded == [3]
    assert model.backbone.training  # restored after the eval-mode forward
    cached = objective.negatives(model, first, example_rows(first))
    model.eval()
    with torch.no_grad():
        fresh = original(first, use_prompt=False)
    torch.testing.assert_close(cached, fresh, rtol=1e-5, atol=1e-6)
    model.train()
    objective.loss(model, first)
    assert encoded == [3]  # second call: nothing recomputed
    both = collate(encode(CB_EXAMPLES, get_task("CB"), tokenizer, 32), tokenizer, False)
    objective.loss(model, both)
    assert encoded == [3, 1]  # only the new example (index 3) costs a forward
    relabelled = dataclasses.replace(
        encode(CB_EXAMPLES[3:], get_task("CB"), tokenizer, 32)[0], index=0
    )  # another example under a cached index: recomputed, not served stale
    objective.loss(model, collate([relabelled], tokenizer, False))
    assert encoded == [3, 1, 1]


def test_multiple_choice_uses_each_examples_correct_choice(tiny_backbone: str) -> None:
    model, tokenizer = build(tiny_backbone, task="COPA")
    batch = batch_of(COPA_EXAMPLES, tokenizer, "COPA")
    rows = example_rows(batch)
    assert rows.tolist() == [0, 3]  # example 0 → choice 0, example 1 → choice 1 (2 choices each)
    objective = build_objective("infoprompt", {}, model)
    model.eval()
    _, logs = objective.loss(model, batch)
    n_tokens = batch["attention_mask"][rows].sum(1).float()
    assert logs["mi_head"] == pytest.approx(
        (torch.log(n_tokens + 1).mean() - logs["l_head"]).item(), abs=1e-5
    )
    with torch.no_grad():
        negatives = objective.negatives(model, batch, rows)
        torch.testing.assert_close(
            negatives, model.encode(batch, use_prompt=False)[rows], rtol=1e-5, atol=1e-6
        )


def test_zero_weights_give_exactly_ce(tiny_backbone: str) -> None:
    model, tokenizer = build(tiny_backbone)
    batch = batch_of(CB_EXAMPLES, tokenizer)
    model.eval()
    objective = build_objective("infoprompt", {"gamma": 0.0, "beta": 0.0}, model)
    loss, logs = objective.loss(model, batch)
    assert torch.equal(loss, F.cross_entropy(model(batch).logits, batch["labels"]))
    assert logs == {"ce": loss.item()}
    assert list(objective.parameters()) == []


def test_ablations_fix_one_weight_and_keep_the_other(tiny_backbone: str) -> None:
    model, tokenizer = build(tiny_backbone)
    head_only = build_objective("infoprompt-head", {"gamma": 0.3}, model)
    rep_only = build_objective("infoprompt-rep", {}, model)
    assert (head_only.config.gamma, head_only.config.beta) == (0.3, 0.0)
    assert (rep_only.config.gamma, rep_only.config.beta) == (0.0, 0.2)
    batch = batch_of(CB_EXAMPLES, tokenizer)
    assert set(head_only.loss(model, batch)[1]) == {"ce", "l_head", "mi_head"}
    assert set(rep_only.loss(model, batch)[1]) == {"ce", "l_rep", "mi_rep"}
    with pytest.raises(PromptTuneError, match=r"run\.objectives\.infoprompt-head\.beta: fixed at 0\.0"):
        build_objective("infoprompt-head", {"beta": 0.2}, model)
    with pytest.raises(PromptTuneError, match="gamma must be a finite number ≥ 0"):
        build_objective("infoprompt", {"gamma": -1.0}, model)
    with pytest.raises(PromptTuneError, match="clamp must be"):
        build_objective("infoprompt", {"clamp": 0.0}, model)


def test_clamp_caps_each_term_but_not_the_bound(tiny_backbone: str) -> None:
    model, tokenizer = build(tiny_backbone)
    model.eval()
    batch = batch_of(CB_EXAMPLES, tokenizer)
    _, free = build_objective("infoprompt", {}, model).loss(model, batch)
    _, clamped = build_objective("infoprompt", {"clamp": 1e-3}, model).loss(model, batch)
    assert clamped["l_head"] == pytest.approx(1e-3) and clamped["l_rep"] == pytest.approx(1e-3)
    assert clamped["mi_head"] == pytest.approx(free["mi_head"]) and clamped["mi_rep"] == pytest.approx(
        free["mi_rep"]
    )


def test_the_head_base_is_refused_with_one_clear_line(tiny_backbone: str) -> None:
    model, _ = build(tiny_backbone, "head")
    for name in ("infoprompt", "infoprompt-head", "infoprompt-rep"):
        with pytest.raises(
            PromptTuneError, match=f"objective {name} needs a prompt; base 'head' has none"
        ) as info:
            build_objective(name, {}, model)
        assert "\n" not in str(info.value)


def test_a_run_trains_saves_and_reloads_w_c(tiny_backbone: str, mirror: Path, tmp_path: Path) -> None:
    from prompttune.checkpoint import load_run
    from prompttune.data import fetch
    from prompttune.splits import required_files
    from prompttune.train import train_run

    data = tmp_path / "data"
    fetch(required_files("fewglue", "CB"), data, mirror=mirror)
    config = dataclasses.replace(
        run_config(tiny_backbone),
        train=TrainConfig(steps=3, batch_size=8, lr=0.05, eval_every=3, eval_batch_size=32, max_length=32),
    )
    metrics = train_run(config, data, tmp_path / "run")
    assert metrics.status in {"ok", "collapsed"}
    state = torch.load(tmp_path / "run" / "prompt.pt")
    assert set(state["objective"]) == {"w_c"}
    assert not torch.equal(state["objective"]["w_c"], torch.eye(32))  # it trained
    loaded = load_run(tmp_path / "run")
    torch.testing.assert_close(loaded.objective.w_c.detach(), state["objective"]["w_c"])
