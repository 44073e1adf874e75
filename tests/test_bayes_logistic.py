"""DPBayesianLogisticRegression: Polya-Gamma VB against a Laplace reference, sensitivity, PD posterior."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import optimize
from scipy.special import expit, log_expit

from skdpgen import DPBayesianLogisticRegression
from skdpgen.bayes import LogisticModel
from skdpgen.bayes.logistic import _SymPacker, clip_rows

INF = float("inf")


def _problem(n=300, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = clip_rows(rng.normal(size=(n, d)) / 2, 1.0)
    beta = np.array([2.5, -1.5, 0.5])[:d]
    y = (rng.random(n) < expit(X @ beta + 0.3)).astype(int)
    return X, y


def _laplace(X, y, prior_precision=1.0):
    """MAP and inverse Hessian of the log posterior (rows augmented with the constant 1)."""
    A = np.hstack([X, np.ones((len(X), 1))])

    def nlp(b):
        z = A @ b
        return -np.sum(y * log_expit(z) + (1 - y) * log_expit(-z)) + 0.5 * prior_precision * b @ b

    def grad(b):
        return -A.T @ (y - expit(A @ b)) + prior_precision * b

    b = optimize.minimize(nlp, np.zeros(A.shape[1]), jac=grad, method="BFGS", options={"gtol": 1e-10}).x
    p = expit(A @ b)
    H = A.T @ (A * (p * (1 - p))[:, None]) + prior_precision * np.eye(A.shape[1])
    return b, np.linalg.inv(H)


def test_non_private_posterior_matches_laplace():
    X, y = _problem()
    clf = DPBayesianLogisticRegression(epsilon=INF, max_iter=50, random_state=0).fit(X, y)
    m_ref, S_ref = _laplace(X, y)
    np.testing.assert_allclose(clf.posterior_mean_, m_ref, atol=0.05 * np.abs(m_ref).max())
    # mean-field PG-VB slightly underestimates the spread; variances within 30%
    np.testing.assert_allclose(np.diag(clf.posterior_cov_), np.diag(S_ref), rtol=0.3)
    np.testing.assert_allclose(clf.coef_.ravel(), clf.posterior_mean_[:3])
    assert clf.intercept_[0] == clf.posterior_mean_[3]
    np.testing.assert_allclose(clf.coef_cov_, clf.posterior_cov_[:3, :3])


def test_private_fit_is_close_with_many_rows_and_covariance_is_pd():
    X, y = _problem(n=20000, seed=1)
    clf = DPBayesianLogisticRegression(epsilon=1.0, classes=[0, 1], random_state=0).fit(X, y)
    ref = DPBayesianLogisticRegression(epsilon=INF, random_state=0).fit(X, y)
    assert np.linalg.norm(clf.posterior_mean_ - ref.posterior_mean_) < 0.3 * np.linalg.norm(ref.posterior_mean_)
    for est in (clf, ref):
        assert np.linalg.eigvalsh(est.coef_cov_).min() > 0
        assert np.linalg.eigvalsh(est.posterior_cov_).min() > 0
    assert clf.privacy_report_["epsilon"] == pytest.approx(1.0)
    assert clf.score(X, y) > 0.7


def test_any_two_labels_and_predictions():
    X, y = _problem()
    labels = np.array(["neg", "pos"])[y]
    clf = DPBayesianLogisticRegression(epsilon=INF, random_state=0).fit(X, labels)
    assert clf.classes_.tolist() == ["neg", "pos"]
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[(proba[:, 1] > 0.5).astype(int)])
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), proba)
    with pytest.raises(ValueError, match="binary"):
        DPBayesianLogisticRegression().fit(X, np.arange(len(X)) % 3)
    with pytest.raises(ValueError, match="outside the declared classes"):
        DPBayesianLogisticRegression(classes=["a", "b"]).fit(X, labels)


def test_rows_clipped_to_public_bound():
    X, y = _problem()
    clf = DPBayesianLogisticRegression(epsilon=INF, random_state=0).fit(X, y)
    big = X * 50  # clipped back to norm 1: same prediction as the row rescaled to norm 1
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_proba(big), clf.predict_proba(unit))


def test_per_row_statistics_within_declared_bounds():
    rng = np.random.default_rng(0)
    model = LogisticModel(norm_bound=2.0, intercept_scaling=1.5)
    X, y = model.prepare(rng.normal(size=(200, 4)) * 5, rng.integers(0, 2, 200))
    pieces = {p.name: p for p in model.ess_pieces(4)}
    R = np.sqrt(2.0**2 + 1.5**2)
    assert pieces["xx"].bound == pytest.approx(R**2 / 4) and pieces["xy"].bound == pytest.approx(R / 2)
    assert pieces["xy"].static and not pieces["xx"].static
    state = model.project(model.init_params(4, rng))
    for i in range(0, 200, 7):
        ess = model.local_step((X[i:i + 1], y[i:i + 1]), state, None)
        assert np.linalg.norm(ess["xx"]) <= pieces["xx"].bound * (1 + 1e-12)
        assert np.linalg.norm(ess["xy"]) <= pieces["xy"].bound * (1 + 1e-12)
    # the packing is an isometry for the Frobenius norm
    M = rng.normal(size=(5, 5))
    M = M + M.T
    pk = _SymPacker(5)
    assert np.linalg.norm(pk.pack(M)) == pytest.approx(np.linalg.norm(M))
    np.testing.assert_allclose(pk.unpack(pk.pack(M)), M)


def test_noisy_precision_projected_to_pd():
    model = LogisticModel(prior_precision=0.5)
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(6, 6)) * 100
    state = model.project({"precision": 0.5 * np.eye(6) + (noise + noise.T), "shift": rng.normal(size=6)})
    assert np.linalg.eigvalsh(state["precision"]).min() >= 0.5 - 1e-9
    np.testing.assert_allclose(state["cov"] @ state["precision"], np.eye(6), atol=1e-9)


def test_posterior_samples():
    X, y = _problem()
    clf = DPBayesianLogisticRegression(epsilon=INF, random_state=0).fit(X, y)
    draws = clf.sample(4000, random_state=0)
    assert draws.shape == (4000, 4)
    np.testing.assert_allclose(draws.mean(0), clf.posterior_mean_, atol=0.1)
    np.testing.assert_allclose(np.cov(draws.T), clf.posterior_cov_, atol=0.05)
    np.testing.assert_array_equal(draws, clf.sample(4000, random_state=0))


def test_online_mode_runs_and_accounts():
    X, y = _problem(n=3000, seed=2)
    clf = DPBayesianLogisticRegression(epsilon=INF, learning_method="online", sample_rate=0.1, max_iter=3,
                                       random_state=0).fit(X, y)
    ref = DPBayesianLogisticRegression(epsilon=INF, max_iter=20, random_state=0).fit(X, y)
    assert clf.n_steps_ == 30
    np.testing.assert_allclose(clf.posterior_mean_, ref.posterior_mean_, atol=0.3)
    priv = DPBayesianLogisticRegression(epsilon=1.0, learning_method="online", sample_rate=0.2, max_iter=1,
                                        accountant="rdp", classes=[0, 1], random_state=0).fit(X, y)
    rel = priv.privacy_report_["releases"]
    assert [r["mechanism"] for r in rel] == ["subsampled_gaussian"]
    assert rel[0]["sensitivity"] == pytest.approx(np.sqrt(2**2 / 16 + 2 / 4))
    assert priv.privacy_report_["epsilon"] <= 1.0 + 1e-9


def test_private_fit_does_not_read_the_labels_from_y():
    # the label values are private: a finite epsilon needs them declared (or a boolean y, whose labels the
    # dtype fixes); reading them from y would release them without privacy
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)) / 4
    y = np.where(X[:, 0] > 0, "Alice", "Bob")
    with pytest.raises(ValueError, match="classes=") as info:
        DPBayesianLogisticRegression(epsilon=1.0, random_state=0).fit(X, y)
    assert "Alice" not in str(info.value) and "Bob" not in str(info.value)
    clf = DPBayesianLogisticRegression(epsilon=1.0, classes=["Alice", "Bob"], random_state=0).fit(X, y)
    assert clf.classes_.tolist() == ["Alice", "Bob"]
    assert DPBayesianLogisticRegression(epsilon=float("inf"), random_state=0).fit(X, y).classes_.tolist() == [
        "Alice", "Bob"]
    clf = DPBayesianLogisticRegression(epsilon=1.0, random_state=0).fit(X, y == "Bob")
    assert clf.classes_.tolist() == [False, True] and clf.predict(X).dtype == bool


def test_declared_classes_are_sorted_and_distinct():
    # regression: classes=[1, 0] kept the declared order, so classes_ was unsorted and scikit-learn's
    # scorers (which take predict_proba[:, 1] as the probability of classes_[1]) came out inverted
    from sklearn.metrics import get_scorer

    X, y = _problem()
    declared = DPBayesianLogisticRegression(epsilon=INF, classes=[1, 0], random_state=0).fit(X, y)
    inferred = DPBayesianLogisticRegression(epsilon=INF, random_state=0).fit(X, y)
    assert declared.classes_.tolist() == [0, 1]
    np.testing.assert_allclose(declared.predict_proba(X), inferred.predict_proba(X))
    auc = get_scorer("roc_auc")
    assert auc(declared, X, y) == pytest.approx(auc(inferred, X, y)) and auc(declared, X, y) > 0.5
    with pytest.raises(ValueError, match="duplicate"):
        DPBayesianLogisticRegression(classes=[1, 1]).fit(X, y)
    with pytest.raises(ValueError, match="binary classifier; got 3 classes"):
        DPBayesianLogisticRegression(classes=[0, 1, 2]).fit(X, y)


def test_logistic_model_label_check_comes_before_the_float_cast():
    # regression: string labels failed with "could not convert string to float" instead of the
    # model's own message
    from skdpgen import DPVariationalBayes

    X, y = _problem(n=50)
    for labels in (np.array(["a", "b"])[y], np.array(["a", "b"], dtype=object)[y], y + 1):
        with pytest.raises(ValueError, match=r"needs labels in \{0, 1\}"):
            DPVariationalBayes(model=LogisticModel(), epsilon=INF).fit(X, labels)
    for labels in (y, y.astype(bool), y.astype(float), y.astype(object)):
        LogisticModel().prepare(X, labels)
