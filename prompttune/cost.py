"""What a profile costs on a cluster, before anything runs: FLOPs, GPU-hours, peak memory and the
micro-batching that makes each training step fit, per training job, per landscape and for the MI check,
from the resolved configs and the data sizes; and the resources each job asks the cluster for (the
Snakefile's ``threads`` and ``resources``).

Notation: one sequence of ``T`` query tokens attends to ``T_k`` key tokens (``pt``: T = T_k =
max_length + prompt; ``pt2``: T = max_length, T_k = T + prefix); ``L`` layers of width ``d``, FFN width
``f``, ``a`` heads; ``P = L·(4d² + 2df)`` the parameters of the backbone's weight matrices (embeddings
are looked up, not multiplied). Every length is the upper bound ``max_length``; a training batch holds
``min(batch_size, n_train)`` examples of the split's largest number of choices (a batch is padded to its
largest), an evaluation the split's mean number of choices (evaluation batches are sorted by length).

FLOPs:

- forward ``F = T·(2P + 4·L·d·T_k)`` per sequence: 2 FLOPs per multiply-add of every weight matrix
  (paper: Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Table 1) plus QKᵀ and AV,
  2·d·T_k each per query token and layer, with no causal halving (an encoder attends both ways; PaLM,
  Chowdhery et al. 2022, App. B, counts attention the same way, 12·L·H·Q·T per token for a training step);
- backward through the frozen backbone ``B = T·(2P + 8·L·d·T_k)`` (choice, from autograd's rules): the
  weights take no gradient, so each weight matrix costs one product (∂x = ∂y·Wᵀ) instead of the two
  behind the usual 6·P per token (Kaplan et al. §2.1), while QKᵀ and AV multiply two activations and
  take gradients to both, twice their forward. A cross-entropy step is so ≈ 2× a forward pass (the
  4·P·tokens of benchmarks/peft_throughput.py, attention added);
- passes per step (``passes``): what the objective declares for its options (``Objective.passes``,
  prompttune/objectives/), never read off its name, e.g. PTP's rn ``2F + 2B``, adv-emb ``(K + 2)·(F + B)``,
  adv-text ``2F + 3B``; HotFlip's vocabulary products (``Passes.hotflip``) ``2·N·T·d·V``, which run in
  fp32; one forward without prompt per training example, once (``Passes.negatives``: InfoPrompt's cached
  ``r⁻`` with β > 0); base ``head`` on cached features one forward over every split, once;
- evaluation: a forward over the selection split at step 0, every ``eval_every`` steps and at the step
  cap, then the selected checkpoint on the selection and report splits; the step cap is an upper bound
  (early stopping only shortens a run);
- landscape (prompttune/landscape.py): per seed ``points² + 1`` forwards without gradient and one
  forward + backward (the directions), over the first ``n_examples`` report examples in pieces of
  ``chunk`` examples (padding to the cell's length, an upper bound), fp32;
- time = FLOPs / (peak of the precision × ``mfu``) (choice: 35 % model-FLOPs utilisation of the dense
  bf16 peak, PaLM's definition of MFU); a job's runtime request adds ``startup_s`` and multiplies by
  ``safety``.

Memory — what autograd keeps for the backward of one forward pass with gradients flowing to the input
(``saved_bytes``; choice: derived from which tensors PyTorch saves for a frozen transformers encoder
layer under autocast, checked tensor by tensor with ``saved_tensors_hooks`` in tests/test_cost.py). Per
token and layer, ``e`` the compute dtype's bytes (bf16: 2, fp32: 4), ``m`` a dropout mask's element
(CUDA's native dropout: a 1-byte bool; on CPU the masked tensor's own size):

- two LayerNorms: input in fp32 (autocast keeps the residual stream in fp32) and mean and rstd, ``8d + 16``;
- attention inputs Q, K, V: ``e·d·(1 + 2·T_k/T)``;
- FFN: the GELU input ``e·f``; dropout (backbone dropout on) masks after attention and FFN ``2·m·d``;
- attention scores, ``materialized`` (eager or math attention; the default: an upper bound of what any
  kernel keeps at these lengths): the fp32 softmax output ``4·a·T_k``, its cast to the compute dtype
  ``e·a·T_k`` (mixed precision), with dropout its mask ``m·a·T_k`` (and in fp32 the dropout output
  ``4·a·T_k``); ``fused`` (SDPA's flash / memory-efficient kernels): the output ``e·d``, the
  log-sum-exp ``4·a`` and the additive mask ``e·T_k`` instead;
- once per token: the embeddings' LayerNorm, ``4d + 8``, and with dropout its mask ``m·d``;
- per pass, mixed precision only: the compute-dtype copies of the frozen fp32 weight matrices that
  autocast makes and backward reuses, ``e·P``.

A step's peak is the static part (fp32 weights, each seed's prompt and head with gradient and AdamW's
two moments) plus, for the seeds sharing the backbone pass, the graphs alive at once (``Passes.live_graphs``,
two for PTP: the clean and the perturbed pass) plus one layer's saved activations for the gradients being
formed (choice). It must fit ``budget`` × the device memory (choice: 85 %, the rest for the CUDA context and
the allocator's fragmentation). ``fit`` finds the fewest micro-batches of whole examples (gradient
accumulation, for objectives whose loss is a mean over examples: ``run.train.micro_batch_size``, which
the model reads when it is set and otherwise names) and, if one example is still too large, the choices
per chunk that would fit (it would take one more forward without gradient per step); a step that needs
choice chunks, which the training loop does not have, or that fits no way is flagged, as is a landscape
whose one batch does not fit.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from prompttune import paths
from prompttune.config import Params, RunConfig, Stage, StageConfig, TrainConfig, expand_stages, split_cell
from prompttune.errors import PromptTuneError
from prompttune.tasks.base import FileSize, SplitSize

if TYPE_CHECKING:
    from prompttune.objectives.base import Passes
    from prompttune.splits import Take

GIB = 2**30
Precision = Literal["bf16", "fp16", "fp32"]
Attention = Literal["materialized", "fused"]
ELEMENT = {"bf16": 2, "fp16": 2, "fp32": 4}


# --- what runs where ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Device:
    """A device as the cost model sees it: memory, dense peak throughput per precision, the sustained
    share of it (``mfu``) and the share of memory a job may plan for (``budget``)."""

    name: str
    gpu: bool
    memory_gib: float
    peak_tflops: dict[str, float]
    mfu: float = 0.35
    budget: float = 0.85
    dropout_mask_bytes: int | None = field(
        default=1, metadata={"help": "bytes per dropout-mask element; None: the masked tensor's (CPU)"}
    )

    @property
    def budget_bytes(self) -> float:
        return self.memory_gib * GIB * self.budget

    def seconds(self, flops: float, precision: str) -> float:
        return flops / (self.peak_tflops[precision] * 1e12 * self.mfu)


H100 = Device(  # NVIDIA H100 Tensor Core GPU datasheet, SXM5: dense (the "with sparsity" figures halved)
    name="NVIDIA H100 SXM 80GB",
    gpu=True,
    memory_gib=80.0,
    peak_tflops={"bf16": 989.4, "fp16": 989.4, "fp32": 66.9},
)


A100 = Device(  # NVIDIA A100 Tensor Core GPU datasheet, SXM 80GB: dense bf16/fp16, FP32 without TF32
    name="NVIDIA A100 SXM 80GB",
    gpu=True,
    memory_gib=80.0,
    peak_tflops={"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},
)

GPUS = {"h100": H100, "a100": A100}  # the `gpu_type` a cluster profile may declare
DEFAULT_GPU = "h100"


@dataclass(frozen=True)
class Cluster:
    """The jobs' machines and the margins on what they request (all choices)."""

    gpu: Device = H100
    gpu_job_cpus: int = 4  # host threads of a GPU job: collation, pinned copies, tokenising once
    cpu_job_cpus: int = 8  # torch threads of a CPU job (Snakemake caps them at --cores locally)
    cpu_tflops_per_core: float = 0.05  # sustained: 55 GFLOP/s per thread measured (benchmarks/README.md)
    safety: float = 1.5  # requested runtime = safety × estimate
    startup_s: float = 120.0  # imports, CUDA start, the backbone read from a shared file system
    min_runtime_min: int = 10
    host_base_gib: float = 3.0  # Python, torch, transformers and the CUDA host side of one process
    host_bytes_per_token: int = 64  # a tokenised sequence's ids and masks in memory, per token

    def cpu(self) -> Device:
        rate = self.cpu_job_cpus * self.cpu_tflops_per_core
        return Device(
            name=f"CPU ({self.cpu_job_cpus} threads)",
            gpu=False,
            memory_gib=math.inf,
            peak_tflops={"bf16": rate, "fp16": rate, "fp32": rate},
            mfu=1.0,
            budget=1.0,
            dropout_mask_bytes=None,
        )


DEFAULT = Cluster()


@dataclass(frozen=True)
class Node:
    """The machines a cluster profile declares (pipelines/profiles/slurm/config.yaml, default-resources):
    the GPU model the runtimes are costed on, the CPUs and memory of the smallest node a job may land on
    (0: not declared, no cap) and the GPU jobs' partition (None: the profile's ``slurm_partition``)."""

    gpu_model: str = DEFAULT_GPU
    cpus: int = 0
    mem_mb: int = 0
    gpu_partition: str | None = None

    def cluster(self) -> Cluster:
        """The cost model's machines: the declared GPU, and threads per job no more than a node has."""
        gpu = GPUS.get(self.gpu_model.lower())
        if gpu is None:
            known = ", ".join(GPUS)
            raise PromptTuneError(f"gpu_type {self.gpu_model!r} is none of {known} (prompttune.cost.GPUS)")
        if self.cpus < 0 or self.mem_mb < 0:
            raise PromptTuneError(f"node_cpus {self.cpus} and node_mem_mb {self.mem_mb} must be positive")
        cap = self.cpus or math.inf
        return dataclasses.replace(
            DEFAULT,
            gpu=gpu,
            gpu_job_cpus=int(min(DEFAULT.gpu_job_cpus, cap)),
            cpu_job_cpus=int(min(DEFAULT.cpu_job_cpus, cap)),
        )

    def mem_request(self, job: JobCost, attempt: int) -> int:
        """``job.mem_mb`` × the attempt (a job killed for memory asks for more on its retry), at most a node's
        memory; a job whose first request is more than a node has stops at submission with one line."""
        if self.mem_mb and job.mem_mb > self.mem_mb:
            raise PromptTuneError(
                f"{job.rule} {job.key} needs {job.mem_mb} MB of host memory, more than a node's "
                f"{self.mem_mb} MB (node_mem_mb in the cluster profile)"
            )
        wanted = job.mem_mb * attempt
        return min(wanted, self.mem_mb) if self.mem_mb else wanted


def needs_gpu(run: RunConfig) -> bool:
    """Choice: a job gets a GPU when its backbone is not one of the embedded CPU backbones and its
    ``train.device`` allows one (``auto``), or when ``train.device`` names one."""
    from prompttune.backbone import EMBEDDED

    device = run.train.device
    return device.startswith("cuda") or (device == "auto" and run.backbone not in EMBEDDED)


def run_precision(requested: str, device: Device) -> Precision:
    """What ``train.precision`` resolves to on ``device`` (as prompttune.precision does on a GPU with
    bf16; choice: a CPU job is costed in fp32)."""
    if requested != "auto":
        return requested  # type: ignore[return-value]
    return "bf16" if device.gpu else "fp32"


# --- the backbone ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Shape:
    """A backbone's sizes; ``params`` counts every parameter (no pooler: ``load_backbone`` drops it)."""

    name: str
    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab: int
    params: int

    @property
    def matrix_params(self) -> int:
        """``P``: the weight matrices every token goes through (attention and FFN, every layer)."""
        return self.layers * (4 * self.hidden**2 + 2 * self.hidden * self.ffn)


KNOWN_SHAPES = {  # hub config.json of the backbones the profiles name, for planning before any download
    "roberta-large": Shape("roberta-large", layers=24, hidden=1024, heads=16, ffn=4096, vocab=50265,
                           params=354_310_144),
}  # fmt: skip


def shape_of(config: Any, name: str) -> Shape:
    """The ``Shape`` of a transformers config (BERT, RoBERTa, ALBERT: shared layers are counted once)."""
    d, f, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    width = getattr(config, "embedding_size", d)  # ALBERT's word embeddings are narrower
    rows = config.vocab_size + config.max_position_embeddings + config.type_vocab_size
    embeddings = rows * width + 2 * width + (width * d + d if width != d else 0)
    layer = 4 * (d * d + d) + 2 * d * f + f + d + 4 * d
    distinct = getattr(config, "num_hidden_groups", layers) if config.model_type == "albert" else layers
    params = embeddings + distinct * layer
    return Shape(name, layers, d, config.num_attention_heads, f, config.vocab_size, params)


def backbone_shape(name: str) -> Shape:
    """From the backbone's config on this machine (embedded, a local folder, the hub cache), else from
    ``KNOWN_SHAPES``; anything else is a one-line error."""
    from prompttune.config import local_backbone_config

    config = local_backbone_config(name)
    if config is not None:
        return shape_of(config, name)
    if name in KNOWN_SHAPES:
        return KNOWN_SHAPES[name]
    record = f"backbones/{name.replace('/', '--')}.json"
    raise PromptTuneError(
        f"cost: backbone {name!r} is neither on this machine nor in prompttune.cost.KNOWN_SHAPES; "
        f"prefetch it first (`snakemake {record}`) or add its sizes there"
    )


# --- data sizes ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CellSizes:
    """The three splits of a cell, the first examples of the report split a landscape reads, and where the
    numbers come from (``data/<cell>`` or ``table``)."""

    train: SplitSize
    select: SplitSize
    report: SplitSize
    report_head: SplitSize
    source: str


def _draw(file: FileSize, units: int) -> SplitSize:
    per_unit = file.examples / (file.units or file.examples)
    return SplitSize(round(units * per_unit), file.choices_max, file.choices_mean)


def table_sizes(setting: str, task: str, head: int) -> CellSizes:
    """A cell's split sizes from the official file sizes its task declares (``Task.sizes``), by the rule
    prompttune/splits.py splits by (``splits.plan``; content overlaps between files, which splits.py
    removes, are not subtracted)."""
    from prompttune.splits import parse_setting, plan
    from prompttune.tasks import get_task

    task_ = get_task(task)
    files = task_.sizes
    full = files.get("full_train")
    rule = plan(parse_setting(setting), task_, (full.units or full.examples) if full else 0)

    def size(take: Take, other: Take) -> SplitSize:
        file = files[take.source]
        if take.units is not None:
            return _draw(file, take.units)
        if other.source == take.source and other.units is not None:  # the rest of a shared file
            return _draw(file, (file.units or file.examples) - other.units)
        return file

    report = files[rule.report.source]
    first = SplitSize(min(head, report.examples), report.choices_max, report.choices_mean)
    train, select = size(rule.train, rule.select), size(rule.select, rule.train)
    return CellSizes(*(_plain(s) for s in (train, select, report)), first, "table")


def _plain(size: SplitSize) -> SplitSize:
    return SplitSize(size.examples, size.choices_max, size.choices_mean)


def data_sizes(root: Path, setting: str, task: str, data_seed: int, head: int) -> CellSizes:
    """A cell's split sizes from its fetched files (``prompttune.splits.load_splits``)."""
    from prompttune.splits import load_splits
    from prompttune.tasks import get_task

    task_ = get_task(task)
    splits = load_splits(root, setting, task_, data_seed)

    def size(examples: list[Any]) -> SplitSize:
        if task_.kind != "multiple_choice":
            return SplitSize(len(examples))
        counts = [len(example.choices) for example in examples]
        return SplitSize(len(examples), max(counts), sum(counts) / len(counts))

    parts = (splits.train, splits.select, splits.report, splits.report[:head])
    return CellSizes(*(size(part) for part in parts), str(root))


def cell_sizes(cell: str, data_seed: int, head: int, data_root: Path | None = None) -> CellSizes:
    """``data_sizes`` when every file the cell reads is in ``data_root`` (default ``data/<cell>``), else
    ``table_sizes``."""
    from prompttune.splits import required_files

    setting, task = split_cell(cell)
    root = data_root if data_root is not None else paths.data_dir(cell)
    if all((root / file).is_file() for file in required_files(setting, task)):
        return data_sizes(root, setting, task, data_seed, head)
    return table_sizes(setting, task, head)


# --- FLOPs and memory of a pass -------------------------------------------------------------------------


def lengths(run: RunConfig) -> tuple[int, int]:
    """``(T, T_k)`` of a run's sequences, as its base declares them (module docstring)."""
    from prompttune.bases import BASES

    return BASES.get(run.base).sequence_lengths(run.prompt, run.train.max_length)


def forward_flops(shape: Shape, t_q: int, t_k: int) -> int:
    """``F`` of one sequence: ``T·(2P + 4·L·d·T_k)``."""
    return t_q * (2 * shape.matrix_params + 4 * shape.layers * shape.hidden * t_k)


def backward_flops(shape: Shape, t_q: int, t_k: int) -> int:
    """``B`` of one sequence through the frozen backbone, to its input: ``T·(2P + 8·L·d·T_k)``."""
    return t_q * (2 * shape.matrix_params + 8 * shape.layers * shape.hidden * t_k)


def hotflip_flops(shape: Shape, t_q: int) -> int:
    """HotFlip's first-order gains of one sequence against the whole vocabulary: ``2·T·d·V`` (fp32)."""
    return 2 * t_q * shape.hidden * shape.vocab


@dataclass(frozen=True)
class Memory:
    """How a pass keeps its activations: the precision, backbone dropout, the attention kernel's
    bookkeeping and the size of a dropout mask element (None: the masked tensor's own)."""

    precision: Precision
    dropout: bool
    attention: Attention = "materialized"
    mask_bytes: int | None = 1

    def mask(self, element: int) -> int:
        return self.mask_bytes if self.mask_bytes is not None else element


def layer_bytes(shape: Shape, t_q: int, t_k: int, memory: Memory) -> int:
    """Bytes one layer saves for backward, per sequence (module docstring, term by term)."""
    d, f, a = shape.hidden, shape.ffn, shape.heads
    e = ELEMENT[memory.precision]
    mixed = e < 4
    per_token = 2 * (4 * d + 2 * 4) + e * d + e * f  # LayerNorm inputs and statistics, Q, GELU input
    per_token += 2 * memory.mask(e) * d if memory.dropout else 0
    kv = 2 * e * d * t_k  # K and V, prefix included
    if memory.attention == "materialized":
        scores = 4 + (e if mixed else 0)  # fp32 softmax output (+ its cast for AV)
        if memory.dropout:
            scores += memory.mask(4) + (0 if mixed else 4)  # the mask (+ fp32: the dropout output)
        return t_q * (per_token + scores * a * t_k) + kv
    return t_q * (per_token + e * d + 4 * a + e * t_k) + kv


def saved_bytes(shape: Shape, sequences: float, t_q: int, t_k: int, memory: Memory) -> float:
    """Bytes autograd keeps for the backward of one forward pass over ``sequences`` sequences (0: none)."""
    if not sequences:
        return 0.0
    e = ELEMENT[memory.precision]
    embeddings = t_q * (4 * shape.hidden + 8 + (memory.mask(4) * shape.hidden if memory.dropout else 0))
    weights = e * shape.matrix_params if e < 4 else 0
    return sequences * (shape.layers * layer_bytes(shape, t_q, t_k, memory) + embeddings) + weights


def nograd_bytes(shape: Shape, sequences: float, t_q: int, t_k: int, precision: Precision) -> float:
    """Peak of a forward pass without gradient (choice): the fp32 hidden states in and out of a layer
    and its residual, plus the larger of the attention's (scores, softmax, its cast; Q, K, V) and the
    FFN's (intermediate before and after GELU) temporaries."""
    d, e, a = shape.hidden, ELEMENT[precision], shape.heads
    attention = (2 * e + 4) * a * t_k + 3 * e * d
    return sequences * t_q * (3 * 4 * d + max(attention, 2 * e * shape.ffn))


# --- one training step ------------------------------------------------------------------------------


def passes(run: RunConfig) -> Passes:
    """The pass structure the run's objective declares for its options (``Objective.passes``)."""
    from prompttune.objectives.base import objective_passes

    return objective_passes(run.objective, run.objective_options)


def configured_micro_batch(train: TrainConfig) -> int:
    """``run.train.micro_batch_size`` (0: the whole batch in one pass). Read with a default: the field
    comes with the training loop's gradient accumulation, built elsewhere."""
    return train.micro_batch_size


def trainable_params(run: RunConfig, shape: Shape, classes: int) -> int:
    """What AdamW trains: the prompt (as its base declares it), the head, and the objective's own
    parameters (as it declares them)."""
    from prompttune.bases import BASES
    from prompttune.objectives.base import OBJECTIVES, objective_config

    d = shape.hidden
    prompt = BASES.get(run.base).prompt_parameters(run.prompt, shape.layers, d)
    options = objective_config(run.objective, run.objective_options)
    return prompt + d * classes + classes + OBJECTIVES.get(run.objective).trainable_parameters(options, d)


def step_peak(run: RunConfig, shape: Shape, memory: Memory, sequences: float, seeds: int = 1) -> float:
    """Peak device bytes of a training step whose backbone pass holds ``sequences`` sequences (of every seed
    sharing it): fp32 weights, ``seeds`` prompts and heads with gradient and AdamW's two moments, the graphs
    alive at once, and one layer's saved activations for the gradients being formed."""
    from prompttune.tasks import get_task

    t_q, t_k = lengths(run)
    static = 4 * shape.params + 16 * seeds * trainable_params(run, shape, get_task(run.task).num_classes)
    graphs = passes(run).live_graphs * saved_bytes(shape, sequences, t_q, t_k, memory)
    return static + graphs + sequences * layer_bytes(shape, t_q, t_k, memory)


@dataclass(frozen=True)
class StepPlan:
    """How a step fits: examples per micro-batch and how many, choices per chunk (None: all at once),
    the peak in bytes, whether it fits the budget with what the training loop does, and what to know."""

    micro_batch_size: int
    micro_batches: int
    choice_chunk: int | None
    peak_bytes: float
    fits: bool
    note: str = ""


def fit(
    batch: int,
    choices: int,
    peak: Callable[[int, int], float],
    budget: float,
    separable: bool,
    configured: int = 0,
) -> StepPlan:
    """The fewest micro-batches of whole examples whose step ``peak(examples, choices per pass)`` fits
    ``budget``, with the ``train.micro_batch_size`` the training loop then needs in ``note``; a configured
    micro-batch size is taken as it is and only checked. Past one example, the fewest chunks of its choices
    that would fit are reported, and the step is flagged: the training loop has no choice chunks."""

    def plan(size: int, chunk: int | None, fits: bool, note: str) -> StepPlan:
        return StepPlan(size, math.ceil(batch / size), chunk, peak(size, chunk or choices), fits, note)

    if configured:
        size = min(configured, batch)
        fits = peak(size, choices) <= budget
        return plan(size, None, fits, "" if fits else "the configured micro_batch_size does not fit")
    for count in range(1, (batch if separable else 1) + 1):
        size = math.ceil(batch / count)
        if peak(size, choices) <= budget:
            return plan(size, None, True, f"needs train.micro_batch_size: {size}" if count > 1 else "")
    if not separable:
        return plan(batch, None, False, "the objective couples a batch's examples: no micro-batches")
    for count in range(2, choices + 1):
        chunk = math.ceil(choices / count)
        if peak(1, chunk) <= budget:
            return plan(1, chunk, False, f"one example does not fit; chunks of {chunk} choices would")
    return plan(1, 1, False, "one choice of one example does not fit")


# --- jobs ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobCost:
    """One pipeline job: what it computes, on what, and the resources it asks for.

    ``gpu_hours`` is the estimate at the assumed sustained throughput (no safety factor, no start);
    ``runtime_min`` the request (``Cluster.safety`` × (estimate + start), at least ``min_runtime_min``);
    ``peak_memory_gib`` the device memory of its largest step (host memory for a CPU job, which
    ``mem_mb`` then includes). Micro-batching and choice chunks as ``fit`` chose them."""

    rule: str
    key: str
    seeds: int
    device: str
    gpu: bool
    precision: str
    steps: int
    tokens_per_step: int
    flops: float
    gpu_hours: float
    peak_memory_gib: float
    micro_batch_size: int
    micro_batches: int
    choice_chunk: int | None
    fits: bool
    note: str
    runtime_min: int
    cpus: int
    mem_mb: int
    sizes: str
    work_min: float  # the request before the minimum: safety × (estimate + start), in minutes

    @property
    def work_request_min(self) -> int:
        """Whole minutes of ``work_min``: what the job adds to a group job's runtime (``group_jobs``)."""
        return math.ceil(self.work_min)

    def resources(self) -> dict[str, int]:
        """Snakemake's ``resources`` of the job (the SLURM executor: ``-t``, ``--mem``, ``--gpus``)."""
        return {"runtime": self.runtime_min, "mem_mb": self.mem_mb, "gpu": int(self.gpu)}


LOCAL_JOB = {"runtime": 30, "mem_mb": 4096, "gpu": 0}  # fetch, prefetch, aggregate, report (choice)


def _work(cluster: Cluster, seconds: float) -> float:
    return cluster.safety * (seconds + cluster.startup_s) / 60


def _request(cluster: Cluster, seconds: float) -> int:
    return max(cluster.min_runtime_min, math.ceil(_work(cluster, seconds)))


def _host_mb(cluster: Cluster, shape: Shape, tokens: float, device_peak: float, gpu: bool) -> int:
    """Host memory: the process, the backbone twice while it loads, the tokenised splits, and on a CPU the
    activations too; 25 % margin, in whole GiB (choice)."""
    total = cluster.host_base_gib * GIB + 2 * 4 * shape.params + cluster.host_bytes_per_token * tokens
    total += 0 if gpu else device_peak
    return math.ceil(1.25 * total / GIB) * 1024


def _tokens(sizes: CellSizes, t_q: int) -> float:
    return t_q * sum(s.examples * s.choices_mean for s in (sizes.train, sizes.select, sizes.report))


def train_job(config: StageConfig, seeds: int, sizes: CellSizes, cluster: Cluster = DEFAULT) -> JobCost:
    """A training job of ``seeds`` seeds of a stage (every seed: DVC's stage; one: a Snakemake job per
    seed)."""
    import torch

    from prompttune.train import evaluation_interval, number_of_steps, stacks, uses_feature_cache

    run = config.run
    shape = backbone_shape(run.backbone)
    gpu = needs_gpu(run)
    device = cluster.gpu if gpu else cluster.cpu()
    precision = run_precision(run.train.precision, device)
    memory = Memory(precision, run.train.backbone_dropout, mask_bytes=device.dropout_mask_bytes)
    t_q, t_k = lengths(run)
    n_train = sizes.train.examples
    batch, choices = min(run.train.batch_size, n_train), sizes.train.choices_max
    cap, every = number_of_steps(run, n_train), evaluation_interval(run, n_train)
    evaluations = 1 + cap // every + (cap % every != 0)
    step = passes(run)
    forward, backward = forward_flops(shape, t_q, t_k), backward_flops(shape, t_q, t_k)
    runs = [dataclasses.replace(run, seed=s) for s in range(seeds)]
    together = seeds if stacks(runs, torch.device("cuda" if gpu else "cpu")) else 1
    cached = uses_feature_cache(run)

    def peak(examples: int, chunk: int) -> float:
        if cached:
            return step_peak(run, shape, memory, 0, seeds)
        return step_peak(run, shape, memory, together * examples * chunk, seeds)

    plan = fit(batch, choices, peak, device.budget_bytes, step.separable, configured_micro_batch(run.train))
    if cached:  # the backbone runs once over every split; the head trains on its output
        rows = sum(s.examples * s.choices_mean for s in (sizes.train, sizes.select, sizes.report))
        flops_mixed, flops_fp32 = rows * forward, 0.0
    else:
        sequences = batch * choices
        per_step = sequences * (step.forward * forward + step.backward * backward)
        per_step += sequences * forward if plan.choice_chunk else 0  # chunks: every choice's logits first
        evaluated = (evaluations + 1) * sizes.select.examples * sizes.select.choices_mean
        evaluated += sizes.report.examples * sizes.report.choices_mean
        negatives = n_train * forward_flops(shape, run.train.max_length, run.train.max_length)
        flops_mixed = seeds * (cap * per_step + evaluated * forward + (negatives if step.negatives else 0))
        flops_fp32 = seeds * cap * (sequences * hotflip_flops(shape, t_q) if step.hotflip else 0)
    seconds = device.seconds(flops_mixed, precision) + device.seconds(flops_fp32, "fp32")
    eval_rows = run.train.eval_batch_size * max(sizes.select.choices_max, sizes.report.choices_max)
    eval_peak = 4 * shape.params + nograd_bytes(shape, eval_rows, t_q, t_k, precision)
    eval_fits = eval_peak <= device.budget_bytes
    note = "; ".join(
        part for part in (plan.note, "" if eval_fits else "an evaluation batch does not fit") if part
    )
    return JobCost(
        rule="train",
        key=config.stage.key,
        seeds=seeds,
        device=device.name,
        gpu=gpu,
        precision=precision,
        steps=cap,
        tokens_per_step=batch * choices * t_q,
        flops=flops_mixed + flops_fp32,
        gpu_hours=seconds / 3600 if gpu else 0.0,
        peak_memory_gib=max(plan.peak_bytes, eval_peak) / GIB,
        micro_batch_size=plan.micro_batch_size,
        micro_batches=plan.micro_batches,
        choice_chunk=plan.choice_chunk,
        fits=plan.fits and eval_fits,
        note=note,
        runtime_min=_request(cluster, seconds),
        work_min=_work(cluster, seconds),
        cpus=cluster.gpu_job_cpus if gpu else cluster.cpu_job_cpus,
        mem_mb=_host_mb(cluster, shape, _tokens(sizes, t_q), max(plan.peak_bytes, eval_peak), gpu),
        sizes=sizes.source,
    )


def landscape_job(
    spec: dict[str, Any], run: RunConfig, sizes: CellSizes, cluster: Cluster = DEFAULT
) -> JobCost:
    """One (cell, method) of the landscape study (``configs/landscape/<cell>/<method>.json`` as ``spec``),
    every seed of it, on the main run's config ``run``: fp32, eval mode (landscape.py)."""
    shape = backbone_shape(run.backbone)
    gpu = needs_gpu(run)
    device = cluster.gpu if gpu else cluster.cpu()
    t_q, t_k = lengths(run)
    head = sizes.report_head
    sequences = head.examples * head.choices_max
    forward, backward = forward_flops(shape, t_q, t_k), backward_flops(shape, t_q, t_k)
    seeds = len(spec["runs"])
    flops = seeds * sequences * ((spec["points"] ** 2 + 2) * forward + backward)
    memory = Memory("fp32", dropout=False, mask_bytes=device.dropout_mask_bytes)
    static = 4 * shape.params

    def peak(examples: int, chunk: int) -> float:
        rows = examples * chunk
        return (
            static + saved_bytes(shape, rows, t_q, t_k, memory) + rows * layer_bytes(shape, t_q, t_k, memory)
        )

    chunk = min(head.examples, spec["chunk"])  # landscape.py's passes, piece by piece
    plan = fit(chunk, head.choices_max, peak, device.budget_bytes, separable=True)
    if plan.micro_batches > 1 or plan.choice_chunk:
        plan = dataclasses.replace(
            plan, fits=False, note=f"a chunk of {chunk} examples of the landscape's passes does not fit"
        )
    seconds = device.seconds(flops, "fp32")
    grid_peak = static + nograd_bytes(shape, chunk * head.choices_max, t_q, t_k, "fp32")
    return JobCost(
        rule="landscape",
        key=f"{spec['cell']}/{spec['method']}",
        seeds=seeds,
        device=device.name,
        gpu=gpu,
        precision="fp32",
        steps=spec["points"] ** 2 + 2,
        tokens_per_step=sequences * t_q,
        flops=flops,
        gpu_hours=seconds / 3600 if gpu else 0.0,
        peak_memory_gib=max(peak(chunk, head.choices_max), grid_peak) / GIB,
        micro_batch_size=plan.micro_batch_size,
        micro_batches=plan.micro_batches,
        choice_chunk=plan.choice_chunk,
        fits=plan.fits,
        note=plan.note,
        runtime_min=_request(cluster, seconds),
        work_min=_work(cluster, seconds),
        cpus=cluster.gpu_job_cpus if gpu else cluster.cpu_job_cpus,
        mem_mb=_host_mb(cluster, shape, _tokens(sizes, t_q), 0 if gpu else peak(1, 1), gpu),
        sizes=sizes.source,
    )


HVP_GRADIENTS = 2  # a Hessian-vector product by double backward ≈ 2 gradient evaluations (choice)


def mi_check_job(
    spec: dict[str, Any], run: RunConfig, sizes: CellSizes, cluster: Cluster = DEFAULT
) -> JobCost:
    """The MI-convergence check (``configs/mi_check.json`` as ``spec``) on the backbone of its cell's run
    ``run``: per real-model run (each seed and the two negative controls) ``L̂`` by power iteration, then
    ``steps`` full-batch gradient steps, and the held-out bounds before and after; fp32 (mi_check.py)."""
    from prompttune import mi_check

    shape = backbone_shape(spec["backbone"])
    gpu = needs_gpu(run)
    device = cluster.gpu if gpu else cluster.cpu()
    size = 8 if spec.get("quick") else mi_check.REAL_EXAMPLES
    iters = 5 if spec.get("quick") else mi_check.REAL_POWER_ITERS
    t = mi_check.REAL_MAX_LENGTH + mi_check.REAL_PROMPT_LENGTH
    rows = min(size, sizes.train.examples) * sizes.train.choices_max
    held = min(size, sizes.select.examples) * sizes.select.choices_max
    gradient = rows * (forward_flops(shape, t, t) + backward_flops(shape, t, t))
    runs = len(spec["seeds"]) + len(mi_check.CONTROLS)
    flops = runs * (
        (HVP_GRADIENTS * iters + spec["steps"]) * gradient + 4 * held * forward_flops(shape, t, t)
    )
    memory = Memory("fp32", dropout=False, mask_bytes=device.dropout_mask_bytes)
    peak = 4 * shape.params + (1 + HVP_GRADIENTS) * saved_bytes(shape, rows, t, t, memory)
    seconds = device.seconds(flops, "fp32")
    return JobCost(
        rule="mi_check",
        key="mi_check",
        seeds=len(spec["seeds"]),
        device=device.name,
        gpu=gpu,
        precision="fp32",
        steps=runs * (iters + spec["steps"]),
        tokens_per_step=rows * t,
        flops=flops,
        gpu_hours=seconds / 3600 if gpu else 0.0,
        peak_memory_gib=peak / GIB,
        micro_batch_size=rows,
        micro_batches=1,
        choice_chunk=None,
        fits=peak <= device.budget_bytes,
        note="" if peak <= device.budget_bytes else "the full batch does not fit",
        runtime_min=_request(cluster, seconds),
        work_min=_work(cluster, seconds),
        cpus=cluster.gpu_job_cpus if gpu else cluster.cpu_job_cpus,
        mem_mb=_host_mb(cluster, shape, (rows + held) * t, 0 if gpu else peak, gpu),
        sizes=sizes.source,
    )


# --- jobs worth scheduling ------------------------------------------------------------------------------

GROUP_MINUTES = 30  # pipelines/profiles/slurm: group_minutes, the shortest job worth a submission (choice)


@dataclass(frozen=True)
class JobGroup:
    """Jobs that one cluster submission runs one after another (Snakemake's ``group``): their keys, in
    order, and the runtime the submission asks for."""

    name: str
    members: tuple[str, ...]
    runtime_min: int


def group_jobs(jobs: Sequence[tuple[str, JobCost]], target_min: float) -> dict[str, JobGroup]:
    """Short jobs of one kind (rule, GPU or not) grouped to at least ``target_min`` minutes: key → group,
    for every job in a group of two or more.

    A job is short when its request before the per-job minimum (``work_request_min``) is under the target.
    Consecutive short jobs of a kind fill a group until their requests reach the target, and a last group
    under it joins the one before (choice): no group is shorter than the target unless it holds every short
    job of its kind. A group asks for the sum of its members' requests, without the per-job minimum, which
    covers one submission's overhead."""
    kinds: dict[tuple[str, bool], list[list[tuple[str, JobCost]]]] = {}

    def minutes(members: list[tuple[str, JobCost]]) -> int:
        return sum(job.work_request_min for _, job in members)

    for key, job in jobs:
        if job.work_request_min < target_min:
            bins = kinds.setdefault((job.rule, job.gpu), [[]])
            if minutes(bins[-1]) >= target_min:
                bins.append([])
            bins[-1].append((key, job))
    groups = {}
    for (rule, gpu), bins in kinds.items():
        if len(bins) > 1 and minutes(bins[-1]) < target_min:
            tail = bins.pop()
            bins[-1].extend(tail)
        for i, members in enumerate(bins):
            if len(members) > 1:
                name = f"{rule}{'-gpu' if gpu else ''}.{i}"
                group = JobGroup(name, tuple(key for key, _ in members), minutes(members))
                groups.update(dict.fromkeys(group.members, group))
    return groups


# --- a profile ------------------------------------------------------------------------------------------


class ProfileCost:
    """Every job of a profile, costed on demand (so a cluster job that parses the Snakefile reads only its
    own cell's data): ``train(stage)``, ``landscape(cell, method)``, ``mi_check()``, ``jobs()``.
    ``per_seed``: one training job per seed (Snakemake without ``grid.stacked_jobs``)."""

    def __init__(
        self, params: Params, per_seed: bool, cluster: Cluster = DEFAULT, data_root: Path | None = None
    ) -> None:
        from prompttune.pipeline import grid_record, landscape_configs

        self.params, self.per_seed, self.cluster, self.data_root = params, per_seed, cluster, data_root
        self.stages = {config.stage: config for config in expand_stages(params)}
        self.landscapes = landscape_configs(params)
        self.mi_spec = grid_record(params, list(self.stages.values())).mi_check
        self._sizes: dict[str, CellSizes] = {}
        self._jobs: dict[str, JobCost] = {}

    def sizes(self, cell: str) -> CellSizes:
        if cell not in self._sizes:
            run = next(c.run for c in self.stages.values() if c.stage.cell == cell)
            head = self.params.studies.landscape.n_examples
            root = self.data_root / cell if self.data_root is not None else None
            self._sizes[cell] = cell_sizes(cell, run.data_seed, head, root)
        return self._sizes[cell]

    def _cached(self, key: str, make: Callable[[], JobCost]) -> JobCost:
        if key not in self._jobs:
            self._jobs[key] = make()
        return self._jobs[key]

    def train(self, stage: Stage) -> JobCost:
        config = self.stages[stage]
        seeds = 1 if self.per_seed else len(config.seeds)
        return self._cached(
            f"train {stage.key}", lambda: train_job(config, seeds, self.sizes(stage.cell), self.cluster)
        )

    def landscape(self, cell: str, method: str) -> JobCost:
        spec, run = self.landscapes[cell, method], self.stages[Stage(cell, method)].run
        return self._cached(
            f"landscape {cell}/{method}", lambda: landscape_job(spec, run, self.sizes(cell), self.cluster)
        )

    def mi_check(self) -> JobCost:
        cell = self.mi_spec["cell"]
        run = next(c.run for c in self.stages.values() if c.stage.cell == cell)
        return self._cached(
            "mi_check", lambda: mi_check_job(self.mi_spec, run, self.sizes(cell), self.cluster)
        )

    def jobs(self) -> list[tuple[str, JobCost]]:
        """Every job with its key, the output the pipelines name it by: a training job per stage (its
        headline) or per seed (its ``metrics.json``), each landscape and the MI check (their folders)."""
        train = [
            (
                str(paths.run_dir(stage, seed) / "metrics.json" if seed else paths.headline(stage)),
                self.train(stage),
            )
            for stage, config in self.stages.items()
            for seed in (config.seeds if self.per_seed else [0])
        ]
        studies = [(str(paths.landscape_dir(*pair)), self.landscape(*pair)) for pair in self.landscapes]
        return [*train, *studies, (str(paths.MI_CHECK_DIR), self.mi_check())]


def table(jobs: list[tuple[str, JobCost]], group_min: float = 0) -> str:
    """A markdown table of jobs (one row per distinct job) and the totals by rule (``summary``)."""
    head = (
        "| job | seeds | precision | steps | tokens/step | micro-batches × examples | choice chunk | "
        "peak GiB | fits | GPU-h | runtime min | mem MB | cpus | note |\n"
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |\n"
    )
    rows, seen = [], set()
    for _, job in jobs:
        if (job.rule, job.key) in seen:
            continue
        seen.add((job.rule, job.key))
        rows.append(
            f"| {job.rule} {job.key} | {job.seeds} | {job.precision} | {job.steps} | {job.tokens_per_step} | "
            f"{job.micro_batches} × {job.micro_batch_size} | {job.choice_chunk or 'all'} | "
            f"{job.peak_memory_gib:.1f} | {'yes' if job.fits else '**no**'} | {job.gpu_hours:.2f} | "
            f"{job.runtime_min} | {job.mem_mb} | {job.cpus} | {job.note} |"
        )
    return head + "\n".join(rows) + "\n\n" + summary(jobs, group_min) + "\n"


def summary(jobs: list[tuple[str, JobCost]], group_min: float = 0) -> str:
    """Totals per rule (every job counted, per-seed jobs included): jobs, the submissions they make when
    short jobs are grouped to ``group_min`` minutes (0: not grouped), GPU-hours estimated and requested as
    submitted; and the largest peak."""
    groups = group_jobs(jobs, group_min) if group_min else {}
    lines = []
    for rule in dict.fromkeys(job.rule for _, job in jobs):
        mine = [(key, job) for key, job in jobs if job.rule == rule]
        gpu_h = sum(job.gpu_hours for _, job in mine)
        asked = sum(
            job.work_request_min if key in groups else job.runtime_min for key, job in mine if job.gpu
        )
        submitted = {groups[key].name if key in groups else key for key, _ in mine}
        many = len(submitted) < len(mine)
        grouped = (
            f" in {len(submitted)} submissions (short jobs grouped to ≥ {group_min:g} min)" if many else ""
        )
        count = f"{len(mine)} job{'s' if len(mine) > 1 else ''}"
        lines.append(f"{rule}: {count}{grouped}, {gpu_h:.1f} GPU-hours estimated, {asked / 60:.1f} requested")
    largest = max((job for _, job in jobs), key=lambda job: job.peak_memory_gib)
    lines.append(f"largest peak: {largest.peak_memory_gib:.1f} GiB ({largest.rule} {largest.key})")
    unfit = sorted({f"{job.rule} {job.key}" for _, job in jobs if not job.fits})
    lines.append(f"does not fit: {', '.join(unfit) if unfit else 'none'}")
    return "\n".join(lines)
