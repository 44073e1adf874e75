r"""Latent Dirichlet allocation with VIPS: online variational Bayes on privatised topic-word statistics.

The per-document (local) step is the e-step of Hoffman, Blei & Bach (2010), as in scikit-learn's
:class:`~sklearn.decomposition.LatentDirichletAllocation`, vectorised over documents: for document
:math:`d` with counts :math:`n_{dw}`,

.. math::

    \phi_{dwk} \propto \exp(E[\log\theta_{dk}] + E[\log\beta_{kw}]), \qquad
    \gamma_{dk} = \alpha + \sum_w n_{dw}\,\phi_{dwk},

iterated until the mean change of :math:`\gamma_d` falls below ``mean_change_tol``.  The expected
sufficient statistics are the topic-word counts :math:`\bar s_{kw} = \sum_d c_d\, n_{dw}\phi_{dwk}`,
where :math:`c_d = \min(1, L / n_d)` scales a document with more than :math:`L` =
``max_doc_length`` tokens down to :math:`L` tokens (a public, per-document transformation).

**Sensitivity.**  Since :math:`\sum_k \phi_{dwk} = 1`, one document contributes a non-negative
:math:`K \times V` matrix whose entries sum to :math:`c_d n_d \le L`, so its L1 norm, hence its
L2 norm, is at most :math:`L` (attained by a document of :math:`L` copies of one word assigned to
one topic).  Under add/remove one document the L2 sensitivity of :math:`\bar s` is exactly
:math:`L`.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import scipy.sparse as sp
from scipy.special import digamma, gammaln, logsumexp
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data

from .._config import fresh_noise
from .._torch import derive_seeds
from ..base import check_n_samples, fresh_fit
from .engine import ESSPiece, VBModel, _vips_constraints, _VIPSMixin

__all__ = ["LDAModel", "DPLatentDirichletAllocation"]

EPS = np.finfo(np.float64).eps
# weight of the (optional) token-count block in the release: its sensitivity is _TOKEN_WEIGHT * L
_TOKEN_WEIGHT = 0.1


def _dirichlet_expectation(a: np.ndarray) -> np.ndarray:
    r""":math:`E[\log x]` under :math:`\mathrm{Dir}(a)`, row-wise: :math:`\psi(a) - \psi(\sum a)`."""
    return digamma(a) - digamma(a.sum(axis=1, keepdims=True))


def _ratio(X: sp.csr_matrix, exp_doc_topic: np.ndarray, exp_topic_word: np.ndarray) -> sp.csr_matrix:
    r"""CSR matrix with entries :math:`n_{dw} / \sum_k \exp E\log\theta_{dk} \exp E\log\beta_{kw}`."""
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    norm_phi = np.einsum("nk,kn->n", exp_doc_topic[rows], exp_topic_word[:, X.indices]) + EPS
    return sp.csr_matrix((X.data / norm_phi, X.indices, X.indptr), shape=X.shape)


def lda_e_step(X: sp.csr_matrix, exp_topic_word: np.ndarray, doc_topic_prior: float, max_iter: int,
               tol: float, rng: np.random.Generator | None = None, row_scale: np.ndarray | None = None,
               cal_sstats: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    r"""The LDA e-step for all documents at once.

    Returns the unnormalised document-topic parameters :math:`\gamma` (n_docs, K) and, when
    ``cal_sstats``, the topic-word statistics :math:`\sum_d c_d n_{dw}\phi_{dwk}` (K, V) with the
    per-document weights ``row_scale`` :math:`c_d`.  Each document stops updating once its own
    mean change is below ``tol`` (as in scikit-learn), so the result for a document does not
    depend on the other documents.  ``rng=None`` starts from :math:`\gamma = 1`, otherwise from
    Gamma(100, 0.01) draws.
    """
    n_docs = X.shape[0]
    n_topics = exp_topic_word.shape[0]
    if rng is not None:
        gamma = rng.gamma(100.0, 0.01, (n_docs, n_topics))
    else:
        gamma = np.ones((n_docs, n_topics))
    exp_doc_topic = np.exp(_dirichlet_expectation(gamma))
    active = np.arange(n_docs)
    for _ in range(max_iter):
        if active.size == 0:
            break
        sub = X if active.size == n_docs else X[active]
        et = exp_doc_topic[active]
        new = et * (_ratio(sub, et, exp_topic_word) @ exp_topic_word.T) + doc_topic_prior
        exp_doc_topic[active] = np.exp(_dirichlet_expectation(new))
        change = np.abs(new - gamma[active]).mean(axis=1)
        gamma[active] = new
        active = active[change >= tol]
    if not cal_sstats:
        return gamma, None
    W = _ratio(X, exp_doc_topic, exp_topic_word)
    if row_scale is not None:
        W = sp.csr_matrix(W.multiply(row_scale[:, None]))
    sstats = np.asarray(W.T @ exp_doc_topic).T * exp_topic_word
    return gamma, sstats


def lda_bound(X: sp.csr_matrix, gamma: np.ndarray, components: np.ndarray, doc_topic_prior: float,
              topic_word_prior: float) -> float:
    """Variational lower bound of the log-likelihood of ``X`` (scikit-learn's ``_approx_bound``)."""
    n_topics, n_words = components.shape
    e_log_theta = _dirichlet_expectation(gamma)
    e_log_beta = _dirichlet_expectation(components)
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    score = 0.0
    chunk = max(1, 2_000_000 // max(n_topics, 1))
    for start in range(0, X.nnz, chunk):
        stop = min(start + chunk, X.nnz)
        temp = e_log_theta[rows[start:stop]] + e_log_beta[:, X.indices[start:stop]].T
        score += float(X.data[start:stop] @ logsumexp(temp, axis=1))

    def _loglik(prior, distr, e_log, size):
        out = np.sum((prior - distr) * e_log)
        out += np.sum(gammaln(distr) - gammaln(prior))
        out += np.sum(gammaln(prior * size) - gammaln(np.sum(distr, axis=1)))
        return float(out)

    score += _loglik(doc_topic_prior, gamma, e_log_theta, n_topics)
    score += _loglik(topic_word_prior, components, e_log_beta, n_words)
    return score


class LDAModel(VBModel):
    r"""Latent Dirichlet allocation as a :class:`~skdpgen.bayes.VBModel` (for :class:`DPVariationalBayes`).

    Global parameters: the topic-word Dirichlet parameters :math:`\lambda` (K, V); prior
    :math:`\eta`; update :math:`\lambda \leftarrow (1-\rho)\lambda + \rho(\eta + c\,\tilde s)`.
    Released block ``"topic_word"`` (K*V entries, per-document L2 bound ``max_doc_length``), and,
    when ``estimate_doc_length``, ``"n_tokens"`` = 0.1 * (capped document length) (bound
    0.1 * ``max_doc_length``), whose noisy sum gives the mean document length for sampling.
    Post-processing: :math:`\lambda` is projected onto :math:`[\eta, \infty)` (the exact
    posterior parameter is never below the prior, since the statistics are non-negative).

    Parameters
    ----------
    n_components : int, default=10
    doc_topic_prior, topic_word_prior : float or None, default=None
        :math:`\alpha` and :math:`\eta`; ``None`` means ``1 / n_components``.
    max_doc_length : float, default=200
        Public cap :math:`L` on tokens per document (longer documents are scaled down).
    max_doc_update_iter : int, default=100
    mean_change_tol : float, default=1e-3
    estimate_doc_length : bool, default=False
    """

    positive_only = True
    accept_sparse = True
    # non-private fits draw lambda's initialisation and the e-step's gamma from scikit-learn's stream
    sklearn_random_stream = True

    def __init__(self, n_components=10, *, doc_topic_prior=None, topic_word_prior=None, max_doc_length=200.0,
                 max_doc_update_iter=100, mean_change_tol=1e-3, estimate_doc_length=False, denoise_threshold=1.0):
        self.n_components = n_components
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.max_doc_length = max_doc_length
        self.max_doc_update_iter = max_doc_update_iter
        self.mean_change_tol = mean_change_tol
        self.estimate_doc_length = estimate_doc_length
        self.denoise_threshold = denoise_threshold

    @property
    def needs_n_samples(self) -> bool:
        return bool(self.estimate_doc_length)

    @property
    def alpha(self) -> float:
        return 1.0 / self.n_components if self.doc_topic_prior is None else float(self.doc_topic_prior)

    @property
    def eta(self) -> float:
        return 1.0 / self.n_components if self.topic_word_prior is None else float(self.topic_word_prior)

    def prepare(self, X, y=None) -> tuple:
        X = sp.csr_matrix(X, dtype=np.float64)
        X.sum_duplicates()
        return (X,)

    def ess_pieces(self, n_features: int) -> list[ESSPiece]:
        L = float(self.max_doc_length)
        pieces = [ESSPiece("topic_word", int(self.n_components) * n_features, L)]
        if self.estimate_doc_length:
            pieces.append(ESSPiece("n_tokens", 1, _TOKEN_WEIGHT * L))
        return pieces

    def init_params(self, n_features: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        params = {"lambda": rng.gamma(100.0, 0.01, (int(self.n_components), n_features))}
        if self.estimate_doc_length:
            params["n_tokens"] = np.zeros(1)
        return params

    def doc_scale(self, X: sp.csr_matrix) -> np.ndarray:
        """:math:`c_d = \\min(1, L / n_d)`."""
        lengths = np.asarray(X.sum(axis=1)).ravel()
        return np.minimum(1.0, float(self.max_doc_length) / np.maximum(lengths, EPS))

    def local_step(self, data: tuple, state: dict, rng: np.random.Generator | None) -> dict[str, np.ndarray]:
        (X,) = data
        scale = self.doc_scale(X)
        _, sstats = lda_e_step(X, state["exp_dirichlet_component"], self.alpha, int(self.max_doc_update_iter),
                               float(self.mean_change_tol), rng=rng, row_scale=scale, cal_sstats=True)
        out = {"topic_word": sstats.ravel()}
        if self.estimate_doc_length:
            out["n_tokens"] = np.array([_TOKEN_WEIGHT * float(scale @ np.asarray(X.sum(axis=1)).ravel())])
        return out

    def natural_target(self, ess: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
        shape = (int(self.n_components), -1)
        out = {"lambda": self.eta + scale * ess["topic_word"].reshape(shape)}
        if self.estimate_doc_length:
            out["n_tokens"] = scale * ess["n_tokens"] / _TOKEN_WEIGHT
        return out

    def denoise(self, ess: dict[str, np.ndarray], noise_std: float) -> dict[str, np.ndarray]:
        tau = float(self.denoise_threshold) * noise_std
        return {**ess, "topic_word": np.maximum(ess["topic_word"] - tau, 0.0)}

    def project(self, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        lam = np.maximum(raw["lambda"], self.eta)
        out = {"lambda": lam, "exp_dirichlet_component": np.exp(_dirichlet_expectation(lam))}
        if "n_tokens" in raw:
            out["n_tokens"] = raw["n_tokens"]
        return out

    def score_data(self, data: tuple, state: dict) -> float:
        """Approximate log-likelihood (variational bound) of the documents: a TOTAL over them, not a mean.

        The score of :class:`DPVariationalBayes`, as scikit-learn's ``LatentDirichletAllocation.score``
        and :meth:`DPLatentDirichletAllocation.score`.
        """
        (X,) = data
        gamma, _ = lda_e_step(X, state["exp_dirichlet_component"], self.alpha, int(self.max_doc_update_iter),
                              float(self.mean_change_tol))
        return lda_bound(X, gamma, state["lambda"], self.alpha, self.eta)


class DPLatentDirichletAllocation(ClassNamePrefixFeaturesOutMixin, TransformerMixin, _VIPSMixin, BaseEstimator):
    r"""Differentially private latent Dirichlet allocation (VIPS; scikit-learn's interface).

    A drop-in for :class:`sklearn.decomposition.LatentDirichletAllocation` whose topics are
    learnt from privatised topic-word statistics (Park et al. 2020): each iteration runs the
    vectorised e-step of Hoffman et al. (2010) on every document (full batch) or on a Poisson
    minibatch (online), clips each document's contribution by capping it at ``max_doc_length``
    tokens, adds Gaussian noise to the :math:`K \times V` expected topic-word counts and updates
    :math:`\lambda` from the noisy counts only.

    **Neighbouring relation**: add/remove one document (a row of the document-term matrix).
    **Sensitivity**: a document scaled to at most :math:`L` = ``max_doc_length`` tokens adds a
    non-negative topic-word matrix of total mass :math:`\le L`, so the L2 sensitivity of the
    released statistics is :math:`L` (exact; L1 norm bounds L2 norm).  Documents longer than
    :math:`L` have their counts scaled by :math:`L/n_d` in the statistics (their own e-step uses
    all their words).  Full batch: ``max_iter`` Gaussian releases composing exactly to
    :math:`\mu(\varepsilon,\delta)`-GDP.  Online: Poisson sampling with rate :math:`q` and the
    subsampled-Gaussian accountant (privacy amplification by subsampling assumes Poisson
    batches).  The number of documents is used only through a DP count
    (``count_share`` of the budget) when it is needed: private online mode without ``sample_rate``, and
    the mean document length for :meth:`sample` when ``doc_length`` is not declared (then a
    0.1-weighted block of capped document lengths is released with the topic-word counts).

    **Non-private reference** (``epsilon=float("inf")``): no noise, and the fit follows
    scikit-learn's exactly.  Online mode walks fixed consecutive batches of ``batch_size``
    documents each pass (``gen_batches``, the last one smaller) like scikit-learn, with
    :math:`\rho_t = (\tau_0 + t)^{-\kappa}` counted per minibatch (from :math:`t = 1`) and the
    statistics scaled by (number of documents) / (batch size); the private online mode uses
    Poisson batches instead.  In both modes :math:`\lambda` is initialised, and the e-step's
    :math:`\gamma` drawn, from ``np.random.RandomState(random_state)`` in scikit-learn's order, so
    with an int ``random_state`` (and ``max_doc_length`` above the longest document)
    ``components_`` equal scikit-learn's to about 1e-9 relative (its Cython digamma).

    Everything after the fit (``transform``, ``perplexity``, ``score``, ``sample``) is
    post-processing of :math:`\lambda`; ``transform`` and ``score`` of course read the documents
    they are given.  Unlike scikit-learn, no training-set perplexity (``bound_``) is stored: it
    would be a non-private release.

    Parameters
    ----------
    n_components : int, default=10
        Number of topics :math:`K`.
    epsilon : float, default=1.0
        Budget of the whole fit; ``float("inf")`` gives non-private online/batch VB.
    delta : float, default=1e-5
    max_doc_length : float, default=200
        Public cap :math:`L` on the tokens per document; the sensitivity.  Pick a value near a
        high public percentile of document lengths: larger means more noise, smaller discards
        the tail of long documents.
    doc_topic_prior, topic_word_prior : float or None, default=None
        :math:`\alpha` and :math:`\eta`; ``None``: ``1 / n_components``.
    learning_method : {"batch", "online"}, default="batch"
    learning_decay, learning_offset : float, default=0.7, 10.0
    max_iter : int, default=10
        Iterations (batch) or passes (online).  Each full-batch iteration is a noisy release:
        under privacy 3-5 usually beat 10 (see ``benchmarks/RESULTS.md``).
    batch_size : int, default=128
        Expected Poisson minibatch size (online, ``sample_rate=None``); with ``epsilon=inf`` the
        fixed minibatch size, as in scikit-learn.
    sample_rate : float or None, default=None
        Public Poisson sampling rate (online); overrides ``batch_size``.
    mean_change_tol : float, default=1e-3
    max_doc_update_iter : int, default=100
    doc_length : float or None, default=None
        Public mean document length for :meth:`sample`; ``None``: estimated with DP.
    denoise_threshold : float, default=1.0
        Each noisy release of the topic-word statistics is soft-thresholded at this many noise
        standard deviations, :math:`\max(\tilde s - \tau\sigma, 0)`, before the update (free
        post-processing; helps the sparse topics of real vocabularies; 0 only clips at 0).
    count_share : float, default=0.02
        Budget share of the DP document count, when one is needed.
    accountant : {"prv", "rdp"}, default="prv"
    random_state : int, RandomState or None
        Seeds the initial topics and the e-step's starting point (``sample`` takes its own
        ``random_state``); the privacy mechanisms' randomness
        (noise, Poisson batches, noisy counts) is fresh OS entropy at
        every fit unless ``skdpgen.set_config(reproducible_noise=True)`` (tests only).
    ledger : PrivacyLedger or None
    verbose : int, default=0

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features)
        Variational topic-word parameters :math:`\lambda` (post-processed noisy statistics).
    exp_dirichlet_component_ : ndarray of shape (n_components, n_features)
        :math:`\exp E[\log\beta]`.
    doc_topic_prior_, topic_word_prior_ : float
    mean_doc_length_ : float
        Mean document length used by :meth:`sample` (declared or DP).
    n_iter_, n_steps_, sample_rate_, noise_std_, n_samples_estimate_ : see DPVariationalBayes
    n_features_in_ : int
    feature_names_in_ : ndarray
    privacy_report_ : dict

    See Also
    --------
    sklearn.decomposition.LatentDirichletAllocation : the non-private original.
    DPVariationalBayes : the engine, with :class:`~skdpgen.bayes.LDAModel`.

    References
    ----------
    Park, M., Foulds, J., Chaudhuri, K. and Welling, M. "Variational Bayes in Private Settings
    (VIPS)." JAIR 68, 2020.
    Hoffman, M., Blei, D. and Bach, F. "Online Learning for Latent Dirichlet Allocation." NIPS 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from skdpgen import DPLatentDirichletAllocation
    >>> X = np.random.default_rng(0).poisson(1.0, size=(200, 30))
    >>> lda = DPLatentDirichletAllocation(n_components=3, epsilon=1.0, max_doc_length=50,
    ...                                   random_state=0).fit(X)
    >>> lda.transform(X[:2]).shape
    (2, 3)
    >>> lda.sample(5, random_state=0).shape
    (5, 30)
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 0, None, closed="neither")],
        "max_doc_length": [Interval(Real, 0, None, closed="neither")],
        "doc_topic_prior": [None, Interval(Real, 0, 1, closed="right")],
        "topic_word_prior": [None, Interval(Real, 0, 1, closed="right")],
        "mean_change_tol": [Interval(Real, 0, None, closed="left")],
        "max_doc_update_iter": [Interval(Integral, 0, None, closed="left")],
        "doc_length": [None, Interval(Real, 0, None, closed="neither")],
        "denoise_threshold": [Interval(Real, 0, None, closed="left")],
        **_vips_constraints(),
    }

    def __init__(self, n_components=10, *, epsilon=1.0, delta=1e-5, max_doc_length=200.0, doc_topic_prior=None,
                 topic_word_prior=None, learning_method="batch", learning_decay=0.7, learning_offset=10.0,
                 max_iter=10, batch_size=128, sample_rate=None, mean_change_tol=1e-3, max_doc_update_iter=100,
                 doc_length=None, denoise_threshold=1.0, count_share=0.02, accountant="prv", random_state=None,
                 ledger=None, verbose=0):
        self.n_components = n_components
        self.epsilon = epsilon
        self.delta = delta
        self.max_doc_length = max_doc_length
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.learning_method = learning_method
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.sample_rate = sample_rate
        self.mean_change_tol = mean_change_tol
        self.max_doc_update_iter = max_doc_update_iter
        self.doc_length = doc_length
        self.denoise_threshold = denoise_threshold
        self.count_share = count_share
        self.accountant = accountant
        self.random_state = random_state
        self.ledger = ledger
        self.verbose = verbose

    def _model(self) -> LDAModel:
        return LDAModel(self.n_components, doc_topic_prior=self.doc_topic_prior,
                        topic_word_prior=self.topic_word_prior, max_doc_length=self.max_doc_length,
                        max_doc_update_iter=self.max_doc_update_iter, mean_change_tol=self.mean_change_tol,
                        estimate_doc_length=self.doc_length is None, denoise_threshold=self.denoise_threshold)

    def _check_X(self, X, reset: bool, whom: str) -> sp.csr_matrix:
        X = validate_data(self, X, reset=reset, accept_sparse="csr", dtype=np.float64)
        check_non_negative(X, whom)
        X = sp.csr_matrix(X)
        X.sum_duplicates()
        return X

    @fresh_fit
    def fit(self, X, y=None):
        """Learn the topics from the document-term matrix ``X`` (counts, dense or sparse); returns self."""
        self._validate_params()
        X = self._check_X(X, True, "DPLatentDirichletAllocation.fit")
        model = self._model()
        self._model_ = model
        raw, state, noisy = self._run_vips(model, model.prepare(X), X.shape[1])
        self.components_ = state["lambda"]
        self.exp_dirichlet_component_ = state["exp_dirichlet_component"]
        self.doc_topic_prior_ = model.alpha
        self.topic_word_prior_ = model.eta
        if self.doc_length is not None:
            self.mean_doc_length_ = float(self.doc_length)
        else:  # DP: (noisy capped token total) / (noisy document count), post-processing
            if self.learning_method == "online":
                # the running average of the token total starts at 0: divide by the weight it has put
                # on the data, 1 - prod_t (1 - rho_t) (otherwise 40% low after one pass)
                t = np.arange(1, self.n_steps_ + 1, dtype=float)
                rho = (float(self.learning_offset) + t) ** (-float(self.learning_decay))
                total = float(raw["n_tokens"][0]) / (1.0 - float(np.prod(1.0 - rho)))
            else:
                total = float(noisy["n_tokens"][0]) / _TOKEN_WEIGHT
            self.mean_doc_length_ = float(np.clip(total / self.n_samples_estimate_, 1.0, self.max_doc_length))
        return self

    def _unnormalized_transform(self, X: sp.csr_matrix) -> np.ndarray:
        gamma, _ = lda_e_step(X, self.exp_dirichlet_component_, self.doc_topic_prior_, int(self.max_doc_update_iter),
                              float(self.mean_change_tol))
        return gamma

    def transform(self, X, *, normalize=True):
        """Document-topic distribution of ``X`` (rows sum to one when ``normalize``)."""
        check_is_fitted(self)
        X = self._check_X(X, False, "DPLatentDirichletAllocation.transform")
        gamma = self._unnormalized_transform(X)
        if normalize:
            gamma /= gamma.sum(axis=1, keepdims=True)
        return gamma

    def fit_transform(self, X, y=None, *, normalize=True):
        """Fit, then transform ``X``."""
        return self.fit(X, y).transform(X, normalize=normalize)

    def score(self, X, y=None) -> float:
        """Approximate log-likelihood (variational bound) of ``X``, as scikit-learn's LDA."""
        check_is_fitted(self)
        X = self._check_X(X, False, "DPLatentDirichletAllocation.score")
        return lda_bound(X, self._unnormalized_transform(X), self.components_, self.doc_topic_prior_,
                         self.topic_word_prior_)

    def perplexity(self, X, sub_sampling=False) -> float:
        """``exp(-bound / n_words)``: approximate perplexity of ``X`` (``sub_sampling`` is ignored)."""
        check_is_fitted(self)
        X = self._check_X(X, False, "DPLatentDirichletAllocation.perplexity")
        bound = lda_bound(X, self._unnormalized_transform(X), self.components_, self.doc_topic_prior_,
                          self.topic_word_prior_)
        return float(np.exp(-bound / max(X.sum(), EPS)))

    def sample(self, n_samples=1, random_state=None, *, doc_length=None):
        r"""Draw synthetic bag-of-words documents from the fitted model (post-processing: free).

        For each document :math:`\theta \sim \mathrm{Dir}(\alpha)`, length
        :math:`n \sim 1 + \mathrm{Poisson}(\bar n - 1)` with :math:`\bar n` = ``doc_length`` or
        ``mean_doc_length_``, and :math:`n` words from :math:`\mathrm{Mult}(\theta^\top \bar\beta)`,
        :math:`\bar\beta_k = \lambda_k / \sum_w \lambda_{kw}` (the posterior mean topics).
        ``random_state`` seeds this draw; ``None``: fresh documents at every call.

        Returns
        -------
        scipy.sparse.csr_matrix of shape (n_samples, n_features), int64 counts
        """
        check_is_fitted(self)
        n = check_n_samples(n_samples)
        rng = np.random.default_rng(derive_seeds(random_state, 1)[0])
        mean_len = float(self.mean_doc_length_ if doc_length is None else doc_length)
        beta = self.components_ / self.components_.sum(axis=1, keepdims=True)
        blocks = []
        for start in range(0, n, 1024):
            m = min(1024, n - start)
            theta = rng.dirichlet(np.full(self.components_.shape[0], self.doc_topic_prior_), size=m)
            theta = np.nan_to_num(theta, nan=1.0 / len(beta))
            p = theta @ beta
            p = np.clip(p, 0.0, None)
            p /= p.sum(axis=1, keepdims=True)
            lengths = 1 + rng.poisson(max(mean_len - 1.0, 0.0), size=m)
            blocks.append(sp.csr_matrix(rng.multinomial(lengths, p).astype(np.int64)))
        return sp.vstack(blocks, format="csr")

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64"]
        tags.non_deterministic = fresh_noise(self.epsilon)  # fresh privacy noise at every fit
        return tags
