r"""The one DP-SGD training engine of skdpgen: Poisson sampling, fast per-example clipping, noise.

Every DP-SGD estimator of the library trains through :func:`train_dpsgd`.  One step, for a
model :math:`f_\theta` built from :class:`torch.nn.Linear` layers and parameter-free functions,
with per-example losses :math:`\ell_i(\theta)`:

1. **Poisson sampling.**  Each of the :math:`N` rows enters the batch :math:`B_t` independently
   with probability :math:`q = b / N` (:math:`b` the expected batch size), from a local
   :class:`torch.Generator`.  An empty batch gives a noise-only step.
2. **Per-example gradient norms without per-example gradients** (book-keeping / ghost norms,
   Li et al. 2022; Bu et al. 2023).  A Linear layer called :math:`T` times in one forward (a
   conditioner shared by the stages of a flow, or a layer applied along a sequence axis), with
   input activations :math:`a_{i,t} \in \mathbb{R}^{d}` and output gradients
   :math:`g_{i,t} = \partial \ell_i / \partial s_{i,t} \in \mathbb{R}^{p}` of the call outputs
   :math:`s_{i,t} = W a_{i,t} + b`, has the per-example gradients

   .. math::

       \nabla_W \ell_i = \sum_{t=1}^{T} g_{i,t}\, a_{i,t}^\top, \qquad
       \nabla_b \ell_i = \sum_{t=1}^{T} g_{i,t},

   whose squared norms follow from :math:`T \times T` Gram matrices:

   .. math::

       \|\nabla_W \ell_i\|_F^2 = \sum_{t,t'} (a_{i,t}^\top a_{i,t'})\,(g_{i,t}^\top g_{i,t'}),

   at a cost :math:`O(T^2 (d + p))` per example instead of materialising the :math:`p \times d`
   gradient (:math:`O(T p d)` time, :math:`O(p d)` memory; the engine materialises instead where
   that is cheaper: :math:`T^2 (d + p) > 32\, p d`).  Opacus's ghost
   clipping refuses such tied layers ("Parameter tying is not supported with Ghost Clipping");
   this formula handles them exactly.  The activations are recorded by forward hooks, the output
   gradients by one backward pass of :math:`\sum_i \ell_i` taken with respect to the layer
   outputs only (the parameter gradients are never formed by autograd).
3. **Clipping.**  Flat: :math:`c_i = \min(1, C / \|\nabla\ell_i\|)` with the norm over all
   parameters.  Fine-grained (per group, e.g. per layer, as in the DP normalising flow paper):
   group :math:`k` is clipped to :math:`C_k` with :math:`\sqrt{\sum_k C_k^2} = C`,
   :math:`c_{i,k} = \min(1, C_k / \|\nabla_k \ell_i\|)`, so one example still moves the summed
   gradient by at most :math:`C` in L2.  The clipped sum is formed from the stored
   :math:`a, g` by one weighted matrix product per layer (no second backward pass):
   :math:`\sum_i c_{i,k} \sum_t g_{i,t} a_{i,t}^\top`.
4. **Noise and step.**  :math:`\tilde g = \bigl(\sum_{i \in B_t} \bar g_i + \mathcal{N}(0,
   \sigma^2 C^2 I)\bigr) / b`, written into ``.grad``; any torch optimizer then steps.  The
   divisor :math:`b` is the expected batch size: :math:`qN` when :math:`N` is public, and the
   configured ``batch_size`` when the sampling rate comes from a released row count
   (``sample_rate``), so that the weights depend on released values only.

The noise multiplier :math:`\sigma` is calibrated to the target :math:`(\varepsilon, \delta)`
for :math:`T = \mathrm{round}(\text{epochs} / q)` steps with
:func:`skdpgen.privacy.calibrate_subsampled_noise` (Opacus PRV or RDP accountant), and the run is
recorded as ONE :meth:`~skdpgen.privacy.PrivacyRelease.subsampled` release.  Neighbouring
relation: add/remove one row.  Without ``sample_rate``, like Opacus and the DP-SGD literature, the
number of rows :math:`N` is treated as public (it sets :math:`q`, :math:`T` and the divisor
:math:`qN`); with ``sample_rate`` (computed by the caller from a DP or public row count), :math:`N`
is used only to draw the Poisson samples.

References
----------
Abadi, M. et al. "Deep Learning with Differential Privacy." CCS 2016.
Li, X., Tramer, F., Liang, P. and Hashimoto, T. "Large Language Models Can Be Strong
Differentially Private Learners." ICLR 2022 (ghost clipping).
Bu, Z., Wang, Y.-X., Zha, S. and Karypis, G. "Differentially Private Optimization on Large Model
at Small Cost." ICML 2023 (book-keeping).
Lee, J. and Kifer, D. "Scaling up Differentially Private Deep Learning with Fast Per-Example
Gradient Clipping." PoPETs 2021.
Lee, J. et al. "Differentially Private Normalizing Flows for Synthetic Tabular Data Generation."
AAAI 2022 (shared conditioner, per-layer clipping).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .privacy.accounting import _real, calibrate_subsampled_noise
from .privacy.ledger import PrivacyLedger, PrivacyRelease

__all__ = [
    "ClippedGradient",
    "DPSGDConfig",
    "DPSGDResult",
    "PerExampleClipper",
    "cosine_schedule",
    "poisson_sample",
    "train_dpsgd",
]

Batch = torch.Tensor | tuple[torch.Tensor, ...]
PerExampleLoss = Callable[[nn.Module, Any], torch.Tensor]

_NORM_METHODS = ("auto", "ghost", "materialize")
_OPTIMIZERS = ("adam", "adamw", "sgd")


# ---------------------------------------------------------------------------------------------
# configuration and result


@dataclass
class DPSGDConfig:
    r"""Settings of one DP-SGD run (see :func:`train_dpsgd`).

    Parameters
    ----------
    epsilon, delta : float
        Target guarantee of the whole run.  ``epsilon=float("inf")`` trains through the same code
        without noise (noise multiplier 0), for comparisons; clipping then stays as configured
        (``max_grad_norm=None`` turns it off).
    epochs : float, default=10
        Expected passes over the data: the number of steps is :math:`\mathrm{round}(\text{epochs}/q)`
        (at least 1).
    batch_size : int, default=256
        Expected batch size :math:`b`; the sampling rate is :math:`q = \min(1, b / N)` and the
        clipped, noised gradient sum is divided by :math:`qN` (:math:`N` treated as public).  With
        ``sample_rate`` given, the sum is divided by ``batch_size`` instead: set it to the expected
        batch size :math:`q \hat N` computed from the released row count :math:`\hat N`.
    max_grad_norm : float or None, default=1.0
        Total clipping threshold :math:`C` (the L2 sensitivity of one step).  ``None`` (only with
        ``epsilon=inf``) disables clipping.
    clipping : {"flat", "per_layer"} or mapping, default="flat"
        ``"flat"``: one threshold :math:`C` on each example's whole gradient.  ``"per_layer"``:
        each Linear layer is a group.  A mapping ``{module name: group label}`` (names as in
        ``model.named_modules()``, every trainable Linear layer listed) defines custom groups.
        Group thresholds satisfy :math:`\sqrt{\sum_k C_k^2} = C`.
    group_weights : mapping or None, default=None
        Relative thresholds ``{group label: w_k}``: :math:`C_k = C\, w_k / \|w\|_2`.  By default
        the split is equal, :math:`C_k = C/\sqrt{K}` (per-layer labels are the module names).
    accountant : {"prv", "rdp"}, default="prv"
        Opacus accountant used to calibrate the noise and to state the release's epsilon.
    lr : float, default=1e-3
        Learning rate of the built-in optimizers.
    optimizer : {"adam", "adamw", "sgd"} or callable, default="adam"
        A name, or ``factory(params) -> torch.optim.Optimizer`` (``lr`` and ``weight_decay`` are
        then the factory's business).  The optimizer only sees the privatised gradient, so any
        optimizer is post-processing.
    weight_decay : float, default=0.0
        Weight decay of the built-in optimizers (a function of the parameters only: no privacy cost).
    scheduler : callable or None, default=None
        ``factory(optimizer, n_steps) -> scheduler``; ``scheduler.step()`` is called after every
        optimizer step.
    early_stopping : callable or None, default=None
        ``early_stopping(n_steps_done, model) -> bool``, called after every step; ``True`` stops.
        It must use PUBLIC information only, which costs no privacy: a fixed schedule, or the
        model alone (e.g. its likelihood on public validation data).  Anything computed from the
        private rows (the training loss included) is NOT allowed: the number of steps would then
        leak.  The release recorded is that of the steps actually taken.
    norm_method : {"auto", "ghost", "materialize"}, default="auto"
        How per-example weight-gradient norms are computed (Gram matrices, or materialised
        per-example gradients); ``"auto"`` picks the cheaper per layer and batch.
    check_model : bool, default=True
        On the first non-empty batch, verify that the per-example decomposition accounts for the
        whole parameter gradient (it does not when a parameter is used outside a Linear call,
        e.g. ``F.linear(x, layer.weight)`` or a weight penalty inside the loss).  The check is
        structural (it fails for any data), and costs one extra backward pass once.
    diagnostics : bool, default=False
        Record the per-step mean loss and batch size in ``DPSGDResult.history`` (and show the loss
        in the progress bar).  These are NOT differentially private: for debugging only; never
        expose them in a fitted estimator.
    verbose : int, default=0
        Show a tqdm progress bar.
    sample_rate : float or None, default=None
        Poisson sampling rate :math:`q` to use instead of ``batch_size / N``.  The rate and the
        number of steps are released (in the ledger record), so with the true row count N they
        reveal N: estimators pass a rate computed from a DP (or public) row count :math:`\hat N`
        instead, e.g. ``sample_rate = batch_size / N_hat`` with :math:`\hat N \ge` ``batch_size``.
        The update is then divided by ``batch_size`` (not by :math:`qN`), so the exact N reaches
        neither the release nor the weights (only the Poisson sampling reads it).
    noise_multiplier : float or None, default=None
        Use this :math:`\sigma` instead of calibrating it to ``(epsilon, delta)``: for an estimator
        that runs several trainings with one noise level calibrated for all their steps together
        (their composition is then exactly one longer run).  The release states the epsilon of
        the steps taken at this :math:`\sigma`.
    """

    epsilon: float
    delta: float
    epochs: float = 10.0
    batch_size: int = 256
    max_grad_norm: float | None = 1.0
    clipping: str | Mapping[str, str] = "flat"
    group_weights: Mapping[str, float] | None = None
    accountant: str = "prv"
    lr: float = 1e-3
    optimizer: str | Callable[..., torch.optim.Optimizer] = "adam"
    weight_decay: float = 0.0
    scheduler: Callable[[torch.optim.Optimizer, int], Any] | None = None
    early_stopping: Callable[[int, nn.Module], bool] | None = None
    norm_method: str = "auto"
    check_model: bool = True
    diagnostics: bool = False
    verbose: int = 0
    sample_rate: float | None = None
    noise_multiplier: float | None = None

    def __post_init__(self):
        if self.noise_multiplier is not None:
            nm = _number("noise_multiplier", self.noise_multiplier)
            if not (math.isfinite(nm) and nm >= 0):
                raise ValueError(f"noise_multiplier must be finite and >= 0, got {self.noise_multiplier}")
        if self.sample_rate is not None and not 0 < _number("sample_rate", self.sample_rate) <= 1:
            raise ValueError(f"sample_rate must be in (0, 1], got {self.sample_rate}")
        eps = _number("epsilon", self.epsilon)
        if not eps > 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        if not 0 < _number("delta", self.delta) < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if not (math.isfinite(_number("epochs", self.epochs)) and self.epochs > 0):
            raise ValueError(f"epochs must be finite and > 0, got {self.epochs}")
        if isinstance(self.batch_size, bool) or not float(self.batch_size).is_integer() or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        if self.max_grad_norm is None:
            if math.isfinite(eps):
                raise ValueError("max_grad_norm=None (no clipping) is only allowed with epsilon=inf")
        else:
            c = _number("max_grad_norm", self.max_grad_norm)
            if not (math.isfinite(c) and c > 0):
                raise ValueError(f"max_grad_norm must be finite and > 0, got {self.max_grad_norm}")
        if isinstance(self.clipping, str) and self.clipping not in ("flat", "per_layer"):
            raise ValueError(f"clipping must be 'flat', 'per_layer' or a mapping, got {self.clipping!r}")
        if not isinstance(self.clipping, (str, Mapping)):
            raise ValueError(f"clipping must be 'flat', 'per_layer' or a mapping, got {self.clipping!r}")
        if self.accountant not in ("prv", "rdp"):
            raise ValueError(f"accountant must be 'prv' or 'rdp', got {self.accountant!r}")
        if not (math.isfinite(_number("lr", self.lr)) and self.lr >= 0):
            raise ValueError(f"lr must be finite and >= 0, got {self.lr}")
        if not (math.isfinite(_number("weight_decay", self.weight_decay)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be finite and >= 0, got {self.weight_decay}")
        if isinstance(self.optimizer, str) and self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS} or a callable, got {self.optimizer!r}")
        if not isinstance(self.optimizer, str) and not callable(self.optimizer):
            raise ValueError(f"optimizer must be one of {_OPTIMIZERS} or a callable, got {self.optimizer!r}")
        for name in ("scheduler", "early_stopping"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise ValueError(f"{name} must be None or a callable, got {value!r}")
        if self.norm_method not in _NORM_METHODS:
            raise ValueError(f"norm_method must be one of {_NORM_METHODS}, got {self.norm_method!r}")


@dataclass
class DPSGDResult:
    r"""What :func:`train_dpsgd` returns (the model itself is trained in place).

    Attributes
    ----------
    noise_multiplier : float
        :math:`\sigma`: the noise std on the summed clipped gradient is :math:`\sigma C`.
    sample_rate : float
        Poisson sampling rate :math:`q`.
    steps : int
        Steps actually taken (fewer than ``planned_steps`` after early stopping).
    planned_steps : int
        Steps the noise was calibrated for.
    epsilon, delta : float
        Guarantee of the steps taken (``release.epsilon``, ``release.delta``).
    release : PrivacyRelease
        The one release recorded for this run.
    stopped_early : bool
    history : dict of lists
        Per-step diagnostics (``"loss"``, ``"batch_size"``) when ``config.diagnostics``; they are
        not differentially private.
    """

    noise_multiplier: float
    sample_rate: float
    steps: int
    planned_steps: int
    epsilon: float
    delta: float
    release: PrivacyRelease
    stopped_early: bool = False
    history: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class ClippedGradient:
    r"""Per-example statistics of one :meth:`PerExampleClipper.clip_and_sum` call.

    Attributes
    ----------
    loss : Tensor of shape (B,)
        The per-example losses (detached).
    layer_norms : Tensor of shape (B, n_layers) or None
        Per-example gradient norm of each trainable Linear layer (weight and bias together), in
        the order of :attr:`PerExampleClipper.layer_names`; ``None`` when clipping is off.
    group_norms : Tensor of shape (B, n_groups) or None
        Per-example gradient norm of each clipping group (flat clipping: one group, the total).
    factors : Tensor of shape (B, n_groups) or None
        Clip factors :math:`\min(1, C_k / \|\nabla_k \ell_i\|)` (0 for an example whose gradient is
        not finite).
    """

    loss: torch.Tensor
    layer_norms: torch.Tensor | None
    group_norms: torch.Tensor | None
    factors: torch.Tensor | None


# ---------------------------------------------------------------------------------------------
# per-example clipping


class _Tape:
    """One trainable Linear layer and what its calls recorded during the current forward."""

    __slots__ = ("name", "module", "group", "weight", "bias", "acts", "outs")

    def __init__(self, name: str, module: nn.Linear, group: int):
        self.name = name
        self.module = module
        self.group = group
        self.weight = module.weight if module.weight.requires_grad else None
        self.bias = module.bias if module.bias is not None and module.bias.requires_grad else None
        self.acts: list[tuple[torch.Tensor, int]] = []  # (input detached, its version)
        self.outs: list[tuple[torch.Tensor, int]] = []  # (output, its version)

    def clear(self) -> None:
        self.acts.clear()
        self.outs.clear()


class PerExampleClipper:
    r"""Per-example gradient norms and clipped gradient sums of a Linear-layer model.

    Hooks are registered on every trainable :class:`torch.nn.Linear` of ``model`` (a layer may
    be called any number of times per forward); they record only inside :meth:`clip_and_sum`.
    See the module docstring for the math.

    Parameters
    ----------
    model : torch.nn.Module
        Trainable parameters must all belong to plain :class:`torch.nn.Linear` layers; any other
        module with trainable parameters (LayerNorm with affine parameters, convolutions,
        embeddings, a bare ``nn.Parameter``), a Linear subclass with its own ``forward`` and batch
        normalisation (which mixes the examples of a batch) are refused with a ``ValueError``.
        Every Linear input must have the batch as its first dimension (extra middle dimensions
        count as further calls).  The outputs of Linear layers must not be modified in place.
    max_grad_norm : float or None
        Total threshold :math:`C`; ``None`` disables clipping (plain summed gradient).
    clipping, group_weights, norm_method, check_model
        As in :class:`DPSGDConfig`.

    Attributes
    ----------
    layer_names : list of str
        The trainable Linear layers, in ``model.named_modules()`` order.
    groups : list of str
        Clipping group labels (``["all"]`` for flat clipping).
    thresholds : dict
        :math:`C_k` of each group, with :math:`\sum_k C_k^2 = C^2`.

    Notes
    -----
    Each example's loss must depend on the parameters only through the calls of Linear layers
    on its own row (no batch statistics, no cross-example terms): the privacy guarantee rests on
    it.  The decomposition is checked once (``check_model``) against autograd.  With clipping,
    an example whose gradient is not finite (NaN or infinite) is dropped (clip factor 0), so that
    one row can never move the sum by more than :math:`C`, nor turn it into NaN.
    """

    def __init__(self, model: nn.Module, max_grad_norm: float | None = 1.0, clipping: str | Mapping = "flat",
                 group_weights: Mapping[str, float] | None = None, norm_method: str = "auto",
                 check_model: bool = True):
        if norm_method not in _NORM_METHODS:
            raise ValueError(f"norm_method must be one of {_NORM_METHODS}, got {norm_method!r}")
        if max_grad_norm is not None and not (math.isfinite(max_grad_norm) and max_grad_norm > 0):
            raise ValueError(f"max_grad_norm must be None or finite and > 0, got {max_grad_norm}")
        linears = _trainable_linears(model)
        self.model = model
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)
        self.norm_method = norm_method
        self.layer_names = [name for name, _ in linears]
        labels = _group_labels(self.layer_names, clipping)
        self.groups = list(dict.fromkeys(labels))
        self._tapes = [_Tape(name, m, self.groups.index(g)) for (name, m), g in zip(linears, labels, strict=True)]
        self.thresholds = _thresholds(self.groups, self.max_grad_norm, group_weights)
        self._recording = False
        self._batch_size = 0
        self._checked = not check_model
        self._handles = [t.module.register_forward_hook(self._hook(t), with_kwargs=True) for t in self._tapes]

    # -- public -------------------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        """The trainable parameters, weight then bias of each layer."""
        return [p for t in self._tapes for p in (t.weight, t.bias) if p is not None]

    def clip_and_sum(self, per_example_loss: PerExampleLoss, batch: Batch) -> ClippedGradient:
        r"""Write :math:`\sum_i c_i \nabla \ell_i` into each parameter's ``.grad``.

        ``per_example_loss(model, batch)`` must return a tensor of shape ``(B,)``; the batch may
        be empty (every ``.grad`` is then zero).  Clip factors are per group
        (:math:`c_{i,k}`); without clipping they are 1.
        """
        n = _batch_len(batch)
        params = self.parameters()
        device = params[0].device if params else torch.device("cpu")
        n_groups = len(self.groups)
        if n == 0:
            for p in params:
                p.grad = torch.zeros_like(p)
            empty = torch.zeros(0, device=device)
            norms = None if self.max_grad_norm is None else torch.zeros(0, n_groups, device=device)
            layer = None if norms is None else torch.zeros(0, len(self._tapes), device=device)
            return ClippedGradient(empty, layer, norms, norms)
        loss, records, reference = self._forward_backward(per_example_loss, batch, n)
        calls = [_Calls.stack(tape, rec) for tape, rec in zip(self._tapes, records, strict=True)]
        if self.max_grad_norm is None:
            factors = layer_norms = group_norms = None
            for tape, cl in zip(self._tapes, calls, strict=True):
                _write(tape, _clipped_sum(tape, cl, None))
        else:
            sq = torch.stack([_sq_norm(tape, cl, n, self.norm_method) for tape, cl in
                              zip(self._tapes, calls, strict=True)], dim=1)  # (B, n_layers)
            index = torch.tensor([t.group for t in self._tapes], device=sq.device)
            group_sq = torch.zeros(n, n_groups, dtype=sq.dtype, device=sq.device).index_add_(1, index, sq)
            layer_norms, group_norms = sq.sqrt(), group_sq.sqrt()
            c = torch.tensor([self.thresholds[g] for g in self.groups], dtype=sq.dtype, device=sq.device)
            factors = (c / group_norms).clamp(max=1.0)  # C/0 = inf -> 1
            finite = torch.isfinite(sq).all(1)
            if not bool(finite.all()):  # drop (weight 0) the examples whose gradient is NaN or infinite
                factors = factors.masked_fill(~finite[:, None], 0.0)
                for cl in calls:
                    if cl is not None:
                        cl.drop(~finite)
            for tape, cl in zip(self._tapes, calls, strict=True):
                _write(tape, _clipped_sum(tape, cl, factors[:, tape.group]))
        if reference is not None:
            self._verify(reference, calls)
        return ClippedGradient(loss, layer_norms, group_norms, factors)

    def remove(self) -> None:
        """Remove the hooks (the clipper is unusable afterwards)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self) -> PerExampleClipper:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    # -- internals ----------------------------------------------------------------------------
    def _hook(self, tape: _Tape):
        def hook(module, args, kwargs, output):
            if not self._recording or not isinstance(output, torch.Tensor) or not output.requires_grad:
                return None
            x = args[0] if args else kwargs.get("input")
            if x.dim() < 2 or x.shape[0] != self._batch_size:
                raise ValueError(
                    f"Linear layer {tape.name!r} got an input of shape {tuple(x.shape)} for a batch of "
                    f"{self._batch_size} rows: the first dimension of every Linear input must be the batch")
            tape.acts.append((x.detach(), x._version))
            tape.outs.append((output, output._version))
            return None

        return hook

    def _forward_backward(self, per_example_loss: PerExampleLoss, batch: Batch, n: int):
        for t in self._tapes:
            t.clear()
        self._recording, self._batch_size = True, n
        try:
            with torch.enable_grad():
                loss = per_example_loss(self.model, batch)
        finally:
            self._recording = False
        if not isinstance(loss, torch.Tensor) or loss.shape != (n,):
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"per_example_loss must return a tensor of shape ({n},), got {shape}")
        outs = []
        for t in self._tapes:
            for (x, vx), (o, vo) in zip(t.acts, t.outs, strict=True):
                if x._version != vx or o._version != vo:
                    raise ValueError(f"the input or output of Linear layer {t.name!r} was modified in place "
                                     "(e.g. nn.ReLU(inplace=True)); use out-of-place operations")
                outs.append(o)
        params = self.parameters() if not self._checked else []
        total = loss.sum()
        grads = torch.autograd.grad(total, outs + params, allow_unused=True) if total.requires_grad else \
            [None] * (len(outs) + len(params))
        reference = grads[len(outs):] if params else None
        records, k = [], 0
        for t in self._tapes:
            rec = []
            for x, _ in t.acts:
                g = grads[k]
                k += 1
                if g is not None:
                    d, p = x.shape[-1], g.shape[-1]
                    rec.append((x.reshape(n, -1, d), g.reshape(n, -1, p)))
            t.clear()
            records.append(rec)
        return loss.detach(), records, reference

    def _verify(self, reference, calls) -> None:
        """Compare the sum of the recorded per-example gradients with autograd's gradient.

        Done once, on the first batch whose gradients are all finite."""
        k, checks = 0, []
        for tape, cl in zip(self._tapes, calls, strict=True):
            ours = _clipped_sum(tape, cl, None)
            for p, mine in zip((tape.weight, tape.bias), ours, strict=True):
                if p is None:
                    continue
                ref = reference[k]
                k += 1
                ref = torch.zeros_like(p) if ref is None else ref
                err = float((ref - mine).norm())
                scale = float(ref.norm()) + float(mine.norm())
                if not math.isfinite(err + scale):
                    return  # check again on a later batch
                checks.append((tape, err, scale, p.numel()))
        self._checked = True
        for tape, err, scale, size in checks:
            if not err <= 1e-3 * scale + 1e-12 * size:
                raise ValueError(
                    f"the gradient of Linear layer {tape.name!r} is not the sum of its per-call "
                    "contributions: a parameter is used "
                    "outside a call of its Linear module (e.g. F.linear(x, layer.weight), or a penalty "
                    "on the weights inside the loss), which per-example clipping cannot see")


class _Calls:
    """All calls of one layer in a batch: (B, T, d) activations, (B, T, p) output gradients, and
    pieces shared by the norm and the clipped sum."""

    __slots__ = ("a", "g", "g_sum", "per_example")

    def __init__(self, a: torch.Tensor, g: torch.Tensor):
        self.a, self.g = a, g
        self.g_sum = g[:, 0] if g.shape[1] == 1 else g.sum(1)  # (B, p): per-example bias gradients
        self.per_example: torch.Tensor | None = None  # (B, p, d) when materialised

    def drop(self, rows: torch.Tensor) -> None:
        """Zero the calls of the examples ``rows`` (a boolean mask)."""
        self.a = self.a.masked_fill(rows[:, None, None], 0.0)
        self.g = self.g.masked_fill(rows[:, None, None], 0.0)
        self.g_sum = self.g_sum.masked_fill(rows[:, None], 0.0)
        if self.per_example is not None:
            self.per_example = self.per_example.masked_fill(rows[:, None, None], 0.0)

    @classmethod
    def stack(cls, tape: _Tape, rec) -> _Calls | None:
        if not rec:
            return None
        dtype = tape.module.weight.dtype
        a = rec[0][0] if len(rec) == 1 else torch.cat([x for x, _ in rec], dim=1)
        g = rec[0][1] if len(rec) == 1 else torch.cat([y for _, y in rec], dim=1)
        return cls(a.to(dtype), g.to(dtype))


def _sq_norm(tape: _Tape, calls: _Calls | None, n: int, method: str) -> torch.Tensor:
    """(B,) squared per-example gradient norm of one layer (weight and bias together)."""
    w = tape.module.weight
    if calls is None:
        return torch.zeros(n, dtype=w.dtype, device=w.device)
    a, g = calls.a, calls.g
    n_calls, d, p = a.shape[1], a.shape[2], g.shape[2]
    out = calls.g_sum.pow(2).sum(1) if tape.bias is not None else None
    if tape.weight is not None:
        if n_calls == 1:  # ||g a^T||^2 = |a|^2 |g|^2
            sq = a[:, 0].pow(2).sum(1) * g[:, 0].pow(2).sum(1)
        elif _materialize(method, n_calls, d, p):
            calls.per_example = torch.bmm(g.transpose(1, 2), a)  # (B, p, d)
            sq = calls.per_example.pow(2).sum((1, 2))
        else:  # sum_{t,t'} (a_t . a_t') (g_t . g_t'), in float64: the terms cancel when the calls' gradients do
            a64, g64 = a.double(), g.double()
            sq = torch.bmm(a64, a64.transpose(1, 2)).mul_(torch.bmm(g64, g64.transpose(1, 2))).sum((1, 2))
            sq = sq.clamp_min_(0.0).to(w.dtype)
        out = sq if out is None else out + sq
    return out


def _materialize(method: str, n_calls: int, d: int, p: int) -> bool:
    r"""Materialise per-example weight gradients rather than use Gram matrices?

    Per example, Gram matrices cost :math:`T^2 (d + p)` on top of the clipped-sum product, the
    materialised gradients :math:`T p d` in a batched product with inner dimension :math:`T`
    (inefficient) and :math:`p d` memory.  Measured on a CPU (batch 512), the materialised route
    won only where :math:`T^2 (d + p)` exceeded about :math:`16\,pd` (e.g. :math:`T = 64`,
    :math:`d = p = 16`: 14x faster; :math:`T = 8`, :math:`d = p = 256`: 20x slower); the
    threshold used is :math:`32\,pd`.
    """
    if method != "auto":
        return method == "materialize"
    return 32 * p * d < n_calls**2 * (d + p)


def _clipped_sum(tape: _Tape, calls: _Calls | None, factors: torch.Tensor | None):
    r"""(weight, bias) gradients :math:`\sum_i c_i \sum_t g_{i,t} a_{i,t}^\top` and
    :math:`\sum_i c_i \sum_t g_{i,t}` (None for a frozen parameter; ``factors=None``: :math:`c_i = 1`)."""
    w, b = tape.weight, tape.bias
    if calls is None:
        return (None if w is None else torch.zeros_like(w), None if b is None else torch.zeros_like(b))
    a, g = calls.a, calls.g
    n, p, d = a.shape[0], g.shape[2], a.shape[2]
    c = None if factors is None else factors.to(g.dtype)
    grad_w = grad_b = None
    if w is not None:
        if calls.per_example is not None:
            grad_w = calls.per_example.sum(0) if c is None else (c @ calls.per_example.reshape(n, p * d)).reshape(p, d)
        elif a.shape[1] == 1:
            grad_w = (calls.g_sum if c is None else calls.g_sum * c[:, None]).T @ a[:, 0]
        elif c is None:
            grad_w = g.reshape(-1, p).T @ a.reshape(-1, d)
        elif d <= p:  # scale the smaller operand by the clip factors
            grad_w = g.reshape(-1, p).T @ (a * c[:, None, None]).reshape(-1, d)
        else:
            grad_w = (g * c[:, None, None]).reshape(-1, p).T @ a.reshape(-1, d)
    if b is not None:
        grad_b = calls.g_sum.sum(0) if c is None else c @ calls.g_sum
    return grad_w, grad_b


def _write(tape: _Tape, grads) -> None:
    for param, grad in zip((tape.weight, tape.bias), grads, strict=True):
        if param is not None:
            param.grad = grad.to(param.dtype).reshape(param.shape)


def _trainable_linears(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The trainable Linear layers of ``model``; raises on anything per-example clipping cannot handle."""
    from torch.nn.modules.batchnorm import _BatchNorm

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    out = []
    for name, module in model.named_modules():
        label = name or "(the model itself)"
        if isinstance(module, _BatchNorm):
            raise ValueError(f"module {label!r} ({type(module).__name__}) normalises over the batch, which "
                             "mixes examples and breaks per-example privacy; use LayerNorm without affine "
                             "parameters, or nothing")
        trainable = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if isinstance(module, nn.Linear):
            if type(module).forward is not nn.Linear.forward:
                raise ValueError(f"module {label!r} ({type(module).__name__}) subclasses nn.Linear with its own "
                                 "forward; DP-SGD here supports plain nn.Linear layers only")
            if trainable:
                out.append((name or "(root)", module))
        elif trainable:
            raise ValueError(
                f"module {label!r} ({type(module).__name__}) has trainable parameters {trainable}: DP-SGD in "
                "skdpgen supports models whose trainable parameters all belong to nn.Linear layers (use "
                "parameter-free functions elsewhere, e.g. LayerNorm(elementwise_affine=False), or freeze "
                "the parameters with requires_grad_(False))")
    if not out:
        raise ValueError("the model has no trainable nn.Linear layer")
    return out


def _group_labels(layer_names: Sequence[str], clipping) -> list[str]:
    if isinstance(clipping, str):
        if clipping == "flat":
            return ["all"] * len(layer_names)
        if clipping == "per_layer":
            return list(layer_names)
        raise ValueError(f"clipping must be 'flat', 'per_layer' or a mapping, got {clipping!r}")
    if not isinstance(clipping, Mapping):
        raise ValueError(f"clipping must be 'flat', 'per_layer' or a mapping, got {clipping!r}")
    missing = [n for n in layer_names if n not in clipping]
    unknown = [n for n in clipping if n not in layer_names]
    if missing or unknown:
        raise ValueError(f"the clipping groups must list every trainable Linear layer exactly: missing {missing}, "
                         f"unknown {unknown} (trainable layers: {list(layer_names)})")
    return [str(clipping[n]) for n in layer_names]


def _thresholds(groups: list[str], max_grad_norm: float | None,
                weights: Mapping[str, float] | None) -> dict[str, float]:
    if weights is None:
        w = [1.0] * len(groups)
    else:
        if set(weights) != set(groups):
            raise ValueError(f"group_weights must give a weight to each group {groups}, got {sorted(weights)}")
        w = [float(weights[g]) for g in groups]
        if not all(math.isfinite(x) and x > 0 for x in w):
            raise ValueError(f"group_weights must be finite and > 0, got {dict(weights)}")
    if max_grad_norm is None:
        return {g: math.inf for g in groups}
    norm = math.sqrt(math.fsum(x * x for x in w))
    return {g: max_grad_norm * x / norm for g, x in zip(groups, w, strict=True)}


# ---------------------------------------------------------------------------------------------
# sampling and training


def cosine_schedule(optimizer: torch.optim.Optimizer, n_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
    r"""Cosine annealing over a whole run (a :attr:`DPSGDConfig.scheduler` factory).

    :math:`\eta_t = \tfrac{\eta}{2}(1 + \cos(\pi t / T))` for the ``T = n_steps`` planned steps,
    ending at 0 (Loshchilov & Hutter, SGDR, ICLR 2017).  A fixed schedule: no privacy cost.
    """
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(n_steps), 1))


def poisson_sample(n: int, sample_rate: float, generator: torch.Generator,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """Indices of a Poisson sample: each of ``n`` rows is kept independently with ``sample_rate``.

    Drawn from ``generator`` (torch's global RNG is not touched); returned on ``device`` (by
    default the generator's).  The sample may be empty.
    """
    u = torch.rand(int(n), generator=generator, device=generator.device)
    idx = torch.nonzero(u < float(sample_rate), as_tuple=True)[0]
    return idx if device is None else idx.to(device)


def train_dpsgd(model: nn.Module, per_example_loss: PerExampleLoss, data: Batch, config: DPSGDConfig, *,
                generator: torch.Generator, ledger: PrivacyLedger | None = None, owner: str = "",
                name: str = "dpsgd") -> DPSGDResult:
    r"""Train ``model`` in place with DP-SGD; record one release.

    Parameters
    ----------
    model : torch.nn.Module
        Trainable parameters in plain :class:`torch.nn.Linear` layers only (each may be called
        several times per forward); see :class:`PerExampleClipper`.  On the same device as ``data``.
    per_example_loss : callable
        ``per_example_loss(model, batch) -> Tensor of shape (B,)``: the loss of each row of the
        batch, depending on that row only.  The per-example gradients are those of these losses
        (not of their mean).  Not called for an empty batch.
    data : Tensor of shape (N, ...) or tuple of such tensors
        The private rows; a batch is ``data[idx]`` (or the tuple of ``t[idx]``).
    config : DPSGDConfig
    generator : torch.Generator
        Source of the Poisson samples and of the noise (ideally on the model's device).
    ledger : PrivacyLedger or None
        When given, the planned release is reserved BEFORE training
        (:meth:`~skdpgen.privacy.PrivacyLedger.reserve`: the budget is checked and the plan recorded
        in one atomic step, raising :class:`~skdpgen.exceptions.PrivacyBudgetExceeded` with the
        model untouched), and the reservation is settled with the actual release after it (also if
        training fails).  An estimator that accounts for its releases itself (it reserved its whole
        plan) passes ``ledger=None`` and settles with ``result.release``.
    owner, name : str
        Stored in the release.

    Returns
    -------
    DPSGDResult

    Notes
    -----
    Each step adds :math:`\mathcal{N}(0, \sigma^2 C^2 I)` to the clipped gradient sum and
    divides by the expected batch size (:math:`qN`, or ``batch_size`` when ``sample_rate`` is
    given: see :class:`DPSGDConfig`).  The run is ``steps`` Poisson-subsampled
    Gaussian mechanisms of sensitivity :math:`C` (add/remove one row): ``noise_multiplier``
    :math:`\sigma`, ``sample_rate`` :math:`q`.  After early stopping (on public information only)
    the release covers the steps actually taken.  If training raises after a step, the planned
    release is recorded (the partly trained model is a release too); if it raises before the first
    step completes (the model untouched), nothing is recorded.
    """
    if not isinstance(config, DPSGDConfig):
        raise TypeError(f"config must be a DPSGDConfig, got {type(config).__name__}")
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    tensors = data if isinstance(data, (tuple, list)) else (data,)
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise TypeError("data must be a tensor or a tuple of tensors")
    n_rows = int(tensors[0].shape[0]) if tensors[0].dim() else 0
    if n_rows == 0 or any(t.dim() == 0 or t.shape[0] != n_rows for t in tensors):
        raise ValueError("data must hold at least one row, with the same number of rows in every tensor")
    clipper = PerExampleClipper(model, config.max_grad_norm, config.clipping, config.group_weights,
                                config.norm_method, config.check_model)
    try:
        return _train(model, clipper, per_example_loss, data, tensors, n_rows, config, generator, ledger,
                      owner, name)
    finally:
        clipper.remove()


def _train(model, clipper, per_example_loss, data, tensors, n_rows, config, generator, ledger, owner, name):
    params = clipper.parameters()
    device = params[0].device
    for t in tensors:
        if t.device != device:
            raise ValueError(f"data is on {t.device} but the model is on {device}; put them on the same device")
    q = config.sample_rate if config.sample_rate is not None else min(1.0, config.batch_size / n_rows)
    planned = max(1, round(config.epochs / q))
    sigma = (float(config.noise_multiplier) if config.noise_multiplier is not None
             else calibrate_subsampled_noise(config.epsilon, config.delta, q, planned, config.accountant))
    sensitivity = config.max_grad_norm

    def release(steps: int) -> PrivacyRelease:
        return PrivacyRelease.subsampled(name, noise_multiplier=sigma, sample_rate=q, steps=steps,
                                         delta=config.delta, accountant=config.accountant,
                                         sensitivity=sensitivity, owner=owner)

    planned_release = release(planned)
    # reserved before the first step (check and record in one atomic step): a concurrent fit on the
    # same ledger cannot pass its check on the budget this run is about to spend
    reservation = ledger.reserve([planned_release]) if ledger is not None else None
    done, stopped, failed = 0, False, True
    modes = {m: m.training for m in model.modules()}
    bar = None
    try:
        noise_std = sigma * sensitivity if sigma > 0 else 0.0
        scale = _update_scale(config, n_rows)
        optimizer = _make_optimizer(config, params)
        scheduler = config.scheduler(optimizer, planned) if config.scheduler is not None else None
        history: dict[str, list[float]] = {"loss": [], "batch_size": []} if config.diagnostics else {}
        model.train()
        if config.verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=planned, desc=name)
            bar.set_postfix(sigma=f"{sigma:.3g}")
        for _ in range(planned):
            idx = poisson_sample(n_rows, q, generator, device)
            batch = data[idx] if isinstance(data, torch.Tensor) else tuple(t[idx] for t in tensors)
            out = clipper.clip_and_sum(per_example_loss, batch)
            _noise_and_scale_(params, noise_std, scale, generator)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            done += 1
            if config.diagnostics:
                history["loss"].append(float(out.loss.mean()) if len(out.loss) else math.nan)
                history["batch_size"].append(float(len(out.loss)))
            if bar is not None:
                bar.update(1)
                if config.diagnostics:
                    bar.set_postfix(sigma=f"{sigma:.3g}", loss=f"{history['loss'][-1]:.4g}")
            if config.early_stopping is not None and config.early_stopping(done, model):
                stopped = done < planned
                break
        failed = False
    finally:
        if bar is not None:
            bar.close()
        for m, mode in modes.items():
            m.train(mode)
        if failed:  # the partly trained model is a release too; nothing happened before the first step
            final = planned_release if done else None
        else:
            final = planned_release if done == planned else release(done)
        if reservation is not None and final is not planned_release:  # the reservation already holds the plan
            ledger.settle(reservation, [] if final is None else [final])
    return DPSGDResult(noise_multiplier=float(sigma), sample_rate=q, steps=done, planned_steps=planned,
                       epsilon=final.epsilon, delta=final.delta, release=final, stopped_early=stopped,
                       history=history)


def _update_scale(config: DPSGDConfig, n_rows: int) -> float:
    r"""``1 / b``: the factor applied to the noisy clipped gradient sum, from public or released values.

    With ``config.sample_rate`` (computed by the caller from a released row count :math:`\hat N`),
    :math:`b` is ``config.batch_size`` (:math:`= q \hat N`): the private row count ``n_rows`` must
    not reach the weights.  Without it, ``n_rows`` is public by the caller's choice and
    :math:`b = qN = \min(\text{batch\_size}, N)`.
    """
    if config.sample_rate is not None:
        return 1.0 / float(config.batch_size)
    return 1.0 / (min(1.0, config.batch_size / n_rows) * n_rows)


@torch.no_grad()
def _noise_and_scale_(params: list[nn.Parameter], noise_std: float, scale: float,
                      generator: torch.Generator) -> None:
    """``p.grad <- (p.grad + N(0, noise_std^2 I)) * scale`` for each parameter, noise from ``generator``."""
    for p in params:
        if noise_std > 0:
            noise = torch.randn(p.shape, generator=generator, device=generator.device, dtype=p.dtype)
            p.grad.add_(noise.to(p.device), alpha=noise_std)
        p.grad.mul_(scale)


def _make_optimizer(config: DPSGDConfig, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if callable(config.optimizer):
        return config.optimizer(params)
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[config.optimizer]
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)


def _number(name: str, value) -> float:
    """``float(value)`` or a ValueError naming ``name`` (NaN refused); the privacy core's check."""
    return _real(name, value, lo=-math.inf)


def _batch_len(batch: Batch) -> int:
    first = batch[0] if isinstance(batch, (tuple, list)) else batch
    return int(first.shape[0])
