"""Prompt bases and the model on tiny random BERT, RoBERTa and ALBERT (peft-style matrix).

Every backbone × base × objective × task either is refused at config load (``check_support``) and fails
loudly when built anyway, or trains exactly its own parameters; single examples score the same alone
and in a padded batch; deep prefixes reach the output. The rest guards what differs between the
backbones: position ids, word-embedding width, token types, devices.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import CB_EXAMPLES, COPA_EXAMPLES
from transformers import DistilBertConfig, DistilBertModel, PreTrainedModel, PreTrainedTokenizerBase

from prompttune import objectives
from prompttune.backbone import backbone_config, load_backbone
from prompttune.bases.pt2 import DeepPrompt
from prompttune.batches import Batch, collate, encode
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.errors import PromptTuneError
from prompttune.model import PromptModel, StackedModel
from prompttune.objectives import build_objective, check_support
from prompttune.tasks import Example, get_task

BACKBONES = ("bert", "roberta", "albert")
VARIANTS: dict[str, tuple[str, dict[str, object]]] = {  # test name → (base, prompt options)
    "head": ("head", {}),
    "pt": ("pt", {}),
    "pt-start": ("pt", {"position": "start"}),
    "pt2": ("pt2", {}),
    "pt2-reparam": ("pt2", {"reparam": True}),
}
OBJECTIVES = tuple(objectives.OBJECTIVES.names())  # every registered objective
TASKS = ("CB", "COPA")
PROMPT_LENGTH = 3
POSITION_CAPACITY = 256  # tokens every tiny backbone's position table holds (conftest)

EXAMPLES = {"CB": CB_EXAMPLES, "COPA": COPA_EXAMPLES}
SHORT_EXAMPLE = {"CB": 2, "COPA": 0}  # index of an example shorter than another of its list

PROMPT_PARAMETERS = {
    "head": set(),
    "pt": {"base.prompt"},
    "pt-start": {"base.prompt"},
    "pt2": {"base.prefix"},
    "pt2-reparam": {"base.embedding", "base.mlp.0.weight", "base.mlp.0.bias", "base.mlp.2.weight"}
    | {"base.mlp.2.bias"},
}
OBJECTIVE_PARAMETERS = {"infoprompt": {"w_c"}, "infoprompt-rep": {"w_c"}}


def refused(backbone: str, variant: str, objective: str) -> bool:
    """The combinations that must be refused: ALBERT's attention takes no cache (pt2); an objective that
    declares ``needs_prompt`` (InfoPrompt) needs a prompt (head)."""
    base = VARIANTS[variant][0]
    if backbone == "albert" and base == "pt2":
        return True
    return base == "head" and objectives.OBJECTIVES.get(objective).needs_prompt


MATRIX = [
    (backbone, variant, objective, task)
    for backbone in BACKBONES
    for variant in VARIANTS
    for objective in OBJECTIVES
    for task in TASKS
]
SUPPORTED = [cell for cell in MATRIX if not refused(*cell[:3])]
REFUSED = [cell for cell in MATRIX if refused(*cell[:3])]
RUNNING_BASES = [
    (backbone, variant, task)
    for backbone in BACKBONES
    for variant in VARIANTS
    for task in TASKS
    if not refused(backbone, variant, "ce")
]
PROMPTED = [
    (backbone, variant)
    for backbone in BACKBONES
    for variant in ("pt", "pt2")
    if not refused(backbone, variant, "ce")
]
DEEP_BACKBONES = [backbone for backbone in BACKBONES if not refused(backbone, "pt2", "ce")]

Loaded = tuple[PreTrainedModel, PreTrainedTokenizerBase]


@pytest.fixture(scope="module")
def paths(tiny_backbone: str, tiny_roberta: str, tiny_albert: str) -> dict[str, str]:
    return {"bert": tiny_backbone, "roberta": tiny_roberta, "albert": tiny_albert}


@pytest.fixture(scope="module")
def backbones(paths: dict[str, str]) -> dict[str, Loaded]:
    """Each tiny backbone loaded once (frozen, eval mode), shared by the models built on it."""
    return {name: load_backbone(path) for name, path in paths.items()}


def run_config(backbone: str, variant: str, task: str, pooling: str = "mean") -> RunConfig:
    base, prompt = VARIANTS[variant]
    return RunConfig(
        setting="fewglue",
        task=task,
        method=base,
        seed=1,
        backbone=backbone,
        prompt=PromptConfig(length=PROMPT_LENGTH, **prompt),
        head=HeadConfig(pooling=pooling, init="label_words"),
        train=TrainConfig(),
    )


def build(
    backbones: dict[str, Loaded], backbone: str, variant: str, task: str, pooling: str = "mean"
) -> PromptModel:
    torch.manual_seed(0)
    weights, tokenizer = backbones[backbone]
    return PromptModel.build(run_config(backbone, variant, task, pooling), weights, tokenizer, get_task(task))


def batch_for(task: str, tokenizer: PreTrainedTokenizerBase, examples: list[Example] | None = None) -> Batch:
    spec = get_task(task)
    features = encode(examples or EXAMPLES[task], spec, tokenizer, 32)
    return collate(features, tokenizer, spec.kind == "multiple_choice")


def assert_one_line_refusal(
    message: str, backbone_path: str, model_type: str, base: str, objective: str
) -> None:
    assert "\n" not in message
    for part in (backbone_path, model_type, repr(base), repr(objective)):
        assert part in message, (part, message)


def assert_gradients_reach_exactly(
    model: PromptModel, objective: torch.nn.Module, expected: set[str], multiple_choice: bool
) -> None:
    """Every expected parameter (model's and objective's) and nothing else requires and has a gradient,
    nonzero — except the head's bias on multiple choice, which a softmax over choices cannot see."""
    named = {**dict(model.named_parameters()), **dict(objective.named_parameters())}
    assert {name for name, p in named.items() if p.requires_grad} == expected
    assert set(model.trainable_state()) == {name for name in expected if name != "w_c"}
    for name, parameter in named.items():
        if name not in expected:
            assert parameter.grad is None, name
            continue
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
        if not (multiple_choice and name == "head.bias"):
            assert parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("backbone", "variant", "objective", "task"), SUPPORTED)
def test_supported_combination_trains_exactly_its_parameters(
    paths: dict[str, str],
    backbones: dict[str, Loaded],
    backbone: str,
    variant: str,
    objective: str,
    task: str,
) -> None:
    check_support(VARIANTS[variant][0], objective, backbone_config(paths[backbone]))
    model = build(backbones, backbone, variant, task).train()
    loss_fn = build_objective(objective, {}, model)
    loss, _ = loss_fn.loss(model, batch_for(task, backbones[backbone][1]))
    assert torch.isfinite(loss)
    loss.backward()
    expected = (
        {"head.weight", "head.bias"} | PROMPT_PARAMETERS[variant] | OBJECTIVE_PARAMETERS.get(objective, set())
    )
    assert_gradients_reach_exactly(model, loss_fn, expected, multiple_choice=task == "COPA")


@pytest.mark.parametrize(("backbone", "variant", "objective", "task"), REFUSED)
def test_refused_combination_is_refused_at_config_load_and_fails_loudly_when_built(
    paths: dict[str, str],
    backbones: dict[str, Loaded],
    backbone: str,
    variant: str,
    objective: str,
    task: str,
) -> None:
    base = VARIANTS[variant][0]
    config = backbone_config(paths[backbone])
    with pytest.raises(PromptTuneError) as caught:
        check_support(base, objective, config)
    assert_one_line_refusal(str(caught.value), paths[backbone], config.model_type, base, objective)
    with pytest.raises((PromptTuneError, RuntimeError)):  # at build, or at the first loss: never silently
        model = build(backbones, backbone, variant, task)
        build_objective(objective, {}, model).loss(model, batch_for(task, backbones[backbone][1]))


@pytest.mark.parametrize("variant", ["pt2", "pt2-reparam"])
def test_deep_prompt_on_albert_is_refused_at_build_not_dropped(
    paths: dict[str, str], backbones: dict[str, Loaded], variant: str
) -> None:
    """ALBERT's attention takes no cache: transformers would drop the prefix without a word."""
    with pytest.raises(PromptTuneError, match="key/value cache") as caught:
        build(backbones, "albert", variant, "CB")
    assert "\n" not in str(caught.value) and paths["albert"] in str(caught.value)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_unknown_architecture_is_refused_at_config_load_and_at_build(
    backbones: dict[str, Loaded], variant: str
) -> None:
    config = DistilBertConfig(vocab_size=30, dim=32, n_layers=1, n_heads=4, hidden_dim=64)
    base = VARIANTS[variant][0]
    with pytest.raises(PromptTuneError, match="model type 'distilbert' is not supported") as caught:
        check_support(base, "ce", config)
    assert_one_line_refusal(str(caught.value), "", "distilbert", base, "ce")
    tokenizer = backbones["bert"][1]
    with pytest.raises(PromptTuneError, match="distilbert"):
        PromptModel.build(
            run_config("distilbert", variant, "CB"), DistilBertModel(config), tokenizer, get_task("CB")
        )


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize(("backbone", "variant", "task"), RUNNING_BASES)
def test_single_example_scores_the_same_alone_and_in_a_padded_batch(
    backbones: dict[str, Loaded], backbone: str, variant: str, task: str, pooling: str
) -> None:
    model = build(backbones, backbone, variant, task, pooling).eval()
    tokenizer = backbones[backbone][1]
    index = SHORT_EXAMPLE[task]
    padded = batch_for(task, tokenizer)
    alone = batch_for(task, tokenizer, [EXAMPLES[task][index]])
    assert alone["input_ids"].shape[1] < padded["input_ids"].shape[1]
    with torch.no_grad():
        torch.testing.assert_close(model(alone).logits[0], model(padded).logits[index], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("backbone", "variant", "task"), RUNNING_BASES)
def test_stacked_seeds_score_as_their_own_models(
    backbones: dict[str, Loaded], backbone: str, variant: str, task: str
) -> None:
    """Two seeds' models in one backbone pass (StackedModel): each block as its own model alone."""
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        weights, tokenizer = backbones[backbone]
        config = run_config(backbone, variant, task)
        models.append(PromptModel.build(config, weights, tokenizer, get_task(task)).eval())
    batch = batch_for(task, backbones[backbone][1])
    stacked_batch = {key: torch.cat([value, value]) for key, value in batch.items()}
    with torch.no_grad():
        stacked = StackedModel(models)(stacked_batch).logits
        alone = torch.cat([model(batch).logits for model in models])
    torch.testing.assert_close(stacked, alone, rtol=0, atol=1e-5)


@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("variant", ["pt2", "pt2-reparam"])
@pytest.mark.parametrize("backbone", DEEP_BACKBONES)
def test_deep_prefix_changes_every_output_and_gets_a_gradient(
    backbones: dict[str, Loaded], backbone: str, variant: str, task: str
) -> None:
    model = build(backbones, backbone, variant, task).eval()
    batch = batch_for(task, backbones[backbone][1])
    out = model(batch)
    with torch.no_grad():
        plain = model(batch, use_prompt=False).pooled
    assert ((out.pooled - plain).abs().amax(dim=1) > 1e-3).all()
    F.cross_entropy(out.logits, batch["labels"]).backward()
    for name, parameter in model.base.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name


@pytest.mark.parametrize("backbone", DEEP_BACKBONES)
def test_deep_prefix_places_the_input_after_it_as_p_tuning_v2_does(
    backbones: dict[str, Loaded], backbone: str
) -> None:
    """P-tuning v2 hands the backbone ``input_ids`` and the prefix as a cache, and the backbone numbers
    the input from the cache length on (RoBERTa: skipping pads); given ``inputs_embeds`` pt2 must give
    exactly the same hidden states, pads included."""
    model = build(backbones, backbone, "pt2", "CB").eval()
    weights, tokenizer = backbones[backbone]
    batch = batch_for("CB", tokenizer)
    assert not batch["attention_mask"].all()
    args = (model.embed(batch["input_ids"]), batch["attention_mask"], batch.get("token_type_ids"))
    ours = model.base(*args).kwargs
    prefixed = model.base(*args).kwargs  # a fresh cache: the backbone appends to the one it is given
    reference = {
        key: prefixed[key]
        for key in ("attention_mask", "past_key_values", "token_type_ids")
        if key in prefixed
    }
    with torch.no_grad():
        torch.testing.assert_close(
            weights(**ours).last_hidden_state,
            weights(input_ids=batch["input_ids"], **reference).last_hidden_state,
            rtol=0,
            atol=1e-6,
        )


@pytest.mark.parametrize("variant", ["pt", "pt-start"])
@pytest.mark.parametrize("backbone", BACKBONES)
def test_shallow_prompt_of_word_embeddings_equals_those_words_inserted(
    backbones: dict[str, Loaded], backbone: str, variant: str
) -> None:
    """A prompt set to the word embeddings of some tokens must act exactly as those tokens inserted where
    the prompt sits, numbered by the backbone's own rule (every non-pad position compared)."""
    model = build(backbones, backbone, variant, "CB").eval()
    weights, tokenizer = backbones[backbone]
    batch = batch_for("CB", tokenizer)
    special = set(tokenizer.all_special_ids)
    words = torch.tensor([i for i in range(len(tokenizer)) if i not in special][:PROMPT_LENGTH])
    with torch.no_grad():
        model.base.prompt.copy_(model.embed(words))
    ids = batch["input_ids"]
    inputs = model.backbone_inputs(batch)
    words = words.expand(ids.shape[0], -1)
    inserted = torch.cat([words, ids] if variant == "pt-start" else [ids[:, :1], words, ids[:, 1:]], dim=1)
    mask = inputs.kwargs["attention_mask"]
    reference_args = {"input_ids": inserted, "attention_mask": mask}
    if "token_type_ids" in inputs.kwargs:
        reference_args["token_type_ids"] = inputs.kwargs["token_type_ids"]
    with torch.no_grad():
        ours = weights(**inputs.kwargs).last_hidden_state
        reference = weights(**reference_args).last_hidden_state
    keep = mask.bool()
    torch.testing.assert_close(ours[keep], reference[keep], rtol=0, atol=1e-5)


@pytest.mark.parametrize(("backbone", "variant"), PROMPTED)
def test_prompted_input_fills_the_position_table_and_no_more(
    backbones: dict[str, Loaded], backbone: str, variant: str
) -> None:
    model = build(backbones, backbone, variant, "CB").eval()
    tokenizer = backbones[backbone][1]
    word = next(i for i in range(len(tokenizer)) if i not in set(tokenizer.all_special_ids))
    for length in (POSITION_CAPACITY - PROMPT_LENGTH, POSITION_CAPACITY - PROMPT_LENGTH + 1):
        ids = torch.full((1, length), word)
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        with torch.no_grad():
            if length + PROMPT_LENGTH <= POSITION_CAPACITY:
                assert model.encode(batch).shape == (1, 32)
            else:
                with pytest.raises(ValueError, match="the backbone's 256"):
                    model.encode(batch)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_label_word_head_rows_are_the_label_words_in_the_hidden_space(
    backbones: dict[str, Loaded], backbone: str
) -> None:
    """Mean sub-token word embedding of each label word, through ALBERT's embedding→hidden map."""
    model = build(backbones, backbone, "head", "CB")
    weights, tokenizer = backbones[backbone]
    table = weights.get_input_embeddings().weight
    assert model.head.weight.shape == (3, weights.config.hidden_size)
    for row, word in zip(model.head.weight, get_task("CB").label_words, strict=True):
        expected = table[tokenizer(word, add_special_tokens=False)["input_ids"]].mean(0)
        if backbone == "albert":
            expected = weights.encoder.embedding_hidden_mapping_in(expected)
        torch.testing.assert_close(row, expected)


@pytest.mark.parametrize(("backbone", "variant"), PROMPTED)
def test_prompt_vectors_live_in_the_hidden_space(
    backbones: dict[str, Loaded], backbone: str, variant: str
) -> None:
    model = build(backbones, backbone, variant, "CB")
    weights = backbones[backbone][0]
    vectors = model.base.prompt_vectors()
    assert vectors.shape == (PROMPT_LENGTH, weights.config.hidden_size)
    if variant == "pt":
        expected = model.base.prompt
        if backbone == "albert":
            expected = weights.encoder.embedding_hidden_mapping_in(expected)
        torch.testing.assert_close(vectors, expected)


def test_deep_prompt_init_runs_the_backbone_on_its_own_device(tiny_backbone: str) -> None:
    """``text`` init computes the prefix with the backbone wherever it is (here: on the meta device)."""
    weights, tokenizer = load_backbone(tiny_backbone)
    weights.to("meta")
    seen: list[torch.device] = []
    weights.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].device), with_kwargs=True
    )
    DeepPrompt(PromptConfig(length=PROMPT_LENGTH, init="text"), weights, tokenizer, get_task("CB"))
    assert seen == [torch.device("meta")]


@pytest.mark.parametrize("variant", ["head", "pt", "pt-start", "pt2"])
def test_roberta_gets_no_token_types_and_cls_pooling_reads_its_first_token(
    backbones: dict[str, Loaded], variant: str
) -> None:
    model = build(backbones, "roberta", variant, "CB", pooling="cls").eval()
    weights, tokenizer = backbones["roberta"]
    batch = batch_for("CB", tokenizer)
    assert "token_type_ids" not in batch
    inputs = model.backbone_inputs(batch)
    assert "token_type_ids" not in inputs.kwargs
    first = PROMPT_LENGTH if variant == "pt-start" else 0
    start_token = model.embed(torch.tensor(tokenizer.cls_token_id))
    assert tokenizer.cls_token == "<s>" and (inputs.kwargs["inputs_embeds"][:, first] == start_token).all()
    with torch.no_grad():
        hidden = weights(**inputs.kwargs).last_hidden_state
        torch.testing.assert_close(model.encode(batch), hidden[:, first], rtol=0, atol=0)
