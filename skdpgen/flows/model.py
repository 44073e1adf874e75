r"""Coupling neural spline flow with one conditioner shared by all stages (DP-friendly).

The flow maps data :math:`x \in \mathbb{R}^d` to a base variable :math:`z = f(x)` through
:math:`S` coupling stages :math:`f = f_{S-1} \circ \dots \circ f_0`. Stage :math:`s` splits the
coordinates into a conditioning set :math:`I_s` and a transformed set :math:`T_s` and applies

.. math::

    x'_{T_s} = g\big(x_{T_s};\ \theta_s\big), \qquad x'_{I_s} = x_{I_s}, \qquad
    \theta_s = \mathrm{NN}\big([x_{I_s},\ e_s,\ c]\big),

where :math:`g` is an elementwise rational-quadratic spline (:mod:`skdpgen.flows.splines`),
:math:`e_s` the one-hot code of the stage, :math:`c` an optional context (class one-hot,
encoded categorical columns...) and :math:`\mathrm{NN}` **one** MLP of ``nn.Linear`` layers and
parameter-free activations, called once per stage. Sharing the conditioner is the parameter saving
of DP-HFlow's conditional spline flow (Lee et al., 2022): depth does not multiply the number of
parameters, and DP-SGD adds noise to every parameter. The exact log-density is the change of variables

.. math::

    \log p(x \mid c) = \log p_Z(f(x)) + \sum_{s} \sum_{j \in T_s}
        \log \partial_{x_j} g\big(x^{(s)}_j;\ \theta_s\big).

Only ``nn.Linear`` modules carry parameters and the module registers no buffers, so DP-SGD
engines (Opacus hooks/functorch, or a per-example norm computation for Linear layers applied
several times per forward) can clip per-example gradients.

References
----------
Durkan, C., Bekasov, A., Murray, I., & Papamakarios, G. (2019). Neural Spline Flows. NeurIPS 32.
Dinh, L., Sohl-Dickstein, J., & Bengio, S. (2017). Density estimation using Real NVP. ICLR.
Lee, J., Kim, M., Jeong, Y., & Ro, Y. (2022). Differentially Private Normalizing Flows for Synthetic
Tabular Data Generation. AAAI 36(7), 7345-7353 (the conditional spline flow shared by all sub-flows).
Bailey, R. W. (1994). Polar generation of random variates with the t-distribution. Mathematics of
Computation, 62(206), 779-781.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._torch import derive_seeds, make_linear, torch_generator
from .splines import n_spline_params, rational_quadratic_spline

__all__ = ["SplineCouplingFlow"]

_MIN_DF = 0.5


def _coupling_partitions(n_features: int, n_stages: int,
                         generator: torch.Generator) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Transformed / conditioning index sets of each stage.

    Every stage transforms ``ceil(d / 2)`` coordinates and conditions on the other ``floor(d / 2)``
    (fixed widths, so the shared conditioner needs no padding). Stages come in pairs: stage
    ``2m`` splits a fresh random permutation of the coordinates in two; stage ``2m + 1``
    transforms the complement (plus, for odd ``d``, one coordinate transformed at stage ``2m``), so
    every coordinate is transformed in each pair and the random permutations mix the halves.
    """
    n_tr = n_features - n_features // 2
    parts: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    for s in range(n_stages):
        if s % 2 == 0:
            perm = torch.randperm(n_features, generator=generator, device=generator.device).tolist()
            transformed, identity = perm[:n_tr], perm[n_tr:]
        else:
            prev_tr, prev_id = parts[-1]
            transformed = list(prev_id) + list(prev_tr[: n_tr - len(prev_id)])
            identity = list(prev_tr[n_tr - len(prev_id):])
        parts.append((tuple(transformed), tuple(identity)))
    return parts


class SplineCouplingFlow(nn.Module):
    r"""Coupling rational-quadratic spline flow whose stages share one conditioner MLP.

    Parameters
    ----------
    n_features : int
        Dimension :math:`d` of the data. ``d = 1`` is allowed: each stage is then an elementwise
        spline whose parameters depend only on the stage code and the context.
    n_stages : int, default=4
        Number :math:`S` of coupling stages.
    hidden_features : sequence of int, default=(64, 64)
        Widths of the conditioner's hidden layers.
    n_bins : int, default=8
        Number :math:`K` of spline bins.
    bound : float, default=5.0
        Spline interval :math:`[-B, B]`; every stage is the identity outside it. Data should be
        scaled so that it lies mostly inside.
    context_features : int, default=0
        Width of the optional context :math:`c` (densities :math:`p(x \mid c)`).
    base : {"normal", "student_t"}, default="normal"
        Base distribution: standard normal, or independent Student-t coordinates (heavier tails).
    df : float or sequence of float, default=5.0
        Degrees of freedom of the Student-t base (one value, or one per coordinate).
    learn_df : bool, default=False
        Learn the degrees of freedom. They are then the output of an ``nn.Linear(1, d, bias=False)``
        applied to a constant input of ones (one row per example), so that per-example gradient
        engines for Linear layers see them like any other weight:
        :math:`\nu_j = 0.5 + \mathrm{softplus}(w_j)`, initialised at ``df``.
    activation : {"silu", "tanh", "relu", "elu"}, default="silu"
        Parameter-free activation of the conditioner.
    identity_init : bool, default=False
        Zero the conditioner's output layer, so that every stage starts as the identity.
    min_bin_width, min_bin_height, min_derivative : float, default=1e-3
        Spline limits, see :func:`~skdpgen.flows.splines.rational_quadratic_spline`.
    generator : torch.Generator or int or None, default=None
        Draws the initial weights and the coupling permutations (torch's global RNG is never
        used). An int is a seed; None takes fresh OS entropy.
    device : str or torch.device, default="cpu"
    dtype : torch.dtype, default=torch.float32

    Attributes
    ----------
    conditioner : nn.Sequential
        The shared MLP, input width ``floor(d/2) + n_stages + context_features``, output width
        ``ceil(d/2) * (3K - 1)``.
    partitions : list of (tuple of int, tuple of int)
        Transformed and conditioning coordinates of each stage.
    df_head : nn.Linear or None
        The learnable degrees of freedom (``learn_df=True``).

    Notes
    -----
    Exact log-density, see the module docstring. Sampling draws :math:`z` from the base with the
    given generator and runs the stages' inverses in reverse order (each spline inverse is exact:
    a quadratic root). The Student-t base is sampled with Bailey's (1994) polar method, which uses
    uniforms only and so works from a local :class:`torch.Generator` for any real :math:`\nu`.

    The number of parameters grows with ``n_stages`` only through the one-hot stage code, by
    ``hidden_features[0]`` weights per stage, instead of one whole conditioner per stage.

    Examples
    --------
    >>> import torch
    >>> from skdpgen.flows import SplineCouplingFlow
    >>> flow = SplineCouplingFlow(2, n_stages=4, generator=0)
    >>> x = flow.sample(5, torch.Generator().manual_seed(1))
    >>> x.shape
    torch.Size([5, 2])
    >>> flow.log_prob(x).shape
    torch.Size([5])
    """

    def __init__(
        self,
        n_features: int,
        *,
        n_stages: int = 4,
        hidden_features: Sequence[int] = (64, 64),
        n_bins: int = 8,
        bound: float = 5.0,
        context_features: int = 0,
        base: str = "normal",
        df: float | Sequence[float] = 5.0,
        learn_df: bool = False,
        activation: str = "silu",
        identity_init: bool = False,
        min_bin_width: float = 1e-3,
        min_bin_height: float = 1e-3,
        min_derivative: float = 1e-3,
        generator: torch.Generator | int | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        if int(n_features) < 1:
            raise ValueError(f"n_features must be >= 1, got {n_features}")
        if int(n_stages) < 1:
            raise ValueError(f"n_stages must be >= 1, got {n_stages}")
        if int(n_bins) < 2:
            raise ValueError(f"n_bins must be >= 2, got {n_bins}")
        if base not in ("normal", "student_t"):
            raise ValueError(f"base must be 'normal' or 'student_t', got {base!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}")
        if generator is None:
            generator = torch_generator(derive_seeds(None, 1)[0])
        elif not isinstance(generator, torch.Generator):
            generator = torch_generator(int(generator))

        self.n_features = int(n_features)
        self.n_stages = int(n_stages)
        self.n_bins = int(n_bins)
        self.bound = float(bound)
        self.context_features = int(context_features)
        self.base = base
        self.min_bin_width = float(min_bin_width)
        self.min_bin_height = float(min_bin_height)
        self.min_derivative = float(min_derivative)
        self.n_transformed = self.n_features - self.n_features // 2
        self.n_identity = self.n_features // 2
        self.partitions = _coupling_partitions(self.n_features, self.n_stages, generator)
        self._index_cache: dict[torch.device, list[tuple[Tensor, Tensor, Tensor]]] = {}

        sizes = [self.n_identity + self.n_stages + self.context_features, *[int(h) for h in hidden_features],
                 self.n_transformed * n_spline_params(self.n_bins)]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(make_linear(n_in, n_out, generator, device))
            if i < len(sizes) - 2:
                layers.append(_ACTIVATIONS[activation]())
        self.conditioner = nn.Sequential(*layers)
        if identity_init:
            with torch.no_grad():
                layers[-1].weight.zero_()
                layers[-1].bias.zero_()

        df_arr = np.broadcast_to(np.asarray(df, dtype=float), (self.n_features,))
        if base == "student_t" and not np.all(df_arr > _MIN_DF):
            raise ValueError(f"df must be > {_MIN_DF}, got {df}")
        self._df = tuple(float(v) for v in df_arr)
        self.df_head: nn.Linear | None = None
        if base == "student_t" and learn_df:
            self.df_head = make_linear(1, self.n_features, generator, device, bias=False)
            with torch.no_grad():
                raw = torch.as_tensor(df_arr - _MIN_DF, dtype=torch.float64)
                self.df_head.weight.copy_((raw + torch.log(-torch.expm1(-raw))).unsqueeze(1))  # softplus^-1
        self.to(dtype=dtype)

    # ------------------------------------------------------------------ helpers
    def _indices(self, device: torch.device) -> list[tuple[Tensor, Tensor, Tensor]]:
        """Per stage: transformed index, conditioning index, inverse of their concatenation."""
        cached = self._index_cache.get(device)
        if cached is None:
            cached = []
            for transformed, identity in self.partitions:
                order = torch.tensor(transformed + identity, dtype=torch.long)
                cached.append((torch.tensor(transformed, dtype=torch.long, device=device),
                               torch.tensor(identity, dtype=torch.long, device=device),
                               torch.argsort(order).to(device)))
            self._index_cache[device] = cached
        return cached

    def _check(self, x: Tensor, context: Tensor | None) -> Tensor | None:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"expected x of shape (n, {self.n_features}), got {tuple(x.shape)}")
        if self.context_features == 0:
            if context is not None and context.numel() > 0:
                raise ValueError("this flow takes no context (context_features=0)")
            return None
        if context is None:
            raise ValueError(f"this flow needs a context of width {self.context_features}")
        context = torch.as_tensor(context, dtype=x.dtype, device=x.device)
        if context.ndim == 1:
            context = context.unsqueeze(0)
        if context.shape[-1] != self.context_features:
            raise ValueError(f"expected a context of width {self.context_features}, got {tuple(context.shape)}")
        if context.shape[0] != x.shape[0]:
            context = context.expand(x.shape[0], -1)
        return context

    def _stage(self, x: Tensor, s: int, context: Tensor | None, inverse: bool) -> tuple[Tensor, Tensor]:
        tr_idx, id_idx, back = self._indices(x.device)[s]
        n = x.shape[0]
        x_tr, x_id = x[:, tr_idx], x[:, id_idx]
        code = x.new_zeros(n, self.n_stages)
        code[:, s] = 1.0
        parts = [x_id, code] if context is None else [x_id, code, context]
        params = self.conditioner(torch.cat(parts, dim=1)).view(n, self.n_transformed, n_spline_params(self.n_bins))
        k = self.n_bins
        y_tr, logdet = rational_quadratic_spline(
            x_tr, params[..., :k], params[..., k:2 * k], params[..., 2 * k:], inverse=inverse, bound=self.bound,
            min_bin_width=self.min_bin_width, min_bin_height=self.min_bin_height,
            min_derivative=self.min_derivative)
        return torch.cat([y_tr, x_id], dim=1)[:, back], logdet.sum(dim=1)

    def degrees_of_freedom(self, n: int = 1, like: Tensor | None = None) -> Tensor:
        """Degrees of freedom of the Student-t base, shape ``(n, d)`` (one row per example)."""
        ref = like if like is not None else self.conditioner[0].weight
        if self.df_head is None:
            return torch.tensor(self._df, dtype=ref.dtype, device=ref.device).expand(n, -1)
        ones = ref.new_ones(n, 1)
        return _MIN_DF + F.softplus(self.df_head(ones))

    def base_log_prob(self, z: Tensor) -> Tensor:
        r"""Log-density of the base, summed over coordinates: shape ``(n,)``.

        Standard normal: :math:`-\tfrac12 \|z\|^2 - \tfrac d2 \log 2\pi`. Student-t with
        :math:`\nu_j` degrees of freedom: :math:`\sum_j \log\Gamma(\tfrac{\nu_j+1}{2})
        - \log\Gamma(\tfrac{\nu_j}{2}) - \tfrac12 \log(\nu_j\pi)
        - \tfrac{\nu_j+1}{2}\log(1 + z_j^2/\nu_j)`.
        """
        if self.base == "normal":
            return -0.5 * (z * z).sum(dim=1) - 0.5 * self.n_features * math.log(2.0 * math.pi)
        nu = self.degrees_of_freedom(z.shape[0], like=z)
        half = 0.5 * (nu + 1.0)
        lp = (torch.lgamma(half) - torch.lgamma(0.5 * nu) - 0.5 * torch.log(nu * math.pi)
              - half * torch.log1p(z * z / nu))
        return lp.sum(dim=1)

    def sample_base(self, n: int, generator: torch.Generator) -> Tensor:
        """Draw ``n`` base variables with ``generator`` (on the generator's device, then moved)."""
        ref = self.conditioner[0].weight
        shape = (int(n), self.n_features)
        if self.base == "normal":
            z = torch.randn(shape, generator=generator, device=generator.device, dtype=ref.dtype)
            return z.to(ref.device)
        with torch.no_grad():
            nu = self.degrees_of_freedom(int(n)).to(device=generator.device)
        return _student_t_polar(nu, generator).to(ref.device)

    # ------------------------------------------------------------------ public API
    def forward_transform(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Data to base: :math:`z = f(x)` and :math:`\log|\det \partial f / \partial x|`, shapes (n, d), (n,)."""
        context = self._check(x, context)
        logdet = x.new_zeros(x.shape[0])
        for s in range(self.n_stages):
            x, ld = self._stage(x, s, context, inverse=False)
            logdet = logdet + ld
        return x, logdet

    def inverse_transform(self, z: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Base to data: :math:`x = f^{-1}(z)` and :math:`\log|\det \partial f^{-1} / \partial z|`."""
        context = self._check(z, context)
        logdet = z.new_zeros(z.shape[0])
        for s in reversed(range(self.n_stages)):
            z, ld = self._stage(z, s, context, inverse=True)
            logdet = logdet + ld
        return z, logdet

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        r"""Exact :math:`\log p(x \mid c)` per row, shape ``(n,)``."""
        z, logdet = self.forward_transform(x, context)
        return self.base_log_prob(z) + logdet

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Same as :meth:`log_prob` (so that training engines can call the module)."""
        return self.log_prob(x, context)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, context: Tensor | None = None) -> Tensor:
        """``n`` samples of shape ``(n, d)`` from the local ``generator`` (the global RNG is untouched).

        ``context`` is one row (broadcast to all samples) or ``n`` rows.
        """
        z = self.sample_base(n, generator)
        x, _ = self.inverse_transform(z, context)
        return x

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_index_cache"] = {}
        return state


def _student_t_polar(nu: Tensor, generator: torch.Generator) -> Tensor:
    r"""Student-t variates by Bailey's polar method (uniforms only, any real :math:`\nu > 0`).

    Draw :math:`U, V \sim \mathcal U(-1, 1)` until :math:`W = U^2 + V^2 \le 1`; then
    :math:`T = U \sqrt{\nu (W^{-2/\nu} - 1) / W}` is :math:`t_\nu`-distributed.
    """
    out = torch.empty_like(nu)
    todo = torch.ones_like(nu, dtype=torch.bool)
    while bool(todo.any()):
        m = int(todo.sum())
        u = 2.0 * torch.rand(m, generator=generator, device=nu.device, dtype=nu.dtype) - 1.0
        v = 2.0 * torch.rand(m, generator=generator, device=nu.device, dtype=nu.dtype) - 1.0
        w = u * u + v * v
        ok = (w <= 1.0) & (w > 0.0)
        nu_m = nu[todo]
        t = u * torch.sqrt(nu_m * (torch.pow(w, -2.0 / nu_m) - 1.0) / w)
        idx = todo.nonzero(as_tuple=True)
        sel = tuple(i[ok] for i in idx)
        out[sel] = t[ok]
        todo[sel] = False
    return out


_ACTIVATIONS: dict[str, type[nn.Module]] = {"silu": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU}
