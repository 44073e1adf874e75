"""DPBayesianGaussianMixture (experimental): non-private VB, sensitivity, private recovery on many rows."""

from __future__ import annotations

import numpy as np
import pytest

from skdpgen.bayes import DPBayesianGaussianMixture, GaussianMixtureModel

INF = float("inf")
CENTERS = np.array([[-0.4, -0.3, 0.0], [0.4, 0.0, 0.2], [0.0, 0.4, -0.3]])


def _blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    return CENTERS[rng.integers(0, 3, n)] + rng.normal(0, 0.07, (n, 3))


def _sorted_means(gmm):
    return gmm.means_[np.argsort(gmm.means_[:, 0])]


def test_non_private_vb_recovers_clusters():
    X = _blobs(3000)
    gmm = DPBayesianGaussianMixture(n_components=3, epsilon=INF, max_iter=20, random_state=0).fit(X)
    np.testing.assert_allclose(_sorted_means(gmm), CENTERS[np.argsort(CENTERS[:, 0])], atol=0.02)
    np.testing.assert_allclose(gmm.weights_, 1 / 3, atol=0.05)
    for cov in gmm.covariances_:
        np.testing.assert_allclose(np.sqrt(np.diag(cov)), 0.07, rtol=0.15)
    assert gmm.predict(X[:5]).shape == (5,) and np.allclose(gmm.predict_proba(X[:5]).sum(1), 1)
    S = gmm.sample(500, random_state=0)
    assert S.shape == (500, 3) and abs(gmm.score(S) - gmm.score(X)) < 0.5


def test_private_recovers_clusters_on_many_rows():
    X = _blobs(100_000, seed=1)
    gmm = DPBayesianGaussianMixture(n_components=3, epsilon=1.0, random_state=0).fit(X)
    np.testing.assert_allclose(_sorted_means(gmm), CENTERS[np.argsort(CENTERS[:, 0])], atol=0.05)
    assert gmm.privacy_report_["epsilon"] == pytest.approx(1.0)
    assert gmm.privacy_report_["sensitivity"]["ess"] == pytest.approx(np.sqrt(3))
    for cov in gmm.covariances_:
        assert np.linalg.eigvalsh(cov).min() > 0


def test_per_row_statistics_within_bounds():
    rng = np.random.default_rng(0)
    model = GaussianMixtureModel(4, norm_bound=2.0)
    (X,) = model.prepare(rng.normal(size=(50, 3)) * 4)
    state = model.project(model.init_params(3, rng))
    bounds = {p.name: p.bound for p in model.ess_pieces(3)}
    assert bounds == {"counts": 1.0, "first": 2.0, "second": 4.0}
    for i in range(50):
        ess = model.local_step((X[i:i + 1],), state, None)
        for name, bound in bounds.items():
            assert np.linalg.norm(ess[name]) <= bound * (1 + 1e-12)


@pytest.mark.parametrize("nu0", [0.5, 4.0])
def test_degrees_of_freedom_prior_below_dimension_raises_clear_error(nu0):
    # the Wishart prior needs nu0 > d - 1; with d = 5, nu0 = 4.0 used to crash with LinAlgError
    X = np.random.default_rng(0).normal(0, 0.1, (200, 5))
    gmm = DPBayesianGaussianMixture(n_components=2, epsilon=INF, degrees_of_freedom_prior=nu0, random_state=0)
    with pytest.raises(ValueError, match=r"degrees_of_freedom_prior must be greater than n_features - 1 = 4"):
        gmm.fit(X)
    DPBayesianGaussianMixture(n_components=2, epsilon=INF, degrees_of_freedom_prior=4.5, max_iter=2,
                              random_state=0).fit(X)
