r"""Feature maps :math:`\phi` with :math:`\|\phi(x)\|_2 \le 1` for every input, on the model space.

Each map is fixed before the private rows are read (its randomness comes from a generator
seeded by ``random_state``, its scales from the public schema), so the embedding
:math:`\sum_i \phi(x_i)` has L2 sensitivity 1 under add/remove-one-row.  Every map is a
differentiable torch function, so the generator is trained through it.

The model space is the output of :class:`~skdpgen.encoding.TabularEncoder`: continuous values in
:math:`[0, 1]` and one-hot groups (:class:`~skdpgen.encoding.Block`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .._torch import torch_generator

__all__ = [
    "FeatureMap",
    "RandomFourierFeatures",
    "HermiteFeatures",
    "NTKFeatures",
    "PerceptualFeatures",
    "hermite_functions",
    "mehler_kernel",
    "make_feature_map",
]


class FeatureMap:
    """A fixed, data-independent feature map of the model space with rows of norm at most 1."""

    _holds_torch_state = True  # skdpgen._torch.portable moves its tensors (pickling on the CPU)

    n_features: int

    def __call__(self, Z: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def to(self, device) -> FeatureMap:
        for key, value in vars(self).items():
            if isinstance(value, torch.Tensor | nn.Module):
                setattr(self, key, value.to(device))
        return self


class RandomFourierFeatures(FeatureMap):
    r"""Random Fourier features of the Gaussian kernel (DP-MERF; Rahimi & Recht 2007).

    :math:`\omega_d \sim N(0, I/\ell^2)`, :math:`\phi(x) = \sqrt{2/D}\,[\cos(\omega^\top x);
    \sin(\omega^\top x)]`, so :math:`\|\phi(x)\|_2 = 1` exactly and
    :math:`\phi(x)^\top\phi(y) \to \exp(-\|x-y\|^2 / (2\ell^2))` as :math:`D \to \infty`.

    References
    ----------
    Harder, Adamczewski & Park. "DP-MERF: Differentially Private Mean Embeddings with Random
    Features for Practical Privacy-Preserving Data Generation." AISTATS 2021.
    """

    def __init__(self, n_inputs: int, n_features: int, length_scale: float, seed: int,
                 device="cpu", dtype=torch.float32):
        if n_features < 2 or n_features % 2:
            raise ValueError(f"n_features must be an even number >= 2, got {n_features}")
        gen = torch_generator(seed)
        self.n_features = int(n_features)
        self.length_scale = float(length_scale)
        omega = torch.randn(n_inputs, n_features // 2, generator=gen, dtype=torch.float64)
        self.omega = (omega / self.length_scale).to(device=device, dtype=dtype)

    def __call__(self, Z: torch.Tensor) -> torch.Tensor:
        proj = Z @ self.omega
        return torch.cat([torch.cos(proj), torch.sin(proj)], dim=1) * math.sqrt(2.0 / self.n_features)


def hermite_functions(x: torch.Tensor, order: int) -> torch.Tensor:
    r"""Normalised Hermite functions :math:`\psi_0, \dots, \psi_C` at ``x`` (last axis = order).

    Stable three-term recursion, no factorials:
    :math:`\psi_0 = \pi^{-1/4} e^{-x^2/2}`, :math:`\psi_1 = \sqrt2\, x\, \psi_0`,
    :math:`\psi_{c+1} = \sqrt{2/(c+1)}\, x\, \psi_c - \sqrt{c/(c+1)}\, \psi_{c-1}`.
    """
    psi = [math.pi ** (-0.25) * torch.exp(-0.5 * x * x)]
    if order >= 1:
        psi.append(math.sqrt(2.0) * x * psi[0])
    for c in range(1, order):
        psi.append(math.sqrt(2.0 / (c + 1)) * x * psi[c] - math.sqrt(c / (c + 1)) * psi[c - 1])
    return torch.stack(psi, dim=-1)


def mehler_kernel(x, y, rho: float):
    r"""Mehler's closed form :math:`\sum_{c\ge0} \rho^c \psi_c(x)\psi_c(y)`.

    :math:`(\pi(1-\rho^2))^{-1/2} \exp(-[(1+\rho^2)(x^2+y^2) - 4\rho xy] / (2(1-\rho^2)))`
    :math:`= (\pi(1-\rho^2))^{-1/2}\, e^{-\rho (x-y)^2/(1-\rho^2)}\, e^{-(1-\rho)(x^2+y^2)/(2(1+\rho))}`:
    a Gaussian kernel of squared length scale :math:`(1-\rho^2)/(2\rho)` times a mild weight.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    r2 = 1.0 - rho**2
    return (math.pi * r2) ** -0.5 * np.exp(-((1 + rho**2) * (x**2 + y**2) - 4 * rho * x * y) / (2 * r2))


def _rho_for_length_scale(length_scale: float) -> float:
    # (1 - rho^2) / (2 rho) = l^2  <=>  rho = sqrt(l^4 + 1) - l^2
    l2 = float(length_scale) ** 2
    return math.sqrt(l2 * l2 + 1.0) - l2


class HermiteFeatures(FeatureMap):
    r"""Hermite polynomial features of a sum kernel over columns (DP-HP).

    Each continuous value :math:`z \in [0, 1]` is mapped to :math:`u = 2z - 1` and to
    :math:`\phi_c(u) = \rho^{c/2}\psi_c(u) / \sqrt{k_{max}}`, :math:`c = 0..C`, the truncated
    Mehler expansion of a Gaussian kernel with squared length scale
    :math:`\ell^2 = (1-\rho^2)/(2\rho)` (in units of :math:`u`).  Since every term is
    non-negative, :math:`\|\phi(u)\|^2 \le k(u, u) \le k_{max} \cdot 1` with the public bound
    :math:`k_{max} = (\pi(1-\rho^2))^{-1/2}`.  One-hot groups (categorical columns, missing
    indicators) keep their one-hot vector, the exact features of the delta kernel.  The column
    features are concatenated and scaled by :math:`1/\sqrt{G}` (G groups), the features of the
    sum kernel :math:`\frac1G \sum_g k_g`, so :math:`\|\phi(x)\| \le 1`.

    References
    ----------
    Vinaroz, Charusaie, Harder, Adamczewski & Park. "Hermite Polynomial Features for Private
    Data Generation." ICML 2022.
    """

    def __init__(self, blocks: Sequence, order: int = 20, length_scale: float = 0.2,
                 device="cpu", dtype=torch.float32):
        if order < 0:
            raise ValueError(f"order must be >= 0, got {order}")
        self.order = int(order)
        self.rho = _rho_for_length_scale(length_scale)
        self.length_scale = float(length_scale)
        kmax = (math.pi * (1.0 - self.rho**2)) ** -0.5
        scale = torch.tensor([self.rho ** (c / 2) for c in range(self.order + 1)], dtype=torch.float64)
        self.coef = (scale / math.sqrt(kmax)).to(device=device, dtype=dtype)
        cont = [b.start for b in blocks if b.kind == "continuous"]
        onehot = [i for b in blocks if b.kind != "continuous" for i in range(b.start, b.stop)]
        self.cont_idx = torch.tensor(cont, dtype=torch.long, device=device)
        self.onehot_idx = torch.tensor(onehot, dtype=torch.long, device=device)
        self.n_groups = len(blocks)
        self.n_features = len(cont) * (self.order + 1) + len(onehot)

    def __call__(self, Z: torch.Tensor) -> torch.Tensor:
        parts = []
        if len(self.cont_idx):
            u = 2.0 * Z[:, self.cont_idx] - 1.0
            feats = hermite_functions(u, self.order) * self.coef  # (n, n_cont, C+1)
            parts.append(feats.reshape(Z.shape[0], -1))
        if len(self.onehot_idx):
            parts.append(Z[:, self.onehot_idx])
        return torch.cat(parts, dim=1) / math.sqrt(self.n_groups)


class NTKFeatures(FeatureMap):
    r"""Normalised empirical neural-tangent features of a random one-hidden-layer network (DP-NTK).

    :math:`f_\theta(x) = h^{-1/2} v^\top \mathrm{relu}(Wx + b)` at a fixed random
    :math:`\theta_0 = (W, b, v)`; :math:`\phi(x) = \nabla_\theta f_{\theta_0}(x) / \|\cdot\|`:
    :math:`\partial_v f = h^{-1/2}\mathrm{relu}(Wx+b)`, :math:`\partial_b f = h^{-1/2} v \odot
    1[Wx+b>0]`, :math:`\partial_W f = \partial_b f\, x^\top`, computed in closed form (no
    per-example autograd).  Unit norm by construction.

    References
    ----------
    Yang, Adamczewski, Sutherland, Li & Park. "Differentially Private Neural Tangent Kernels for
    Privacy-Preserving Data Generation." 2023.
    """

    def __init__(self, n_inputs: int, width: int, seed: int, device="cpu", dtype=torch.float32):
        gen = torch_generator(seed)
        self.width = int(width)
        self.W = (torch.randn(width, n_inputs, generator=gen, dtype=torch.float64) / math.sqrt(n_inputs)).to(
            device=device, dtype=dtype)
        self.b = (0.1 * torch.randn(width, generator=gen, dtype=torch.float64)).to(device=device, dtype=dtype)
        self.v = torch.randn(width, generator=gen, dtype=torch.float64).to(device=device, dtype=dtype)
        self.n_features = width * (n_inputs + 2)

    def __call__(self, Z: torch.Tensor) -> torch.Tensor:
        pre = Z @ self.W.T + self.b
        scale = 1.0 / math.sqrt(self.width)
        d_v = torch.relu(pre) * scale
        d_b = (pre > 0).to(Z.dtype) * self.v * scale
        d_W = (d_b.unsqueeze(2) * Z.unsqueeze(1)).reshape(Z.shape[0], -1)
        phi = torch.cat([d_v, d_b, d_W], dim=1)
        return phi / phi.norm(dim=1, keepdim=True).clamp_min(1e-12)


class PerceptualFeatures(FeatureMap):
    r"""Features of a network (or linear transformer) fitted on PUBLIC data (DP-MEPF).

    ``extractor`` maps the model space (encoder output, see
    :class:`~skdpgen.encoding.TabularEncoder`) to features: a :class:`torch.nn.Module` (a copy is
    used, in eval mode with frozen float parameters: the caller's module is not changed), a
    callable on tensors, or a fitted scikit-learn linear projection,
    :class:`~sklearn.decomposition.PCA` or :class:`~sklearn.decomposition.IncrementalPCA` (centred,
    whitened if ``whiten=True``) or :class:`~sklearn.decomposition.TruncatedSVD`, applied as its
    ``transform`` does.  Other scikit-learn transformers (NMF, LatentDirichletAllocation,
    FactorAnalysis, SparsePCA, ...) are not linear projections and are refused: wrap them in a
    torch module or callable.  Each feature vector is normalised to unit norm; with ``moments=2``
    the elementwise squares are appended (the second-moment embedding),
    :math:`\phi = [f/\|f\|,\ (f/\|f\|)^{\odot 2}] / \sqrt2`, still of norm at most 1, so both
    moments are released together at sensitivity 1.

    The extractor must NOT have been fitted on the private rows: its weights reach the output.

    Parameters
    ----------
    extractor : torch.nn.Module, callable or fitted PCA, IncrementalPCA or TruncatedSVD
        Maps a ``(n, n_inputs)`` tensor of the model space to ``(n, k)`` features.
    n_inputs : int
        Width of the model space (the encoder's ``n_outputs_``).
    moments : {1, 2}, default=1
    device, dtype
        Where and in which float type the features are computed.
    feature_names : sequence of str, default=None
        Names of the model-space columns (the encoder's ``get_feature_names_out()``), quoted when
        the extractor expects another number of inputs.

    References
    ----------
    Harder, Jalali, Sutherland & Park. "Pre-trained Perceptual Features Improve Differentially
    Private Image Generation." TMLR 2023.
    """

    def __init__(self, extractor, n_inputs: int, moments: int = 1, device="cpu", dtype=torch.float32,
                 feature_names: Sequence[str] | None = None):
        if moments not in (1, 2):
            raise ValueError(f"moments must be 1 or 2, got {moments}")
        self.moments = moments
        expected = _expected_width(extractor)
        if expected is not None and expected != n_inputs:
            raise ValueError(_width_message(n_inputs, feature_names, expected=expected))
        self.fn = _as_torch_extractor(extractor, device, dtype)
        try:
            with torch.no_grad():
                out = self.fn(torch.zeros(2, n_inputs, device=device, dtype=dtype))
        except RuntimeError as exc:  # torch's shape errors: say what the input is
            raise ValueError(_width_message(n_inputs, feature_names, error=exc)) from exc
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            shape = tuple(out.shape) if hasattr(out, "shape") else type(out).__name__
            raise ValueError(f"the feature extractor must return a 2-D (n, d) tensor, got {shape}")
        self.n_features = out.shape[1] * moments

    def __call__(self, Z: torch.Tensor) -> torch.Tensor:
        f = self.fn(Z)
        f = f / f.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if self.moments == 2:
            f = torch.cat([f, f * f], dim=1) / math.sqrt(2.0)
        return f

    def to(self, device) -> PerceptualFeatures:
        if isinstance(self.fn, nn.Module):
            self.fn = self.fn.to(device)
        elif isinstance(self.fn, _LinearProjection):
            self.fn.to(device)
        return self


class _LinearProjection:
    """``Z @ weight - offset``: the ``transform`` of a fitted PCA, IncrementalPCA or TruncatedSVD."""

    _holds_torch_state = True

    def __init__(self, weight: torch.Tensor, offset: torch.Tensor):
        self.weight = weight
        self.offset = offset

    def __call__(self, Z: torch.Tensor) -> torch.Tensor:
        return Z @ self.weight - self.offset

    def to(self, device) -> _LinearProjection:
        self.weight, self.offset = self.weight.to(device), self.offset.to(device)
        return self


def _linear_projection(extractor, device, dtype) -> _LinearProjection:
    """The exact ``transform`` of a fitted PCA / IncrementalPCA (centred, whitened) or TruncatedSVD."""
    from sklearn.decomposition import PCA, IncrementalPCA
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(extractor, "components_")
    weight = np.asarray(extractor.components_, dtype=np.float64).T  # (n_inputs, k)
    offset = np.zeros(weight.shape[1])
    if isinstance(extractor, PCA | IncrementalPCA):
        offset = np.asarray(extractor.mean_, dtype=np.float64) @ weight
        if extractor.whiten:  # as sklearn's _BasePCA._transform: tiny variances clipped at eps
            scale = np.sqrt(np.asarray(extractor.explained_variance_, dtype=np.float64))
            scale = np.maximum(scale, np.finfo(scale.dtype).eps)
            weight, offset = weight / scale, offset / scale
    return _LinearProjection(torch.as_tensor(weight, dtype=dtype, device=device),
                             torch.as_tensor(offset, dtype=dtype, device=device))


def _is_linear_projection(extractor) -> bool:
    from sklearn.decomposition import PCA, IncrementalPCA, TruncatedSVD

    return isinstance(extractor, PCA | IncrementalPCA | TruncatedSVD)


def _expected_width(extractor) -> int | None:
    """The input width an extractor declares (fitted linear projection, leading nn.Linear), if any."""
    if _is_linear_projection(extractor) and hasattr(extractor, "components_"):
        return int(np.shape(extractor.components_)[1])
    while isinstance(extractor, nn.Sequential) and len(extractor):
        extractor = extractor[0]
    if isinstance(extractor, nn.Linear):
        return int(extractor.in_features)
    return None


def _width_message(n_inputs: int, feature_names: Sequence[str] | None, expected: int | None = None,
                   error: Exception | None = None) -> str:
    names = ""
    if feature_names is not None:
        shown = [str(f) for f in feature_names]
        names = f": {shown[:20]}{' ...' if len(shown) > 20 else ''}"
    space = (f"the model space has {n_inputs} columns (the encoder's output columns, in order{names}; see "
             "encoder_.get_feature_names_out())")
    head = (f"the feature extractor expects {expected} inputs while {space}" if error is None else
            f"the feature extractor failed on a batch of the model space ({error}); {space}")
    return f"{head}.  Fit the extractor on TabularEncoder(schema).fit_transform(public_rows) with the same schema"


def _as_torch_extractor(extractor, device, dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(extractor, nn.Module):
        # a private copy: the caller's module keeps its dtype, device, training flag and requires_grad
        module = copy.deepcopy(extractor).to(device=device, dtype=dtype).eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return module
    if _is_linear_projection(extractor):
        return _linear_projection(extractor, device, dtype)
    if hasattr(extractor, "components_"):
        raise TypeError(
            f"feature_extractor {type(extractor).__name__} has components_ but its transform is not a linear "
            "projection; only a fitted PCA, IncrementalPCA or TruncatedSVD is applied directly.  Wrap other "
            "transformers in a torch.nn.Module or a callable on tensors (differentiable: the generator is "
            "trained through it)")
    if callable(extractor):
        return extractor
    raise TypeError(
        "feature_extractor must be a torch.nn.Module, a callable on tensors or a fitted PCA, IncrementalPCA "
        f"or TruncatedSVD, got {type(extractor).__name__}")


def make_feature_map(kind: str, *, blocks, n_inputs: int, seed: int, device, n_features: int | None,
                     length_scale: float | None, hermite_order: int, ntk_width: int,
                     feature_extractor=None, perceptual_moments: int = 1,
                     feature_names: Sequence[str] | None = None) -> FeatureMap:
    """Build the feature map named ``kind`` with defaults computed from the public layout only.

    ``feature_names`` (the model-space column names) are quoted in a perceptual extractor's width error.
    """
    n_groups = len(blocks)
    if kind == "rff":
        # Gaussian kernel on the model space; the squared distance of two rows is a sum over
        # column groups, each at most 1 (continuous) or 2 (one-hot): scale with sqrt(#groups).
        ls = length_scale if length_scale is not None else 0.5 * math.sqrt(n_groups)
        return RandomFourierFeatures(n_inputs, n_features or 2000, ls, seed, device=device)
    if kind == "hermite":
        return HermiteFeatures(blocks, order=hermite_order,
                               length_scale=length_scale if length_scale is not None else 0.2, device=device)
    if kind == "ntk":
        return NTKFeatures(n_inputs, ntk_width, seed, device=device)
    if kind == "perceptual":
        if feature_extractor is None:
            raise ValueError("features='perceptual' needs feature_extractor= (a model fitted on public data)")
        return PerceptualFeatures(feature_extractor, n_inputs, perceptual_moments, device=device,
                                  feature_names=feature_names)
    raise ValueError(f"features must be 'rff', 'hermite', 'ntk' or 'perceptual', got {kind!r}")
