"""Empirical, falsifiable check of InfoPrompt's theory claim (IP-5: gradient descent can train the MI loss).

The theorem's statement could not be obtained (docs/methods.md#mi-convergence-check), so the claim is
tested in two parts, each with negative controls that must fail (choice):

1. **Synthetic problems on the project's own losses, with known answers.** The head loss
   ``L_head(P) + (λ/2)‖P‖²`` over the prompt P (head, token embeddings fixed) and the representation loss
   ``L_rep(W_c) + (λ/2)‖W_c‖²`` over the critic's context matrix (prompt and representations fixed) are
   computed by ``prompttune.objectives.infoprompt`` itself. Both are strongly convex: their minimisers
   are computed independently (Newton's method on numpy re-implementations of the two formulas: ``p̄*``
   then P* = every row p̄*; ``c*`` then ``W* = c*·p̄ᵀ/‖p̄‖²``). ``L̂`` = the largest power-iteration estimate
   (autograd Hessian-vector products) along the path of a reference run, checked against the exact
   Hessian. Checks for GD at ``η = c/L̂``, c ∈ {0.5, 1, 1.9}: monotone decrease, ``‖∇f‖ → 0`` (final ≤ 1e-6
   of initial), a linear rate of ``f − f*`` no worse than ``1 − 2λη(1 − L̂η/2)`` (descent lemma + strong
   convexity), the curvature met on the way ≤ L̂, and the run **reaches the independent minimiser** and
   its value. Controls that must fail: GD at 2.5/L̂ (the problems are scaled so the curvature at the
   optimum is ≥ 0.8·L̂, which makes that step unstable), and the same GD on the losses with a
   **sign-flipped critic** and with the **wrong positive index** (the first negative rewarded instead),
   which must not reach the true minimiser.
2. **Real model.** Frozen backbone, base ``pt`` (16 ``vocab``-initialised prompt vectors), fixed head,
   eval mode; the prompt and ``W_c`` trained by full-batch GD on ``L_head + L_rep`` alone over the
   cell's training split (inputs truncated to 32 tokens), one run per seed at ``η = 1/L̂`` (``L̂`` from
   power iteration at init). Checks: the training loss is non-increasing; the gradient norm ends ≤ 0.1 ×
   its largest value along the run; and — not the loss restated — on **held-out** examples (the selection
   split) both InfoNCE bounds ``log(N+1) − L``, computed by an independent implementation of the paper's
   critic, rise. Controls (first seed): the sign-flipped and wrong-positive contrasts trained the same way;
   their held-out bounds must not both rise.

Every check is ``{"name", "role", "passed", "steps", "measured", "threshold"}`` with ``role`` ``check``
(must pass) or ``control`` (must fail). ``steps`` is the number of GD steps taken before the last iterate
the check judged: a trajectory check on a run's iterates x_0 … x_{K−1} after K − 1 (a synthetic run
records K = 600 iterates, fewer when its gradient is exactly 0 or a value is not finite; a real run
``spec["steps"]``), the held-out bounds after every step of the run, the curvature met on the way after
the last iterate it was sampled at, ``L̂`` against the exact Hessian and the curvature at the optimum
after 0 (no run). ``verify`` writes ``checks.json`` — ``claim``,
``computed_by`` (git revision and package versions, ``prompttune.results.code_provenance``), ``checks``,
``synthetic`` (the problems' summaries, η factors, steps) and ``real`` (settings and per-run
trajectories, or why it was skipped); no timing, so a rerun of the same code gives the same bytes — and
``synthetic.png`` and ``real.png``. The claims table's IP-5 verdict is ``reproduced`` only when both
parts ran, every check passed and every control failed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from matplotlib.figure import Figure
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import PreTrainedTokenizerBase

from prompttune.backbone import embedding_to_hidden, load_backbone
from prompttune.batches import Batch, collate
from prompttune.config import HeadConfig, PromptConfig, RunConfig, TrainConfig, split_cell
from prompttune.data.fetch import verify as verify_data
from prompttune.io import atomic_write_bytes, atomic_write_json, read_json
from prompttune.model import PromptModel
from prompttune.objectives import infoprompt
from prompttune.objectives.infoprompt import Contrast, InfoPrompt, InfoPromptConfig, example_rows
from prompttune.progress import Progress, counted, silent
from prompttune.results import code_provenance, code_sha256
from prompttune.splits import load_splits, required_files
from prompttune.tasks import get_task
from prompttune.tokens import encode_cached

if TYPE_CHECKING:  # transformers' modeling module takes seconds to import: type hints only
    from transformers import PreTrainedModel

Check = dict[str, Any]
LossFn = Callable[[], torch.Tensor]

ETA_FACTORS = (0.5, 1.0, 1.9, 2.5)  # η·L̂ of the synthetic runs; 2.5 is the control that must fail
CONTROLS = {"sign_flipped_critic": Contrast(sign=-1.0), "wrong_positive_index": Contrast(positive=1)}
HEAD_SWEEP = ((8, 4), (32, 16))  # (d, negatives per example)
REP_SWEEP = ((6, 4), (12, 16))  # (d, examples)
SYNTHETIC_LAMBDA = 1.0
SYNTHETIC_STEPS = 600
MONOTONE_RTOL_SYNTHETIC = 1e-12  # float64
GRAD_FRACTION_SYNTHETIC = 1e-6
OPTIMUM_RTOL = 1e-6  # ‖x − x*‖ ≤ this·max(1, ‖x*‖)
GAP_FLOOR = 1e-11  # relative to max(1, |f*|): gaps below are rounding, left out of the rate fit
L_HAT_RTOL = 0.01
UNSTABLE_CURVATURE = 0.8  # curvature at the optimum ≥ this·L̂ makes η = 2.5/L̂ unstable

REAL_PROMPT_LENGTH = 16
REAL_MAX_LENGTH = 32
REAL_EXAMPLES = 32
REAL_POWER_ITERS = 20
REAL_PROMPT_INIT = "vocab"
REAL_POWER_RTOL = 1e-3
MONOTONE_RTOL_REAL = 1e-6  # float32
GRAD_FRACTION_REAL = 0.1


def _check(name: str, role: str, passed: bool, steps: int, measured: dict[str, Any], threshold: Any) -> Check:
    return {
        "name": name,
        "role": role,
        "passed": bool(passed),
        "steps": steps,
        "measured": measured,
        "threshold": threshold,
    }


def _steps(values: Sequence[float]) -> int:
    """GD steps before the last of a trajectory's iterates x_0 … x_{K−1}: K − 1."""
    return max(len(values) - 1, 0)


def _finite(values: Sequence[float]) -> bool:
    return all(math.isfinite(v) for v in values)


# --- checks: pure functions of trajectories ---------------------------------------------------------


def check_monotone(name: str, values: Sequence[float], rel_tol: float, role: str = "check") -> Check:
    """``f_{k+1} ≤ f_k + rel_tol·|f_k|`` at every step; a non-finite value or a single point fails."""
    increases = [(b - a) / max(abs(a), 1e-30) for a, b in itertools.pairwise(values)]
    ok = len(values) >= 2 and _finite(values)
    worst = max(increases) if ok else math.inf
    measured = {
        "max_relative_increase": worst,
        "steps_up": sum(inc > rel_tol for inc in increases) if ok else None,
        "first": values[0] if values else None,
        "last": values[-1] if values else None,
    }
    threshold = {"max_relative_increase": rel_tol}
    return _check(name, role, ok and worst <= rel_tol, _steps(values), measured, threshold)


def check_grad_decay(
    name: str, grad_norms: Sequence[float], fraction: float, reference: str, role: str = "check"
) -> Check:
    """Final gradient norm ≤ ``fraction`` × the initial one (``reference="initial"``) or × the largest one
    along the run (``"peak"``)."""
    ok = len(grad_norms) >= 2 and _finite(grad_norms)
    ref = (grad_norms[0] if reference == "initial" else max(grad_norms)) if ok else math.nan
    ratio = grad_norms[-1] / ref if ok and ref > 0 else math.inf
    measured = {
        "initial": grad_norms[0] if grad_norms else None,
        "peak": max(grad_norms) if ok else None,
        "final": grad_norms[-1] if grad_norms else None,
        f"final_over_{reference}": ratio,
    }
    threshold = {f"final_over_{reference}": fraction}
    return _check(name, role, ok and ratio <= fraction, _steps(grad_norms), measured, threshold)


def fit_rate(gaps: Sequence[float], floor: float) -> tuple[float, int]:
    """Per-step rate ρ with ``gap_k ∝ ρ^k``, least squares on ``log gap`` over the tail: the last half of
    the steps whose gap is above ``floor`` (at least 3 of them). (nan, points) when fewer than 3 steps are
    above the floor, or when they are not consecutive from step 0 (the run left the floor and came back)."""
    above = [k for k, gap in enumerate(gaps) if math.isfinite(gap) and gap > floor]
    if len(above) < 3 or above != list(range(len(above))):
        return math.nan, len(above)
    tail = above[min(len(above) // 2, len(above) - 3) :]
    slope = np.polyfit(tail, [math.log(gaps[k]) for k in tail], 1)[0]
    return float(math.exp(slope)), len(tail)


def check_linear_rate(name: str, values: Sequence[float], f_star: float, bound: float) -> Check:
    """The fitted tail rate of ``f − f*`` is ≤ ``bound`` (a run without a measurable tail fails)."""
    floor = GAP_FLOOR * max(1.0, abs(f_star))
    rate, points = fit_rate([v - f_star for v in values], floor)
    measured = {"fitted_rate": rate, "tail_points": points, "gap_floor": floor}
    passed = math.isfinite(rate) and rate <= bound
    return _check(name, "check", passed, _steps(values), measured, {"fitted_rate_max": bound})


def check_converges(
    name: str,
    values: Sequence[float],
    grad_norms: Sequence[float],
    rel_tol: float,
    fraction: float,
    role: str,
) -> Check:
    """Monotone decrease and ``‖∇f‖`` final ≤ ``fraction`` × initial, together."""
    monotone = check_monotone(name, values, rel_tol)
    decay = check_grad_decay(name, grad_norms, fraction, "initial")
    passed = monotone["passed"] and decay["passed"]
    measured = {**monotone["measured"], **decay["measured"]}
    threshold = {**monotone["threshold"], **decay["threshold"]}
    return _check(name, role, passed, _steps(values), measured, threshold)


def check_estimate(name: str, estimate: float, exact: float, rel_tol: float) -> Check:
    """``|estimate − exact| ≤ rel_tol·|exact|``; judged on no run (0 steps)."""
    error = abs(estimate - exact) / abs(exact) if exact else math.inf
    measured = {"estimate": estimate, "exact": exact, "relative_error": error}
    return _check(name, "check", error <= rel_tol, 0, measured, {"relative_error": rel_tol})


def check_bounded(name: str, values: Sequence[float], bound: float, rel_tol: float, *, steps: int) -> Check:
    """Every value ≤ ``bound·(1 + rel_tol)``; ``steps``: those of the last iterate the values come from."""
    worst = max(values) if values and _finite(values) else math.inf
    measured = {"max": worst, "bound": bound, "max_over_bound": worst / bound}
    threshold = {"max_over_bound": 1 + rel_tol}
    return _check(name, "check", worst <= bound * (1 + rel_tol), steps, measured, threshold)


def check_reaches(
    name: str,
    x: torch.Tensor,
    x_star: np.ndarray,
    value: float,
    f_star: float,
    role: str = "check",
    *,
    steps: int,
) -> Check:
    """The run ends at the independently computed minimiser (``OPTIMUM_RTOL``) with its value; ``x`` is
    the run's iterate after ``steps`` GD steps."""
    distance = float(np.linalg.norm(x.detach().numpy().ravel() - x_star.ravel()))
    scale = max(1.0, float(np.linalg.norm(x_star)))
    value_error = abs(value - f_star) / max(1.0, abs(f_star))
    passed = distance <= OPTIMUM_RTOL * scale and value_error <= OPTIMUM_RTOL
    measured = {
        "distance": distance,
        "optimum_norm": float(np.linalg.norm(x_star)),
        "value_error": value_error,
    }
    threshold = {"relative_distance": OPTIMUM_RTOL, "value_error": OPTIMUM_RTOL}
    return _check(name, role, passed, steps, measured, threshold)


def check_bounds_rise(
    name: str, before: dict[str, float], after: dict[str, float], role: str = "check", *, steps: int
) -> Check:
    """Both held-out InfoNCE bounds end strictly above where they started (``after``: after ``steps``
    GD steps)."""
    ok = _finite([*before.values(), *after.values()])
    passed = ok and all(after[key] > before[key] for key in ("mi_head", "mi_rep"))
    measured = {
        f"{key}_{when}": values[key]
        for when, values in (("initial", before), ("final", after))
        for key in values
    }
    return _check(name, role, passed, steps, measured, "final > initial, both held-out bounds")


# --- optimisation helpers ----------------------------------------------------------------------------


def _dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))


def hvp(
    loss_fn: LossFn, params: Sequence[torch.Tensor], vector: Sequence[torch.Tensor]
) -> list[torch.Tensor]:
    """Hessian-vector product of ``loss_fn`` w.r.t. ``params`` by double backward (torch.autograd)."""
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
    return list(torch.autograd.grad(_dot(grads, vector), params))


def power_iteration(
    loss_fn: LossFn, params: Sequence[torch.Tensor], *, iters: int, rtol: float, generator: torch.Generator
) -> float:
    """Largest |eigenvalue| of the Hessian (``‖Hv‖`` of the unit power iterate; from below), stopping when
    two successive estimates agree within ``rtol``."""
    vector = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    norm = _dot(vector, vector).sqrt()
    vector = [v / norm for v in vector]
    estimate = math.nan
    for _ in range(iters):
        product = hvp(loss_fn, params, vector)
        norm = _dot(product, product).sqrt()
        previous, estimate = estimate, norm.item()
        vector = [p.detach() / norm for p in product]
        if abs(estimate - previous) <= rtol * estimate:
            break
    return estimate


@dataclass
class Trajectory:
    """Values and gradient norms at x_0 … x_{K−1} of a GD run (stops early at a non-finite value)."""

    eta: float
    values: list[float]
    grad_norms: list[float]
    points: list[torch.Tensor]


def gradient_descent(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    eta: float,
    steps: int,
    grad_tol: float = 0.0,
) -> Trajectory:
    """Plain GD ``x ← x − η∇f(x)`` on a single tensor; stops once ``‖∇f‖ ≤ grad_tol``."""
    x = x0.detach().clone()
    run = Trajectory(eta=eta, values=[], grad_norms=[], points=[])
    for _ in range(steps):
        x.requires_grad_(True)
        value = fn(x)
        (grad,) = torch.autograd.grad(value, x)
        run.values.append(value.item())
        run.grad_norms.append(grad.norm().item())
        run.points.append(x.detach())
        if (
            not (math.isfinite(run.values[-1]) and math.isfinite(run.grad_norms[-1]))
            or run.grad_norms[-1] <= grad_tol
        ):
            break
        x = (x - eta * grad).detach()
    return run


def newton(fn: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]], x0: np.ndarray) -> np.ndarray:
    """Damped Newton's method on a smooth strongly convex ``fn`` returning (value, gradient, Hessian)."""
    x = x0.copy()
    for _ in range(200):
        value, grad, hess = fn(x)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while fn(x - t * step)[0] > value - 0.25 * t * grad @ step and t > 1e-12:
            t /= 2
        x = x - t * step
        if np.linalg.norm(grad) <= 1e-14 * max(1.0, abs(value)):
            break
    return x


def _lse_terms(logits: np.ndarray, target: int = 0) -> tuple[float, np.ndarray, np.ndarray]:
    """−log softmax(logits)[target], and its gradient and Hessian in the logits (numpy, independent)."""
    p = np.exp(logits - logits.max())
    p /= p.sum()
    value = float(np.log(np.exp(logits - logits.max()).sum()) + logits.max() - logits[target])
    grad = p.copy()
    grad[target] -= 1
    return value, grad, np.diag(p) - np.outer(p, p)


# --- part 1: synthetic problems on the project's losses ---------------------------------------------------


@dataclass(frozen=True)
class SyntheticProblem:
    """A strongly convex problem built on one of the project's InfoNCE losses: ``loss(x, contrast)`` calls
    the project's code, ``independent(x̄)`` re-implements the paper's formula (numpy) for the minimiser."""

    name: str
    shape: tuple[int, ...]
    lam: float
    project: Callable[[torch.Tensor, Contrast], torch.Tensor]
    reduced_optimum: Callable[[], np.ndarray]  # the minimiser, as a full variable

    def f(self, x: torch.Tensor, contrast: Contrast = infoprompt.PAPER) -> torch.Tensor:
        return self.project(x.view(self.shape), contrast) + 0.5 * self.lam * x.pow(2).sum()


def head_problem(d: int, negatives: int, seed: int, lam: float = SYNTHETIC_LAMBDA) -> SyntheticProblem:
    """``mean_i L_head,i(P) + (λ/2)‖P‖²`` over a 4-row prompt P, for 4 examples with ``negatives`` tokens."""
    g = torch.Generator().manual_seed(seed)
    n, examples = 4, 4
    head = torch.randn(3, d, generator=g, dtype=torch.float64) * 2.0
    tokens = torch.randn(examples, negatives, d, generator=g, dtype=torch.float64)
    mask = torch.ones(examples, negatives, dtype=torch.bool)

    def project(x: torch.Tensor, contrast: Contrast) -> torch.Tensor:
        return infoprompt.head_loss(x, head, tokens, mask, contrast)[0].mean()

    def optimum() -> np.ndarray:
        h = head.mean(0).numpy()
        neg = (tokens.numpy() @ h) / math.sqrt(d)  # (examples, negatives)

        def reduced(p: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
            value, grad, hess = 0.5 * n * lam * p @ p, n * lam * p, n * lam * np.eye(d)
            pos = p @ h / math.sqrt(d)
            for row in neg:
                v, gz, hz = _lse_terms(np.concatenate([[pos], row]))
                value += v / examples
                grad = grad + gz[0] * h / math.sqrt(d) / examples
                hess = hess + hz[0, 0] * np.outer(h, h) / d / examples
            return value, grad, hess

        return np.tile(newton(reduced, np.zeros(d)), (n, 1))

    return SyntheticProblem(f"head.d{d}.neg{negatives}", (n, d), lam, project, optimum)


def rep_problem(d: int, examples: int, seed: int, lam: float = SYNTHETIC_LAMBDA) -> SyntheticProblem:
    """``mean_i L_rep,i(W_c) + (λ/2)‖W_c‖²`` with the prompt, r⁺ and r⁻ fixed (``examples`` of each)."""
    g = torch.Generator().manual_seed(seed)
    prompt = torch.randn(4, d, generator=g, dtype=torch.float64)
    positives = torch.randn(examples, d, generator=g, dtype=torch.float64) + 1.0
    negatives = torch.randn(examples, d, generator=g, dtype=torch.float64)

    def project(x: torch.Tensor, contrast: Contrast) -> torch.Tensor:
        return infoprompt.rep_loss(prompt, x, positives, negatives, contrast).mean()

    def optimum() -> np.ndarray:
        p_bar = prompt.mean(0).numpy()
        pos, neg = positives.numpy() / math.sqrt(d), negatives.numpy() / math.sqrt(d)
        weight = lam / (p_bar @ p_bar)

        def reduced(c: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
            value, grad, hess = 0.5 * weight * c @ c, weight * c, weight * np.eye(d)
            for r in pos:
                features = np.vstack([r, neg])  # logits = features @ c
                v, gz, hz = _lse_terms(features @ c)
                value += v / examples
                grad = grad + features.T @ gz / examples
                hess = hess + features.T @ hz @ features / examples
            return value, grad, hess

        c_star = newton(reduced, np.zeros(d))
        return np.outer(c_star, p_bar) / (p_bar @ p_bar)

    return SyntheticProblem(f"rep.d{d}.n{examples}", (d, d), lam, project, optimum)


def largest_eigenvalue(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, generator: torch.Generator
) -> float:
    point = x.detach().clone().requires_grad_(True)
    return power_iteration(lambda: fn(point), [point], iters=300, rtol=1e-10, generator=generator)


def exact_curvature(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """The largest eigenvalue of the exact Hessian (autograd, vectorised)."""
    return torch.linalg.eigvalsh(torch.autograd.functional.hessian(fn, x, vectorize=True))[-1].item()


def synthetic_part(
    problems: Sequence[SyntheticProblem], steps: int, progress: Progress = silent
) -> tuple[list[Check], list[dict[str, Any]], dict[str, list[Trajectory]]]:
    """Part 1 (module docstring): checks and controls, a summary per problem, trajectories for the figure;
    ``progress`` gets a line per problem."""
    checks: list[Check] = []
    summaries, runs = [], {}
    started = time.perf_counter()
    for index, problem in enumerate(problems):
        if index:
            progress(counted("MI check, synthetic problems", index, len(problems), started))
        size = int(np.prod(problem.shape))
        x0 = torch.zeros(size, dtype=torch.float64)
        generator = torch.Generator().manual_seed(index)
        x_star = problem.reduced_optimum()
        f_star = problem.f(
            torch.from_numpy(x_star.ravel().copy())
        ).item()  # the independent minimiser's value
        optimum = torch.from_numpy(x_star.ravel().copy())
        # L̂ on the segment from x₀ = 0 through x* to its mirror 2x*, where GD at η → 2/L̂ overshoots to
        path = [t / 4 * optimum for t in range(9)]
        estimates = [largest_eigenvalue(problem.f, x, generator) for x in path]
        worst = int(np.argmax(estimates))
        l_hat = estimates[worst]
        exact = exact_curvature(problem.f, path[worst])
        curvature_star = exact_curvature(problem.f, optimum)
        tag = f"synthetic.{problem.name}"
        checks.append(check_estimate(f"{tag}.L_hat", l_hat, exact, L_HAT_RTOL))
        checks.append(
            _check(
                f"{tag}.unstable_at_2.5",
                "check",
                curvature_star >= UNSTABLE_CURVATURE * l_hat,
                0,
                {"curvature_at_optimum_over_L_hat": curvature_star / l_hat},
                {"min": UNSTABLE_CURVATURE},
            )
        )
        runs[problem.name] = []
        visited: list[float] = []
        visited_steps = 0  # GD steps of the last iterate whose curvature is in ``visited``
        for factor in ETA_FACTORS:
            eta = factor / l_hat
            run = gradient_descent(problem.f, x0, eta, steps)
            runs[problem.name].append(run)
            name = f"{tag}.eta{factor:g}"
            if factor >= 2:
                checks.append(
                    check_converges(
                        f"{name}.converges",
                        run.values,
                        run.grad_norms,
                        MONOTONE_RTOL_SYNTHETIC,
                        GRAD_FRACTION_SYNTHETIC,
                        "control",
                    )
                )
                continue
            bound = 1 - 2 * problem.lam * eta * (1 - l_hat * eta / 2)
            checks += [
                check_monotone(f"{name}.monotone", run.values, MONOTONE_RTOL_SYNTHETIC),
                check_grad_decay(f"{name}.grad_to_zero", run.grad_norms, GRAD_FRACTION_SYNTHETIC, "initial"),
                check_linear_rate(f"{name}.linear_rate", run.values, f_star, bound),
                check_reaches(
                    f"{name}.reaches_optimum",
                    run.points[-1],
                    x_star,
                    run.values[-1],
                    f_star,
                    steps=len(run.points) - 1,
                ),
            ]
            sampled = range(0, len(run.points), max(1, len(run.points) // 50))
            for step in sampled:
                hessian = torch.autograd.functional.hessian(problem.f, run.points[step])
                visited.append(torch.linalg.eigvalsh(hessian)[-1].item())
            visited_steps = max(visited_steps, sampled[-1])
        checks.append(
            check_bounded(f"{tag}.smoothness_on_path", visited, l_hat, L_HAT_RTOL, steps=visited_steps)
        )
        for control, contrast in CONTROLS.items():
            mutant = gradient_descent(functools.partial(problem.f, contrast=contrast), x0, 1 / l_hat, steps)
            checks.append(
                check_reaches(
                    f"{tag}.{control}.reaches_optimum",
                    mutant.points[-1],
                    x_star,
                    mutant.values[-1],
                    f_star,
                    role="control",
                    steps=len(mutant.points) - 1,
                )
            )
        summaries.append(
            {
                "problem": problem.name,
                "variables": size,
                "lambda": problem.lam,
                "seed": index,
                "L_hat": l_hat,
                "curvature_at_optimum_over_L_hat": curvature_star / l_hat,
                "f_star": f_star,
                "optimum_norm": float(np.linalg.norm(x_star)),
            }
        )
    return checks, summaries, runs


# --- part 2: real model --------------------------------------------------------------------------------


@dataclass
class RealRun:
    """Full-batch GD on ``L_head + L_rep`` for one seed (or a control contrast): per-step loss and gradient
    norm, and the held-out bounds before and after."""

    seed: int
    contrast: str
    l_hat: float
    eta: float
    loss: list[float] = dataclasses.field(default_factory=list)
    grad_norm: list[float] = dataclasses.field(default_factory=list)
    heldout_before: dict[str, float] = dataclasses.field(default_factory=dict)
    heldout_after: dict[str, float] = dataclasses.field(default_factory=dict)


def real_config(cell: str, backbone: str, seed: int) -> RunConfig:
    """Base ``pt`` with 16 ``vocab``-initialised prompt vectors, default head, no dropout."""
    setting, task = split_cell(cell)
    return RunConfig(
        setting=setting,
        task=task,
        method="pt-infoprompt",
        seed=seed,
        backbone=backbone,
        prompt=PromptConfig(length=REAL_PROMPT_LENGTH, init=REAL_PROMPT_INIT),
        head=HeadConfig(),
        train=TrainConfig(max_length=REAL_MAX_LENGTH, backbone_dropout=False),
    )


@torch.no_grad()
def heldout_bounds(model: PromptModel, w_c: torch.Tensor, batch: Batch) -> dict[str, float]:
    """Both InfoNCE bounds ``log(N+1) − L`` on ``batch``, computed here from the paper's formulas
    (critic ⟨a, b⟩/√d, the positive at index 0) — independently of the objective's own code."""
    rows = example_rows(batch)
    prompt = model.base.prompt_vectors().float()
    d = prompt.shape[-1]
    p_bar, h_bar = prompt.mean(0), model.head.weight.float().mean(0)
    tokens = embedding_to_hidden(model.backbone)(model.embed(batch["input_ids"][rows])).float()
    mask = batch["attention_mask"][rows].bool()
    positive = (p_bar @ h_bar) / math.sqrt(d)
    negatives = (tokens @ h_bar / math.sqrt(d)).masked_fill(~mask, -math.inf)
    head_terms = torch.logsumexp(torch.cat([positive.expand(len(rows), 1), negatives], 1), 1) - positive
    n_head = mask.sum(1).float()
    r_plus = model.encode(batch).float()[rows]
    r_minus = model.encode(batch, use_prompt=False).float()[rows]
    c = w_c.float() @ p_bar
    pos, neg = r_plus @ c / math.sqrt(d), r_minus @ c / math.sqrt(d)
    rep_terms = torch.logsumexp(torch.cat([pos[:, None], neg.expand(len(rows), -1)], 1), 1) - pos
    return {
        "mi_head": float((torch.log(n_head + 1) - head_terms).mean()),
        "mi_rep": float((math.log(len(rows) + 1) - rep_terms).mean()),
    }


def real_run(
    config: RunConfig,
    weights: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Batch,
    heldout: Batch,
    steps: int,
    power_iters: int,
    contrast: tuple[str, Contrast] = ("paper", infoprompt.PAPER),
) -> RealRun:
    """One seed: build the model (eval mode, head fixed), estimate L̂ at init, run GD at η = 1/L̂."""
    torch.manual_seed(config.seed)
    model = PromptModel.build(config, weights, tokenizer, get_task(config.task)).to(weights.device).eval()
    model.head.requires_grad_(False)
    objective = InfoPrompt(InfoPromptConfig(), model).to(weights.device)
    objective.contrast = contrast[1]
    params = [model.base.prompt, objective.w_c]

    def loss_fn() -> torch.Tensor:
        terms = objective.mi_terms(model, train)
        return terms.l_head + terms.l_rep

    with sdpa_kernel(SDPBackend.MATH):  # double backward needs the composite attention
        generator = torch.Generator().manual_seed(config.seed)  # draws on the CPU, moved to the device
        l_hat = power_iteration(loss_fn, params, iters=power_iters, rtol=REAL_POWER_RTOL, generator=generator)
    run = RealRun(seed=config.seed, contrast=contrast[0], l_hat=l_hat, eta=1.0 / l_hat)
    run.heldout_before = heldout_bounds(model, objective.w_c, heldout)
    for _ in range(steps):
        loss = loss_fn()
        grads = torch.autograd.grad(loss, params)
        run.loss.append(loss.item())
        run.grad_norm.append(_dot(grads, grads).sqrt().item())
        with torch.no_grad():
            for param, grad in zip(params, grads, strict=True):
                param.sub_(run.eta * grad)
    run.heldout_after = heldout_bounds(model, objective.w_c, heldout)
    return run


def real_part(
    data_root: Path, spec: dict[str, Any], progress: Progress = silent
) -> tuple[list[RealRun], list[Check], dict[str, Any]]:
    """Part 2 on the study's cell: GD on its training split, held-out checks on its selection split;
    ``progress`` gets a line per seed."""
    cell, quick = spec["cell"], spec.get("quick", False)
    setting, task_name = split_cell(cell)
    task = get_task(task_name)
    splits = load_splits(data_root, setting, task, 13)
    size = 8 if quick else REAL_EXAMPLES
    weights, tokenizer = load_backbone(spec["backbone"])
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    weights.to(device)
    mc = task.kind == "multiple_choice"
    train, heldout = (
        {
            k: v.to(device)
            for k, v in collate(
                encode_cached(part[:size], task, tokenizer, REAL_MAX_LENGTH), tokenizer, mc
            ).items()
        }
        for part in (splits.train, splits.select)
    )
    power_iters = 5 if quick else REAL_POWER_ITERS
    steps = spec["steps"]
    runs, checks = [], []
    started = time.perf_counter()
    for seed in spec["seeds"]:
        if runs:
            progress(counted(f"MI check on {cell}, seeds", len(runs), len(spec["seeds"]), started))
        run = real_run(
            real_config(cell, spec["backbone"], seed), weights, tokenizer, train, heldout, steps, power_iters
        )
        runs.append(run)
        tag = f"real.seed{seed}"
        checks += [
            check_monotone(f"{tag}.monotone", run.loss, MONOTONE_RTOL_REAL),
            check_grad_decay(f"{tag}.grad_decay", run.grad_norm, GRAD_FRACTION_REAL, "peak"),
            check_bounds_rise(
                f"{tag}.heldout_bounds_rise", run.heldout_before, run.heldout_after, steps=len(run.loss)
            ),
        ]
    first = real_config(cell, spec["backbone"], spec["seeds"][0])
    for name, contrast in CONTROLS.items():
        run = real_run(first, weights, tokenizer, train, heldout, steps, power_iters, (name, contrast))
        runs.append(run)
        checks.append(
            check_bounds_rise(
                f"real.{name}.heldout_bounds_rise",
                run.heldout_before,
                run.heldout_after,
                "control",
                steps=len(run.loss),
            )
        )
    settings = {
        "backbone": spec["backbone"],
        "cell": cell,
        "n_train": int(train["labels"].shape[0]),
        "n_heldout": int(heldout["labels"].shape[0]),
        "max_length": REAL_MAX_LENGTH,
        "prompt_length": REAL_PROMPT_LENGTH,
        "prompt_init": REAL_PROMPT_INIT,
        "steps": steps,
        "eta_times_L_hat": 1.0,
        "power_iterations_max": power_iters,
        "trained": ["base.prompt", "w_c"],
        "loss": "L_head + L_rep (no CE), full batch, eval mode",
    }
    return runs, checks, settings


# --- figures, output, entry point ----------------------------------------------------------------------


def _save_png(figure: Figure, path: Path) -> None:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    atomic_write_bytes(path, buffer.getvalue())


def synthetic_figure(runs: dict[str, list[Trajectory]], summaries: list[dict[str, Any]]) -> Figure:
    figure = Figure(figsize=(4 * len(runs), 3.4), layout="constrained")
    axes = figure.subplots(1, len(runs), squeeze=False)[0]
    for ax, summary, trajectories in zip(axes, summaries, runs.values(), strict=True):
        top = 0.0
        for factor, run in zip(ETA_FACTORS, trajectories, strict=True):
            gaps = [max(v - summary["f_star"], 1e-17) for v in run.values]
            diverging = factor >= 2
            label = f"η = {factor:g}/L̂" + (" (diverges; clipped)" if diverging else "")
            ax.semilogy(gaps, "--" if diverging else "-", label=label)
            top = top if diverging else max(top, max(gaps))
        if (
            top > 0
        ):  # the step size past 2/L̂ diverges by many orders: the axis keeps the converging runs legible
            ax.set_ylim(top=10 * top)
        ax.set_title(f"{summary['problem']}, L̂ = {summary['L_hat']:.3g}", fontsize=9)
        ax.set_xlabel("GD step")
        ax.set_ylabel("f − f*")
        ax.legend(fontsize=7)
    return figure


def real_figure(runs: Sequence[RealRun]) -> Figure:
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    loss_ax, grad_ax = figure.subplots(1, 2)
    for run in runs:
        style = "-" if run.contrast == "paper" else ":"
        label = f"seed {run.seed}" if run.contrast == "paper" else f"control: {run.contrast}"
        line = loss_ax.plot(run.loss, style, label=label)[0]
        grad_ax.semilogy(run.grad_norm, style, color=line.get_color())
    loss_ax.set(title="training loss (full batch)", xlabel="GD step")
    grad_ax.set(title="‖∇‖", xlabel="GD step")
    loss_ax.legend(fontsize=7)
    return figure


def _json_safe(value: Any) -> Any:
    """Non-finite floats become null (checks.json is strict JSON)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer | np.bool_):
        return value.item()
    return value


def synthetic_problems(quick: bool) -> list[SyntheticProblem]:
    heads = HEAD_SWEEP[:1] if quick else HEAD_SWEEP
    reps = REP_SWEEP[:1] if quick else REP_SWEEP
    problems = [head_problem(d, negatives, seed) for seed, (d, negatives) in enumerate(heads)]
    return problems + [rep_problem(d, examples, 10 + seed) for seed, (d, examples) in enumerate(reps)]


def inputs_sha256(spec: dict[str, Any], data_root: Path | None) -> str:
    """sha256 of what the check depends on: its settings, the code (``results.code_sha256``) and, with the
    real part, its cell's data files (checked against the checksum table)."""
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode() + code_sha256().encode())
    if data_root is not None:
        files = required_files(*split_cell(spec["cell"]))
        for relpath, sha in sorted(verify_data(Path(data_root), files).items()):
            digest.update(f"{relpath}\0{sha}\0".encode())
    return digest.hexdigest()


def verify(
    out_dir: Path, data_root: Path | None, spec: dict[str, Any], progress: Progress = silent
) -> dict[str, Any]:
    """Run both parts as ``spec`` (``configs/mi_check.json``: cell, backbone, seeds, steps, quick) says —
    the real one only with ``data_root`` — and write ``checks.json``, ``synthetic.png`` and ``real.png``
    into ``out_dir``. A result computed from the same inputs (``inputs_sha256``) is kept, so the pipeline's
    stage, which reruns when any cell's data changes, recomputes only when its own inputs did."""
    out_dir = Path(out_dir)
    key = inputs_sha256(spec, data_root)
    stored = out_dir / "checks.json"
    if stored.is_file() and (kept := read_json(stored)).get("inputs_sha256") == key:
        progress(f"{out_dir}: inputs unchanged, result kept")
        return kept
    checks, summaries, synthetic_runs = synthetic_part(
        synthetic_problems(spec.get("quick", False)), SYNTHETIC_STEPS, progress
    )
    real: dict[str, Any] = {"skipped": "no data given (--synthetic-only)"}
    real_runs: list[RealRun] = []
    if data_root is not None:
        real_runs, real_checks, settings = real_part(Path(data_root), spec, progress)
        checks += real_checks
        real = {"settings": settings, "runs": [dataclasses.asdict(run) for run in real_runs]}
    result = {
        "claim": "IP-5: a gradient-descent algorithm can train the MI (InfoNCE) loss",
        "computed_by": code_provenance(),
        "inputs_sha256": key,
        "checks": checks,
        "synthetic": {
            "problems": summaries,
            "eta_factors": list(ETA_FACTORS),
            "steps": SYNTHETIC_STEPS,
        },
        "real": real,
    }
    (out_dir / "real.png").unlink(missing_ok=True)  # a figure of an earlier result is not this one's
    _save_png(synthetic_figure(synthetic_runs, summaries), out_dir / "synthetic.png")
    if real_runs:
        _save_png(real_figure(real_runs), out_dir / "real.png")
    result = _json_safe(result)
    atomic_write_json(out_dir / "checks.json", result)
    return result
