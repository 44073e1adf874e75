r"""Monotone rational-quadratic splines with identity tails (Durkan et al., 2019).

A rational-quadratic (RQ) spline is a strictly increasing, piecewise rational-quadratic map
:math:`g : \mathbb{R} \to \mathbb{R}` that is the identity outside :math:`[-B, B]` and, inside,
interpolates :math:`K + 1` knots :math:`(x^{(k)}, y^{(k)})`, :math:`k = 0, \dots, K`, with
:math:`x^{(0)} = y^{(0)} = -B`, :math:`x^{(K)} = y^{(K)} = B`, and positive derivatives
:math:`\delta^{(k)}` at the knots. It is the elementwise transform of neural spline flows.

Parametrisation (from unconstrained values, e.g. the outputs of a conditioner network):

* bin widths :math:`w_k = 2B\,[m_w + (1 - K m_w)\,\mathrm{softmax}(\tilde w)_k]` and heights
  :math:`h_k` likewise from :math:`\tilde h` with minimum :math:`m_h` (a minimum bin size keeps the
  map numerically invertible), knots :math:`x^{(k)} = -B + \sum_{j<k} w_j`;
* interior derivatives :math:`\delta^{(k)} = m_\delta + \mathrm{softplus}(\tilde\delta_k + c)`
  for :math:`k = 1, \dots, K-1`, with :math:`c = \log(e^{1 - m_\delta} - 1)` so that
  :math:`\tilde\delta = 0` gives :math:`\delta = 1`; the boundary derivatives are
  :math:`\delta^{(0)} = \delta^{(K)} = 1`, which makes :math:`g` continuously differentiable
  across :math:`\pm B` (where it meets the identity tails).

With all-zero parameters the spline is the identity. Per element there are :math:`3K - 1`
parameters: :math:`K` widths, :math:`K` heights and :math:`K - 1` derivatives.

For :math:`x` in bin :math:`k`, with :math:`s_k = h_k / w_k` and
:math:`\xi = (x - x^{(k)}) / w_k \in [0, 1]`,

.. math::

    g(x) = y^{(k)} + \frac{h_k\,[s_k \xi^2 + \delta^{(k)} \xi (1 - \xi)]}
                          {s_k + [\delta^{(k+1)} + \delta^{(k)} - 2 s_k]\,\xi (1 - \xi)},

    g'(x) = \frac{s_k^2\,[\delta^{(k+1)} \xi^2 + 2 s_k \xi (1 - \xi) + \delta^{(k)} (1 - \xi)^2]}
                 {\big(s_k + [\delta^{(k+1)} + \delta^{(k)} - 2 s_k]\,\xi (1 - \xi)\big)^2}.

The inverse solves a quadratic: for :math:`y` in bin :math:`k` of the :math:`y`-knots, let
:math:`\Delta = y - y^{(k)}` and :math:`\sigma = \delta^{(k+1)} + \delta^{(k)} - 2 s_k`; then
:math:`a \xi^2 + b \xi + c = 0` with :math:`a = h_k (s_k - \delta^{(k)}) + \Delta \sigma`,
:math:`b = h_k \delta^{(k)} - \Delta \sigma`, :math:`c = -s_k \Delta`, and the root in
:math:`[0, 1]` is taken in the cancellation-free form :math:`\xi = 2c / (-b - \sqrt{b^2 - 4ac})`.
The log-determinant of the inverse is :math:`-\log g'(x)` at the recovered :math:`x`.

References
----------
Durkan, C., Bekasov, A., Murray, I., & Papamakarios, G. (2019). Neural Spline Flows. NeurIPS 32.
Gregory, J. A., & Delbourgo, R. (1982). Piecewise rational quadratic interpolation to monotonic
data. IMA Journal of Numerical Analysis, 2(2), 123-130.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["rational_quadratic_spline", "n_spline_params"]


def n_spline_params(n_bins: int) -> int:
    """Number of unconstrained parameters of one RQ spline with ``n_bins`` bins: :math:`3K - 1`."""
    return 3 * int(n_bins) - 1


def _knots(unnormalized: Tensor, bound: float, min_size: float) -> Tensor:
    """Knot positions :math:`-B = t_0 < t_1 < \\dots < t_K = B` from unconstrained bin sizes."""
    n_bins = unnormalized.shape[-1]
    # softmax written out: torch's kernel is several times slower for a short last dimension on CPU
    e = torch.exp(unnormalized - unnormalized.detach().amax(dim=-1, keepdim=True))
    sizes = min_size + (1.0 - min_size * n_bins) * (e / e.sum(dim=-1, keepdim=True))
    inner = 2.0 * bound * torch.cumsum(sizes[..., :-1], dim=-1) - bound
    edge = inner.new_full((*inner.shape[:-1], 1), bound)
    return torch.cat([-edge, inner, edge], dim=-1)


def _gather(values: Tensor, index: Tensor) -> Tensor:
    return values.gather(-1, index).squeeze(-1)


def rational_quadratic_spline(
    inputs: Tensor,
    unnormalized_widths: Tensor,
    unnormalized_heights: Tensor,
    unnormalized_derivatives: Tensor,
    *,
    inverse: bool = False,
    bound: float = 5.0,
    min_bin_width: float = 1e-3,
    min_bin_height: float = 1e-3,
    min_derivative: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    r"""Apply a monotone RQ spline (or its inverse) elementwise, with identity tails outside ``[-B, B]``.

    See the module docstring for the parametrisation and the formulas.

    Parameters
    ----------
    inputs : Tensor of shape (...)
        Points to transform (any batch shape, e.g. ``(n_samples, n_dims)``).
    unnormalized_widths, unnormalized_heights : Tensor of shape (..., K)
        Unconstrained bin widths and heights (softmax-normalised here).
    unnormalized_derivatives : Tensor of shape (..., K - 1)
        Unconstrained derivatives at the interior knots (softplus here); the boundary derivatives
        are 1.
    inverse : bool, default=False
        Compute :math:`g^{-1}` instead of :math:`g`.
    bound : float, default=5.0
        Half-width :math:`B` of the spline interval; the map is the identity outside it.
    min_bin_width, min_bin_height, min_derivative : float, default=1e-3
        Lower limits (as fractions of :math:`2B` for the bin sizes).

    Returns
    -------
    outputs : Tensor of shape (...)
        :math:`g(x)` (or :math:`g^{-1}(y)`).
    logabsdet : Tensor of shape (...)
        Elementwise :math:`\log g'(x)` (or :math:`\log (g^{-1})'(y) = -\log g'(g^{-1}(y))`); zero
        in the tails. Sum over the transformed dimensions for the log-determinant of the Jacobian.
    """
    n_bins = unnormalized_widths.shape[-1]
    if unnormalized_heights.shape[-1] != n_bins or unnormalized_derivatives.shape[-1] != n_bins - 1:
        raise ValueError("expected K widths, K heights and K - 1 derivatives, got "
                         f"{unnormalized_widths.shape[-1]}, {unnormalized_heights.shape[-1]} and "
                         f"{unnormalized_derivatives.shape[-1]}")
    if min_bin_width * n_bins > 1.0 or min_bin_height * n_bins > 1.0:
        raise ValueError(f"minimum bin size times the number of bins ({n_bins}) must not exceed 1")
    if bound <= 0:
        raise ValueError(f"bound must be positive, got {bound}")

    inside = (inputs >= -bound) & (inputs <= bound)
    # evaluate the spline on clamped inputs so that the unused branch of torch.where stays finite
    # (a NaN there would poison the gradients)
    clamped = inputs.clamp(-bound, bound)

    knots_x = _knots(unnormalized_widths, bound, min_bin_width)
    knots_y = _knots(unnormalized_heights, bound, min_bin_height)
    shift = math.log(math.expm1(1.0 - min_derivative))
    interior = min_derivative + F.softplus(unnormalized_derivatives + shift)
    one = interior.new_ones((*interior.shape[:-1], 1))
    derivs = torch.cat([one, interior, one], dim=-1)

    search = knots_y if inverse else knots_x
    # number of interior knots <= value: the bin index in 0..K-1 (value = B falls in the last bin)
    index = torch.searchsorted(search[..., 1:-1].contiguous(), clamped.unsqueeze(-1).contiguous(), right=True)
    index = index.clamp(0, n_bins - 1)

    x_k = _gather(knots_x, index)
    w_k = _gather(knots_x, index + 1) - x_k
    y_k = _gather(knots_y, index)
    h_k = _gather(knots_y, index + 1) - y_k
    d_k = _gather(derivs, index)
    d_k1 = _gather(derivs, index + 1)
    s_k = h_k / w_k
    sigma = d_k1 + d_k - 2.0 * s_k

    if inverse:
        delta = clamped - y_k
        a = h_k * (s_k - d_k) + delta * sigma
        b = h_k * d_k - delta * sigma
        c = -s_k * delta
        disc = (b * b - 4.0 * a * c).clamp_min(0.0)
        xi = (2.0 * c / (-b - torch.sqrt(disc))).clamp(0.0, 1.0)
        out = x_k + xi * w_k
    else:
        xi = ((clamped - x_k) / w_k).clamp(0.0, 1.0)
    t = xi * (1.0 - xi)
    denom = s_k + sigma * t
    if not inverse:
        out = y_k + h_k * (s_k * xi * xi + d_k * t) / denom
    log_deriv = (2.0 * torch.log(s_k) + torch.log(d_k1 * xi * xi + 2.0 * s_k * t + d_k * (1.0 - xi) ** 2)
                 - 2.0 * torch.log(denom))
    if inverse:
        log_deriv = -log_deriv

    outputs = torch.where(inside, out, inputs)
    logabsdet = torch.where(inside, log_deriv, torch.zeros_like(log_deriv))
    return outputs, logabsdet
