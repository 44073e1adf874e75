"""Cost of one DP-SGD step in skdpgen's engine against a non-private step and Opacus (CPU).

Two models, batch 512:

* ``flow``: a rational-quadratic spline coupling flow (Durkan et al. 2019) of dimension 16 whose
  ONE conditioner MLP (8 + 8 stage one-hot -> 256 -> 256 -> 8 x (3K - 1), K = 8 bins) serves all
  8 stages: each Linear layer is called 8 times per forward (parameter tying).
* ``mlp``: a plain MLP 100-256-256-256-2 with a per-example cross-entropy.
* ``mixed``: the model DPFlowSynthesizer trains (:class:`skdpgen.flows.MixedFlow`) with adult's
  layout: an autoregressive model of 10 discrete groups (one MLP called for all 10 positions) and
  a 6-stage spline flow on 5 continuous coordinates conditioned on them, hidden (128, 128).

Methods (same Adam optimizer, same batch): ``non-private`` (``loss.mean().backward()``),
``skdpgen`` (:class:`skdpgen.dpsgd.PerExampleClipper` + noise, i.e. the step of
:func:`~skdpgen.dpsgd.train_dpsgd`; flat and per-layer clipping, and both norm routes),
``opacus hooks`` (``GradSampleModule`` in "hooks" mode + ``DPOptimizer``) and ``opacus ghost``
(``GradSampleModuleFastGradientClipping`` + ``DPOptimizerFastGradientClipping``; it refuses the
tied flow).  Reported: the median over repeats of the median time of ``--steps`` steps, and its
ratio to the non-private step.

Usage::

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 \\
        python benchmarks/bench_dpsgd_overhead.py --threads 1 2 --repeats 5

(the malloc settings speed up Opacus hooks mode, which materialises per-sample gradients; the
table header says whether they were set).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from skdpgen._torch import make_linear, torch_generator
from skdpgen.dpsgd import PerExampleClipper, _noise_and_scale_

BATCH = 512
SIGMA, CLIP = 1.0, 1.0


# ---------------------------------------------------------------------------------------------
# models (their forward returns the per-example loss)


def rq_spline(x, params, bound=3.0, min_size=1e-3):
    """Monotone rational-quadratic spline on [-bound, bound], identity outside (Durkan et al. 2019).

    ``x``: (B, D); ``params``: (B, D, 3K - 1).  Returns ``(y, log|dy/dx|)``.
    """
    k = (params.shape[-1] + 1) // 3
    uw, uh, ud = params[..., :k], params[..., k:2 * k], params[..., 2 * k:]
    w = min_size + (1 - min_size * k) * torch.softmax(uw, -1)
    h = min_size + (1 - min_size * k) * torch.softmax(uh, -1)
    d = F.pad(min_size + F.softplus(ud), (1, 1), value=1.0)
    cw = F.pad(torch.cumsum(w, -1), (1, 0)) * 2 * bound - bound
    ch = F.pad(torch.cumsum(h, -1), (1, 0)) * 2 * bound - bound
    widths, heights = cw[..., 1:] - cw[..., :-1], ch[..., 1:] - ch[..., :-1]
    inside = (x > -bound) & (x < bound)
    xc = x.clamp(-bound, bound)
    idx = torch.searchsorted(cw[..., 1:-1].contiguous(), xc[..., None])
    xk, wk = cw.gather(-1, idx)[..., 0], widths.gather(-1, idx)[..., 0]
    yk, hk = ch.gather(-1, idx)[..., 0], heights.gather(-1, idx)[..., 0]
    dk, dk1 = d.gather(-1, idx)[..., 0], d.gather(-1, idx + 1)[..., 0]
    s = hk / wk
    xi = ((xc - xk) / wk).clamp(0, 1)
    t = xi * (1 - xi)
    den = s + (dk1 + dk - 2 * s) * t
    y = yk + hk * (s * xi**2 + dk * t) / den
    dy = s**2 * (dk1 * xi**2 + 2 * s * t + dk * (1 - xi) ** 2) / den**2
    return torch.where(inside, y, x), torch.where(inside, torch.log(dy), torch.zeros_like(x))


class SplineFlow(nn.Module):
    """Coupling RQ-spline flow with one conditioner shared by all stages (told the stage by a one-hot)."""

    def __init__(self, gen, dim=16, n_stages=8, hidden=256, bins=8):
        super().__init__()
        self.half, self.n_stages, self.bins = dim // 2, n_stages, bins
        out = (dim - self.half) * (3 * bins - 1)
        self.cond = nn.Sequential(make_linear(self.half + n_stages, hidden, gen, "cpu"), nn.ReLU(),
                                  make_linear(hidden, hidden, gen, "cpu"), nn.ReLU(),
                                  make_linear(hidden, out, gen, "cpu"))

    def forward(self, x):
        n = x.shape[0]
        z, logdet = x, x.new_zeros(n)
        eye = torch.eye(self.n_stages, dtype=x.dtype, device=x.device)
        for k in range(self.n_stages):
            x1, x2 = (z[:, :self.half], z[:, self.half:]) if k % 2 == 0 else (z[:, self.half:], z[:, :self.half])
            params = self.cond(torch.cat([x1, eye[k].expand(n, -1)], dim=1)).reshape(n, x2.shape[1], -1)
            x2, ld = rq_spline(x2, params)
            z = torch.cat([x1, x2], dim=1) if k % 2 == 0 else torch.cat([x2, x1], dim=1)
            logdet = logdet + ld.sum(1)
        return 0.5 * z.pow(2).sum(1) - logdet


class MLP(nn.Module):
    """100-256-256-256-2 classifier; a row is 100 features and a label."""

    def __init__(self, gen):
        super().__init__()
        sizes = [100, 256, 256, 256, 2]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [make_linear(a, b, gen, "cpu"), nn.ReLU()]
        self.net = nn.Sequential(*layers[:-1])

    def forward(self, batch):
        return F.cross_entropy(self.net(batch[:, :-1]), batch[:, -1].long(), reduction="none")


# adult's layout in DPFlowSynthesizer: 5 continuous coordinates, 10 discrete groups
ADULT_SIZES = (9, 16, 16, 7, 15, 6, 5, 2, 42, 2)


class Mixed(nn.Module):
    """The shipped model: :class:`skdpgen.flows.MixedFlow` (discrete part + conditional flow), adult shapes."""

    def __init__(self, gen):
        super().__init__()
        from skdpgen.flows import MixedFlow

        self.model = MixedFlow(5, ADULT_SIZES, n_stages=6, hidden_features=(128, 128), generator=gen)

    def forward(self, batch):
        return -self.model.log_prob(batch)


def make_data(kind: str, gen):
    if kind == "flow":
        return torch.randn(BATCH, 16, generator=gen)
    if kind == "mixed":
        parts = [torch.randn(BATCH, 5, generator=gen)]
        for k in ADULT_SIZES:
            idx = torch.randint(0, k, (BATCH,), generator=gen)
            parts.append(F.one_hot(idx, k).float())
        return torch.cat(parts, dim=1)
    x = torch.randn(BATCH, 100, generator=gen)
    return torch.cat([x, (x[:, :1] > 0).float()], dim=1)


def make_model(kind: str, seed: int = 0):
    gen = torch_generator(seed)
    model = {"flow": SplineFlow, "mlp": MLP, "mixed": Mixed}[kind](gen)
    return model, make_data(kind, gen)


# ---------------------------------------------------------------------------------------------
# one step of each method: factory(kind) -> step()


def nonprivate(kind):
    model, batch = make_model(kind)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        opt.zero_grad(set_to_none=True)
        model(batch).mean().backward()
        opt.step()

    return step


def skdpgen_step(clipping="flat", norm_method="auto"):
    def factory(kind):
        model, batch = make_model(kind)
        clipper = PerExampleClipper(model, CLIP, clipping=clipping, norm_method=norm_method, check_model=False)
        params = clipper.parameters()
        opt = torch.optim.Adam(params, lr=1e-4)
        gen = torch_generator(1)

        def step():
            clipper.clip_and_sum(lambda m, b: m(b), batch)
            _noise_and_scale_(params, SIGMA * CLIP, 1.0 / BATCH, gen)
            opt.step()

        return step

    return factory


def opacus_hooks(kind):
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    model, batch = make_model(kind)
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="sum", strict=True)
    opt = DPOptimizer(torch.optim.Adam(gsm.parameters(), lr=1e-4), noise_multiplier=SIGMA, max_grad_norm=CLIP,
                      expected_batch_size=BATCH, loss_reduction="sum")

    def step():
        opt.zero_grad(set_to_none=True)
        gsm(batch).sum().backward()
        opt.step()

    return step


def opacus_ghost(kind):
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.optimizers import DPOptimizerFastGradientClipping
    from opacus.utils.fast_gradient_clipping_utils import DPTensorFastGradientClipping

    model, batch = make_model(kind)
    gsm = GradSampleModuleFastGradientClipping(model, batch_first=True, loss_reduction="sum",
                                               max_grad_norm=CLIP, use_ghost_clipping=True)
    opt = DPOptimizerFastGradientClipping(torch.optim.Adam(gsm.parameters(), lr=1e-4), noise_multiplier=SIGMA,
                                          max_grad_norm=CLIP, expected_batch_size=BATCH, loss_reduction="sum")

    def step():
        opt.zero_grad(set_to_none=True)
        DPTensorFastGradientClipping(gsm, opt, gsm(batch), "sum").backward()
        opt.step()

    return step


METHODS = {
    "non-private": nonprivate,
    "skdpgen flat": skdpgen_step("flat"),
    "skdpgen per-layer": skdpgen_step("per_layer"),
    "skdpgen flat, Gram norms only": skdpgen_step("flat", "ghost"),
    "skdpgen flat, materialised only": skdpgen_step("flat", "materialize"),
    "opacus hooks": opacus_hooks,
    "opacus ghost": opacus_ghost,
}


def time_steps(step, n_steps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(n_steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["flow", "mlp"], choices=["flow", "mlp", "mixed"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    malloc = os.environ.get("MALLOC_MMAP_MAX_") == "0"
    print(f"torch {torch.__version__}, batch {BATCH}, median of {args.repeats} repeats of the median of "
          f"{args.steps} steps; glibc malloc tuning (MALLOC_MMAP_MAX_=0 ...): {'on' if malloc else 'off'}\n")
    rows = []
    previous = torch.get_num_threads()
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            for kind in args.models:
                base = None
                for name in args.methods:
                    try:
                        medians = []
                        for _ in range(args.repeats):
                            medians.append(time_steps(METHODS[name](kind), args.steps))
                        ms = 1e3 * statistics.median(medians)
                        spread = f"{1e3 * min(medians):.1f}-{1e3 * max(medians):.1f}"
                    except Exception as exc:  # noqa: BLE001 - report the refusal
                        rows.append((kind, threads, name, "refused", "", f"{type(exc).__name__}: {exc}"))
                        print(rows[-1], file=sys.stderr, flush=True)
                        continue
                    if name == "non-private":
                        base = ms
                    ratio = f"{ms / base:.2f}x" if base else ""
                    rows.append((kind, threads, name, f"{ms:.1f}", ratio, spread))
                    print(rows[-1], file=sys.stderr, flush=True)
    finally:
        torch.set_num_threads(previous)
    print("| model | threads | method | ms / step | vs non-private | range of repeats / note |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
