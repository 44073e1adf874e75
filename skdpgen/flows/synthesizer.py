"""DPFlowSynthesizer: exact-density DP synthesis with a neural spline flow trained by DP-SGD."""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from .._torch import derive_seeds, torch_generator, with_torch_threads
from ..base import BaseSynthesizer, check_n_samples
from ..dpsgd import DPSGDConfig, train_dpsgd
from ..encoding import TabularEncoder
from ..privacy import PrivacyRelease, gaussian_mechanism, gdp_mu
from ..schema import Schema
from .model import SplineCouplingFlow

__all__ = ["DPFlowSynthesizer"]

# model space -> flow space: continuous values z in [0, 1] to 2 * _HALF * (z - 1/2); one-hot slots
# dequantised to v = onehot + u, u ~ U(0, 1), then to _HALF * (v - 1); all inside the spline's [-5, 5]
_HALF = 3.0
# share of the model's (epsilon, delta) spent on a DP estimate of the row count
_COUNT_SHARE = 0.01


class DPFlowSynthesizer(BaseSynthesizer):
    r"""Differentially private synthetic data with an exact density: a neural spline flow trained by DP-SGD.

    The rows are encoded by the public schema (:class:`~skdpgen.encoding.TabularEncoder`) and
    mapped to a flow space: a continuous value :math:`z \in [0, 1]` (scaled by its public bounds)
    to :math:`x = 6(z - 1/2)`; an integer column is first *dequantised* (a uniform
    :math:`U(-1/2, 1/2)` added in original units, bounds widened by 1/2); each one-hot group
    (categories, missing-value indicators) is dequantised as :math:`v = \mathrm{onehot} + u`,
    :math:`u \sim U(0,1)^k`, :math:`x = 3(v - 1)`, and decoded by argmax.  A coupling spline flow
    (:class:`~skdpgen.flows.SplineCouplingFlow`, one ``nn.Linear`` conditioner shared by all
    stages) is trained on :math:`-\log p(x)` with DP-SGD (:func:`skdpgen.dpsgd.train_dpsgd`:
    Poisson sampling, per-example clipping of the shared conditioner's gradients, Gaussian noise
    calibrated with Opacus's PRV accountant).

    **Neighbouring relation**: add/remove one row.  ``privacy_report_`` lists the DP-SGD release
    (and the schema release when no schema is declared: ``schema_share`` of epsilon and delta).

    **Density** (:meth:`score_samples`): for continuous columns the exact log-density in the
    ORIGINAL units (the Jacobian of the public scaling included); for integer columns the density
    of the dequantised variable at the integer; for one-hot groups the density of the
    dequantised variable at the cell centre (:math:`u = 1/2`), an estimate of the lower bound
    :math:`\log P(k) \ge E_u \log p(k + u)` on the discrete log-probability.

    Parameters
    ----------
    n_layers : int, default=6
        Coupling stages (the conditioner is shared: depth does not add parameters).
    hidden : tuple of int, default=(128, 128)
        Hidden widths of the conditioner.
    n_bins : int, default=8
        Spline bins.
    base : {"normal", "student_t"}, default="normal"
        Base distribution (Student-t with ``df=5`` for heavy tails).
    epochs : float, default=30
    batch_size : int, default=256
        Expected (Poisson) batch size.
    max_grad_norm : float, default=1.0
        Total per-example clipping threshold.
    clipping : {"flat", "per_layer"}, default="per_layer"
        Fine-grained clipping: one threshold per Linear layer, squares summing to
        ``max_grad_norm**2``.
    learning_rate : float, default=2e-3
    accountant : {"prv", "rdp"}, default="prv"
    epsilon, delta, schema, schema_share, random_state, device, verbose, ledger, n_threads
        See :class:`~skdpgen.base.BaseSynthesizer`.

    Attributes
    ----------
    flow_ : SplineCouplingFlow
    encoder_ : TabularEncoder
    schema_ : Schema
    dpsgd_ : DPSGDResult
    privacy_report_ : dict

    Notes
    -----
    Status: first version.  Not yet here (see the project's issue): class-conditional ``fit(X, y)``
    (put the label in ``X`` as a categorical column), conditional sampling (``given=``),
    gradient-boosted flows and mixtures of local flows.

    References
    ----------
    Lee, Kim, Jeong & Ro. "Differentially Private Normalizing Flows for Synthetic Tabular Data
    Generation." AAAI 2022.
    Durkan, Bekasov, Murray & Papamakarios. "Neural Spline Flows." NeurIPS 2019.
    """

    _parameter_constraints: dict = {
        **BaseSynthesizer._parameter_constraints,
        "n_layers": [Interval(Integral, 1, None, closed="left")],
        "hidden": [tuple, list],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "base": [StrOptions({"normal", "student_t"})],
        "epochs": [Interval(Real, 0, None, closed="neither")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither")],
        "clipping": [StrOptions({"flat", "per_layer"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "accountant": [StrOptions({"prv", "rdp"})],
    }

    def __init__(self, *, n_layers=6, hidden=(128, 128), n_bins=8, base="normal", epochs=30, batch_size=256,
                 max_grad_norm=1.0, clipping="per_layer", learning_rate=2e-3, accountant="prv",
                 epsilon=1.0, delta=1e-5, schema=None, schema_share=0.1, random_state=None, device="auto",
                 verbose=0, ledger=None, n_threads=1):
        super().__init__(epsilon=epsilon, delta=delta, schema=schema, schema_share=schema_share,
                         random_state=random_state, device=device, verbose=verbose, ledger=ledger,
                         n_threads=n_threads)
        self.n_layers = n_layers
        self.hidden = hidden
        self.n_bins = n_bins
        self.base = base
        self.epochs = epochs
        self.batch_size = batch_size
        self.max_grad_norm = max_grad_norm
        self.clipping = clipping
        self.learning_rate = learning_rate
        self.accountant = accountant

    # ------------------------------------------------------------------ fitting
    @with_torch_threads
    def fit(self, X, y=None):
        """Fit the flow on the table ``X``; returns self.

        ``y`` is ignored (as in :class:`~sklearn.mixture.GaussianMixture`): to model a label, put
        it in ``X`` as a categorical column; the flow then models the joint distribution.
        """
        self._setup_fit()
        Xf = self._check_X(X, reset=True)
        owner = f"{type(self).__name__}#{id(self):x}"
        feature_schema, _, _, budget, schema_releases = self._resolve_schema(Xf, None, owner, split="basic")
        self.schema_ = feature_schema
        self.encoder_ = self._fit_encoder(feature_schema, Xf)  # decodes to the original dtypes
        self._flow_encoder = TabularEncoder(_dequantised_schema(feature_schema)).fit(Xf)
        self.dtypes_ = Xf.dtypes
        Z = self._flow_encoder.to_tensor(Xf, device=self.device_, dtype=torch.float32)
        self._setup_layout()

        share = self.schema_share if schema_releases else 0.0
        eps_m = float(self.epsilon) * (1 - share)
        delta_m = float(self.delta) * (1 - share)
        # the row count sets the sampling rate and the number of steps, which are released: use a
        # DP count (a Gaussian release with _COUNT_SHARE of the model's budget), not the true n
        count_release, n_hat = self._private_count(len(Xf), eps_m * _COUNT_SHARE, delta_m * _COUNT_SHARE, owner)
        eps_m, delta_m = eps_m * (1 - _COUNT_SHARE), delta_m * (1 - _COUNT_SHARE)
        schema_releases = [*schema_releases, count_release]
        self.n_samples_estimate_ = n_hat
        config = DPSGDConfig(epsilon=eps_m, delta=delta_m, epochs=float(self.epochs),
                             batch_size=int(self.batch_size),
                             # epsilon=inf: the non-private reference, same code without clipping or noise
                             max_grad_norm=None if math.isinf(eps_m) else float(self.max_grad_norm),
                             clipping=self.clipping, accountant=self.accountant, lr=float(self.learning_rate),
                             scheduler=_cosine, verbose=self.verbose,
                             sample_rate=min(1.0, int(self.batch_size) / n_hat))
        planned = PrivacyRelease(name="DPFlowSynthesizer.dpsgd", mechanism="subsampled_gaussian",
                                 epsilon=eps_m, delta=delta_m, owner=owner)
        if self.ledger is not None:
            self.ledger.check([*schema_releases, planned])  # refuse before any training
        gen = torch_generator(self._seeds[2], self.device_)
        self.flow_ = SplineCouplingFlow(Z.shape[1], n_stages=self.n_layers, hidden_features=tuple(self.hidden),
                                        n_bins=self.n_bins, base=self.base, generator=self._seeds[3],
                                        device=self.device_)
        def per_example_loss(model, batch):
            return -model.log_prob(self._to_flow(batch, gen))

        try:
            self.dpsgd_ = train_dpsgd(self.flow_, per_example_loss, Z, config, generator=gen, ledger=None,
                                      owner=owner, name="DPFlowSynthesizer.dpsgd")
        except BaseException:
            # a partly trained model is a release too: account for the planned run, then re-raise
            self._commit_releases([*schema_releases, planned])
            del self.flow_
            raise
        self.flow_.eval()
        self._commit_releases([*schema_releases, self.dpsgd_.release])
        self.privacy_report_ = self._make_report(
            None, accounting="schema: Gaussian DP; DP-SGD: Opacus " + self.accountant.upper()
            + " accountant (Poisson-subsampled Gaussian); composed by the ledger")
        return self

    def _private_count(self, n: int, epsilon: float, delta: float, owner: str) -> tuple[PrivacyRelease, float]:
        """Gaussian release of the row count (sensitivity 1 under add/remove one row)."""
        mu = gdp_mu(epsilon, delta)
        noise_std = 0.0 if math.isinf(mu) else 1.0 / mu
        noisy = float(gaussian_mechanism(np.array([float(n)]), noise_std, np.random.default_rng(self._seeds[4]))[0])
        release = PrivacyRelease.gaussian("DPFlowSynthesizer.row_count", mu=mu, delta=delta, sensitivity=1.0,
                                          noise_std=noise_std, owner=owner)
        return release, max(float(self.batch_size), noisy, 1.0)

    def _setup_layout(self) -> None:
        blocks = self._flow_encoder.blocks_
        self._cont_idx = [b.start for b in blocks if b.kind == "continuous"]
        self._onehot_idx = [i for b in blocks if b.kind != "continuous" for i in range(b.start, b.stop)]
        self._groups = [(b.start, b.stop) for b in blocks if b.kind != "continuous"]
        # integer columns are dequantised by one unit in original units: its width in model space is
        # 1/(h - l) on a linear scale and exp(-z L)/L on a log scale (L = log(1 + h - l))
        lin, log_scale = [], []
        for b in blocks:
            if b.kind != "continuous":
                continue
            spec, orig = self._flow_encoder.schema_[b.column], self.schema_[b.column]
            lo, hi = spec.bounds
            is_int = orig.kind == "integer"
            lin.append(1.0 / (hi - lo) if is_int and spec.resolved_scale == "linear" else 0.0)
            log_scale.append(math.log1p(hi - lo) if is_int and spec.resolved_scale == "log" else 0.0)
        self._int_lin = torch.tensor(lin, dtype=torch.float32, device=self.device_)
        self._int_log = torch.tensor(log_scale, dtype=torch.float32, device=self.device_)

    def _to_flow(self, Z: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        """Model space -> flow space, dequantising with ``gen`` (``None``: cell centres)."""
        x = torch.empty_like(Z)
        if self._cont_idx:
            z = Z[:, self._cont_idx]
            if gen is not None:
                u = torch.rand(z.shape, generator=gen, device=Z.device, dtype=Z.dtype) - 0.5
                log_units = torch.where(self._int_log > 0, torch.exp(-z * self._int_log)
                                        / self._int_log.clamp_min(1e-12), torch.zeros_like(z))
                z = (z + u * (self._int_lin + log_units)).clamp(0.0, 1.0)
            x[:, self._cont_idx] = 2 * _HALF * (z - 0.5)
        if self._onehot_idx:
            v = Z[:, self._onehot_idx]
            u = 0.5 if gen is None else torch.rand(v.shape, generator=gen, device=Z.device, dtype=Z.dtype)
            x[:, self._onehot_idx] = _HALF * (v + u - 1.0)
        return x

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "flow_")

    # ------------------------------------------------------------------ using the model
    def _flow_to_model(self, x: torch.Tensor) -> np.ndarray:
        Z = torch.zeros_like(x)
        if self._cont_idx:
            Z[:, self._cont_idx] = (x[:, self._cont_idx] / (2 * _HALF) + 0.5).clamp(0.0, 1.0)
        for start, stop in self._groups:
            idx = x[:, start:stop].argmax(dim=1, keepdim=True)
            Z[:, start:stop] = torch.zeros_like(x[:, start:stop]).scatter_(1, idx, 1.0)
        return Z.cpu().numpy().astype(np.float64)

    @with_torch_threads
    def sample(self, n_samples: int = 1, random_state=None):
        """Draw ``n_samples`` rows (post-processing: no privacy cost); original columns and dtypes."""
        check_is_fitted(self)
        n = check_n_samples(n_samples)
        gen = torch_generator(derive_seeds(random_state, 1)[0] % (2**62), self.device_)
        with torch.no_grad():
            x = self.flow_.sample(n, gen)
        frame = self._flow_encoder.inverse_transform(self._flow_to_model(x))
        return self._to_output(_restore_integers(frame, self.schema_, self.dtypes_))

    @with_torch_threads
    def score_samples(self, X) -> np.ndarray:
        """Log-density of each row in the original units (see the class docstring for discrete columns)."""
        check_is_fitted(self)
        Xf = self._check_X(X, reset=False)
        # float64 so that a row's score does not depend on the other rows of the batch (BLAS blocking)
        Z = self._flow_encoder.to_tensor(Xf, device=self.device_, dtype=torch.float64)
        flow64 = copy.deepcopy(self.flow_).double()
        with torch.no_grad():
            logp = flow64.log_prob(self._to_flow(Z, None)).cpu().numpy()
        return logp + self._log_jacobian(Xf)

    def score(self, X, y=None) -> float:
        """Mean log-density per row (:meth:`score_samples`), for model selection on held-out rows."""
        return float(np.mean(self.score_samples(X)))

    def _log_jacobian(self, X: pd.DataFrame) -> np.ndarray:
        """log |d flow-space / d original units| summed over the columns of each row."""
        total = np.zeros(len(X))
        for b in self._flow_encoder.blocks_:
            spec = self._flow_encoder.schema_[b.column]
            if b.kind == "continuous":
                lo, hi = spec.bounds
                x = pd.to_numeric(X[b.column], errors="coerce").to_numpy(dtype=float)
                missing = np.isnan(x)
                inside = (x >= lo) & (x <= hi)
                if spec.resolved_scale == "log":
                    d = 1.0 / ((1.0 + np.clip(x, lo, hi) - lo) * np.log1p(hi - lo))
                else:
                    d = np.full(len(x), 1.0 / (hi - lo))
                jac = np.log(2 * _HALF * d)
                total += np.where(missing, 0.0, np.where(inside, jac, -np.inf))
            else:
                total += (b.stop - b.start) * math.log(_HALF)
        return total


def _cosine(optimizer, n_steps):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(int(n_steps), 1))


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

