"""The cost model (prompttune/cost.py) on cases small enough to compute by hand, its memory formula against
the tensors PyTorch actually saves for backward, and the paper profile: ReCoRD's step fits an 80 GB GPU with
the micro-batching the model chooses, and no training job plans for more memory than the budget."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, RobertaConfig, RobertaModel

from prompttune import cost
from prompttune.backbone import backbone_config
from prompttune.bases import BASES, PromptBase
from prompttune.config import (
    HeadConfig,
    PromptConfig,
    RunConfig,
    Stage,
    StageConfig,
    TrainConfig,
    load_profiles,
    params_from_dict,
    read_yaml,
)
from prompttune.model import Batch, PromptModel
from prompttune.objectives import OBJECTIVES, Objective, ObjectiveConfig
from prompttune.objectives.base import Passes, objective_config
from prompttune.registry import DeclaredRegistry
from prompttune.tasks import get_task
from prompttune.tasks.base import TASKS, FileSize, register_task

ROOT = Path(__file__).resolve().parents[1]
HAND = cost.Shape(
    "hand", layers=2, hidden=4, heads=2, ffn=8, vocab=10, params=100
)  # P = 2·(4·16 + 2·4·8) = 256
ROBERTA_LARGE = RobertaConfig(
    vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
    max_position_embeddings=514, type_vocab_size=1,
)  # fmt: skip


def paper_params(tmp_path: Path):
    """params.yaml with the paper profile active (as `prompttune profile paper` makes it), not written."""
    data = read_yaml(ROOT / "params.yaml")
    paper = read_yaml(ROOT / "profiles.yaml")["paper"]
    data.update(profile="paper", **{key: paper[key] for key in ("grid", "run", "studies")})
    return params_from_dict(data, tmp_path / "params.yaml", load_profiles(ROOT / "profiles.yaml"))


@pytest.fixture(scope="module")
def paper(tmp_path_factory: pytest.TempPathFactory) -> cost.ProfileCost:
    """The paper profile costed per seed, as the Snakefile does, from the table of official sizes."""
    tmp = tmp_path_factory.mktemp("paper")
    return cost.ProfileCost(paper_params(tmp), per_seed=True, data_root=tmp / "no-data")


# --- FLOPs by hand ---------------------------------------------------------------------------------------


def test_flops_of_a_pass_by_hand() -> None:
    assert HAND.matrix_params == 256
    # T = 3 query tokens, T_k = 5 keys (a prefix of 2): F = 3·(2·256 + 4·2·4·5), B = 3·(2·256 + 8·2·4·5)
    assert cost.forward_flops(HAND, 3, 5) == 3 * (512 + 160) == 2016
    assert cost.backward_flops(HAND, 3, 5) == 3 * (512 + 320) == 2496
    assert cost.hotflip_flops(HAND, 3) == 2 * 3 * 4 * 10


def hand_run(method: str, **train: object) -> RunConfig:
    options = {"ptp-adv-emb": {"steps": 2}}.get(method.partition("-")[2], {})
    return RunConfig(
        setting="fewglue",
        task="CB",
        method=method,
        seed=1,
        backbone="hand",
        prompt=PromptConfig(length=2),
        train=TrainConfig(**{"steps": 10, "batch_size": 8, "eval_every": 5, "max_length": 8, **train}),
        objective_options=options,
    )


HAND_SIZES = cost.CellSizes(
    train=cost.SplitSize(32), select=cost.SplitSize(32), report=cost.SplitSize(56),
    report_head=cost.SplitSize(32), source="hand",
)  # fmt: skip


@pytest.mark.parametrize(
    ("method", "per_sequence_step", "fp32_per_sequence_step"),
    [
        # pt2: T = 8, T_k = 10; F = 8·(512 + 4·2·4·10) = 6656, B = 8·(512 + 8·2·4·10) = 9216
        ("pt2", 6656 + 9216, 0),
        ("pt2-ptp-rn-emb", 2 * (6656 + 9216), 0),
        ("pt2-ptp-adv-emb", (2 + 2) * (6656 + 9216), 0),  # K = 2 ascent steps + the clean and perturbed pass
        ("pt2-ptp-adv-text", 2 * 6656 + 3 * 9216, 2 * 8 * 4 * 10),  # + HotFlip's vocabulary products, fp32
    ],
)
def test_a_training_job_by_hand(
    monkeypatch: pytest.MonkeyPatch, method: str, per_sequence_step: int, fp32_per_sequence_step: int
) -> None:
    monkeypatch.setitem(cost.KNOWN_SHAPES, "hand", HAND)
    job = cost.train_job(StageConfig([1], hand_run(method)), 1, HAND_SIZES)
    # 10 steps of 8 sequences; the selection split (32) at steps 0, 5, 10 and once more at the end, the
    # report split (56) once: (3 + 1)·32 + 56 = 184 forward passes of 6656
    mixed = 10 * 8 * per_sequence_step + 184 * 6656
    fp32 = 10 * 8 * fp32_per_sequence_step
    assert job.flops == mixed + fp32
    seconds = mixed / (989.4e12 * 0.35) + fp32 / (66.9e12 * 0.35)
    assert job.gpu_hours == pytest.approx(seconds / 3600)
    assert job.gpu and job.precision == "bf16" and job.steps == 10 and job.tokens_per_step == 8 * 8
    assert job.runtime_min == 10  # 1.5·(seconds + 120 s start) is 3 minutes: the minimum request
    assert job.resources() == {"runtime": 10, "mem_mb": job.mem_mb, "gpu": 1}


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_the_cost_model_reads_each_objective_s_own_declaration(name: str) -> None:
    run = hand_run("pt2" if name == "ce" else f"pt2-{name}")
    declared = OBJECTIVES.get(name).passes(objective_config(name, run.objective_options))
    assert cost.passes(run) == declared
    assert declared.separable or not OBJECTIVES.get(name).separable  # a separable class: every config


def test_the_declared_passes_follow_the_options() -> None:
    def step(name: str, **options: object) -> Passes:
        return cost.passes(dataclasses.replace(hand_run(f"pt2-{name}"), objective_options=options))

    assert step("ptp-adv-emb", steps=5) == Passes(7, 7, 2, separable=True)  # K + 2 with K = 5
    assert step("ptp-adv-emb") == Passes(4, 4, 2, separable=True)  # the default K = 2
    assert step("ptp-rn-text") == Passes(2, 2, 2, separable=True)
    assert step("ptp-adv-text") == Passes(2, 3, 2, separable=True, hotflip=True)
    assert step("infoprompt") == Passes(1, 1, 1, separable=False, negatives=True)  # β = 0.2
    assert step("infoprompt", beta=0.0) == Passes(1, 1, 1, separable=True)
    assert step("infoprompt-head") == Passes(1, 1, 1, separable=True)  # β fixed at 0
    assert cost.passes(hand_run("pt2")) == Passes(1, 1, 1, separable=True)


def test_an_objective_without_a_complete_declaration_is_refused_at_registration() -> None:
    class Undeclared(Objective):
        name = "undeclared"

        def loss(self, model: PromptModel, batch: Batch) -> tuple[torch.Tensor, dict[str, float]]:
            raise NotImplementedError

    refusal = r"objective 'undeclared' \(.*\.Undeclared\) declares no pass structure"
    with pytest.raises(TypeError, match=refusal) as caught:
        OBJECTIVES.register("undeclared")(Undeclared)
    assert "\n" not in str(caught.value) and "undeclared" not in OBJECTIVES

    class Passing(Undeclared):
        @classmethod
        def passes(cls, config: ObjectiveConfig) -> Passes:
            return Passes(1, 1, 1, separable=False)

    with pytest.raises(TypeError, match=r"\(.*\.Passing\) declares no trainable parameters: define"):
        OBJECTIVES.register("passing")(Passing)

    class Declared(Passing):
        @classmethod
        def trainable_parameters(cls, config: ObjectiveConfig, hidden: int) -> int:
            return 3 * hidden

    registry = DeclaredRegistry("objective", OBJECTIVES.declarations)  # a registry of its own
    assert registry.register("declared")(Declared) is Declared


def test_a_base_without_a_complete_declaration_is_refused_and_the_cost_model_reads_the_declarations() -> None:
    class Undeclared(PromptBase):
        name = "undeclared"

        def forward(self, inputs_embeds, attention_mask, token_type_ids):  # noqa: ANN001, ANN201
            raise NotImplementedError

    with pytest.raises(TypeError, match=r"prompt base 'undeclared' \(.*\) declares no sequence lengths"):
        BASES.register("undeclared")(Undeclared)
    assert "undeclared" not in BASES

    class Costed(Undeclared):
        sequence_lengths = BASES.get("pt").sequence_lengths
        prompt_parameters = BASES.get("pt").prompt_parameters

    with pytest.raises(
        TypeError, match=r"\(.*\.Costed\) declares no PEFT export rule: define the classmethod"
    ):
        BASES.register("costed")(Costed)  # export never guesses a base's PEFT form
    assert "costed" not in BASES
    shape = cost.Shape("hand", layers=6, hidden=384, heads=12, ffn=1536, vocab=30522, params=22_000_000)
    for base in ("head", "pt", "pt2"):
        run = hand_run(base)
        declared = BASES.get(base)
        assert cost.lengths(run) == declared.sequence_lengths(run.prompt, run.train.max_length)
        prompt = declared.prompt_parameters(run.prompt, shape.layers, shape.hidden)
        assert cost.trainable_params(run, shape, 3) == prompt + 384 * 3 + 3
    assert cost.lengths(hand_run("pt")) == (8 + 2, 8 + 2) and cost.lengths(hand_run("pt2")) == (8, 8 + 2)
    assert (
        cost.trainable_params(hand_run("pt-infoprompt"), shape, 3)
        - cost.trainable_params(hand_run("pt"), shape, 3)
        == 384 * 384
    )  # W_c, declared by InfoPrompt (β > 0 by default)


def test_step_cap_from_epochs_and_the_official_sizes(paper: cost.ProfileCost) -> None:
    sizes = paper.sizes("superglue.BoolQ")
    assert (sizes.train.examples, sizes.select.examples, sizes.report.examples) == (9427 - 943, 943, 3270)
    job = paper.train(Stage("superglue.BoolQ", "pt"))
    assert job.steps == math.ceil(100 * 8484 / 32) and job.sizes == "table"


# --- memory ---------------------------------------------------------------------------------------------


def test_saved_bytes_by_hand() -> None:
    memory = cost.Memory("bf16", dropout=False)
    # per token and layer, T = T_k = 3: LayerNorms 8·4 + 16, Q 2·4, GELU input 2·8 → 72; scores
    # (4 + 2)·2·3 = 36 → 108 per token, × 3 tokens = 324, + K and V 2·2·4·3 = 48 → 372 per layer
    assert cost.layer_bytes(HAND, 3, 3, memory) == 372
    # 2 layers, the embeddings' LayerNorm 3·(4·4 + 8) = 72, the bf16 copies of the weight matrices 2·256
    assert cost.saved_bytes(HAND, 1, 3, 3, memory) == 2 * 372 + 72 + 512
    with_dropout = cost.Memory("bf16", dropout=True)  # masks of 1 byte: 2·4 per token and layer, 2 per score
    assert cost.layer_bytes(HAND, 3, 3, with_dropout) == 372 + 3 * (8 + 1 * 2 * 3)


def saved_by_autograd(model: torch.nn.Module, forward, precision: str) -> int:
    """Bytes of the distinct tensors autograd saves for backward during ``forward()``, parameters aside."""
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            forward()
    frozen = {p.untyped_storage().data_ptr() for p in [*model.parameters(), *model.buffers()]}
    return sum(size for pointer, size in storages.items() if pointer not in frozen)


def tiny_roberta(attention: str, dropout: bool) -> RobertaModel:
    config = RobertaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=300, type_vocab_size=1, attn_implementation=attention,
        hidden_dropout_prob=0.1 * dropout, attention_probs_dropout_prob=0.1 * dropout,
    )  # fmt: skip
    torch.manual_seed(0)
    model = RobertaModel(config, add_pooling_layer=False).train(dropout)
    return model.requires_grad_(False)


TINY = cost.Shape("tiny", layers=2, hidden=32, heads=4, ffn=64, vocab=100, params=0)
PADDED = torch.ones(3, 20, dtype=torch.long).index_fill_(1, torch.arange(17, 20), 0)  # a batch with padding


@pytest.mark.parametrize(
    ("attention", "precision", "dropout"),
    [
        ("eager", "fp32", False),
        ("eager", "fp32", True),
        ("eager", "bf16", False),
        ("eager", "bf16", True),
        ("sdpa", "fp32", False),
        ("sdpa", "bf16", False),
    ],
)
def test_saved_bytes_are_what_autograd_keeps(attention: str, precision: str, dropout: bool) -> None:
    """A frozen encoder with gradients flowing to its input keeps exactly the formula's bytes (on CPU, where
    a dropout mask has the masked tensor's dtype: ``mask_bytes=None``). SDPA with dropout runs the math kernel
    on CPU, not the fused one the formula's ``fused`` describes, so it is not among the cases."""
    model = tiny_roberta(attention, dropout)
    embeds = torch.randn(3, 20, 32, requires_grad=True)
    measured = saved_by_autograd(model, lambda: model(inputs_embeds=embeds, attention_mask=PADDED), precision)
    kind = "materialized" if attention == "eager" else "fused"
    memory = cost.Memory(precision, dropout, kind, mask_bytes=None)  # type: ignore[arg-type]
    assert measured == cost.saved_bytes(TINY, 3, 20, 20, memory)


class _Tokenizer:
    """What PromptModel asks a tokenizer for (random prompt init, random head)."""

    mask_token_id = None
    all_special_ids: list[int] = []

    def __len__(self) -> int:
        return 100


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_saved_bytes_of_the_prompt_bases(precision: str) -> None:
    """Through PromptModel: ``pt`` keeps the formula's bytes plus the head's few (under 1 %); ``pt2``'s input
    takes no gradient (the prefix enters in the attention), so the formula is an upper bound by at most the
    embeddings' LayerNorm, the first layer's keys and, under autocast, its Q, K and V weight copies."""
    memory = cost.Memory(precision, dropout=False, mask_bytes=None)  # type: ignore[arg-type]
    batch = {"input_ids": torch.randint(5, 100, (3, 20)), "attention_mask": PADDED}
    for base, (t_q, t_k) in (("pt", (24, 24)), ("pt2", (20, 24))):
        run = RunConfig(
            setting="fewglue", task="CB", method=base, seed=1, backbone="tiny", prompt=PromptConfig(length=4),
            head=HeadConfig(pooling="cls", init="random"),
        )  # fmt: skip
        model = PromptModel.build(run, tiny_roberta("eager", False), _Tokenizer(), get_task("CB")).train()
        measured = saved_by_autograd(model, lambda model=model: model(batch), precision)
        predicted = cost.saved_bytes(TINY, 3, t_q, t_k, memory)
        if base == "pt":
            assert predicted <= measured <= 1.01 * predicted
        else:
            e = cost.ELEMENT[precision]
            slack = 3 * t_q * (4 * 32 + 8) + 3 * e * 32 * t_k + (3 * e * 32 * 32 if e < 4 else 0)
            assert predicted - slack <= measured <= predicted


def test_shapes_count_every_parameter() -> None:
    with torch.device("meta"):
        roberta = RobertaModel(ROBERTA_LARGE, add_pooling_layer=False)
        minilm = AutoModel.from_config(backbone_config("minilm"), add_pooling_layer=False)
    assert cost.shape_of(ROBERTA_LARGE, "roberta-large") == cost.KNOWN_SHAPES["roberta-large"]
    assert cost.KNOWN_SHAPES["roberta-large"].params == sum(p.numel() for p in roberta.parameters())
    assert cost.backbone_shape("minilm").params == sum(p.numel() for p in minilm.parameters())


# --- fitting a step ------------------------------------------------------------------------------------


def test_fit_takes_the_fewest_micro_batches_then_choice_chunks() -> None:
    def peak(examples: int, choices: int) -> float:
        return 10 * examples * choices

    assert cost.fit(8, 4, peak, 400, separable=True) == cost.StepPlan(8, 1, None, 320, True)
    needs = cost.StepPlan(3, 3, None, 120, True, "needs train.micro_batch_size: 3")
    assert cost.fit(8, 4, peak, 130, separable=True) == needs
    chunked = cost.fit(8, 4, peak, 25, separable=True)  # the training loop has no choice chunks: flagged
    assert chunked == cost.StepPlan(1, 8, 2, 20, False, "one example does not fit; chunks of 2 choices would")
    unfit = cost.fit(8, 4, peak, 5, separable=True)
    assert not unfit.fits and unfit.note == "one choice of one example does not fit"
    coupled = cost.fit(8, 4, peak, 130, separable=False)
    assert (coupled.micro_batches, coupled.fits) == (1, False) and "couples" in coupled.note
    configured = cost.fit(8, 4, peak, 130, separable=True, configured=4)
    assert (configured.micro_batch_size, configured.micro_batches, configured.fits) == (4, 2, False)


def test_record_step_fits_80_gb_with_micro_batches(paper: cost.ProfileCost) -> None:
    budget = 0.85 * 80
    sizes = paper.sizes("fewglue.ReCoRD")
    assert (sizes.train.examples, sizes.train.choices_max) == (32, 23)
    for method in ("pt", "pt-ptp-rn-emb", "pt-ptp-adv-emb", "pt-ptp-adv-text"):
        job = paper.train(Stage("fewglue.ReCoRD", method))
        assert job.tokens_per_step == 32 * 23 * (248 + 8)  # uncut (max_length 504): ≈ 190 k tokens
        assert job.fits and job.peak_memory_gib <= budget
        assert job.micro_batches >= 2 and job.choice_chunk is None and job.note == ""
        roomy = dataclasses.replace(cost.DEFAULT, gpu=dataclasses.replace(cost.H100, memory_gib=1000))
        stage = paper.stages[Stage("fewglue.ReCoRD", method)]
        train = dataclasses.replace(stage.run.train, micro_batch_size=0)  # 0: the whole batch at once
        whole = cost.train_job(
            dataclasses.replace(stage, run=dataclasses.replace(stage.run, train=train)), 1, sizes, roomy
        )
        assert whole.micro_batches == 1 and whole.peak_memory_gib > budget  # one pass would not fit
    multirc = paper.train(Stage("fewglue.MultiRC", "pt-ptp-adv-emb"))
    assert multirc.micro_batches == 1 and multirc.fits


def test_no_paper_training_job_plans_beyond_the_budget(paper: cost.ProfileCost) -> None:
    jobs = [job for _, job in paper.jobs()]
    train = [job for job in jobs if job.rule == "train"]
    assert len(train) == sum(len(config.seeds) for config in paper.stages.values())
    for job in jobs:
        assert job.gpu and job.resources()["gpu"] == 1, job.key
        assert job.mem_mb >= 1024 * math.ceil(2 * 4 * cost.KNOWN_SHAPES["roberta-large"].params / 2**30)
        if job.fits:
            assert job.peak_memory_gib <= 0.85 * 80, job.key
    assert [job.key for job in jobs if not job.fits] == [], "chunked landscape directions: every job fits"
    landscapes = {job.key.split("/")[0] for job in jobs if job.rule == "landscape"}
    assert "fewglue.MultiRC" in landscapes and "fewglue.ReCoRD" not in landscapes  # ReCoRD: ~53 GPU-h each


# --- sizes ---------------------------------------------------------------------------------------------


def test_sizes_come_from_the_data_when_it_is_there(mirror: Path) -> None:
    for cell in ("fewglue.CB", "fewglue.MultiRC", "superglue.RTE"):
        data = cost.cell_sizes(cell, 13, 32, mirror)
        table = cost.table_sizes(*cell.split("."), 32)
        assert data.source == str(mirror) and table.source == "table"
        assert data.select == table.select and data.report == table.report
        # the table does not subtract what splits.py drops for its content (RTE's train repeats 2 texts)
        assert 0 <= table.train.examples - data.train.examples <= 2
    assert (
        cost.cell_sizes("fewglue.ReCoRD", 13, 32, mirror).source == "table"
    )  # the mirror lacks its val.jsonl


def test_every_tasks_declared_sizes_agree_with_every_file_of_the_mirror(mirror: Path) -> None:
    checked = 0
    for task_name in TASKS.names():
        task = get_task(task_name)
        for source, size in task.sizes.items():
            path = mirror / task.files[source]
            if not path.is_file():
                continue
            examples = task.read(path, source)
            assert len(examples) == size.examples, path
            if size.units is not None:
                assert len({example.group for example in examples}) == size.units, path
            if task.kind == "multiple_choice":
                counts = [len(example.choices) for example in examples]
                assert (max(counts), round(sum(counts) / len(counts), 1)) == (
                    size.choices_max,
                    size.choices_mean,
                )
            checked += 1
    assert checked >= 20  # what the mirror lacks (SuperGLUE train files but RTE's and WSC's, ReCoRD's val)


def test_the_device_follows_the_backbone() -> None:
    minilm = dataclasses.replace(hand_run("pt"), backbone="minilm")
    assert not cost.needs_gpu(minilm) and cost.run_precision("auto", cost.DEFAULT.cpu()) == "fp32"
    assert cost.needs_gpu(dataclasses.replace(minilm, backbone="roberta-large"))
    assert cost.run_precision("auto", cost.H100) == "bf16"


def test_a_task_declares_the_size_of_every_file_it_reads() -> None:
    """A new task without the official size of one of its files is refused when it registers, so the cost
    model never meets a task it cannot size (the cluster route sizes cells before any fetch)."""
    cb = get_task("CB")
    partial = dataclasses.replace(cb, name="CB-partial", sizes={"val": FileSize(56)})
    with pytest.raises(TypeError, match=r"task 'CB-partial': sizes must give every file of `files`"):
        register_task(partial)
    assert "CB-partial" not in TASKS
    sizes = cost.table_sizes("superglue", "CB", 32)  # read from the declaration
    assert sizes.report.examples == cb.sizes["val"].examples
    assert sizes.train.examples + sizes.select.examples == cb.sizes["full_train"].examples


def test_short_jobs_are_grouped_in_order_to_the_target(paper: cost.ProfileCost) -> None:
    base = paper.train(next(iter(paper.stages)))

    def job(minutes: int, rule: str = "train", gpu: bool = True) -> cost.JobCost:
        return dataclasses.replace(base, rule=rule, gpu=gpu, work_min=minutes - 0.5)

    short = [("a", job(10)), ("b", job(25)), ("c", job(40)), ("d", job(12)), ("e", job(5)), ("f", job(8))]
    others = [("x", job(10, "landscape")), ("y", job(3, gpu=False))]  # each the only short job of its kind
    groups = cost.group_jobs([*short, *others], 30)
    merged = groups["a"]  # a + b reach 30; d + e + f do not, so they join them; c is long enough alone
    assert merged.members == ("a", "b", "d", "e", "f") and merged.runtime_min == 60
    assert set(groups) == set(merged.members)
    groups = cost.group_jobs([*short, ("g", job(20)), *others], 30)
    assert [groups[k].members for k in "ad"] == [("a", "b"), ("d", "e", "f", "g")]
    assert [groups[k].runtime_min for k in "ad"] == [35, 45] and groups["a"].name != groups["d"].name
    assert cost.group_jobs(short, 0) == {}  # nothing is shorter than no target
