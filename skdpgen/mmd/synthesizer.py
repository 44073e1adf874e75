"""DPMMDSynthesizer: privatise a kernel mean embedding once, then train a generator for free."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.metaestimators import available_if
from sklearn.utils.validation import check_is_fitted

from .._config import privacy_seed
from .._torch import derive_seeds, torch_generator, with_torch_threads
from ..base import BaseSynthesizer, _planned_schema_releases, check_n_samples, fresh_fit, plan_gdp_budget
from ..encoding import cast_labels, public_dtypes, public_label_dtype
from ..privacy import PrivacyRelease, gaussian_mechanism
from ..schema import Schema
from .features import RandomFourierFeatures, make_feature_map
from .generator import TabularGenerator

__all__ = ["DPMMDSynthesizer"]

# The class counts enter the released vector multiplied by this weight: sensitivity
# sqrt(1 + w^2), noise on the counts noise_std / w.
_COUNT_WEIGHT = 0.5

# The exact (not yet private) statistics of a fit or a partial_fit stream: they must not outlive a failure.
_STREAM_STATE = ("_sums", "_counts", "_stream_has_y")
# sample() decodes this many rows at a time (bounded memory for any n_samples)
_DECODE_ROWS = 1 << 15
# Everything a fit derives from (or fixes for) the rows, cleared before a new fit and after one that fails
# before its releases are recorded (an estimated schema is a release too).
_FIT_STATE = ("generator_", "embedding_", "schema_", "encoder_", "dtypes_", "classes_", "target_name_",
              "_target_spec", "_y_dtype", "feature_map_", "class_prior_", "n_samples_estimate_", "privacy_report_",
              "loss_curve_", "_releases")


def _declared_schema(estimator) -> bool:
    """``partial_fit`` is available only when a schema is declared (for ``available_if``)."""
    if estimator.schema is None:
        raise AttributeError("partial_fit needs a declared schema (schema=...): a schema estimated with DP "
                             "needs all rows at once; use fit instead")
    return True


class DPMMDSynthesizer(BaseSynthesizer):
    r"""Differentially private synthetic data by kernel mean-embedding matching (DP-MERF family).

    The private rows are touched once: each row's model-space vector :math:`x_i` (see
    :class:`~skdpgen.encoding.TabularEncoder`) is mapped to features :math:`\phi(x_i)` with
    :math:`\|\phi(x_i)\|_2 \le 1`, and the class-conditional sums
    :math:`S_k = \sum_{i: y_i = k} \phi(x_i)` together with the class counts :math:`n_k` are
    released once with Gaussian noise,

    .. math::

        \tilde v = [S_1, \dots, S_K,\ w\, n_1, \dots, w\, n_K] + N(0, \sigma^2 I),
        \qquad \Delta_2 = \sqrt{1 + w^2},\quad \sigma = \Delta_2 / \mu_{model}.

    A generator :math:`G(z, y)` is then trained for as long as wanted (post-processing, free)
    to minimise :math:`\sum_k \| \tilde S_k / \tilde n - \frac1m \sum_{j: y_j=k} \phi(G(z_j, k))\|^2`
    with :math:`y_j` drawn from the noisy class proportions.

    **Neighbouring relation**: add/remove one row (with its label).  The whole fit, including
    the schema estimate when no schema is declared, is :math:`(\varepsilon, \delta)`-DP; every
    release is listed in ``privacy_report_`` and in ``ledger``.

    Parameters
    ----------
    features : {"hermite", "rff", "ntk", "perceptual"}, default="hermite"
        The feature map: Hermite polynomial features of a sum kernel over columns (DP-HP),
        random Fourier features of a Gaussian kernel on the whole row (DP-MERF), normalised
        neural-tangent features of a random network (DP-NTK), or features of a
        ``feature_extractor`` fitted on public data (DP-MEPF).
    n_features : int, default=None
        Number of random Fourier features (``"rff"``; default 2000).
    length_scale : float, default=None
        Kernel length scale on the model space (continuous columns are scaled to [0, 1] by
        their public bounds).  Default: 0.2 per coordinate for ``"hermite"`` (on [-1, 1]),
        :math:`0.5\sqrt{G}` for ``"rff"`` (G column groups).  Never read from the data.
    hermite_order : int, default=20
        Order C of the Hermite expansion.  The truncated sum is itself a positive-definite kernel
        (the one the generator matches), but it approximates Mehler's closed form only when
        :math:`\rho^{C+1}` is small: at the default ``length_scale`` (0.2, :math:`\rho = 0.96`)
        and C = 20 it differs from it by up to 20% (C = 100: 0.5%; C = 200: 6e-5), as in DP-HP,
        which uses small orders (fewer features: less noise in total, at the same sensitivity).
    ntk_width : int, default=64
        Hidden width of the random network of ``"ntk"``.
    feature_extractor : torch.nn.Module, callable or fitted PCA, IncrementalPCA or TruncatedSVD, default=None
        For ``features="perceptual"``: maps the model space (the ``encoder_``'s output columns,
        in order) to features; must be fitted on PUBLIC data only.  A module is copied (the
        caller's is not changed); other scikit-learn transformers are refused (wrap them in a
        module), see :class:`~skdpgen.mmd.features.PerceptualFeatures`.
    perceptual_moments : {1, 2}, default=1
        Also match the second moments of the perceptual features.
    latent_dim : int, default=32
    hidden : tuple of int, default=(256, 256)
        Hidden widths of the generator.
    n_iter : int, default=1000
        Generator training steps (free: they only read the released embedding).
    batch_size : int, default=1024
        Generated rows per step.
    learning_rate : float, default=2e-3
    chunk_size : int, default=8192
        Rows per chunk when the embedding is accumulated (memory use).
    epsilon, delta, schema, schema_share, random_state, device, verbose, ledger, n_threads
        See :class:`~skdpgen.base.BaseSynthesizer`.

    Attributes
    ----------
    encoder_ : TabularEncoder
    schema_ : Schema
        The public schema used (declared or DP-estimated).
    classes_ : ndarray or None
        Class labels of a class-conditional fit.
    class_prior_ : ndarray
        Noisy class proportions (released).
    embedding_ : torch.Tensor of shape (n_classes, n_features)
        The released (noisy) mean embedding :math:`\tilde S_k / \tilde n`.
    generator_ : TabularGenerator
    privacy_report_ : dict
        ``epsilon``, ``delta``, ``neighbouring``, ``releases`` and more.
    loss_curve_ : list of float
    n_features_in_, feature_names_in_

    Notes
    -----
    Larger-than-memory tables: call :meth:`partial_fit` on chunks (a declared schema is
    required, including the target's categories when ``y`` is given), then :meth:`finalize`,
    which privatises the accumulated sums once and trains the generator.  The sums are exact
    until :meth:`finalize` and are deleted there, and also when :meth:`fit` or :meth:`finalize`
    fails (e.g. the ``ledger`` refuses the release): the next :meth:`partial_fit` starts a new
    stream.  A chunk that :meth:`partial_fit` rejects is not added (the first chunk's failure
    discards the stream).

    ``score(X)`` returns :math:`-\mathrm{MMD}^2` between ``X`` and synthetic rows under a FIXED
    evaluation kernel (random Fourier features, independent of this estimator's
    hyper-parameters), so higher is better and scores of different settings are comparable:
    use it with held-out rows in model selection.

    References
    ----------
    Harder, Adamczewski & Park. "DP-MERF." AISTATS 2021.
    Vinaroz et al. "Hermite Polynomial Features for Private Data Generation." ICML 2022.
    Yang et al. "Differentially Private Neural Tangent Kernels." 2023.
    Harder et al. "Pre-trained Perceptual Features Improve DP Image Generation." TMLR 2023.

    Examples
    --------
    >>> from skdpgen import DPMMDSynthesizer
    >>> from skdpgen.datasets import load_breast_cancer_table
    >>> X, y, schema = load_breast_cancer_table()
    >>> syn = DPMMDSynthesizer(epsilon=1.0, schema=schema, n_iter=200, random_state=0).fit(X, y)
    >>> X_fake, y_fake = syn.sample(100, return_y=True)
    >>> X_fake.shape
    (100, 30)
    """

    _parameter_constraints: dict = {
        **BaseSynthesizer._parameter_constraints,
        "features": [StrOptions({"hermite", "rff", "ntk", "perceptual"})],
        "n_features": [None, Interval(Integral, 2, None, closed="left")],
        "length_scale": [None, Interval(Real, 0, None, closed="neither")],
        "hermite_order": [Interval(Integral, 0, None, closed="left")],
        "ntk_width": [Interval(Integral, 1, None, closed="left")],
        "feature_extractor": [None, object],
        "perceptual_moments": [Interval(Integral, 1, 2, closed="both")],
        "latent_dim": [Interval(Integral, 1, None, closed="left")],
        "hidden": [tuple, list],
        "n_iter": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "chunk_size": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, *, features="hermite", n_features=None, length_scale=None, hermite_order=20,
                 ntk_width=64, feature_extractor=None, perceptual_moments=1, latent_dim=32,
                 hidden=(256, 256), n_iter=1000, batch_size=1024, learning_rate=2e-3, chunk_size=8192,
                 epsilon=1.0, delta=1e-5, schema=None, schema_share=0.1, random_state=None,
                 device="auto", verbose=0, ledger=None, n_threads=1):
        super().__init__(epsilon=epsilon, delta=delta, schema=schema, schema_share=schema_share,
                         random_state=random_state, device=device, verbose=verbose, ledger=ledger,
                         n_threads=n_threads)
        self.features = features
        self.n_features = n_features
        self.length_scale = length_scale
        self.hermite_order = hermite_order
        self.ntk_width = ntk_width
        self.feature_extractor = feature_extractor
        self.perceptual_moments = perceptual_moments
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.n_iter = n_iter
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.chunk_size = chunk_size

    # ------------------------------------------------------------------ fitting
    @fresh_fit
    @with_torch_threads
    def fit(self, X, y=None):
        """Fit on the whole table ``X`` (and optional class labels ``y``); returns self."""
        self._setup_fit()
        self._clear_fit()
        try:
            Xf = self._check_X(X, reset=True)
            ys = self._check_y(y, len(Xf))
            owner = self._owner()
            # the whole plan is reserved before the schema's noise is drawn (refused: nothing drawn)
            resolved = self._resolve_schema(Xf, ys, owner, plan=self._plan)
            feature_schema, target_spec, target_name, budget, schema_releases = resolved
            self._begin(feature_schema, target_spec, target_name, Xf, ys)
            self._accumulate(Xf, ys)
            return self._finish(budget, schema_releases)
        except BaseException:
            self._settle_drawn()  # a failure after the schema's noise records that release
            self._discard(_STREAM_STATE)
            raise

    @available_if(_declared_schema)
    @with_torch_threads
    def partial_fit(self, X, y=None):
        """Add the rows of ``X`` to the exact (not yet private) sums; call :meth:`finalize` at the end.

        Requires a declared ``schema`` (and the target's categories in it when ``y`` is given):
        the feature map and encoder must be fixed before the first chunk.
        """
        if not hasattr(self, "_sums"):
            self._setup_fit()
            self._clear_fit()
            try:
                Xf = self._check_X(X, reset=True)
                ys = self._check_y(y, len(Xf))
                feature_schema, target_spec, target_name, _, releases = self._resolve_schema_declared(Xf, ys)
                self._begin(feature_schema, target_spec, target_name, Xf, ys)
                self._stream_has_y = ys is not None
                self._accumulate(Xf, ys)
            except BaseException:
                self._discard(_STREAM_STATE)  # a rejected first chunk starts no stream
                raise
            return self
        Xf = self._check_X(X, reset=False)
        ys = self._check_y(y, len(Xf))
        if (ys is not None) != self._stream_has_y:
            raise ValueError("give y with every chunk or with none")
        self._accumulate(Xf, ys)  # all or nothing: a rejected chunk leaves the sums as they were
        return self

    @with_torch_threads
    def finalize(self):
        """Privatise the sums accumulated by :meth:`partial_fit` (one release) and train the generator."""
        if not hasattr(self, "_sums"):
            raise ValueError("nothing to finalize: call partial_fit first")
        budget = plan_gdp_budget(float(self.epsilon), float(self.delta), float(self.schema_share),
                                 need_schema=False, need_threshold=False)
        return self._finish(budget, [])

    # ------------------------------------------------------------------ steps
    def _owner(self) -> str:
        return f"{type(self).__name__}#{id(self):x}"

    def _clear_fit(self) -> None:
        self._discard(_STREAM_STATE + _FIT_STATE)

    def _discard(self, names: tuple[str, ...]) -> None:
        for name in names:
            if hasattr(self, name):
                delattr(self, name)

    def _resolve_schema_declared(self, X, y):
        declared = Schema.coerce(self.schema)
        if y is not None:
            name = self._target_name(y, declared)
            if name not in declared.columns:
                raise ValueError("partial_fit with y needs the target's categories in the schema "
                                 f"(a column {name!r} or '__target__')")
        return self._resolve_schema(X, y, self._owner())

    def _begin(self, feature_schema, target_spec, target_name, X: pd.DataFrame, y: pd.Series | None) -> None:
        self.schema_ = feature_schema
        self.encoder_ = self._fit_encoder(feature_schema, X)
        self.dtypes_ = public_dtypes(X.dtypes, feature_schema)
        if target_spec is not None:
            self.classes_ = np.asarray(list(target_spec.categories), dtype=object)
            self.target_name_ = target_name
            self._target_spec = target_spec
            self._y_dtype = public_label_dtype(y.dtype, self.classes_)
        else:
            self.classes_ = None
            self.target_name_ = None
        n_classes = 1 if self.classes_ is None else len(self.classes_)
        self.feature_map_ = make_feature_map(
            self.features, blocks=self.encoder_.blocks_, n_inputs=self.encoder_.n_outputs_,
            seed=self._seeds[1], device=self.device_, n_features=self.n_features,
            length_scale=self.length_scale, hermite_order=self.hermite_order, ntk_width=self.ntk_width,
            feature_extractor=self.feature_extractor, perceptual_moments=self.perceptual_moments,
            feature_names=self.encoder_.get_feature_names_out())
        dim = self.feature_map_.n_features
        self._sums = torch.zeros(n_classes, dim, dtype=torch.float64, device=self.device_)
        self._counts = torch.zeros(n_classes, dtype=torch.float64, device=self.device_)

    def _class_index(self, y: pd.Series | None, n: int) -> np.ndarray:
        if y is None:
            if self.classes_ is not None:
                raise ValueError("this synthesizer was started with y; give y with every chunk")
            return np.zeros(n, dtype=np.int64)
        if self.classes_ is None:
            raise ValueError("y was given but the synthesizer was started without y")
        lookup = {c: i for i, c in enumerate(self.classes_.tolist())}
        idx = np.fromiter((lookup.get(_py(v), -1) for v in y.tolist()), dtype=np.int64, count=len(y))
        unknown = idx < 0
        if unknown.any():
            if getattr(self._target_spec, "unknown", "error") == "other":
                warnings.warn("some rows have labels whose class was not released by the "  # no count: private
                              "DP class estimate (rare classes); they are left out of the embedding. "
                              "Declare the target's categories in the schema to keep them.", UserWarning,
                              stacklevel=3)
            else:  # no values: they are private; their types often explain the mismatch ("1" vs 1)
                got = sorted({type(v).__name__ for v in y[unknown].tolist()})
                declared = sorted({type(c).__name__ for c in self.classes_.tolist()})
                raise ValueError(f"y has labels not declared in the schema (values of type {', '.join(got)}; the "
                                 f"declared classes are of type {', '.join(declared)})")
        return idx

    def _accumulate(self, X: pd.DataFrame, y: pd.Series | None) -> None:
        """Add the rows to the exact sums; all or nothing (a failing chunk adds none of its rows)."""
        cls = self._class_index(y, len(X))
        keep = cls >= 0
        sums, counts = torch.zeros_like(self._sums), torch.zeros_like(self._counts)
        for start in range(0, len(X), self.chunk_size):
            stop = min(start + self.chunk_size, len(X))
            sel = keep[start:stop]
            if not sel.any():
                continue
            Z = self.encoder_.to_tensor(X.iloc[start:stop][sel], device=self.device_)
            idx = torch.as_tensor(cls[start:stop][sel], device=self.device_)
            with torch.no_grad():
                phi = self.feature_map_(Z).to(torch.float64)
            sums.index_add_(0, idx, phi)
            counts += torch.bincount(idx, minlength=counts.numel()).to(torch.float64)
        self._sums += sums
        self._counts += counts

    def _embedding_release(self, budget) -> PrivacyRelease:
        sensitivity = math.sqrt(1.0 + _COUNT_WEIGHT**2)
        noise_std = 0.0 if math.isinf(budget.model_mu) else sensitivity / budget.model_mu
        return self._model_release("DPMMDSynthesizer.embedding", budget, sensitivity, noise_std, self._owner())

    def _plan(self, budget, need_threshold: bool) -> list[PrivacyRelease]:
        """What :meth:`fit` will release: the schema estimate (if any) and the embedding."""
        schema = [self._restate(r, budget) for r in _planned_schema_releases(budget, self._owner())]
        return [*schema, self._embedding_release(budget)]

    def _finish(self, budget, schema_releases):
        release = self._embedding_release(budget)
        noise_std = release.noise_std
        try:
            if getattr(self, "_reservation", None) is not None:  # fit: reserved before the schema estimate
                self._settle_plan([*schema_releases, release])
            else:  # finalize of partial_fit: checked and recorded here, before any noise is drawn
                self._commit_releases([*schema_releases, release])
            raw = torch.cat([self._sums.flatten(), _COUNT_WEIGHT * self._counts]).cpu()
        finally:  # the exact sums never outlive this call, even when the ledger refuses the release
            self._discard(_STREAM_STATE)
        noisy = gaussian_mechanism(raw, noise_std, torch_generator(privacy_seed(self._seeds[2], noise_std > 0)))
        n_classes = 1 if self.classes_ is None else len(self.classes_)
        sums = noisy[:-n_classes].reshape(n_classes, -1)
        counts = noisy[-n_classes:] / _COUNT_WEIGHT
        pos = counts.clamp_min(0.0)
        total = float(pos.sum())
        self.class_prior_ = (pos / total).numpy() if total > 0 else np.full(n_classes, 1.0 / n_classes)
        self.n_samples_estimate_ = max(float(counts.sum()), 1.0)
        self._check_delta(self.n_samples_estimate_)
        self.embedding_ = (sums / self.n_samples_estimate_).to(device=self.device_, dtype=torch.float32)
        self._train_generator()
        self.privacy_report_ = self._make_report(budget)
        return self

    def _train_generator(self) -> None:
        gen = torch_generator(self._seeds[3], self.device_)
        n_classes = self.embedding_.shape[0]
        self.generator_ = TabularGenerator(self.encoder_.blocks_, self.encoder_.n_outputs_, n_classes,
                                           self.latent_dim, tuple(self.hidden), gen, self.device_)
        y_idx = torch.as_tensor(_stratified_labels(self.class_prior_, self.batch_size), device=self.device_)
        onehot = torch.nn.functional.one_hot(y_idx, n_classes).float()
        weights = onehot.T / self.batch_size  # a dense matmul is ~3x faster than index_add_ with autograd
        opt = torch.optim.Adam(self.generator_.parameters(), lr=self.learning_rate)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.n_iter, 1))
        self.loss_curve_ = []
        steps = range(self.n_iter)
        if self.verbose:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="DPMMD generator")
        self.generator_.train()
        for _ in steps:
            z = torch.randn(self.batch_size, self.latent_dim, generator=gen, device=self.device_)
            phi = self.feature_map_(self.generator_(z, onehot, gen))
            emb = weights @ phi  # (1/m) sum_j onehot(y_j) phi(G(z_j, y_j))^T
            loss = (self.embedding_ - emb).pow(2).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            self.loss_curve_.append(float(loss.detach()))
        self.generator_.eval()

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "generator_")

    # ------------------------------------------------------------------ using the model
    def _generate_chunks(self, n: int, rng_seed: int):
        """``(Z, class indices)`` of ``n`` generated rows, ``chunk_size`` rows at a time (one generator stream)."""
        gen = torch_generator(rng_seed, self.device_)
        n_classes = self.embedding_.shape[0]
        y_idx = torch.multinomial(torch.as_tensor(self.class_prior_, dtype=torch.float64), n,
                                  replacement=True, generator=torch_generator(rng_seed + 1)).numpy()
        with torch.no_grad():
            for start in range(0, n, self.chunk_size):
                idx = torch.as_tensor(y_idx[start:start + self.chunk_size], device=self.device_)
                onehot = torch.nn.functional.one_hot(idx, n_classes).float()
                z = torch.randn(len(idx), self.latent_dim, generator=gen, device=self.device_)
                yield self.generator_(z, onehot, gen).cpu().numpy().astype(np.float64), y_idx[start:start + len(idx)]

    def _generate(self, n: int, rng_seed: int):
        chunks = list(self._generate_chunks(n, rng_seed))
        return np.concatenate([z for z, _ in chunks]), np.concatenate([y for _, y in chunks])

    @with_torch_threads
    def sample(self, n_samples: int = 1, random_state=None, return_y: bool = False):
        """Draw ``n_samples`` synthetic rows (post-processing: no privacy cost).

        Returns a DataFrame with the fitted columns, order and dtypes (an ndarray if fit saw
        one); with ``return_y=True`` after a class-conditional fit, ``(X, y)``: ``y`` has the fitted
        labels' dtype (a categorical one with the released classes as its categories).
        ``random_state`` seeds this draw; ``None``: fresh rows at every call (the constructor's
        ``random_state`` is not used).
        """
        check_is_fitted(self)
        n = check_n_samples(n_samples)
        if return_y and self.classes_ is None:
            raise ValueError("return_y=True needs a class-conditional fit (fit with y)")
        seed = derive_seeds(random_state, 1)[0] % (2**62)
        # decoded block by block: the model-space rows (one-hot blocks, float64) of a large sample
        # would take far more memory than the decoded table
        frames, y_parts, pending = [], [], []
        for Z, y_chunk in self._generate_chunks(n, seed):
            pending.append(Z)
            y_parts.append(y_chunk)
            if sum(len(z) for z in pending) >= _DECODE_ROWS:
                frames.append(self.encoder_.inverse_transform(np.concatenate(pending)))
                pending = []
        if pending:
            frames.append(self.encoder_.inverse_transform(np.concatenate(pending)))
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        y_idx = np.concatenate(y_parts)
        X_out = self._to_output(frame)
        if not return_y:
            return X_out
        return X_out, cast_labels(self.classes_, np.asarray(y_idx), getattr(self, "_y_dtype", None),
                                   self.target_name_, as_series=self._input_kind == "pandas")

    @with_torch_threads
    def score(self, X, y=None) -> float:
        r"""Negative squared MMD between ``X`` and synthetic rows under a fixed evaluation kernel.

        The kernel is a Gaussian kernel on the model space (random Fourier features, 1000
        features, seed 0, length scale :math:`0.5\sqrt{G}`), the same whatever this estimator's
        hyper-parameters, so the score ranks settings fairly (higher is better, 0 is a perfect
        match).  The synthetic sample (``max(len(X), 2000)`` rows) is drawn with a seed fixed at
        fit time (from ``random_state``): the score of a fitted estimator is deterministic, even with
        ``random_state=None`` or a ``RandomState`` instance.
        """
        check_is_fitted(self)
        Xf = self._check_X(X, reset=False)
        ys = self._check_y(y, len(Xf)) if self.classes_ is not None else None
        Z_real = self.encoder_.transform(Xf)
        seed = self._seeds[4] % (2**62)  # drawn at fit: re-deriving would consume a RandomState
        m = max(len(Xf), 2000)
        Z_fake, y_fake = self._generate(m, seed)
        if ys is not None:
            idx = self._class_index(ys, len(ys))
            keep = idx >= 0
            Z_real = np.hstack([Z_real[keep], np.eye(len(self.classes_))[idx[keep]]])
            Z_fake = np.hstack([Z_fake, np.eye(len(self.classes_))[y_fake]])
        n_groups = len(self.encoder_.blocks_) + (ys is not None)
        fmap = RandomFourierFeatures(Z_real.shape[1], 1000, 0.5 * math.sqrt(n_groups), seed=0,
                                     dtype=torch.float64)
        diff = fmap(torch.as_tensor(Z_real)).mean(0) - fmap(torch.as_tensor(Z_fake)).mean(0)
        return -float(diff.pow(2).sum())


def _stratified_labels(prior: np.ndarray, m: int) -> np.ndarray:
    """``m`` labels with class counts as close to ``m * prior`` as possible (largest remainders)."""
    raw = np.asarray(prior, dtype=float) * m
    counts = np.floor(raw).astype(int)
    rest = m - counts.sum()
    if rest > 0:
        counts[np.argsort(-(raw - counts), kind="stable")[:rest]] += 1
    return np.repeat(np.arange(len(prior)), counts)


def _py(value):
    return value.item() if isinstance(value, np.generic) else value
