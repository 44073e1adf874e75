"""DirichletPruner: structured pruning of a trained network with one Dirichlet per layer."""

from __future__ import annotations

import copy
import math
import time
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from .._config import fresh_noise, privacy_seed
from .._torch import PortableStateMixin, derive_seeds, resolve_device, torch_generator, with_torch_threads
from ..base import fresh_fit
from ..dpsgd import cosine_schedule
from ..exceptions import PrivacyBudgetExceeded  # noqa: F401  (documented in Raises)
from ..privacy import ADD_REMOVE, PrivacyLedger, PrivacyRelease
from . import _common as C
from .dirichlet import (
    _TINY,
    ALPHA_MIN,
    DirichletGate,
    dirichlet_kl_torch,
    kl_rows,
    sample_dirichlet,
    sample_dirichlet_shared,
)
from .networks import (
    analyse_network,
    count_parameters,
    gated_forward,
    is_sklearn_mlp,
    magnitude_importances,
    mlp_to_torch,
    prune_network,
    torch_to_mlp,
)

__all__ = ["DirichletPruner", "FlatGates", "select_units"]

# largest output (elements, all rows) of the frozen layers before the first gate that the
# non-private fit precomputes once (256 MiB of float32)
_PREFIX_MAX_NUMEL = 2**26


def select_units(importances: list[np.ndarray], compression, scope: str = "layer",
                 min_units: int = 1) -> list[np.ndarray]:
    r"""Indices of the units to KEEP in each layer, given per-layer importances.

    Parameters
    ----------
    importances : list of ndarray
        One importance vector per layer (larger is more important).
    compression : float or sequence of float
        Fraction of units to remove: one rate for every layer (``scope="layer"``), one rate per
        layer (a sequence), or a fraction of all units (``scope="global"``).
    scope : {"layer", "global"}
        ``"global"`` ranks all units together by :math:`K_l\,\pi_{l,k}` (importance relative to a
        uniform share; 1 is average), so layers with many unimportant units lose more.
    min_units : int
        Units kept in every layer at least.
    """
    sizes = [len(v) for v in importances]
    if np.ndim(compression) == 0:
        rates = [float(compression)] * len(sizes)
    else:
        rates = [float(c) for c in compression]
        if len(rates) != len(sizes):
            raise ValueError(f"compression gives {len(rates)} rates for {len(sizes)} prunable layers")
        scope = "layer"
    if any(not 0 <= r < 1 for r in rates):
        raise ValueError(f"compression rates must be in [0, 1), got {rates}")
    order = [np.argsort(-np.asarray(v, dtype=np.float64), kind="stable") for v in importances]
    if scope == "layer":
        keep = [max(min(min_units, k), k - int(math.floor(r * k + 0.5))) for r, k in zip(rates, sizes, strict=True)]
    else:
        total_remove = int(math.floor(rates[0] * sum(sizes) + 0.5))
        score = np.concatenate([np.asarray(v, dtype=np.float64) * len(v) for v in importances])
        layer_of = np.concatenate([np.full(k, i) for i, k in enumerate(sizes)])
        keep = list(sizes)
        for j in np.argsort(score, kind="stable"):
            if total_remove == 0:
                break
            li = layer_of[j]
            if keep[li] > min(min_units, sizes[li]):
                keep[li] -= 1
                total_remove -= 1
    return [np.sort(o[:k]) for o, k in zip(order, keep, strict=True)]


def gates_loss(gates: nn.ModuleList, net: nn.Sequential, plan, batch, task: str, generator: torch.Generator,
               n_distinct: int, prior: float, kl_scale: float, per_row: bool) -> torch.Tensor:
    r"""Per-row loss :math:`-\log p(y_i \mid x_i, s) + \text{kl\_scale} \sum_l \mathrm{KL}_l` of the gated network.

    ``per_row=True`` calls each gate once per row (what DP-SGD needs: every row's loss depends on
    the parameters through its own calls); ``per_row=False`` calls it once for the batch.  Both
    draw the same Gamma variates from ``generator`` and give the same values and gradients.
    """
    xb, yb = batch
    b = xb.shape[0]
    n = max(1, min(int(n_distinct), b))
    idx = torch.arange(b, device=xb.device) % n
    scales, kl = [], 0.0
    for gate in gates:
        if per_row:
            alpha = gate(b)
            scales.append(sample_dirichlet_shared(alpha, generator, n) * gate.n_units)
            kl = kl + kl_rows(alpha, prior)
        else:
            alpha = gate(1)
            scales.append((sample_dirichlet(alpha.expand(n, -1), generator) * gate.n_units)[idx])
            kl = kl + dirichlet_kl_torch(alpha, torch.full_like(alpha, prior))
    nll = C.per_example_nll(gated_forward(net, plan, xb, scales), yb, task)
    return nll + kl_scale * kl


class FlatGates(nn.Module):
    r"""The gates of all prunable layers in ONE parameter vector, for the non-private fit.

    Same model, samples, values and gradients as :func:`gates_loss` with ``per_row=False`` (the
    Gamma variates are drawn in the same order from the same generator), in a few operations on
    :math:`\sum_l K_l` entries instead of a dozen per layer: one softplus, one Gamma draw, the
    per-layer normalisations and KL terms through a (units x layers) membership matrix, and one
    Adam parameter.  A step of a small network is dominated by per-operation overheads, which is
    what this saves.  :meth:`write_back` copies the learned values into the per-layer gates.
    ``kl_value=False`` returns the KL term with its exact gradient but a value of 0 (the fit only
    needs gradients; this saves the log-Gamma and digamma evaluations).
    """

    def __init__(self, gates: nn.ModuleList, prior: float, kl_value: bool = True):
        super().__init__()
        self.kl_value = bool(kl_value)
        self.sizes = [int(g.n_units) for g in gates]
        self.rho = nn.Parameter(torch.cat([g.rho.weight.detach()[:, 0] for g in gates]).clone())
        dev, dt = self.rho.device, self.rho.dtype
        sizes = torch.tensor(self.sizes, device=dev)
        self.layer_of = torch.repeat_interleave(torch.arange(len(self.sizes), device=dev), sizes)
        self.member = nn.functional.one_hot(self.layer_of, len(self.sizes)).to(dt)  # (S, L)
        self.member_t = self.member.t().contiguous()
        self.k_units = sizes.to(dt)[self.layer_of]  # K_l of each unit's layer
        self.offsets = [0, *np.cumsum(self.sizes).tolist()]
        self.prior = float(prior)
        # KL terms that do not depend on alpha: -lnG(K_l a0) + K_l lnG(a0)
        self.kl_const = float(sum(-math.lgamma(k * prior) + k * math.lgamma(prior) for k in self.sizes))
        self._orders: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def _order(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Unit of each Gamma draw (layer by layer, (n, K_l) row-major, as gates_loss draws them) and the
        position of draw (row j, unit u) in that order."""
        if n not in self._orders:
            dev = self.rho.device
            units, pos, start = [], torch.empty(n, self.offsets[-1], dtype=torch.long, device=dev), 0
            for off, k in zip(self.offsets[:-1], self.sizes, strict=True):
                units.append((off + torch.arange(k, device=dev)).repeat(n))
                pos[:, off:off + k] = start + torch.arange(n * k, device=dev).view(n, k)
                start += n * k
            self._orders[n] = (torch.cat(units), pos)
        return self._orders[n]

    def forward(self, b: int, n_distinct: int, generator: torch.Generator) -> tuple[list[torch.Tensor], torch.Tensor]:
        r"""``(scales, kl)``: per layer the (b, K_l) scales :math:`K_l s` (row i uses sample i mod n), and
        :math:`\sum_l \mathrm{KL}(\mathrm{Dir}(\alpha_l) \| \mathrm{Dir}(\alpha_0))`."""
        n = max(1, min(int(n_distinct), b))
        *scales, kl = _FlatGateFunction.apply(self.rho, self, n, b, generator)
        return scales, kl

    def write_back(self, gates: nn.ModuleList) -> None:
        with torch.no_grad():
            for g, a, z in zip(gates, self.offsets[:-1], self.offsets[1:], strict=True):
                g.rho.weight[:, 0] = self.rho[a:z]


class _FlatGateFunction(torch.autograd.Function):
    r"""Samples, scales and KL of :class:`FlatGates` as ONE autograd node with a hand-written backward.

    Forward: :math:`\alpha = \mathrm{softplus}(\rho) + \alpha_{\min}`, Gamma draws :math:`g` (n, S),
    :math:`s_u = K_l g_u / T_l` with :math:`T_l = \sum_{v \in l} g_v`, rows expanded to b.  Backward:
    :math:`\partial s_u / \partial g_u` through the normalisation,
    :math:`\partial L / \partial g_u = (K_l / T_l)(\bar s_u - \sum_{v \in l} \bar s_v s_v / K_l)`, the
    implicit reparameterisation gradient :math:`\partial g / \partial \alpha`
    (``torch._standard_gamma_grad``), the closed-form KL gradient
    :math:`(\alpha_u - \alpha_0)\psi'(\alpha_u) - \psi'(A_l) \sum_{v \in l}(\alpha_v - \alpha_0)`, and
    :math:`\partial \alpha / \partial \rho = \sigma(\rho)`.  Autograd would build about 25 nodes
    for the same computation; a step of a small network is dominated by such overheads.
    """

    @staticmethod
    def forward(ctx, rho, flat, n, b, generator):
        units, pos = flat._order(n)
        alpha = nn.functional.softplus(rho) + ALPHA_MIN  # (S,)
        g_raw = torch._standard_gamma(alpha[units], generator=generator)[pos]  # (n, S)
        g = g_raw.clamp_min(_TINY)
        scale = flat.k_units / ((g @ flat.member) @ flat.member_t)  # K_l / T_l of each unit's layer
        s = g * scale
        a0 = alpha @ flat.member  # (L,)
        if flat.kl_value:
            kl = (torch.lgamma(a0).sum() - torch.lgamma(alpha).sum() + flat.kl_const
                  + ((alpha - flat.prior) * (torch.digamma(alpha) - torch.digamma(a0)[flat.layer_of])).sum())
        else:  # the gradient only (backward below); the fit never reads the loss value
            kl = alpha.new_zeros(())
        ctx.save_for_backward(rho, alpha, g_raw, g, scale, s, a0)
        ctx.flat, ctx.n, ctx.b = flat, n, b
        # row i uses sample i mod n: whole tiles when n divides b (cheaper than a gather)
        if b != n:
            s = s.repeat(b // n, 1) if b % n == 0 else s[torch.arange(b, device=s.device) % n]
        # one output per layer (slicing one output would add a backward node per layer)
        return *s.split(flat.sizes, dim=1), kl

    @staticmethod
    def backward(ctx, *grads):
        rho, alpha, g_raw, g, scale, s, a0 = ctx.saved_tensors
        flat, n, b = ctx.flat, ctx.n, ctx.b
        grad_s, grad_kl = torch.cat(grads[:-1], 1), grads[-1]
        if b != n:
            grad_s = (grad_s.view(b // n, n, -1).sum(0) if b % n == 0 else
                      torch.zeros_like(s).index_add_(0, torch.arange(b, device=s.device) % n, grad_s))
        inner = (((grad_s * s) @ flat.member) @ flat.member_t) / flat.k_units
        grad_g = scale * (grad_s - inner) * (g_raw > _TINY)
        grad_alpha = (grad_g * torch._standard_gamma_grad(alpha.expand(n, -1), g)).sum(0)
        diff = alpha - flat.prior
        kl_grad = diff * torch.polygamma(1, alpha) - (torch.polygamma(1, a0) * (diff @ flat.member))[flat.layer_of]
        grad_alpha = grad_alpha + grad_kl * kl_grad
        return grad_alpha * torch.sigmoid(rho), None, None, None, None


def flat_gates_loss(flat: FlatGates, net: nn.Sequential, plan, batch, task: str, generator: torch.Generator,
                    n_distinct: int, kl_scale: float, start: int = 0) -> torch.Tensor:
    """:func:`gates_loss` (``per_row=False``) with :class:`FlatGates`; ``batch[0]`` is the input of ``net[start]``."""
    xb, yb = batch
    scales, kl = flat(xb.shape[0], n_distinct, generator)
    return C.per_example_nll(gated_forward(net, plan, xb, scales, start), yb, task) + kl_scale * kl


def _has_predict_proba(self) -> bool:
    est = getattr(self, "pruned_estimator_", self.estimator)
    if isinstance(est, nn.Module):
        return getattr(self, "task_", "multiclass") == "multiclass"
    return hasattr(est, "predict_proba")


class DirichletPruner(PortableStateMixin, MetaEstimatorMixin, BaseEstimator):
    r"""Structured pruning with Dirichlet importances (Dirichlet Pruning, Adamczewski & Park 2021).

    The network is frozen.  Each prunable layer :math:`l` with :math:`K_l` units (neurons or
    channels) gets a variational Dirichlet :math:`q(s_l) = \mathrm{Dir}(\alpha_l)`; its units are
    multiplied by :math:`K_l s_l` (mean 1).  The concentrations are learned by maximising

    .. math::

        \sum_i \mathbb{E}_{q}[\log p(y_i \mid x_i, s)] - \sum_l \mathrm{KL}(\mathrm{Dir}(\alpha_l)\,\|\,
        \mathrm{Dir}(\alpha_0 \mathbf{1})),

    with reparameterised samples (Gamma variates from a local generator, see
    :mod:`skdpgen.pruning.dirichlet`), for about one epoch (at least ``min_steps`` steps).  The
    posterior mean :math:`\pi_{l,k} = \alpha_{l,k} / \sum_j \alpha_{l,j}` ranks the units (``importances_``); the
    least important are removed to the target ``compression`` and a genuinely smaller network is
    built (smaller weight matrices; batch-norm entries and the next layer's inputs removed too,
    including across a ``Flatten``); it is optionally fine-tuned.

    Supported networks (``estimator``): a scikit-learn
    :class:`~sklearn.neural_network.MLPClassifier` or :class:`~sklearn.neural_network.MLPRegressor`
    (its hidden layers are pruned; ``pruned_estimator_`` is a fitted estimator of the same class
    with smaller ``coefs_`` and updated ``hidden_layer_sizes``), or a torch
    :class:`~torch.nn.Sequential` of ``Linear``/``Conv2d`` layers with ``BatchNorm``, element-wise
    activations, pooling, dropout and one ``Flatten`` (``pruned_estimator_`` is a smaller
    ``Sequential``, in eval mode).  The last weight layer (the outputs) is never pruned.

    An unfitted scikit-learn ``estimator`` is first fitted (a clone) on ``X, y`` (not allowed
    with ``epsilon``).  :func:`~sklearn.base.clone` of the pruner deep-copies a fitted
    ``estimator`` or a torch module instead of resetting it, so ``GridSearchCV`` prunes the same
    trained network in every fold (like ``SelectFromModel(prefit=True)``; the network may have
    seen the validation folds).

    **Delegation.** ``predict``, ``predict_proba`` and ``score`` use ``pruned_estimator_`` (for a
    torch network: arg-max class / softmax / accuracy for classification, outputs / R^2 for
    regression).  There is no ``transform``: pruning maps a model to a model; take it from
    ``pruned_estimator_``.

    Parameters
    ----------
    estimator : MLPClassifier, MLPRegressor or torch.nn.Sequential
        The network to prune (copied, never modified).
    compression : float or sequence of float, default=0.5
        Fraction of the units to remove, in [0, 1): one rate for each layer, one rate per
        prunable layer (a sequence), or, with ``scope="global"``, a fraction of all units.
    criterion : {"dirichlet", "l1", "random"}, default="dirichlet"
        How units are ranked: the Dirichlet posterior means (the method), or, as baselines run
        through the same removal and fine-tuning code, the L1 norm of each unit's incoming weights
        (structured magnitude pruning, Li et al. 2017) or a random ranking.  The baselines learn
        nothing from the rows (no Dirichlet fit, no privacy cost before fine-tuning).
    scope : {"layer", "global"}, default="layer"
        Per-layer rates, or one global ranking by :math:`K_l \pi_{l,k}` (see :func:`select_units`).
    min_units : int, default=1
        Units every layer keeps at least.
    loss : {"auto", "classification", "regression"}, default="auto"
        For torch networks only: cross-entropy on integer labels ``0..C-1`` (the network's ``C``
        outputs must be logits: a final ``nn.Softmax``/``nn.Sigmoid`` is refused, pass the network
        without it), or squared error.  ``"auto"`` decides from shapes only: classification when
        ``y`` is 1-D and the network has 2 or more outputs (labels outside ``0..C-1`` then raise),
        regression otherwise.  Scikit-learn MLPs use their own loss; their labels must be among the
        MLP's ``classes_``.  With ``"auto"`` scikit-learn learns that a torch pruner is a classifier
        only once it is fitted (scorers such as ``roc_auc`` work); for stratified folds in
        ``cross_val_score`` or ``GridSearchCV``, which look before fitting, pass ``"classification"``.
    prior_concentration : float, default=0.5
        :math:`\alpha_0` of the symmetric Dirichlet prior (below 1 favours sparse importances).
    init_concentration : float, default=3.0
        Initial :math:`\alpha_{l,k}` (the multiplicative noise of a unit has std about
        :math:`1/\sqrt{\alpha}` at the start).  Measured on the digits MLP: small values
        (:math:`\le 1`) rank the units almost inversely to their removal cost (the :math:`K s`
        rescaling then amplifies a few units many-fold); large values (10 or more) barely move
        within one epoch.
    kl_weight : float, default=1.0
        Weight of the KL term (1 is the evidence lower bound).
    samples_per_batch : int, default=4
        Distinct Dirichlet samples drawn per minibatch, shared by its rows (row :math:`i` uses
        sample :math:`i \bmod n`; see :func:`~skdpgen.pruning.dirichlet.sample_dirichlet_shared`).
        Independent samples per row would cost :math:`B \sum_l K_l` Gamma variates per step, as
        much as the network itself for small MLPs.
    epochs : float, default=1.0
        Passes over the data for the Dirichlet parameters (the paper: about one epoch).
    min_steps : int, default=250
        The gates take at least this many minibatch steps, more than ``epochs`` passes when the
        data set is small (0: exactly ``epochs``).  The paper's epoch on MNIST is hundreds of
        steps.  Measured on a 256-128 MLP on digits (1,010 rows, 64 steps per epoch at batch
        16; accuracy after removing 50% / 70% of the units): 0.891 / 0.753 after one epoch,
        0.942 / 0.810 after 250 steps, L1 0.909 / 0.761; a quarter of an epoch ranks worse than
        random (``benchmarks/results_pruning.md``).
    batch_size : int, default=16
        Minibatch size (expected Poisson batch size with ``epsilon``), also for fine-tuning.  Small
        batches give more steps in one epoch of a small data set.
    learning_rate : float, default=0.5
        Adam learning rate of the Dirichlet parameters.
    fine_tune_epochs : float, default=0
        Epochs of fine-tuning of the pruned network (Adam, all its weights; 0: none).
    fine_tune_lr : float or None, default=None
        Learning rate of fine-tuning; ``None``: the MLP's ``learning_rate_init``, or 1e-3.
    fine_tune_schedule : {"constant", "cosine"}, default="constant"
        ``"constant"``: the fine-tuning learning rate stays at ``fine_tune_lr``; ``"cosine"``: it
        falls from ``fine_tune_lr`` to 0 along a cosine over the whole run
        (:func:`skdpgen.dpsgd.cosine_schedule`; a fixed schedule, so also free under DP).  Cosine
        suits a light pruning of a converged network (validation rows, 50% of the units: +0.2 to
        +0.7 points on LeNet-5 and on the digits MLP); it trains less in total, so it is worse
        when the pruned network must relearn much in few epochs (digits MLP: -0.15 to -0.5 points
        at 70%, -14 to -16 at 90%; ``benchmarks/results_pruning.md``).
    epsilon : float or None, default=None
        ``None``: no privacy.  A float: the Dirichlet parameters (and fine-tuning, when asked) are
        trained with DP-SGD (:func:`skdpgen.dpsgd.train_dpsgd`) for a total
        :math:`(\varepsilon, \delta)`; see Notes for exactly what is private.
    delta : float, default=1e-5
    max_grad_norm : float, default=1.0
        Per-example clipping threshold of DP-SGD.
    accountant : {"prv", "rdp"}, default="prv"
    ledger : PrivacyLedger or None
        Records the releases of every fit (also those of clones in a search).
    random_state : int, RandomState or None
        Seeds the Dirichlet samples, minibatches and fine-tuning (torch's global RNG is never
        used); the privacy mechanisms' randomness (noise, Poisson batches, noisy counts) is fresh OS entropy at
        every fit unless ``skdpgen.set_config(reproducible_noise=True)`` (tests only).
    device : {"auto", "cpu", "cuda"} or torch.device, default="auto"
    verbose : int, default=0
    n_threads : int or None, default=1
        Torch CPU threads while fitting (see :func:`skdpgen._torch.torch_threads`).

    Attributes
    ----------
    estimator_ : estimator or nn.Sequential
        The (copied or fitted) network that was pruned.
    pruned_estimator_ : same type as ``estimator``
        The smaller fitted network (a torch network in float32, the precision of the gate fit and
        of fine-tuning, whatever its input precision; an MLP keeps its dtype).
    importances_ : list of ndarray
        Per prunable layer, the posterior mean Dirichlet importances :math:`\pi_{l}` (sum to 1;
        for the baselines, the normalised L1 norms or random scores).
    concentrations_ : list of ndarray
        Per prunable layer, the learned :math:`\alpha_l` (``criterion="dirichlet"`` only).
    kept_units_ : list of ndarray
        Indices (in the original layer) of the units kept.
    n_units_ : list of int
        Units of each prunable layer before pruning.
    n_units_pruned_ : list of int
        ...and after.
    compression_ : float
        Fraction of the prunable units actually removed.
    n_params_, n_params_pruned_ : int
        Parameters of the network before and after pruning.
    fit_times_ : dict
        Seconds spent: ``"dirichlet"`` (learning the gates) and ``"fine_tune"``.
    n_gate_steps_ : int
        Minibatch steps of the gate fit (0 for the baselines).
    task_ : str
        ``"multiclass"``, ``"binary"``, ``"multilabel"``, ``"regression"`` (squared error) or
        ``"poisson"`` (an ``MLPRegressor(loss="poisson")``: Poisson deviance on its log-rate output).
    classes_ : ndarray
        Classifiers only: the MLP's ``classes_``, or ``0..C-1`` for a torch classifier with
        ``C`` outputs (what scikit-learn's scorers read, e.g. ``roc_auc``).
    n_samples_estimate_ : float
        With ``epsilon``: the DP row count used for the sampling rate and the KL weight.
    privacy_report_ : dict
        With ``epsilon``: spent epsilon/delta, the neighbouring relation, the releases.
    n_features_in_ : int

    Notes
    -----
    **Privacy** (with ``epsilon``; neighbouring relation: add/remove one row of ``X, y``).  1% of
    the budget estimates the row count with the Gaussian mechanism (it sets the DP-SGD sampling
    rate and the :math:`1/\hat N` weight of the KL term).  The Dirichlet parameters are trained
    with DP-SGD for the rest (half of it when DP fine-tuning runs, the other half for
    fine-tuning).  The unit ranking, the removal and the pruned architecture are post-processing
    of the private concentrations.  NOT covered: the weights of the given network, which the user
    trained (if they were trained on the same private rows, the pruned network is not private;
    an unfitted ``estimator`` is therefore refused with ``epsilon``).  Fine-tuning on the private
    rows runs with DP-SGD too, which needs every trainable layer to be ``nn.Linear`` and no
    batch-norm: networks with ``Conv2d``/``BatchNorm`` raise with ``epsilon`` and
    ``fine_tune_epochs > 0`` (fine-tune them yourself on public data).  With DP fine-tuning of a
    scikit-learn MLP its L2 penalty becomes the optimiser's weight decay ``alpha / batch_size``.

    **Cost.** One epoch of the Dirichlet fit is one forward and backward pass of the frozen
    network per batch (no weight gradients) plus Gamma sampling of ``samples_per_batch``
    :math:`\times \sum_l K_l` variates.  Without ``epsilon`` the frozen layers before the first
    gate are evaluated once for all rows, and the gates are trained as one vector
    (:class:`FlatGates`, one autograd node); ``benchmarks/bench_pruning_compression.py`` compares
    the fit with an epoch of training at the same batch size.  The ranking needs hundreds of small
    gate steps, whatever the batch size (``min_steps``): one epoch when an epoch has 250 steps or
    more (4,000 rows at batch 16), several epochs of a small data set.  Against a network trained
    with large batches (scikit-learn's default of 200 rows) the fit therefore costs several of
    its epochs; ``benchmarks/results_pruning.md`` has the measured figures.

    References
    ----------
    Adamczewski, K. and Park, M. "Dirichlet Pruning for Neural Network Compression." AISTATS 2021.
    Li, H., Kadav, A., Durdanovic, I., Samet, H. and Graf, H. P. "Pruning Filters for Efficient
    ConvNets." ICLR 2017 (the L1-norm baseline, :func:`skdpgen.pruning.magnitude_importances`).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.neural_network import MLPClassifier
    >>> from skdpgen import DirichletPruner
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16
    >>> mlp = MLPClassifier((64, 32), max_iter=60, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> pruner = DirichletPruner(mlp, compression=0.5, random_state=0).fit(X, y)  # doctest: +SKIP
    >>> pruner.pruned_estimator_.hidden_layer_sizes  # doctest: +SKIP
    (32, 16)
    """

    _parameter_constraints: dict = {
        "estimator": "no_validation",
        "compression": [Interval(Real, 0, 1, closed="left"), list, tuple, np.ndarray],
        "criterion": [StrOptions({"dirichlet", "l1", "random"})],
        "scope": [StrOptions({"layer", "global"})],
        "min_units": [Interval(Integral, 1, None, closed="left")],
        "loss": [StrOptions({"auto", "classification", "regression"})],
        "prior_concentration": [Interval(Real, 0, None, closed="neither")],
        "init_concentration": [Interval(Real, 0, None, closed="neither")],
        "kl_weight": [Interval(Real, 0, None, closed="left")],
        "samples_per_batch": [Interval(Integral, 1, None, closed="left")],
        "epochs": [Interval(Real, 0, None, closed="neither")],
        "min_steps": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "fine_tune_epochs": [Interval(Real, 0, None, closed="left")],
        "fine_tune_lr": [None, Interval(Real, 0, None, closed="neither")],
        "fine_tune_schedule": [StrOptions({"cosine", "constant"})],
        "epsilon": [None, Interval(Real, 0, math.inf, closed="right")],
        "delta": [Interval(Real, 0, 1, closed="neither")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither")],
        "accountant": [StrOptions({"prv", "rdp"})],
        "ledger": [None, PrivacyLedger],
        "random_state": ["random_state"],
        "device": [StrOptions({"auto", "cpu", "cuda"}), torch.device],
        "verbose": ["verbose"],
        "n_threads": [None, Options(Integral, {-1}), Interval(Integral, 1, None, closed="left")],
    }

    neighbouring = ADD_REMOVE

    def __init__(self, estimator, compression=0.5, *, criterion="dirichlet", scope="layer", min_units=1, loss="auto",
                 prior_concentration=0.5, init_concentration=3.0, kl_weight=1.0, samples_per_batch=4, epochs=1.0,
                 min_steps=250, batch_size=16, learning_rate=0.5, fine_tune_epochs=0, fine_tune_lr=None,
                 fine_tune_schedule="constant", epsilon=None, delta=1e-5, max_grad_norm=1.0, accountant="prv",
                 ledger=None, random_state=None, device="auto", verbose=0, n_threads=1):
        self.estimator = estimator
        self.compression = compression
        self.criterion = criterion
        self.scope = scope
        self.min_units = min_units
        self.loss = loss
        self.prior_concentration = prior_concentration
        self.init_concentration = init_concentration
        self.kl_weight = kl_weight
        self.samples_per_batch = samples_per_batch
        self.epochs = epochs
        self.min_steps = min_steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.fine_tune_epochs = fine_tune_epochs
        self.fine_tune_lr = fine_tune_lr
        self.fine_tune_schedule = fine_tune_schedule
        self.epsilon = epsilon
        self.delta = delta
        self.max_grad_norm = max_grad_norm
        self.accountant = accountant
        self.ledger = ledger
        self.random_state = random_state
        self.device = device
        self.verbose = verbose
        self.n_threads = n_threads

    __sklearn_clone__ = C.clone_keeping_fitted

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        est = self.estimator
        if isinstance(est, nn.Module):
            kind = {"classification": "classifier", "regression": "regressor"}.get(self.loss)
            if kind is None and hasattr(self, "task_"):  # loss="auto": known once fitted (scorers read it)
                kind = "regressor" if self.task_ in ("regression", "poisson") else "classifier"
        else:
            try:
                kind = est.__sklearn_tags__().estimator_type
            except AttributeError:
                kind = None
        tags.estimator_type = kind
        if kind == "classifier":
            from sklearn.utils import ClassifierTags

            tags.classifier_tags = ClassifierTags()
        elif kind == "regressor":
            from sklearn.utils import RegressorTags

            tags.regressor_tags = RegressorTags()
        tags.target_tags.required = True
        tags.non_deterministic = fresh_noise(self.epsilon)  # fresh privacy noise at every fit
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------------ fitting
    @fresh_fit
    @with_torch_threads
    def fit(self, X, y):
        """Learn the Dirichlet importances, prune, optionally fine-tune; returns self.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Inputs of the network (images for a convolutional torch network).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets (labels for a classifier; integer class indices for a torch classifier).

        Raises
        ------
        PrivacyBudgetExceeded
            When ``ledger`` cannot afford the fit: its whole plan is reserved before any noise is
            drawn or any training, and a refused fit leaves the pruner unfitted.
        """
        self._validate_params()
        seeds = derive_seeds(self.random_state, 6)
        device = resolve_device(self.device)
        private = self.epsilon is not None
        strict = private and math.isfinite(float(self.epsilon))  # error messages must not print labels
        # DP-SGD's Poisson batches and noise: fresh entropy unless reproducible_noise (privacy_seed)
        seeds[1], seeds[3] = privacy_seed(seeds[1], strict), privacy_seed(seeds[3], strict)
        owner = f"{type(self).__name__}#{id(self):x}"
        est = self.estimator
        if hasattr(self, "classes_"):  # from an earlier fit
            del self.classes_
        if is_sklearn_mlp(est):
            if not C.is_fitted(est):
                if private:
                    raise ValueError("epsilon is set but the estimator is not fitted: training it on the private "
                                     "rows would not be private; pass a network trained on public data")
                est = clone(est).fit(X, y)
            else:
                est = copy.deepcopy(est)
            X_arr, y_arr = validate_data(self, X, y, reset=True, multi_output=True, dtype=(np.float64, np.float32))
            C.check_fitted_mlp(est, X_arr.shape[1])
            net = mlp_to_torch(est, device=device)
            task, Yt = C.mlp_targets(est, y_arr, device, private=strict)
            if hasattr(est, "classes_"):  # scorers (roc_auc, neg_log_loss) need it
                self.classes_ = est.classes_
        elif isinstance(est, nn.Module):
            est = copy.deepcopy(est)
            X_arr, y_arr = validate_data(self, X, y, reset=True, multi_output=True, allow_nd=True,
                                         dtype=(np.float32, np.float64))
            net = est.to(device).float()  # trained and pruned in float32 (pruned_estimator_ is float32)
            task, Yt = self._torch_targets(net, X_arr, y_arr, device, strict)
        else:
            raise TypeError("estimator must be an MLPClassifier, an MLPRegressor or a torch.nn.Sequential, got "
                            f"{type(est).__name__}")
        self.estimator_ = est
        self.task_ = task
        Xt = torch.as_tensor(np.ascontiguousarray(X_arr), dtype=torch.float32, device=device)
        net = net.float()
        requires = [p.requires_grad for p in net.parameters()]
        net.requires_grad_(False)
        net.eval()
        plan = analyse_network(net, Xt[:1])
        n = len(Xt)

        # ---- budget and releases
        do_fine_tune = float(self.fine_tune_epochs) > 0
        releases: list[PrivacyRelease] = []
        reservation = None
        n_hat = float(n)
        if private:
            if do_fine_tune and not all(isinstance(m, nn.Linear) or (not isinstance(m, nn.modules.batchnorm._BatchNorm)
                                                                     and not list(m.parameters())) for m in net):
                raise ValueError("fine-tuning with epsilon needs DP-SGD, which supports Linear layers only (no "
                                 "Conv2d/BatchNorm): set fine_tune_epochs=0 and fine-tune on public data")
            runs = ([1.0] if self.criterion == "dirichlet" else []) + ([1.0] if do_fine_tune else [])
            if not runs:
                raise ValueError("epsilon is set but nothing is trained on the rows (criterion without a Dirichlet fit "
                                 "and fine_tune_epochs=0); leave epsilon=None")
            budget = C.plan_budget(float(self.epsilon), float(self.delta), [r / len(runs) for r in runs])
            count_release = C.count_release(budget.count_epsilon, budget.count_delta,
                                            name=f"{type(self).__name__}.row_count", owner=owner)
            planned = [PrivacyRelease(name=f"{type(self).__name__}.dpsgd[{i}]", mechanism="subsampled_gaussian",
                                      epsilon=e, delta=d, owner=owner)
                       for i, (e, d) in enumerate(zip(budget.run_epsilon, budget.run_delta, strict=True))]
            # the whole plan, reserved before any noise; settled with what was released (C.settling)
            reservation = C.reserve(self, [count_release, *planned])
            n_hat = C.private_count(n, count_release, seeds[2], floor=self.batch_size)
            releases.append(count_release)
            self.n_samples_estimate_ = n_hat

        with C.settling(self.ledger, reservation, releases):  # each run recorded once, here
            # ---- the Dirichlet gates
            gates = nn.ModuleList([DirichletGate(layer.n_units, self.init_concentration, device=device)
                                   for layer in plan.layers])
            prior = float(self.prior_concentration)
            kl_scale = float(self.kl_weight) / n_hat
            gamma_gen = torch_generator(seeds[0], device)

            n_distinct = int(self.samples_per_batch)

            def gate_loss(model, batch):  # DP-SGD: one gate call per row (per-example gradients)
                return gates_loss(model, net, plan, batch, task, gamma_gen, n_distinct, prior, kl_scale, per_row=True)

            t0 = time.perf_counter()
            gate_steps = 0
            if self.criterion != "dirichlet":
                pass
            elif private:
                q = min(1.0, self.batch_size / n_hat)  # DP-SGD takes round(epochs / q) steps
                cfg = C.dp_config(budget.run_epsilon[0], budget.run_delta[0], epochs=self._gate_epochs(1.0 / q),
                                  batch_size=self.batch_size, n_hat=n_hat, max_grad_norm=self.max_grad_norm,
                                  accountant=self.accountant, lr=self.learning_rate, verbose=self.verbose)
                self.dpsgd_ = C.run_dpsgd(gates, gate_loss, (Xt, Yt), cfg, generator=torch_generator(seeds[1], device),
                                          owner=owner, name=f"{type(self).__name__}.dirichlet", releases=releases)
                gate_steps = self.dpsgd_.steps
            else:
                # the frozen layers before the first gate are evaluated once for all rows (eval mode:
                # the same values as per batch), unless their outputs would be large
                start = plan.layers[0].gate_at
                prefix = net[:start].eval()  # a new Sequential is in train mode: would set the shared modules to train
                with torch.no_grad():
                    prefix_numel = prefix(Xt[:1]).numel() * n
                inputs = C.torch_outputs(prefix, Xt) if 0 < start and prefix_numel <= _PREFIX_MAX_NUMEL else Xt
                start = start if inputs is not Xt else 0
                flat = FlatGates(gates, prior, kl_value=False)

                def flat_loss(model, batch):
                    return flat_gates_loss(model, net, plan, batch, task, gamma_gen, n_distinct, kl_scale, start)

                epochs = self._gate_epochs(math.ceil(n / self.batch_size))
                gate_steps = C.train_plain(flat, flat_loss, (inputs, Yt), epochs=epochs, batch_size=self.batch_size,
                                           lr=self.learning_rate, generator=torch_generator(seeds[1], device))
                flat.write_back(gates)
                del inputs
            fit_times = {"dirichlet": time.perf_counter() - t0}
            self.n_gate_steps_ = int(gate_steps)

            if self.criterion == "dirichlet":
                alphas = [g.concentration().double().cpu().numpy() for g in gates]
                self.concentrations_ = alphas
                self.importances_ = [a / a.sum() for a in alphas]
            elif self.criterion == "l1":
                self.importances_ = magnitude_importances(net, plan)
            else:
                rng = np.random.default_rng(seeds[5])
                self.importances_ = [v / v.sum() for v in (rng.random(k) for k in plan.n_units)]
            self.kept_units_ = select_units(self.importances_, self.compression, self.scope, self.min_units)
            pruned = prune_network(net, plan, self.kept_units_)
            self.n_units_ = plan.n_units
            self.n_units_pruned_ = [len(k) for k in self.kept_units_]
            self.compression_ = 1.0 - sum(self.n_units_pruned_) / sum(self.n_units_)
            self.n_params_ = count_parameters(net)
            self.n_params_pruned_ = count_parameters(pruned)

            # ---- fine-tuning
            t0 = time.perf_counter()
            if do_fine_tune:
                pruned.requires_grad_(True)
                lr = self.fine_tune_lr
                if lr is None:
                    lr = float(getattr(est, "learning_rate_init", 1e-3))
                l2 = float(getattr(est, "alpha", 0.0)) if is_sklearn_mlp(est) else 0.0

                def ft_loss(model, batch):
                    xb, yb = batch
                    return C.per_example_nll(model(xb), yb, task)

                ft_gen = torch_generator(seeds[3], device)
                schedule = cosine_schedule if self.fine_tune_schedule == "cosine" else None
                if private:
                    cfg = C.dp_config(budget.run_epsilon[-1], budget.run_delta[-1], epochs=self.fine_tune_epochs,
                                      batch_size=self.batch_size, n_hat=n_hat, max_grad_norm=self.max_grad_norm,
                                      accountant=self.accountant, lr=lr, verbose=self.verbose,
                                      weight_decay=l2 / self.batch_size, scheduler=schedule)
                    self.dpsgd_fine_tune_ = C.run_dpsgd(pruned, ft_loss, (Xt, Yt), cfg, generator=ft_gen, owner=owner,
                                                        name=f"{type(self).__name__}.fine_tune", releases=releases)
                else:
                    linears = [m.weight for m in pruned if isinstance(m, nn.Linear)] if l2 else []

                    def ft_plain(model, batch):
                        loss = ft_loss(model, batch)
                        if linears:  # scikit-learn's penalty: 0.5 * alpha * ||W||^2 / batch size, per row
                            loss = loss + 0.5 * l2 * sum(w.pow(2).sum() for w in linears) / len(loss)
                        return loss

                    pruned.train()
                    C.train_plain(pruned, ft_plain, (Xt, Yt), epochs=self.fine_tune_epochs, batch_size=self.batch_size,
                                  lr=lr, generator=ft_gen, scheduler=schedule)
            fit_times["fine_tune"] = time.perf_counter() - t0
            self.fit_times_ = fit_times
            pruned.eval()
        if private:
            self.privacy_report_ = C.make_report(
                releases, self.epsilon, self.delta,
                "DP: the Dirichlet concentrations (hence the ranking and the pruned architecture) and, when "
                "fine-tuned, the fine-tuned weights. Not covered: the given network's weights (trained by the user).")
        if is_sklearn_mlp(est):
            mlp = torch_to_mlp(pruned, est)
            # it was pruned and fine-tuned on the columns of X as the pruner saw them: same names
            if hasattr(self, "feature_names_in_"):
                mlp.feature_names_in_ = self.feature_names_in_.copy()
            elif hasattr(mlp, "feature_names_in_"):
                del mlp.feature_names_in_
            self.pruned_estimator_ = mlp
        else:
            for p, r in zip(net.parameters(), requires, strict=True):
                p.requires_grad_(r)
            for p, r in zip(pruned.parameters(), _requires_for(net, pruned, requires), strict=True):
                p.requires_grad_(r)
            self.pruned_estimator_ = pruned
        return self

    def _gate_epochs(self, steps_per_epoch: float) -> float:
        """Passes of the gate fit: ``epochs``, or more when that is fewer than ``min_steps`` steps."""
        return max(float(self.epochs), self.min_steps / steps_per_epoch)

    def _torch_targets(self, net, X_arr, y_arr, device, private: bool):
        task, Yt, classes = C.torch_targets(net, X_arr, y_arr, device, self.loss, private=private)
        if classes is not None:
            self.classes_ = classes
        return task, Yt

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "pruned_estimator_")

    # ------------------------------------------------------------------ delegation
    def _torch_predict_raw(self, X) -> torch.Tensor:
        X_arr = validate_data(self, X, reset=False, allow_nd=True, dtype=(np.float32, np.float64))
        net = self.pruned_estimator_
        device = next(net.parameters()).device
        return C.torch_outputs(net, torch.as_tensor(np.ascontiguousarray(X_arr), dtype=torch.float32, device=device))

    def predict(self, X):
        """Predictions of ``pruned_estimator_`` (class labels, or regression outputs)."""
        check_is_fitted(self)
        est = self.pruned_estimator_
        if not isinstance(est, nn.Module):
            return est.predict(X)
        out = self._torch_predict_raw(X)
        if self.task_ == "multiclass":
            return out.argmax(1).cpu().numpy()
        out = out.cpu().numpy().astype(np.float64)
        return out[:, 0] if out.shape[1] == 1 else out

    @available_if(_has_predict_proba)
    def predict_proba(self, X):
        """Class probabilities of ``pruned_estimator_`` (softmax of a torch network's outputs)."""
        check_is_fitted(self)
        est = self.pruned_estimator_
        if not isinstance(est, nn.Module):
            return est.predict_proba(X)
        if self.task_ != "multiclass":
            raise AttributeError("predict_proba is only available for a classification network")
        return torch.softmax(self._torch_predict_raw(X), 1).cpu().numpy().astype(np.float64)

    def score(self, X, y, sample_weight=None) -> float:
        """Accuracy (classification) or :math:`R^2` (regression) of ``pruned_estimator_``."""
        check_is_fitted(self)
        est = self.pruned_estimator_
        if not isinstance(est, nn.Module):
            return float(est.score(X, y, sample_weight=sample_weight))
        pred = self.predict(X)
        if self.task_ == "multiclass":
            return float(accuracy_score(y, pred, sample_weight=sample_weight))
        return float(r2_score(y, pred, sample_weight=sample_weight))


def _requires_for(net: nn.Module, pruned: nn.Module, requires: list[bool]) -> list[bool]:
    """The original ``requires_grad`` flags, in the pruned network's parameter order (same structure)."""
    names = [n for n, _ in net.named_parameters()]
    flags = dict(zip(names, requires, strict=True))
    return [flags.get(n, True) for n, _ in pruned.named_parameters()]
