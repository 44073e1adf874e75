r"""Autoregressive model of several categorical columns with one shared ``nn.Linear`` network.

For :math:`G` categorical columns taken in a fixed order, with one-hot codes
:math:`o_1, \dots, o_G` (widths :math:`k_1, \dots, k_G`) and an optional context :math:`c`,

.. math::

    \log p(o_1, \dots, o_G \mid c) = \sum_{g=1}^{G} \log \operatorname{softmax}
        \bigl(h_g\bigr)_{x_g}, \qquad
    h_g = \mathrm{NN}\bigl([\, o_{<g},\ e_g,\ c \,]\bigr)_{1:k_g},

where :math:`o_{<g}` is the concatenation of all one-hot codes with the columns :math:`\ge g`
zeroed, :math:`e_g` the one-hot code of the position and :math:`\mathrm{NN}` **one** MLP shared by
all positions (its output has :math:`\max_g k_g` logits, the first :math:`k_g` used at position
:math:`g`).  The probability is exact and normalised (a product of softmaxes); the :math:`G`
positions are evaluated in one batched call of the MLP on an input of shape ``(n, G, width)``,
which DP-SGD engines treat as :math:`G` calls of each Linear layer (per-example gradient norms from
Gram matrices, :mod:`skdpgen.dpsgd`).  This is the "categorical part modelled first" scheme of the
DP normalising-flow literature (the continuous part is then a flow conditioned on
:math:`o_1, \dots, o_G`), in the shared-conditioner style of Lee et al. (2022), with the
autoregressive factorisation of NADE (Larochelle & Murray, 2011).

References
----------
Larochelle, H. and Murray, I. "The Neural Autoregressive Distribution Estimator." AISTATS 2011.
Lee, J., Kim, M., Jeong, Y. and Ro, Y. "Differentially Private Normalizing Flows for Synthetic
Tabular Data Generation." AAAI 2022.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .._torch import make_linear

__all__ = ["AutoregressiveCategorical"]

_NEG = -1e9  # logit of the padding slots of narrower columns


class AutoregressiveCategorical(nn.Module):
    r"""Exact autoregressive distribution over one-hot coded categorical columns.

    Parameters
    ----------
    sizes : sequence of int
        Number of categories :math:`k_g \ge 1` of each column, in the autoregressive order.  The
        one-hot codes are laid out in this order (total width :math:`\sum_g k_g`).
    hidden_features : sequence of int, default=(64, 64)
        Hidden widths of the shared MLP.
    context_features : int, default=0
        Width of an optional context :math:`c`.
    activation : type of nn.Module, default=nn.SiLU
        Parameter-free activation.
    generator : torch.Generator
        Draws the initial weights (torch's global RNG is not used).
    device : str or torch.device, default="cpu"

    Notes
    -----
    Only ``nn.Linear`` modules carry parameters; the masks are plain tensors rebuilt on the
    device on demand (no buffers), so the module trains under :func:`skdpgen.dpsgd.train_dpsgd`.
    """

    def __init__(self, sizes: Sequence[int], *, hidden_features: Sequence[int] = (64, 64),
                 context_features: int = 0, activation: type[nn.Module] = nn.SiLU,
                 generator: torch.Generator, device: str | torch.device = "cpu"):
        super().__init__()
        self.sizes = tuple(int(k) for k in sizes)
        if not self.sizes or min(self.sizes) < 1:
            raise ValueError(f"sizes must be a non-empty sequence of integers >= 1, got {sizes}")
        self.n_columns = len(self.sizes)
        self.width = sum(self.sizes)
        self.max_size = max(self.sizes)
        self.context_features = int(context_features)
        starts = [0]
        for k in self.sizes[:-1]:
            starts.append(starts[-1] + k)
        self.starts = tuple(starts)
        widths = [self.width + self.n_columns + self.context_features, *[int(h) for h in hidden_features],
                  self.max_size]
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(make_linear(n_in, n_out, generator, device))
            if i < len(widths) - 2:
                layers.append(activation())
        self.net = nn.Sequential(*layers)
        self._cache: dict[tuple[torch.device, torch.dtype], tuple[Tensor, ...]] = {}

    # ------------------------------------------------------------------ constant tensors
    def _constants(self, ref: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Prefix mask (G, W), position codes (G, G), padding (G, K) and the gather index (G, K)."""
        key = (ref.device, ref.dtype)
        if key not in self._cache:
            G, W, K = self.n_columns, self.width, self.max_size
            prefix = torch.zeros(G, W, dtype=ref.dtype, device=ref.device)
            pad = torch.full((G, K), _NEG, dtype=ref.dtype, device=ref.device)
            index = torch.zeros(G, K, dtype=torch.long, device=ref.device)
            for g, (start, k) in enumerate(zip(self.starts, self.sizes, strict=True)):
                prefix[g, :start] = 1.0
                pad[g, :k] = 0.0
                index[g, :k] = torch.arange(start, start + k, device=ref.device)
            self._cache[key] = (prefix, torch.eye(G, dtype=ref.dtype, device=ref.device), pad, index)
        return self._cache[key]

    def _logits(self, onehot: Tensor, context: Tensor | None, positions: Sequence[int] | None = None) -> Tensor:
        """Log-softmax of every (or the given) positions: shape ``(n, len(positions), K)``."""
        prefix, codes, pad, _ = self._constants(onehot)
        if positions is not None:
            idx = torch.as_tensor(list(positions), device=onehot.device)
            prefix, codes, pad = prefix[idx], codes[idx], pad[idx]
        n, P = onehot.shape[0], prefix.shape[0]
        parts = [onehot.unsqueeze(1) * prefix, codes.expand(n, P, -1)]
        if self.context_features:
            parts.append(context.unsqueeze(1).expand(n, P, -1))
        logits = self.net(torch.cat(parts, dim=2)) + pad
        return torch.log_softmax(logits, dim=2)

    def _check(self, onehot: Tensor, context: Tensor | None) -> Tensor | None:
        if onehot.ndim != 2 or onehot.shape[1] != self.width:
            raise ValueError(f"expected one-hot codes of shape (n, {self.width}), got {tuple(onehot.shape)}")
        if not self.context_features:
            return None
        if context is None or context.shape[-1] != self.context_features:
            raise ValueError(f"this model needs a context of width {self.context_features}")
        return context.expand(onehot.shape[0], -1) if context.ndim == 2 and context.shape[0] == 1 else context

    # ------------------------------------------------------------------ public API
    def log_prob(self, onehot: Tensor, context: Tensor | None = None) -> Tensor:
        r"""Exact :math:`\log p(o \mid c)` per row, shape ``(n,)``."""
        context = self._check(onehot, context)
        logp = self._logits(onehot, context)
        _, _, pad, index = self._constants(onehot)
        # picked[n, g, j] = onehot[n, start_g + j], zero on the padding slots
        picked = onehot[:, index] * (pad == 0)
        return (picked * logp).sum(dim=(1, 2))

    def forward(self, onehot: Tensor, context: Tensor | None = None) -> Tensor:
        return self.log_prob(onehot, context)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, context: Tensor | None = None,
               fixed: Mapping[int, Tensor] | None = None, unweighted: int = 0) -> tuple[Tensor, Tensor]:
        r"""Draw ``n`` one-hot rows position by position; some positions may be fixed.

        Parameters
        ----------
        fixed : mapping {position: category index}, optional
            Positions whose category is set instead of drawn (a scalar or ``n`` indices).
        unweighted : int, default=0
            Fixed positions below this one are left out of ``log_weight`` (a caller that already
            drew the context from its posterior given them).

        Returns
        -------
        onehot : Tensor of shape (n, width)
        log_weight : Tensor of shape (n,)
            :math:`\sum_{g \in \text{fixed}} \log p(x_g \mid x_{<g}, c)`: with the fixed positions
            forced, the rows follow :math:`p(x \mid c)` reweighted by ``exp(log_weight)``
            (importance weights towards :math:`p(x \mid c, x_{\text{fixed}})`; constant when the
            fixed positions come first).
        """
        ref = self.net[0].weight
        onehot = ref.new_zeros(int(n), self.width)
        if context is not None:
            context = context.to(ref).expand(int(n), -1) if context.shape[0] == 1 else context.to(ref)
        log_weight = ref.new_zeros(int(n))
        fixed = dict(fixed or {})
        for g, (start, k) in enumerate(zip(self.starts, self.sizes, strict=True)):
            logp = self._logits(onehot, context, positions=[g])[:, 0, :k]
            if g in fixed:
                pick = torch.as_tensor(fixed[g], device=ref.device, dtype=torch.long).expand(int(n))
                if g >= unweighted:
                    log_weight += logp.gather(1, pick.unsqueeze(1)).squeeze(1)
            else:
                probs = logp.exp().to(generator.device)
                pick = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(ref.device)
            onehot[torch.arange(int(n), device=ref.device), start + pick] = 1.0
        return onehot, log_weight

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = {}
        return state
