"""Training-step throughput of the project's prompt bases against PEFT's on the same frozen backbone,
batch, sequence length and dtype, in one process: ``pt`` vs ``PromptTuningConfig`` and ``pt2`` vs
``PrefixTuningConfig`` (both without reparameterisation). A step is forward + cross-entropy on a linear
head over mean-pooled states + backward + AdamW, as in ``prompttune.train``, backbone dropout off on
both sides. Inputs are random token
ids of a fixed length (no padding), so both sides do exactly the same work.

``--random-model roberta-large`` builds a randomly initialised model of RoBERTa-large's shape (no
download; speed does not depend on the weights) for GPU measurements; with ``--peak-tflops`` the
script also prints model-FLOPs utilisation, counting 4·P·tokens per step for a frozen backbone
(forward 2·P·tokens, backward to the inputs only 2·P·tokens; attention FLOPs ignored).

    python benchmarks/peft_throughput.py --threads 2 --steps 8
    python benchmarks/peft_throughput.py --random-model roberta-large --device cuda --precision bf16 \\
        --batch-size 32 --prompt-length 8 --peak-tflops 989
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from peft import PrefixTuningConfig, PromptTuningConfig, get_peft_model
from torch import nn
from transformers import AutoModel, PreTrainedModel, RobertaConfig

from prompttune.backbone import load_backbone
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig
from prompttune.model import PromptModel
from prompttune.precision import autocast
from prompttune.tasks import get_task

Step = Callable[[], None]
RANDOM_MODELS = {
    "roberta-large": RobertaConfig(
        vocab_size=50265, hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
        intermediate_size=4096, max_position_embeddings=514, type_vocab_size=1,
    ),
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", default="minilm", help="minilm (embedded), a local path or hub id")
    parser.add_argument("--random-model", choices=sorted(RANDOM_MODELS), default=None)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seq-length", type=int, default=128, help="input tokens (prompt extra)")
    parser.add_argument("--prompt-length", type=int, default=16)
    parser.add_argument("--steps", type=int, default=8, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="round-robin measurements per implementation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak, for MFU")
    return parser.parse_args()


def backbone_factory(args: argparse.Namespace) -> Callable[[], PreTrainedModel]:
    if args.random_model:
        config = RANDOM_MODELS[args.random_model]
        return lambda: AutoModel.from_config(config, attn_implementation="sdpa")
    return lambda: load_backbone(args.backbone)[0]


def project_step(base: str, args, make_backbone, batch: dict, labels: torch.Tensor, device) -> Step:
    backbone = make_backbone()
    config = RunConfig(
        setting="fewglue",
        task="CB",
        method=base,
        seed=1,
        backbone=args.backbone,
        prompt=PromptConfig(length=args.prompt_length),
        head=HeadConfig(pooling="mean", init="random"),
        train=TrainConfig(batch_size=args.batch_size, precision=args.precision),
    )
    tokenizer = _StubTokenizer(backbone.config.vocab_size)
    model = PromptModel.build(config, backbone, tokenizer, get_task("CB")).to(device).train()
    return _step(lambda: model(batch).logits, model.parameters(), labels, args, device)


def peft_step(base: str, args, make_backbone, batch: dict, labels: torch.Tensor, device) -> Step:
    backbone = make_backbone()
    cls = PromptTuningConfig if base == "pt" else PrefixTuningConfig
    model = get_peft_model(
        backbone, cls(task_type="FEATURE_EXTRACTION", num_virtual_tokens=args.prompt_length)
    )
    model = model.to(device).eval()  # backbone dropout off, as the project's default (gradients still flow)
    head = nn.Linear(backbone.config.hidden_size, 3).to(device)
    mask = batch["attention_mask"].unsqueeze(-1).float()

    def logits() -> torch.Tensor:
        hidden = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
        hidden = hidden[:, -batch["input_ids"].shape[1] :]  # drop virtual-token positions (prompt tuning)
        return head((hidden * mask).sum(1) / mask.sum(1))

    return _step(logits, [*model.parameters(), *head.parameters()], labels, args, device)


def _step(logits: Callable[[], torch.Tensor], params, labels, args, device) -> Step:
    trainable = [p for p in params if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)

    def step() -> None:
        with autocast(device, args.precision):
            loss = F.cross_entropy(logits().float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


class _StubTokenizer:
    """What PromptModel asks a tokenizer for, for random inputs: no label words (head init random)."""

    mask_token_id = None
    all_special_ids: list[int] = []

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size


def timed(step: Step, args, device: torch.device) -> list[float]:
    times = []
    for i in range(args.warmup + args.steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tick = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= args.warmup:
            times.append(time.perf_counter() - tick)
    return times


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    make_backbone = backbone_factory(args)
    vocab = make_backbone().config.vocab_size
    ids = torch.randint(1000, vocab - 1, (args.batch_size, args.seq_length))
    batch = {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids).to(device),
        "token_type_ids": torch.zeros_like(ids).to(device),
        "text_mask": torch.ones_like(ids, dtype=torch.bool).to(device),
        "labels": torch.zeros(args.batch_size, dtype=torch.long).to(device),
    }
    labels = batch["labels"]
    n_params = sum(p.numel() for p in make_backbone().parameters())
    name = args.random_model or args.backbone
    print(
        f"# {name} ({n_params / 1e6:.1f} M params, frozen), batch {args.batch_size}, {args.seq_length} tokens"
        f" + prompt {args.prompt_length}, {args.precision}, device {device}"
        f"{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''},"
        f" torch threads {torch.get_num_threads()}, {args.warmup} warm-up + {args.steps} timed steps"
        f" × {args.repeats} round-robin repeats"
    )
    print(
        f"{'base':5} {'project ex/s':>13} {'PEFT ex/s':>11} {'ratio':>7}"
        + ("   MFU (project)" if args.peak_tflops else "")
    )
    for base in ("pt", "pt2"):
        steps = {
            "project": project_step(base, args, make_backbone, batch, labels, device),
            "peft": peft_step(base, args, make_backbone, batch, labels, device),
        }
        times: dict[str, list[float]] = {key: [] for key in steps}
        for _ in range(args.repeats):
            for key, step in steps.items():
                times[key] += timed(step, args, device)
        rate = {key: args.batch_size / statistics.median(value) for key, value in times.items()}
        line = f"{base:5} {rate['project']:13.1f} {rate['peft']:11.1f} {rate['project'] / rate['peft']:7.2f}"
        if args.peak_tflops:
            tokens = args.batch_size * (args.seq_length + args.prompt_length)
            flops = 4 * n_params * tokens * rate["project"] / args.batch_size
            line += f"   {100 * flops / (args.peak_tflops * 1e12):.1f} %"
        print(line)


if __name__ == "__main__":
    main()
