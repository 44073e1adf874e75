"""DPFlowSynthesizer: exact-density DP synthesis with a neural spline flow trained by DP-SGD."""

from __future__ import annotations

import copy
import math
import warnings
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._config import privacy_seed
from .._torch import derive_seeds, torch_generator, with_torch_threads
from ..base import BaseSynthesizer, _planned_schema_releases, check_n_samples, fresh_fit
from ..dpsgd import DPSGDConfig, DPSGDResult, cosine_schedule, train_dpsgd
from ..encoding import (
    TabularEncoder,
    cast_labels,
    check_dtype,
    from_unit,
    public_dtypes,
    public_label_dtype,
    to_unit,
)
from ..exceptions import PrivacyBudgetExceeded
from ..privacy import PrivacyRelease, calibrate_subsampled_noise, gaussian_mechanism, gdp_mu
from ..schema import Schema
from .mixed import FlowEnsemble, MixedFlow

__all__ = ["DPFlowSynthesizer"]

# model space -> flow space: continuous values z in [0, 1] to 2 * _HALF * (z - 1/2), inside the
# spline's [-5, 5]
_HALF = 3.0
# shares of the model's (epsilon, delta): a DP estimate of the row count; the boosting line searches
_COUNT_SHARE = 0.01
_SEARCH_SHARE = 0.04
# line search of the boosting weight: grid of rho, per-row gains clipped to [log(1 - rho), _SEARCH_CLIP]
_SEARCH_GRID = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
_SEARCH_CLIP = -math.log(0.3)
_SEARCH_SENSITIVITY = _SEARCH_CLIP * math.sqrt(len(_SEARCH_GRID))
# sample() draws and decodes this many rows at a time (bounded memory for any n_samples)
_SAMPLE_ROWS = 1 << 15


class DPFlowSynthesizer(BaseSynthesizer):
    r"""Differentially private synthetic data with an exact density: neural spline flows trained by DP-SGD.

    **Model.**  The rows are encoded by the public schema (:class:`~skdpgen.encoding.TabularEncoder`)
    and split in two parts, modelled jointly (:class:`~skdpgen.flows.MixedFlow`):

    * the *discrete part* :math:`o`: categorical and boolean columns, missing-value indicators, and
      integer columns with at most ``max_discrete_levels`` values, one-hot coded and modelled by an
      exact autoregressive distribution :math:`p(o) = \prod_g p(o_g \mid o_{<g})` (one shared MLP,
      :class:`~skdpgen.flows.AutoregressiveCategorical`); the order puts ``categorical_order``
      first, then the target of ``fit(X, y)``, then the other columns;
    * the *continuous part* :math:`x`: continuous columns (scaled by their public bounds,
      :math:`z \in [0,1] \mapsto 6(z - 1/2)`) and wider integer columns (dequantised: a uniform
      :math:`U(-1/2, 1/2)` added in original units), modelled by a coupling spline flow
      conditioned on :math:`o` (:class:`~skdpgen.flows.SplineCouplingFlow`, one ``nn.Linear``
      conditioner shared by all stages, as in the DP normalising-flow paper).

    ``n_charts > 1`` makes each component a mixture of local flows ("charts") sharing the networks:
    :math:`p(o, x) = \sum_k \pi_k\, p(o \mid k)\, p(x \mid o, k)`.  ``n_components > 1`` fits a
    gradient-boosted flow (Giaquinto & Banerjee 2020): :math:`G_c = (1 - \rho_c) G_{c-1} + \rho_c
    g_c`, where the new component :math:`g_c` maximises the likelihood of the mixture with
    :math:`G_{c-1}` frozen and :math:`\rho = 1/(c+1)` (its per-row gradient is the boosting weight
    :math:`\rho g_c / ((1-\rho) G_{c-1} + \rho g_c)` times :math:`\nabla \log g_c`: rows the
    current model explains badly count more), then :math:`\rho_c` is chosen by a **private line
    search**: the per-row log-likelihood gains :math:`\log(1 - \rho + \rho\, g_c / G_{c-1})` on a
    grid of :math:`\rho`, clipped to :math:`[\log(1 - \rho), B]`, summed and released with
    Gaussian noise in one vector (L2 sensitivity :math:`B\sqrt{J}` for :math:`J` grid points,
    :math:`B = -\log 0.3`), and the best noisy sum wins (:math:`\rho_c = 0` if none is positive).

    **Privacy.**  Neighbouring relation: add/remove one row.  Every component is trained with
    DP-SGD (:func:`skdpgen.dpsgd.train_dpsgd`: Poisson sampling, per-example clipping of the shared
    conditioners' gradients, fine-grained per-layer clipping by default, Gaussian noise); one
    noise multiplier is calibrated (Opacus PRV or RDP accountant) for the steps of all components
    together, so their composition is exactly one run of that many steps and is recorded as ONE
    release.  The row count, which sets the sampling rate, is released with 1% of the model's
    budget; the line searches get 4% (only when ``n_components > 1``); a schema estimated with
    DP gets ``schema_share``.  Shares add up by basic composition to ``(epsilon, delta)``; the
    ledger composes the Gaussian releases exactly.  ``privacy_report_`` lists every release.

    **Density** (:meth:`score_samples`): the exact log-density of the model in the ORIGINAL
    units: the discrete part contributes an exact log-probability (a probability mass), the
    continuous columns a log-density with the Jacobian of the public scaling.  Wide integer
    columns are scored by the dequantised density at the integer (an estimate of
    :math:`\log P(k) \ge E_u \log p(k + u)`).  At a missing value of a nullable continuous
    column the flow is trained on a uniform draw over the range, so that value is scored by the
    flow at the middle of the range divided by that uniform density (a one-point estimate of the
    marginal over the missing coordinate: the missing rows' total mass is P(missing)).  A value
    outside the public bounds, or a non-integer value of an integer column, has log-density
    ``-inf``.  **Boundary mass**: the flow's support is the real line and the public range maps to
    [-3, 3] in flow space; what the flow puts outside is clamped to the bounds when sampling, so
    a sample holds the bound values with positive probability, which ``score_samples`` (a
    density) does not count: the density integrates to 1 minus that mass over the bounds (well
    under 1% for smooth columns, e.g. 0.9997 for a standard normal on [-4, 4]; but up to tens of
    percent for a column with a spike at a bound, such as a capital-gain column that is mostly 0).  After ``fit(X, y)``,
    ``score_samples(X)`` marginalises the target exactly (a sum over its classes) and
    ``score_samples(X, y)`` is the joint density.

    Parameters
    ----------
    n_layers : int, default=6
        Coupling stages (the conditioner is shared: depth does not add parameters).
    hidden : tuple of int, default=(128, 128)
        Hidden widths of the conditioner and of the discrete model's MLP.
    n_bins : int, default=8
        Spline bins.
    base : {"normal", "student_t"}, default="normal"
        Base distribution of the flow (Student-t with ``df=5``: heavy tails).
    n_components : int, default=1
        Components of the gradient-boosted flow (each trained for ``epochs``).
    n_charts : int, default=1
        Local flows ("charts") of each component.
    max_discrete_levels : int, default=32
        Integer columns with at most this many values (from the public bounds) are modelled as
        discrete; wider ones are dequantised.
    categorical_order : list of str or None, default=None
        Discrete columns to put first in the autoregressive order: conditional sampling on a
        prefix of the order is exact (see :meth:`sample`).
    epochs : float, default=20
        Expected passes over the data per component.
    batch_size : int, default=1024
        Expected (Poisson) batch size (large batches give DP-SGD a better signal-to-noise ratio:
        on adult at epsilon=1, 1024 beat 256; see benchmarks/RESULTS.md).
    max_grad_norm : float, default=1.0
        Total per-example clipping threshold.
    clipping : {"flat", "per_layer"}, default="per_layer"
        Fine-grained clipping: one threshold per Linear layer, squares summing to
        ``max_grad_norm**2``.
    learning_rate : float, default=5e-3
    accountant : {"prv", "rdp"}, default="prv"
    epsilon, delta, schema, schema_share, random_state, device, verbose, ledger, n_threads
        See :class:`~skdpgen.base.BaseSynthesizer`.  ``epsilon=float("inf")`` trains without
        clipping or noise, through the same code (the non-private reference).

    Attributes
    ----------
    model_ : FlowEnsemble
        The fitted components and their mixture weights.
    weights_ : ndarray of shape (n_components,)
        Mixture weights of the boosted components.
    encoder_ : TabularEncoder
    schema_ : Schema
        The feature schema (declared, or estimated with DP).
    target_name_ : str or None
        The label column of ``fit(X, y)``.
    classes_ : ndarray or None
        Its classes.
    dpsgd_ : DPSGDResult
        Summary of the DP-SGD training of all components (noise multiplier, sampling rate, steps).
    n_samples_estimate_ : float
        The DP row count.
    privacy_report_ : dict

    See Also
    --------
    DPMMDSynthesizer : one-shot private kernel mean embedding, generator trained for free.
    sklearn.mixture.GaussianMixture : non-private density estimation with the same ``score``.

    References
    ----------
    Lee, Kim, Jeong & Ro. "Differentially Private Normalizing Flows for Synthetic Tabular Data
    Generation." AAAI 2022.
    Durkan, Bekasov, Murray & Papamakarios. "Neural Spline Flows." NeurIPS 2019.
    Giaquinto & Banerjee. "Gradient Boosted Normalizing Flows." NeurIPS 2020.
    Abadi et al. "Deep Learning with Differential Privacy." CCS 2016.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skdpgen import DPFlowSynthesizer, Schema, ColumnSpec
    >>> rng = np.random.default_rng(0)
    >>> X = pd.DataFrame({"x": rng.normal(size=500), "g": rng.choice(["a", "b"], 500)})
    >>> schema = Schema([ColumnSpec("x", "continuous", bounds=(-4, 4)),
    ...                  ColumnSpec("g", "categorical", categories=("a", "b"))])
    >>> flow = DPFlowSynthesizer(epsilon=1.0, schema=schema, epochs=2, random_state=0).fit(X)
    >>> flow.sample(3, random_state=0).shape
    (3, 2)
    >>> flow.sample(2, given={"g": "b"})["g"].tolist()
    ['b', 'b']
    """

    _parameter_constraints: dict = {
        **BaseSynthesizer._parameter_constraints,
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "hidden": [tuple, list],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "base": [StrOptions({"normal", "student_t"})],
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_charts": [Interval(Integral, 1, None, closed="left")],
        "max_discrete_levels": [Interval(Integral, 0, None, closed="left")],
        "categorical_order": [list, tuple, None],
        "epochs": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither")],
        "clipping": [StrOptions({"flat", "per_layer"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "accountant": [StrOptions({"prv", "rdp"})],
    }

    def __init__(self, *, n_layers=6, hidden=(128, 128), n_bins=8, base="normal", n_components=1, n_charts=1,
                 max_discrete_levels=32, categorical_order=None, epochs=20, batch_size=1024, max_grad_norm=1.0,
                 clipping="per_layer", learning_rate=5e-3, accountant="prv", epsilon=1.0, delta=1e-5, schema=None,
                 schema_share=0.1, random_state=None, device="auto", verbose=0, ledger=None, n_threads=1):
        super().__init__(epsilon=epsilon, delta=delta, schema=schema, schema_share=schema_share,
                         random_state=random_state, device=device, verbose=verbose, ledger=ledger,
                         n_threads=n_threads)
        self.n_layers = n_layers
        self.hidden = hidden
        self.n_bins = n_bins
        self.base = base
        self.n_components = n_components
        self.n_charts = n_charts
        self.max_discrete_levels = max_discrete_levels
        self.categorical_order = categorical_order
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.clipping = clipping
        self.learning_rate = learning_rate
        self.accountant = accountant

    # ------------------------------------------------------------------ fitting
    @fresh_fit
    @with_torch_threads
    def fit(self, X, y=None):
        """Fit the flow on the table ``X`` (and the label ``y``, modelled jointly); returns self.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            Every column may be given, the label included (then leave ``y=None``).
        y : array-like of shape (n_samples,), optional
            A categorical label, modelled as a discrete column placed early in the autoregressive
            order (after ``categorical_order``); ``sample(..., return_y=True)`` returns it, and
            ``sample(..., given={target: value})`` samples one class exactly.  Without a declared
            target in the schema, the classes are estimated with DP; rows whose label does not pass
            the threshold are left out of the fit (with a warning), so every sampled label is in
            ``classes_``.
        """
        self._setup_fit(n_seeds=8)
        Xf = self._check_X(X, reset=True)
        ys = self._check_y(y, len(Xf))
        owner = f"{type(self).__name__}#{id(self):x}"
        # The ledger (if any) reserves the schema estimate and the row count before their noise is
        # drawn (checked and recorded atomically: fits racing on one ledger cannot both pass); the
        # DP-SGD plan needs the noisy row count, so the reservation is then narrowed to the exact
        # plan before any training.  A fit refused there, or failing later, records what it drew;
        # a refused or failed fit leaves the estimator unfitted (fresh_fit).
        ledger = self.ledger
        if ledger is not None and ((ledger.max_epsilon is not None and float(self.epsilon) > ledger.max_epsilon)
                                   or (ledger.max_delta is not None and float(self.delta) > ledger.max_delta)):
            # the fit alone exceeds the budget: refused before the schema and the row count are drawn
            raise PrivacyBudgetExceeded(f"this fit asks for epsilon={float(self.epsilon):g}, delta="
                                        f"{float(self.delta):g}, more than the ledger's whole budget (max_epsilon="
                                        f"{ledger.max_epsilon}, max_delta={ledger.max_delta})")
        try:
            return self._fit(Xf, ys, owner)
        except BaseException:
            self._settle_drawn()
            raise

    def _fit(self, Xf: pd.DataFrame, ys: pd.Series | None, owner: str):
        feature_schema, target_spec, target_name, _, schema_releases = self._resolve_schema(
            Xf, ys, owner, split="basic", plan=lambda budget, _: self._plan_start(budget, owner))
        self.schema_ = feature_schema
        table, joint = Xf, feature_schema
        self.target_name_, self.classes_ = None, None
        if ys is not None:
            if target_name in Xf.columns:
                raise ValueError(f"the label {target_name!r} is also a column of X; give it once")
            self.target_name_ = target_name
            Xf, ys = _drop_unreleased_labels(Xf, ys, target_spec)
            # every label in the model (and so every sampled label) is one of classes_
            target_spec = replace(target_spec, name=target_name, unknown="error")
            self.classes_ = np.asarray(target_spec.categories, dtype=object)
            self._y_dtype = public_label_dtype(ys.dtype, self.classes_)  # sample(return_y=True) gives it back
            table = Xf.assign(**{target_name: ys.to_numpy()})
            joint = Schema([*feature_schema.columns.values(), target_spec])
        for name, spec in joint.columns.items():  # in the user's terms (the encoder sees dequantised kinds)
            if name in table.columns:
                check_dtype(spec, table[name].dtype)
        self.dtypes_ = public_dtypes(table.dtypes, joint)
        self._joint_schema = joint
        self.encoder_ = TabularEncoder(_dequantised_schema(joint)).fit(table)
        self._setup_layout()
        rows = self._rows(table)

        budget = self._plan_budget(bool(schema_releases))
        count_release = self._count_release(*budget["count"], owner)
        noisy_count = self._private_count(len(Xf), count_release)
        self._drawn.append(count_release)
        self.n_samples_estimate_ = noisy_count
        self._check_delta(noisy_count)
        n_hat = max(float(self.batch_size), noisy_count)  # q <= 1
        q = min(1.0, int(self.batch_size) / n_hat)
        steps_each = max(1, round(float(self.epochs) / q))
        eps_sgd, delta_sgd = budget["dpsgd"]
        sigma = self._calibrate(eps_sgd, delta_sgd, q, steps_each * int(self.n_components))
        planned = [*schema_releases, count_release, *self._planned_searches(budget, owner),
                   PrivacyRelease.subsampled("DPFlowSynthesizer.dpsgd", noise_multiplier=sigma, sample_rate=q,
                                             steps=steps_each * int(self.n_components), delta=delta_sgd,
                                             accountant=self.accountant, sensitivity=self._clip_norm(),
                                             owner=owner)]
        self._settle_plan(planned, narrow=True)  # refuse before any training
        self._drawn = planned  # from the first step on, a failure counts as the whole plan
        done: list[PrivacyRelease] = [*schema_releases, count_release]
        steps = self._train(rows, q, sigma, delta_sgd, budget, owner, done)
        release = PrivacyRelease.subsampled("DPFlowSynthesizer.dpsgd", noise_multiplier=sigma, sample_rate=q,
                                            steps=steps, delta=delta_sgd, accountant=self.accountant,
                                            sensitivity=self._clip_norm(), owner=owner)
        self.dpsgd_ = DPSGDResult(noise_multiplier=sigma, sample_rate=q, steps=steps,
                                  planned_steps=steps_each * int(self.n_components), epsilon=release.epsilon,
                                  delta=release.delta, release=release)
        self._settle_plan([*done, release])
        self.privacy_report_ = self._make_report(
            None, accounting="row count, line searches and schema: Gaussian DP; DP-SGD: Opacus "
            + self.accountant.upper() + " accountant (Poisson-subsampled Gaussian, all components as one "
            "run); composed by the ledger")
        return self

    def _calibrate(self, eps_sgd: float, delta_sgd: float, q: float, steps: int) -> float:
        """Noise multiplier of the DP-SGD share; an unreachable target is explained in the user's terms."""
        if math.isinf(eps_sgd):
            return 0.0
        try:
            return calibrate_subsampled_noise(eps_sgd, delta_sgd, q, steps, self.accountant)
        except ValueError as exc:
            if "no noise multiplier" not in str(exc):
                raise
            # public terms only: the sampling rate and the number of steps derive from the noisy row
            # count, which is not released when the fit stops here
            raise ValueError(
                f"{type(self).__name__} cannot be trained at epsilon={float(self.epsilon):g}: the DP-SGD part "
                f"of the budget would need a noise multiplier above 1e4 for epochs={self.epochs}, "
                f"batch_size={self.batch_size}"
                + (f", n_components={self.n_components}" if int(self.n_components) > 1 else "")
                + "; use fewer epochs, a larger epsilon or a larger batch_size (unless every row is already "
                "in every batch)") from exc

    def _clip_norm(self) -> float | None:
        return None if math.isinf(float(self.epsilon)) else float(self.max_grad_norm)

    def _plan_budget(self, has_schema_release: bool) -> dict[str, tuple[float, float]]:
        share = float(self.schema_share) if has_schema_release else 0.0
        eps_m, delta_m = float(self.epsilon) * (1 - share), float(self.delta) * (1 - share)
        search = _SEARCH_SHARE if int(self.n_components) > 1 else 0.0
        return {"count": (eps_m * _COUNT_SHARE, delta_m * _COUNT_SHARE),
                "search": (eps_m * search, delta_m * search),
                "dpsgd": (eps_m * (1 - _COUNT_SHARE - search), delta_m * (1 - _COUNT_SHARE - search))}

    def _search_mu(self, budget) -> float:
        eps, delta = budget["search"]
        return gdp_mu(eps, delta) / math.sqrt(int(self.n_components) - 1)

    def _planned_searches(self, budget, owner: str) -> list[PrivacyRelease]:
        n = int(self.n_components) - 1
        if n == 0:
            return []
        mu, delta = self._search_mu(budget), budget["search"][1] / n
        return [PrivacyRelease.gaussian(f"DPFlowSynthesizer.line_search[{c + 1}]", mu=mu, delta=delta,
                                        sensitivity=_SEARCH_SENSITIVITY,
                                        noise_std=0.0 if math.isinf(mu) else _SEARCH_SENSITIVITY / mu, owner=owner)
                for c in range(n)]

    def _train(self, rows: torch.Tensor, q: float, sigma: float, delta_sgd: float, budget, owner: str,
               done: list[PrivacyRelease]) -> int:
        """Train the components one after the other; returns the DP-SGD steps taken."""
        private = math.isfinite(float(self.epsilon))  # noise and Poisson batches: fresh entropy (privacy_seed)
        gen = torch_generator(privacy_seed(self._seeds[2], private), self.device_)
        search_rng = np.random.default_rng(privacy_seed(self._seeds[5], private))
        model_seeds = derive_seeds(self._seeds[3], int(self.n_components))
        components: list[MixedFlow] = []
        log_weights: list[float] = []
        steps = 0
        searches = iter(self._planned_searches(budget, owner))
        for c in range(int(self.n_components)):
            comp = MixedFlow(self._n_cont, self._sizes, n_charts=int(self.n_charts), n_stages=int(self.n_layers),
                             hidden_features=tuple(self.hidden), n_bins=int(self.n_bins), base=self.base,
                             generator=torch_generator(model_seeds[c], self.device_), device=self.device_)
            previous = FlowEnsemble(components, log_weights) if components else None
            rho = 1.0 / (c + 1)

            def per_example_loss(model, batch, previous=previous, rho=rho):
                x = self._dequantise(batch, gen)
                if previous is None:
                    return -model.log_prob(x)
                with torch.no_grad():
                    old = previous.log_prob(x)
                return -torch.logaddexp(old + math.log1p(-rho), model.log_prob(x) + math.log(rho))

            config = DPSGDConfig(epsilon=budget["dpsgd"][0], delta=delta_sgd, epochs=float(self.epochs),
                                 batch_size=int(self.batch_size), max_grad_norm=self._clip_norm(),
                                 clipping=self.clipping, accountant=self.accountant, lr=float(self.learning_rate),
                                 scheduler=cosine_schedule, verbose=self.verbose, sample_rate=q, noise_multiplier=sigma)
            result = train_dpsgd(comp, per_example_loss, rows, config, generator=gen, ledger=None, owner=owner,
                                 name=f"DPFlowSynthesizer.dpsgd[{c}]")
            steps += result.steps
            comp.eval()
            for p in comp.parameters():
                p.requires_grad_(False)
            if previous is None:
                log_weights = [0.0]
            else:
                release = next(searches)
                chosen = self._line_search(previous, comp, rows, gen, release, search_rng)
                done.append(release)
                log_weights = [w + math.log1p(-chosen) for w in log_weights] + \
                    [math.log(chosen) if chosen > 0 else -math.inf]
            components.append(comp)
        self.model_ = FlowEnsemble(components, log_weights)
        self.weights_ = np.exp(np.asarray(self.model_.log_weights))
        return steps

    @torch.no_grad()
    def _line_search(self, previous: FlowEnsemble, comp: MixedFlow, rows: torch.Tensor, gen: torch.Generator,
                     release: PrivacyRelease, rng: np.random.Generator) -> float:
        r"""Private choice of :math:`\rho`: noisy sums of clipped per-row gains on a grid (see class docs)."""
        grid = torch.tensor(_SEARCH_GRID, dtype=torch.float64)
        lo = torch.log1p(-grid)
        total = torch.zeros(len(grid), dtype=torch.float64)
        for chunk in torch.split(rows, 4096):
            x = self._dequantise(chunk, gen)
            diff = (comp.log_prob(x) - previous.log_prob(x)).double().cpu().clamp(max=50.0)
            gain = torch.log1p(grid * torch.expm1(diff).unsqueeze(1))  # log(1 - rho + rho * g / G)
            total += torch.maximum(gain.nan_to_num(nan=-math.inf), lo).clamp(max=_SEARCH_CLIP).sum(0)
        noisy = gaussian_mechanism(total.numpy(), float(release.noise_std), rng)
        best = int(np.argmax(noisy))
        return float(_SEARCH_GRID[best]) if noisy[best] > 0 else 0.0

    def _plan_start(self, budget, owner: str) -> list[PrivacyRelease]:
        """The releases drawn before the DP-SGD plan can be made: the schema estimate (if any) and the row count."""
        schema = [self._restate(r, budget) for r in _planned_schema_releases(budget, owner)]
        return [*schema, self._count_release(*self._plan_budget(bool(schema))["count"], owner)]

    @staticmethod
    def _count_release(epsilon: float, delta: float, owner: str) -> PrivacyRelease:
        """Gaussian release of the row count (sensitivity 1 under add/remove one row)."""
        mu = gdp_mu(epsilon, delta)
        return PrivacyRelease.gaussian("DPFlowSynthesizer.row_count", mu=mu, delta=delta, sensitivity=1.0,
                                       noise_std=0.0 if math.isinf(mu) else 1.0 / mu, owner=owner)

    def _private_count(self, n: int, release: PrivacyRelease) -> float:
        """The noisy row count of ``release`` (at least 1)."""
        rng = np.random.default_rng(privacy_seed(self._seeds[4], release.noise_std > 0))
        return max(float(gaussian_mechanism(np.array([float(n)]), release.noise_std, rng)[0]), 1.0)

    # ------------------------------------------------------------------ layout of the model rows
    def _setup_layout(self) -> None:
        """Continuous coordinates and discrete groups of the model rows ``[x, o]``."""
        enc, blocks = self.encoder_, self.encoder_.blocks_
        levels = int(self.max_discrete_levels)
        cont, groups = [], []  # groups: (column, block, kind, size) with kind "onehot" or "levels"
        for b in blocks:
            spec, orig = enc.schema_[b.column], self._joint_schema[b.column]
            if b.kind != "continuous":
                groups.append((b.column, b, "onehot", b.width))
            elif orig.kind == "integer" and orig.bounds[1] - orig.bounds[0] + 1 <= levels:
                groups.append((b.column, b, "levels", int(orig.bounds[1] - orig.bounds[0]) + 1))
            else:
                cont.append(b)
        first = [str(c) for c in (self.categorical_order or [])]
        unknown = [c for c in first if c not in {g[0] for g in groups}]
        if unknown:
            raise ValueError(f"categorical_order names columns that are not discrete in the model: {unknown} "
                             f"(discrete: {sorted({g[0] for g in groups})})")
        if self.target_name_ is not None and self.target_name_ not in first:
            first.append(self.target_name_)
        rank = {name: i for i, name in enumerate(first)}
        groups.sort(key=lambda g: rank.get(g[0], len(rank)))  # stable: schema order otherwise
        self._cont_blocks, self._groups = cont, groups
        self._n_cont = len(cont)
        self._sizes = [g[3] for g in groups]
        offsets = np.cumsum([0, *self._sizes])
        self._group_start = {(g[0], g[1].role): int(offsets[i]) for i, g in enumerate(groups)}
        # integer columns dequantised by one unit in original units: its width in model space is
        # 1/(h - l) on a linear scale and exp(-z L)/L on a log scale (L = log(1 + h - l))
        lin, log_scale = [], []
        for b in cont:
            spec, orig = enc.schema_[b.column], self._joint_schema[b.column]
            lo, hi = spec.bounds
            is_int = orig.kind == "integer"
            lin.append(1.0 / (hi - lo) if is_int and spec.resolved_scale == "linear" else 0.0)
            log_scale.append(math.log1p(hi - lo) if is_int and spec.resolved_scale == "log" else 0.0)
        self._int_lin = torch.tensor(lin, dtype=torch.float32, device=self.device_)
        self._int_log = torch.tensor(log_scale, dtype=torch.float32, device=self.device_)
        # nullable continuous coordinates: (coordinate, position of its "missing" slot in the model row)
        miss = [(j, len(cont) + self._group_start[(b.column, "missing")] + 1) for j, b in enumerate(cont)
                if (b.column, "missing") in self._group_start]
        self._miss_coord = torch.tensor([j for j, _ in miss], dtype=torch.long, device=self.device_)
        self._miss_slot = torch.tensor([s for _, s in miss], dtype=torch.long, device=self.device_)

    def _rows(self, frame: pd.DataFrame, dtype=torch.float32) -> torch.Tensor:
        """Encoded rows ``[z, o]``: continuous values in [0, 1] (model units), then one-hot groups."""
        Z = self.encoder_.to_tensor(frame, device=self.device_, dtype=dtype)
        parts = [Z[:, [b.start for b in self._cont_blocks]]]
        for column, b, kind, size in self._groups:
            if kind == "onehot":
                parts.append(Z[:, b.start:b.stop])
            else:
                spec, lo = self.encoder_.schema_[column], self._joint_schema[column].bounds[0]
                values = torch.as_tensor(from_unit(Z[:, b.start].cpu().double().numpy(), spec))
                index = (values.round() - lo).clamp(0, size - 1).long().to(Z.device)
                parts.append(torch.nn.functional.one_hot(index, size).to(Z))
        return torch.cat(parts, dim=1)

    def _dequantise(self, rows: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Model rows -> flow space, continuous part dequantised with ``gen`` (``None``: cell centres).

        A missing value of a nullable continuous column (encoded at the middle of the range) is
        replaced by a uniform draw over the whole range: the flow then learns a uniform
        conditional there, of density 1 / (2 HALF), which :meth:`score_samples`
        divides out at the centre (a one-point estimate of the marginal density of the rest).
        """
        d = self._n_cont
        if d == 0:
            return rows
        z = rows[:, :d]
        if gen is not None:
            u = torch.rand(z.shape, generator=gen, device=rows.device, dtype=rows.dtype) - 0.5
            int_log = self._int_log.to(rows)
            log_units = torch.where(int_log > 0, torch.exp(-z * int_log) / int_log.clamp_min(1e-12),
                                    torch.zeros_like(z))
            z = (z + u * (self._int_lin.to(rows) + log_units)).clamp(0.0, 1.0)
            if self._miss_coord.numel():
                cols = self._miss_coord.to(rows.device)
                missing = rows[:, self._miss_slot.to(rows.device)] > 0.5
                fill = torch.rand(missing.shape, generator=gen, device=rows.device, dtype=rows.dtype)
                z = z.clone()
                z[:, cols] = torch.where(missing, fill, z[:, cols])
        return torch.cat([2 * _HALF * (z - 0.5), rows[:, d:]], dim=1)

    def _decode(self, x: torch.Tensor) -> pd.DataFrame:
        """Flow-space rows -> the original table (all modelled columns)."""
        x = x.cpu().double()
        Z = np.zeros((x.shape[0], self.encoder_.n_outputs_))
        d = self._n_cont
        for j, b in enumerate(self._cont_blocks):
            Z[:, b.start] = (x[:, j] / (2 * _HALF) + 0.5).clamp(0.0, 1.0).numpy()
        offset = d
        for column, b, kind, size in self._groups:
            index = x[:, offset:offset + size].argmax(dim=1).numpy()
            if kind == "onehot":
                Z[np.arange(len(Z)), b.start + index] = 1.0
            else:
                spec, lo = self.encoder_.schema_[column], self._joint_schema[column].bounds[0]
                Z[:, b.start] = to_unit(lo + index.astype(float), spec)
            offset += size
        frame = self.encoder_.inverse_transform(Z)
        return _restore_integers(frame, self._joint_schema, self.dtypes_)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "model_")

    # ------------------------------------------------------------------ using the model
    @with_torch_threads
    def sample(self, n_samples: int = 1, random_state=None, given: dict | None = None, return_y: bool = False):
        """Draw ``n_samples`` rows (post-processing: no privacy cost); original columns and dtypes.

        Parameters
        ----------
        n_samples : int
        random_state : int, RandomState or None
            Seeds this draw; ``None``: fresh rows at every call (the constructor's ``random_state``
            is not used).
        given : dict {column: value}, optional
            Sample conditionally on discrete columns (categorical, boolean, the label, narrow
            integer columns), e.g. ``{"sex": "Female"}``; a nullable continuous column can only be
            fixed to a missing value (``None``), never to a value.  Exact, with no rejection loop, when the
            given columns lead the autoregressive order (the label of ``fit(X, y)`` does, and
            ``categorical_order`` puts others there): the component and chart are drawn from their
            posterior, then the other columns from the model with the given values fixed.
            Otherwise the other given columns are handled by sampling-importance-resampling from a
            pool of ``20 * n_samples`` candidates, resampled with replacement (approximate): when
            the given value is rare under the model, few candidates carry the weight and the same
            row is drawn several times (about half the rows were repeats for a value of probability
            0.03).  Put such columns first with ``categorical_order`` for exact, distinct draws.
        return_y : bool, default=False
            After ``fit(X, y)``, return ``(X, y)``.

        Returns
        -------
        DataFrame (ndarray if fit saw one), or ``(X, y)``.
        """
        check_is_fitted(self)
        n = check_n_samples(n_samples)
        if return_y and self.target_name_ is None:
            raise ValueError("return_y=True needs a fit with y")
        fixed = self._fixed_positions(given)
        gen = torch_generator(derive_seeds(random_state, 1)[0] % (2**62), self.device_)
        # block by block: bounded memory for any n_samples (model rows, one-hot decoding)
        frames = [self._decode(self.model_.sample(min(_SAMPLE_ROWS, n - start), gen, fixed))
                  for start in range(0, n, _SAMPLE_ROWS)]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if self.target_name_ is None:
            return self._to_output(frame[list(self.feature_names_in_)] if hasattr(self, "feature_names_in_")
                                   else frame)
        labels = frame.pop(self.target_name_)
        X_out = self._to_output(frame)
        if not return_y:
            return X_out
        idx = pd.Index(list(self.classes_), dtype=object).get_indexer(labels.to_numpy(dtype=object))
        return X_out, cast_labels(self.classes_, idx, getattr(self, "_y_dtype", None), self.target_name_,
                                  as_series=self._input_kind == "pandas")

    def _fixed_positions(self, given) -> dict[int, int]:
        if not given:
            return {}
        if not isinstance(given, dict):
            raise TypeError(f"given must be a dict {{column: value}}, got {type(given).__name__}")
        continuous = {b.column for b in self._cont_blocks}
        discrete = sorted({g[0] for g in self._groups} - continuous)
        fixed = {}
        for column, value in given.items():
            column = str(column)
            if column not in self._joint_schema.columns:
                raise ValueError(f"given names an unknown column {column!r}")
            spec = self._joint_schema[column]
            missing = value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and math.isnan(value))
            if column in continuous and not (missing and spec.nullable):
                # a nullable continuous column only has a discrete missing indicator: its value is not fixable
                raise ValueError(f"given can only fix discrete columns (categorical, boolean, the label or "
                                 f"integer columns with <= max_discrete_levels values); {column!r} is "
                                 "continuous in the model, and continuous columns cannot be conditioned on a value"
                                 + ("; being nullable, it can be fixed to missing (None)" if spec.nullable else "")
                                 + f" (discrete: {discrete})")
            matches = [i for i, g in enumerate(self._groups) if g[0] == column]
            for i in matches:
                _, b, kind, size = self._groups[i]
                if b.role == "missing":
                    fixed[i] = 1 if missing else 0
                elif missing:
                    if not spec.nullable:
                        raise ValueError(f"column {column!r} is not nullable: cannot fix it to a missing value")
                    if kind == "onehot":
                        fixed[i] = len(spec.categories)
                elif kind == "levels":
                    v = float(value)
                    lo, hi = spec.bounds
                    if not (v.is_integer() and lo <= v <= hi):
                        raise ValueError(f"given value {value!r} for {column!r} is not an integer in {spec.bounds}")
                    fixed[i] = int(v - lo)
                else:
                    cats = list(spec.categories)
                    hits = [k for k, c in enumerate(cats) if c == value or str(c) == str(value)]
                    if not hits:
                        raise ValueError(f"given value {value!r} is not a category of {column!r}: {cats}")
                    fixed[i] = hits[0]
        return fixed

    @with_torch_threads
    def score_samples(self, X, y=None) -> np.ndarray:
        """Log-density of each row in the original units (see the class docstring).

        After ``fit(X, y)``: with ``y`` the joint density of ``(x, y)`` (``-inf`` for a label not in
        ``classes_``), without it the density of ``x`` with the label summed out exactly.  Rows the
        model cannot generate score ``-inf``: values outside a continuous column's bounds, integer
        values out of bounds or not whole, and missing values in a non-nullable column with
        ``missing="impute"`` (as a DP-estimated schema sets).  Values the schema cannot encode at
        all raise ``ValueError``, as in :meth:`fit`: a category not in the schema (unless the
        column has an "other" slot), a missing value in a column declared with ``missing="error"``.
        """
        check_is_fitted(self)
        Xf = self._check_X(X, reset=False)
        ys = None if y is None else self._check_y(y, len(Xf))
        if ys is not None and self.target_name_ is None:
            raise ValueError("y was given but the model was fitted without a label")
        unknown = None
        if ys is not None:  # a label that is not a class has probability 0
            unknown = pd.Index(list(self.classes_), dtype=object).get_indexer(ys.to_numpy(dtype=object)) < 0
            ys = ys.astype(object).where(~unknown, self.classes_[0])
        model = copy.deepcopy(self.model_)
        for comp in model.components:
            comp.double()  # float64: a row's score does not depend on the batch (BLAS blocking)
        with torch.no_grad():
            if self.target_name_ is None or ys is not None:
                table = Xf if ys is None else Xf.assign(**{self.target_name_: ys.to_numpy()})
                logp = model.log_prob(self._dequantise(self._rows(table, torch.float64), None)).cpu().numpy()
            else:
                terms = [model.log_prob(self._dequantise(self._rows(
                    Xf.assign(**{self.target_name_: np.repeat(np.asarray([c], dtype=object), len(Xf))}),
                    torch.float64), None)).cpu().numpy() for c in self.classes_]
                logp = np.logaddexp.reduce(np.stack(terms), axis=0)
        if unknown is not None:
            logp[unknown] = -np.inf
        return logp + self._log_jacobian(Xf) + self._integer_support(Xf) + self._missing_support(Xf)

    def score(self, X, y=None) -> float:
        """Mean log-density per row (:meth:`score_samples`), for model selection on held-out rows."""
        return float(np.mean(self.score_samples(X, y)))

    def _integer_support(self, X: pd.DataFrame) -> np.ndarray:
        """0, or -inf for a row with an integer column's value outside its bounds or not an integer.

        The encoder clips and rounds such values, which would give them the probability of a valid
        one; a missing value (nullable column) keeps its own meaning.
        """
        total = np.zeros(len(X))
        for name, spec in self._joint_schema.columns.items():
            if spec.kind != "integer" or name not in X.columns:
                continue
            lo, hi = spec.bounds
            x = pd.to_numeric(X[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                valid = np.isnan(x) | ((x >= lo) & (x <= hi) & (np.round(x) == x))
            total[~valid] = -np.inf
        return total

    def _missing_support(self, X: pd.DataFrame) -> np.ndarray:
        """0, or -inf for a row with a missing value in a column the model never leaves missing.

        A non-nullable column with ``missing="impute"`` (e.g. a DP-estimated schema) encodes a
        missing value as its fixed ``fill_value``, which would give it that value's density; the
        model generates no missing values there, so their probability is 0.
        """
        total = np.zeros(len(X))
        for name, spec in self._joint_schema.columns.items():
            if spec.nullable or spec.missing != "impute" or name not in X.columns:
                continue
            total[X[name].isna().to_numpy()] = -np.inf
        return total

    def _log_jacobian(self, X: pd.DataFrame) -> np.ndarray:
        """log |d flow-space / d original units| summed over the continuous coordinates of each row.

        For a missing value of a nullable column: log(2 HALF), the inverse of the
        uniform density the flow was trained with there (see :meth:`_dequantise`).
        """
        total = np.zeros(len(X))
        for b in self._cont_blocks:
            if b.column not in X.columns:
                continue
            spec = self.encoder_.schema_[b.column]
            lo, hi = spec.bounds
            x = pd.to_numeric(X[b.column], errors="coerce").to_numpy(dtype=float)
            missing = np.isnan(x)
            inside = (x >= lo) & (x <= hi)
            if spec.resolved_scale == "log":
                d = 1.0 / ((1.0 + np.clip(x, lo, hi) - lo) * np.log1p(hi - lo))
            else:
                d = np.full(len(x), 1.0 / (hi - lo))
            jac = np.log(2 * _HALF * d)
            # a missing value: the flow's uniform conditional over the range (1 / (2 HALF)) is divided out
            at_missing = math.log(2 * _HALF) if spec.nullable else 0.0
            total += np.where(missing, at_missing, np.where(inside, jac, -np.inf))
        return total


def _drop_unreleased_labels(X: pd.DataFrame, y: pd.Series, target_spec) -> tuple[pd.DataFrame, pd.Series]:
    """Leave out the rows whose label is not a class of ``target_spec`` (not released by its DP estimate).

    Only for a target whose spec merges unknown labels (``unknown="other"``: DP-estimated); with a
    declared target, an unknown label is an error (raised by the encoder).  The warning does not
    say how many rows were left out: that count is not released.
    """
    if target_spec.unknown != "other":
        return X, y
    known = pd.Index(list(target_spec.categories), dtype=object).get_indexer(y.to_numpy(dtype=object)) >= 0
    if known.all():
        return X, y
    if not known.any():
        raise ValueError("no label of y is among the classes released by the DP estimate of the target; "
                         "declare the target's categories in the schema")
    warnings.warn("some rows have labels whose class was not released by the DP class estimate (rare "
                  "classes); they are left out of the fit. Declare the target's categories in the schema "
                  "to keep them.", UserWarning, stacklevel=4)
    return X[known].reset_index(drop=True), y[known].reset_index(drop=True)


def _dequantised_schema(schema: Schema) -> Schema:
    """Integer columns as continuous with bounds widened by 1/2 (uniform dequantisation)."""
    cols = []
    for spec in schema.columns.values():
        if spec.kind == "integer":
            lo, hi = spec.bounds
            cols.append(replace(spec, kind="continuous", bounds=(lo - 0.5, hi + 0.5)))
        else:
            cols.append(spec)
    return Schema(cols)


def _restore_integers(frame: pd.DataFrame, schema: Schema, dtypes) -> pd.DataFrame:
    for name, spec in schema.columns.items():
        if spec.kind != "integer" or name not in frame:
            continue
        lo, hi = spec.bounds
        col = frame[name].round().clip(lo, hi)
        dtype = dtypes[name]
        if col.isna().any() or not pd.api.types.is_integer_dtype(dtype):
            frame[name] = col.astype("Int64") if pd.api.types.is_integer_dtype(dtype) else col.astype(dtype)
        else:
            frame[name] = col.astype(dtype)
    return frame

