"""The VIPS engine with a user-written model, and its privacy plan."""

from __future__ import annotations

import math

import numpy as np
import pytest

from skdpgen import DPVariationalBayes
from skdpgen.bayes import ESSPiece, VBModel, plan_vips_budget
from skdpgen.bayes.logistic import clip_rows
from skdpgen.privacy import PrivacyLedger, compose_gdp, gdp_epsilon, gdp_mu

INF = float("inf")


class GaussianMeanModel(VBModel):
    """x_i ~ N(theta, I), theta ~ N(0, I / prior_precision): a user's conjugate model in a few lines."""

    def __init__(self, prior_precision=1.0):
        self.prior_precision = prior_precision

    def prepare(self, X, y=None):
        return (clip_rows(X, 1.0),)

    def ess_pieces(self, n_features):
        return [ESSPiece("sum", n_features, 1.0, static=True), ESSPiece("count", 1, 1.0, static=True)]

    def init_params(self, n_features, rng):
        return {"precision": np.array([self.prior_precision]), "shift": np.zeros(n_features)}

    def local_step(self, data, state, rng):
        (X,) = data
        return {"sum": X.sum(axis=0), "count": np.array([float(len(X))])}

    def natural_target(self, ess, scale):
        return {"precision": self.prior_precision + scale * np.maximum(ess["count"], 0.0), "shift": scale * ess["sum"]}

    def project(self, raw):
        return {**raw, "mean": raw["shift"] / raw["precision"]}


def _data(n=5000, seed=0):
    return np.random.default_rng(seed).normal(loc=[0.3, -0.2], scale=0.2, size=(n, 2))


def test_user_model_exact_without_noise():
    X = _data()
    vb = DPVariationalBayes(model=GaussianMeanModel(), epsilon=INF, max_iter=3, random_state=0).fit(X)
    np.testing.assert_allclose(vb.params_["mean"], clip_rows(X, 1.0).sum(0) / (1 + len(X)))


def test_user_model_private_static_release_only():
    X = _data()
    ledger = PrivacyLedger()
    vb = DPVariationalBayes(model=GaussianMeanModel(), epsilon=1.0, max_iter=5, random_state=0, ledger=ledger).fit(X)
    rel = vb.privacy_report_["releases"]
    assert [r["name"] for r in rel] == ["DPVariationalBayes.static_ess"]  # all static: released once
    assert rel[0]["mu"] == pytest.approx(gdp_mu(1.0, 1e-5))
    assert rel[0]["sensitivity"] == pytest.approx(math.sqrt(2))
    np.testing.assert_allclose(vb.params_["mean"], [0.3, -0.2], atol=0.05)
    assert ledger.spent()[0] == pytest.approx(1.0)


def test_batch_plan_composes_to_target():
    for has_static, share in ((False, 0.0), (True, 0.0), (True, 0.1), (False, 0.05)):
        plan = plan_vips_budget(1.0, 1e-5, "batch", 7, has_static, share)
        parts = [plan.count_mu, plan.static_mu] + [plan.iter_mu] * 7
        assert compose_gdp(parts) == pytest.approx(gdp_mu(1.0, 1e-5))
        total_delta = plan.count_delta + plan.static_delta + plan.iter_delta
        assert total_delta == pytest.approx(1e-5)
        assert gdp_epsilon(compose_gdp(parts), total_delta) == pytest.approx(1.0, rel=1e-6)
    plan = plan_vips_budget(1.0, 1e-5, "online", 3, False, 0.1)
    assert plan.sub_epsilon == pytest.approx(0.9) and plan.count_mu == pytest.approx(gdp_mu(0.1, 1e-6))


def test_noise_scales_with_iterations():
    X = _data(500)
    from skdpgen.bayes import LogisticModel

    y = (X[:, 0] > 0.3).astype(int)
    stds = [DPVariationalBayes(model=LogisticModel(), epsilon=1.0, max_iter=t, random_state=0).fit(X, y).noise_std_
            for t in (1, 4)]
    # T iterations (+1 static release): per-release mu = mu / sqrt(T + 1)
    assert stds[1] / stds[0] == pytest.approx(math.sqrt(5 / 2))
    assert stds[0] == pytest.approx((0.25 * 2) / (gdp_mu(1.0, 1e-5) / math.sqrt(2)))


def test_global_rng_untouched_and_reproducible():
    X = _data(300)
    state = np.random.get_state()
    a = DPVariationalBayes(model=GaussianMeanModel(), epsilon=1.0, random_state=3).fit(X)
    b = DPVariationalBayes(model=GaussianMeanModel(), epsilon=1.0, random_state=3).fit(X)
    c = DPVariationalBayes(model=GaussianMeanModel(), epsilon=1.0, random_state=4).fit(X)
    assert np.array_equal(np.random.get_state()[1], state[1])
    np.testing.assert_array_equal(a.params_["mean"], b.params_["mean"])
    assert not np.array_equal(a.params_["mean"], c.params_["mean"])


class ScoredGaussianMeanModel(GaussianMeanModel):
    def score_data(self, data, state):
        (X,) = data
        return float(-0.5 * ((X - state["mean"]) ** 2).sum(1).mean())


def test_score_calls_the_models_score_data():
    # regression: the protocol's docs named the optional method ``score``, while the engine calls ``score_data``
    X = _data(n=200)
    vb = DPVariationalBayes(model=ScoredGaussianMeanModel(), epsilon=INF, max_iter=1, random_state=0).fit(X)
    assert vb.score(X) == pytest.approx(-0.5 * ((clip_rows(X, 1.0) - vb.params_["mean"]) ** 2).sum(1).mean())
    with pytest.raises(AttributeError, match="defines no score"):
        DPVariationalBayes(model=GaussianMeanModel(), epsilon=INF, max_iter=1).fit(X).score(X)
    assert "``score_data(data, state)``" in VBModel.__doc__ and "``score(data" not in VBModel.__doc__
    assert "per row" not in DPVariationalBayes.score.__doc__.split("\n")[0]
