r"""Exact densities on mixed tables: categorical part first, continuous flow conditioned on it.

One :class:`MixedFlow` models a row :math:`(o, x)` of one-hot coded categorical columns :math:`o`
and continuous coordinates :math:`x` as

.. math::

    p(o, x) = \sum_{k=1}^{K} \pi_k\; p_{\mathrm{cat}}(o \mid k)\; p_{\mathrm{flow}}(x \mid o, k),

with :math:`p_{\mathrm{cat}}` an :class:`~skdpgen.flows.categorical.AutoregressiveCategorical`
model, :math:`p_{\mathrm{flow}}` a :class:`~skdpgen.flows.SplineCouplingFlow` whose shared
conditioner receives :math:`[o, e_k]` as context, and :math:`K` "charts" (a mixture of local
flows; :math:`K = 1` is a single flow).  All parts share the chart code, so charts cost no extra
networks; the mixture weights are ``softmax(w)`` with :math:`w` the weight of an
``nn.Linear(1, K, bias=False)`` applied to a constant one (so DP-SGD clips their per-example
gradients like any Linear weight).  The density is exact: a finite mixture of exact densities,
each a product of a normalised discrete distribution and a normalising flow.

:class:`FlowEnsemble` holds weighted components (gradient boosting, Giaquinto & Banerjee 2020:
:math:`G_c = (1 - \rho_c) G_{c-1} + \rho_c g_c`) and samples from them, also conditionally on
categorical values.

References
----------
Giaquinto, R. and Banerjee, A. "Gradient Boosted Normalizing Flows." NeurIPS 2020.
Lee, J., Kim, M., Jeong, Y. and Ro, Y. "Differentially Private Normalizing Flows for Synthetic
Tabular Data Generation." AAAI 2022.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .._torch import make_linear
from .categorical import AutoregressiveCategorical
from .model import SplineCouplingFlow

__all__ = ["FlowEnsemble", "MixedFlow"]


class MixedFlow(nn.Module):
    r"""Mixture of :math:`K` local flows over categorical one-hots and continuous coordinates.

    Parameters
    ----------
    n_continuous : int
        Number :math:`d` of continuous coordinates (may be 0).
    category_sizes : sequence of int
        Widths of the one-hot groups, in autoregressive order (may be empty).
    n_charts : int, default=1
        Mixture components :math:`K` ("charts").
    n_stages, hidden_features, n_bins, base
        Passed to :class:`~skdpgen.flows.SplineCouplingFlow` (``hidden_features`` also sizes the
        categorical model's MLP).
    generator : torch.Generator
    device : str or torch.device

    Notes
    -----
    Rows are tensors ``[x, o]``: the first :math:`d` columns continuous (flow space), then the
    one-hot groups in order.  Every trainable parameter lives in an ``nn.Linear`` and no buffer is
    registered, as :func:`skdpgen.dpsgd.train_dpsgd` requires.
    """

    def __init__(self, n_continuous: int, category_sizes: Sequence[int], *, n_charts: int = 1, n_stages: int = 6,
                 hidden_features: Sequence[int] = (128, 128), n_bins: int = 8, base: str = "normal",
                 generator: torch.Generator, device: str | torch.device = "cpu"):
        super().__init__()
        self.n_continuous = int(n_continuous)
        self.category_sizes = tuple(int(k) for k in category_sizes)
        self.n_onehot = sum(self.category_sizes)
        self.n_charts = int(n_charts)
        if self.n_continuous == 0 and not self.category_sizes:
            raise ValueError("a MixedFlow needs at least one continuous coordinate or one categorical column")
        chart_width = self.n_charts if self.n_charts > 1 else 0
        self.cat = (AutoregressiveCategorical(self.category_sizes, hidden_features=hidden_features,
                                              context_features=chart_width, generator=generator, device=device)
                    if self.category_sizes else None)
        self.flow = (SplineCouplingFlow(self.n_continuous, n_stages=n_stages, hidden_features=hidden_features,
                                        n_bins=n_bins, base=base, context_features=self.n_onehot + chart_width,
                                        generator=generator, device=device)
                     if self.n_continuous else None)
        self.chart_logits = None
        if self.n_charts > 1:
            self.chart_logits = make_linear(1, self.n_charts, generator, device, bias=False)
            with torch.no_grad():
                self.chart_logits.weight.zero_()

    @property
    def width(self) -> int:
        return self.n_continuous + self.n_onehot

    def _ref(self) -> Tensor:
        return next(self.parameters())

    def log_chart_weights(self, n: int = 1) -> Tensor:
        """Log mixture weights, shape ``(n, K)`` (one row per example, for per-example gradients)."""
        ref = self._ref()
        if self.chart_logits is None:
            return ref.new_zeros(n, 1)
        return torch.log_softmax(self.chart_logits(ref.new_ones(n, 1)), dim=1)

    def _chart_code(self, n: int, k: int | Tensor, ref: Tensor) -> Tensor | None:
        if self.n_charts == 1:
            return None
        if isinstance(k, Tensor):
            return nn.functional.one_hot(k, self.n_charts).to(ref)
        code = ref.new_zeros(n, self.n_charts)
        code[:, k] = 1.0
        return code

    def _split(self, rows: Tensor) -> tuple[Tensor, Tensor]:
        if rows.ndim != 2 or rows.shape[1] != self.width:
            raise ValueError(f"expected rows of shape (n, {self.width}), got {tuple(rows.shape)}")
        return rows[:, :self.n_continuous], rows[:, self.n_continuous:]

    def _log_prob_given_chart(self, x: Tensor, o: Tensor, chart: Tensor | None) -> Tensor:
        logp = x.new_zeros(x.shape[0])
        if self.cat is not None:
            logp = logp + self.cat.log_prob(o, chart)
        if self.flow is not None:
            ctx = [t for t in (o if self.n_onehot else None, chart) if t is not None]
            logp = logp + self.flow.log_prob(x, torch.cat(ctx, dim=1) if ctx else None)
        return logp

    def log_prob_by_chart(self, rows: Tensor) -> Tensor:
        r""":math:`\log \pi_k + \log p(o, x \mid k)`, shape ``(n, K)``."""
        x, o = self._split(rows)
        n = rows.shape[0]
        per_chart = [self._log_prob_given_chart(x, o, self._chart_code(n, k, rows)) for k in range(self.n_charts)]
        return torch.stack(per_chart, dim=1) + self.log_chart_weights(n)

    def log_prob(self, rows: Tensor) -> Tensor:
        r"""Exact :math:`\log p(o, x)` per row, shape ``(n,)``."""
        return torch.logsumexp(self.log_prob_by_chart(rows), dim=1)

    def forward(self, rows: Tensor) -> Tensor:
        return self.log_prob(rows)

    @torch.no_grad()
    def log_prob_prefix(self, prefix: Mapping[int, int]) -> Tensor:
        r""":math:`\log \pi_k + \log p(o_{1..P} = v \mid k)` for fixed leading positions, shape ``(K,)``."""
        ref = self._ref()
        out = self.log_chart_weights(1)[0].clone()
        if not prefix or self.cat is None:
            return out
        o = ref.new_zeros(1, self.n_onehot)
        for g, v in prefix.items():
            o[0, self.cat.starts[g] + int(v)] = 1.0
        positions = sorted(prefix)
        for k in range(self.n_charts):
            logp = self.cat._logits(o, self._chart_code(1, k, ref), positions=positions)[0]
            out[k] += sum(logp[i, int(prefix[g])] for i, g in enumerate(positions))
        return out

    @torch.no_grad()
    def sample(self, charts: Tensor, generator: torch.Generator,
               fixed: Mapping[int, int] | None = None, unweighted: int = 0) -> tuple[Tensor, Tensor]:
        """Rows ``[x, o]`` for the given chart indices, and the log importance weights of ``fixed``.

        Fixed positions below ``unweighted`` do not enter the weights (see
        :meth:`AutoregressiveCategorical.sample`).
        """
        ref = self._ref()
        n = int(charts.shape[0])
        chart = self._chart_code(n, charts.to(ref.device), ref)
        log_weight = ref.new_zeros(n)
        if self.cat is not None:
            fixed_t = {g: torch.tensor(int(v)) for g, v in (fixed or {}).items()}
            o, log_weight = self.cat.sample(n, generator, chart, fixed_t, unweighted)
        else:
            o = ref.new_zeros(n, 0)
        if self.flow is not None:
            ctx = [t for t in (o if self.n_onehot else None, chart) if t is not None]
            x = self.flow.sample(n, generator, torch.cat(ctx, dim=1) if ctx else None)
        else:
            x = ref.new_zeros(n, 0)
        return torch.cat([x, o], dim=1), log_weight


class FlowEnsemble:
    r"""Weighted mixture of :class:`MixedFlow` components (a boosted flow), with exact density.

    Parameters
    ----------
    components : list of MixedFlow
    log_weights : sequence of float
        Log mixture weights (normalised here).
    """

    _holds_torch_state = True  # skdpgen._torch.portable moves its components (pickling on the CPU)

    def __init__(self, components: Sequence[MixedFlow], log_weights: Sequence[float]):
        if len(components) != len(log_weights) or not components:
            raise ValueError("need one log weight per component, and at least one component")
        self.components = list(components)
        lw = torch.tensor([float(w) for w in log_weights], dtype=torch.float64)
        self.log_weights = (lw - torch.logsumexp(lw, 0)).tolist()

    def log_prob(self, rows: Tensor) -> Tensor:
        r""":math:`\log \sum_c w_c\, p_c(o, x)` per row."""
        terms = [c.log_prob(rows) + w for c, w in zip(self.components, self.log_weights, strict=True)
                 if math.isfinite(w)]
        return torch.logsumexp(torch.stack(terms, dim=1), dim=1)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator, fixed: Mapping[int, int] | None = None,
               oversample: int = 20) -> Tensor:
        r"""``n`` rows, optionally with categorical positions fixed.

        The component and chart of each row are drawn from their posterior given the fixed
        positions that lead the autoregressive order (exact); fixed positions further down are
        handled by sampling-importance-resampling over ``oversample * n`` candidates (weights
        :math:`p(v_g \mid o_{<g})`, resampled with replacement): approximate, no rejection loop.
        """
        fixed = dict(fixed or {})
        prefix, g = {}, 0
        while g in fixed:
            prefix[g] = fixed[g]
            g += 1
        needs_sir = len(prefix) < len(fixed)
        m = n * oversample if needs_sir else n
        # joint (component, chart) posterior given the fixed prefix
        logits = torch.cat([c.log_prob_prefix(prefix).double().cpu() + w
                            for c, w in zip(self.components, self.log_weights, strict=True)])
        if not torch.isfinite(logits).any():
            raise ValueError("the fixed values have probability zero under the model")
        probs = torch.softmax(logits, 0).float().to(generator.device)
        pick = torch.multinomial(probs, m, replacement=True, generator=generator).cpu()
        sizes = [c.n_charts for c in self.components]
        rows = torch.empty(m, self.components[0].width, dtype=self.components[0]._ref().dtype)
        log_w = torch.zeros(m, dtype=torch.float64)
        start = 0
        for comp, k in zip(self.components, sizes, strict=True):
            mine = ((pick >= start) & (pick < start + k)).nonzero(as_tuple=True)[0]
            if len(mine):
                r, lw = comp.sample(pick[mine] - start, generator, fixed, unweighted=len(prefix))
                rows[mine] = r.cpu()
                log_w[mine] = lw.double().cpu()
            start += k
        if not needs_sir:
            return rows
        w = torch.softmax(log_w, 0).float().to(generator.device)
        idx = torch.multinomial(w, n, replacement=True, generator=generator).cpu()
        return rows[idx]
