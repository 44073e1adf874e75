r"""Dirichlet gates: reparameterised Dirichlet samples from a local generator, and the Dirichlet KL.

A *gate* over :math:`K` units (neurons, channels or input features) is a variational Dirichlet
:math:`q(s) = \mathrm{Dir}(s; \alpha)`, :math:`\alpha_k = \mathrm{softplus}(\rho_k) + \alpha_{\min}`,
that multiplies the units by :math:`K s` (mean 1, so a uniform gate leaves the network as it was).
Training maximises the evidence lower bound

.. math::

    \mathcal{L}(\alpha) = \sum_{i=1}^{N} \mathbb{E}_{q(s)}[\log p(y_i \mid x_i, s)]
        - \mathrm{KL}(\mathrm{Dir}(\alpha) \,\|\, \mathrm{Dir}(\alpha_0)),

with reparameterised samples: :math:`g_k \sim \mathrm{Gamma}(\alpha_k, 1)`,
:math:`s = g / \sum_k g_k`; the gradient of a Gamma sample with respect to its shape is the
implicit reparameterisation gradient (Figurnov, Mohamed & Mnih 2018), which torch implements for
``torch._standard_gamma``.  The Gamma noise is drawn from a LOCAL :class:`torch.Generator`
(``torch.distributions.Dirichlet.rsample`` would draw from torch's global generator).

The parameters :math:`\rho` live in an ``nn.Linear(1, K, bias=False)`` applied to a column of
ones, one call per row, so that :func:`skdpgen.dpsgd.train_dpsgd` sees per-example calls and can
clip per-example gradients (each row's loss carries its own :math:`1/N` share of the KL term).

References
----------
Adamczewski, K. and Park, M. "Dirichlet Pruning for Neural Network Compression." AISTATS 2021.
Adamczewski, K., Li, F. and Park, M. "Q-FIT: The Quantifiable Feature Importance Technique for
Explainable Machine Learning." arXiv:2010.13872.
Figurnov, M., Mohamed, S. and Mnih, A. "Implicit Reparameterization Gradients." NeurIPS 2018.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special
from torch import nn
from torch.nn import functional as F

__all__ = ["DirichletGate", "dirichlet_kl", "dirichlet_kl_torch", "kl_rows", "sample_dirichlet",
           "sample_dirichlet_shared"]

# smallest concentration of a gate (keeps the Gamma sampler and the digamma terms finite)
ALPHA_MIN = 1e-3
# Gamma samples below this are raised to it (a sample of exactly 0 would make s_k = 0 and a
# 0/0 in the normalisation when every unit underflows)
_TINY = 1e-30


def dirichlet_kl(a, b) -> float | np.ndarray:
    r"""Closed-form :math:`\mathrm{KL}(\mathrm{Dir}(a) \,\|\, \mathrm{Dir}(b))`.

    .. math::

        \mathrm{KL} = \ln\Gamma(a_0) - \sum_k \ln\Gamma(a_k) - \ln\Gamma(b_0) + \sum_k \ln\Gamma(b_k)
            + \sum_k (a_k - b_k)\,\bigl(\psi(a_k) - \psi(a_0)\bigr),

    with :math:`a_0 = \sum_k a_k`, :math:`b_0 = \sum_k b_k` and :math:`\psi` the digamma function.

    Parameters
    ----------
    a, b : array-like of shape (..., K)
        Concentration parameters (all > 0), e.g. the ``concentrations_`` of two fitted
        :class:`DirichletFeatureSelector` s, to compare the feature importances of two models
        (private and non-private, or two model classes).  Leading axes broadcast.

    Returns
    -------
    float or ndarray of shape (...)
        The divergence in nats (0 iff ``a == b``; not symmetric).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape[-1:] != b.shape[-1:] or a.ndim == 0:
        raise ValueError(f"a and b must have the same last dimension, got shapes {a.shape} and {b.shape}")
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b)) and np.all(a > 0) and np.all(b > 0)):
        raise ValueError("Dirichlet concentrations must be finite and > 0")
    a0, b0 = a.sum(-1), b.sum(-1)
    out = (special.gammaln(a0) - special.gammaln(a).sum(-1) - special.gammaln(b0) + special.gammaln(b).sum(-1)
           + ((a - b) * (special.digamma(a) - special.digamma(a0)[..., None])).sum(-1))
    out = np.maximum(out, 0.0)  # rounding can give -1e-16
    return float(out) if out.ndim == 0 else out


def dirichlet_kl_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """:func:`dirichlet_kl` in torch (differentiable in ``a``), over the last dimension."""
    a0, b0 = a.sum(-1), b.sum(-1)
    return (torch.lgamma(a0) - torch.lgamma(a).sum(-1) - torch.lgamma(b0) + torch.lgamma(b).sum(-1)
            + ((a - b) * (torch.digamma(a) - torch.digamma(a0).unsqueeze(-1))).sum(-1))


def sample_dirichlet(alpha: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    r"""Reparameterised samples :math:`s \sim \mathrm{Dir}(\alpha)` along the last dimension.

    Gamma variates :math:`g_k \sim \mathrm{Gamma}(\alpha_k, 1)` from ``generator`` (torch's global
    generator is never used), normalised: :math:`s = g / \sum_k g_k`.  Differentiable in
    ``alpha`` through the implicit reparameterisation gradient of the Gamma sampler.
    """
    g = torch._standard_gamma(alpha, generator=generator).clamp_min(_TINY)
    return g / g.sum(-1, keepdim=True)


def sample_dirichlet_shared(alpha: torch.Tensor, generator: torch.Generator, n_distinct: int = 1) -> torch.Tensor:
    r"""Dirichlet samples for rows whose concentrations are equal, drawing only ``n_distinct`` of them.

    ``alpha`` has shape (B, K) with identical rows (one call per row of a :class:`DirichletGate`,
    so that DP-SGD sees per-row gradients).  ``n_distinct`` Gamma vectors :math:`g^{(j)}` are
    drawn from ``generator`` for the first row; row :math:`i` uses :math:`j = i \bmod n`, written
    as :math:`g_i = g^{(j)} + (\alpha_i - \mathrm{sg}[\alpha_i]) \odot \partial g^{(j)} / \partial
    \alpha` (:math:`\mathrm{sg}` stops gradients): the value is the shared sample and the
    gradient with respect to the row's own :math:`\alpha_i` is exactly the implicit
    reparameterisation gradient, so each row's loss depends on the parameters only through its
    own call.  Sampling costs :math:`n K` Gamma variates instead of :math:`B K`; the authors'
    implementation likewise shares a few samples across a minibatch.
    """
    b, k = alpha.shape
    n = max(1, min(int(n_distinct), b))
    a0 = alpha[:1].detach().expand(n, k)
    g0 = torch._standard_gamma(a0, generator=generator).clamp_min(_TINY)
    dg = torch._standard_gamma_grad(a0, g0)
    idx = torch.arange(b, device=alpha.device) % n
    g = g0[idx] + (alpha - alpha.detach()) * dg[idx]
    return g / g.sum(-1, keepdim=True)


def kl_rows(alpha: torch.Tensor, prior: float) -> torch.Tensor:
    r""":math:`\mathrm{KL}(\mathrm{Dir}(\alpha_i) \| \mathrm{Dir}(\alpha_0 \mathbf 1))` for rows with equal values.

    Computed once (first row) and attached to every row with its closed-form gradient
    :math:`\partial \mathrm{KL} / \partial a_k = (a_k - b_k)\,\psi'(a_k) - \psi'(\textstyle\sum_j a_j)
    \sum_j (a_j - b_j)`, so that row :math:`i`'s value depends on its own :math:`\alpha_i` only.
    """
    a = alpha[:1].detach()
    b = torch.full_like(a, float(prior))
    value = dirichlet_kl_torch(a, b)  # (1,)
    grad = (a - b) * torch.polygamma(1, a) - torch.polygamma(1, a.sum(-1, keepdim=True)) * (a - b).sum(-1, keepdim=True)
    return value + ((alpha - alpha.detach()) * grad).sum(-1)


def _inverse_softplus(x: float) -> float:
    return x + math.log(-math.expm1(-x))


class DirichletGate(nn.Module):
    r"""A Dirichlet over ``n_units`` units: parameters in ``nn.Linear(1, n_units, bias=False)``.

    :math:`\alpha = \mathrm{softplus}(\rho) + \alpha_{\min}`, initialised to ``init`` for every unit.
    ``forward(n)`` returns the concentrations as an ``(n, K)`` tensor, one call of the Linear layer
    per row (rows identical in value; per-example gradients stay separable for DP-SGD).
    """

    def __init__(self, n_units: int, init: float = 10.0, device=None):
        super().__init__()
        self.n_units = int(n_units)
        # built on the meta device: torch's global generator is not touched by a default initialisation
        self.rho = nn.Linear(1, self.n_units, bias=False, device="meta").to_empty(device=device or "cpu")
        with torch.no_grad():
            self.rho.weight.fill_(_inverse_softplus(max(float(init) - ALPHA_MIN, 1e-6)))

    def forward(self, n: int) -> torch.Tensor:
        w = self.rho.weight
        ones = torch.ones(int(n), 1, dtype=w.dtype, device=w.device)
        return F.softplus(self.rho(ones)) + ALPHA_MIN

    def concentration(self) -> torch.Tensor:
        """The current :math:`\\alpha` (detached, shape ``(K,)``)."""
        with torch.no_grad():
            return F.softplus(self.rho.weight[:, 0]) + ALPHA_MIN

    def scales(self, n: int, generator: torch.Generator, sample: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """``(K * s, alpha)`` with ``s`` sampled (or the posterior mean when ``sample=False``), shapes (n, K)."""
        alpha = self(n)
        s = sample_dirichlet(alpha, generator) if sample else alpha / alpha.sum(-1, keepdim=True)
        return self.n_units * s, alpha
