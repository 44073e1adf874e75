"""The VIPS estimators as scikit-learn citizens: estimator checks, pipelines, searches, ledger, pickling."""

from __future__ import annotations

import math

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skdpgen import DPBayesianLogisticRegression, DPLatentDirichletAllocation, DPVariationalBayes
from skdpgen.bayes import DPBayesianGaussianMixture, LDAModel, LogisticModel
from skdpgen.exceptions import LedgerCopyWarning, PrivacyBudgetExceeded
from skdpgen.privacy import PrivacyLedger, compose_gdp, gdp_epsilon

INF = float("inf")
LDA_FAST = dict(n_components=3, max_iter=3, max_doc_update_iter=20, max_doc_length=50, random_state=0)
LR_FAST = dict(max_iter=5, random_state=0)


@parametrize_with_checks(
    [
        DPLatentDirichletAllocation(epsilon=1.0, **LDA_FAST),
        DPLatentDirichletAllocation(epsilon=INF, learning_method="online", batch_size=16, **LDA_FAST),
        # a finite epsilon needs declared classes, which cannot match every label set of the checks:
        # the private fit's conventions are tested below (grid search, ledger, joblib, pipelines)
        DPBayesianLogisticRegression(epsilon=INF, **LR_FAST),
        DPVariationalBayes(model=LDAModel(n_components=2, max_doc_length=50), epsilon=1.0, max_iter=3,
                           random_state=0),
        DPBayesianGaussianMixture(n_components=2, epsilon=1.0, random_state=0),
        DPBayesianGaussianMixture(n_components=2, epsilon=INF, random_state=0),
    ],
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ----------------------------------------------------------------------------- composition
def _binary_data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4)) / 3
    y = np.where(X @ np.array([4.0, -3.0, 0.0, 1.0]) + rng.logistic(size=n) / 4 > 0, "yes", "no")
    return X, y


def test_grid_search_over_epsilon_with_ledger():
    X, y = _binary_data()
    ledger = PrivacyLedger()
    est = DPBayesianLogisticRegression(ledger=ledger, classes=["no", "yes"], **LR_FAST)
    assert clone(est).ledger is ledger
    grid = [0.5, 1.0, 2.0]
    search = GridSearchCV(est, {"epsilon": grid}, cv=2, error_score="raise").fit(X, y)
    assert search.best_estimator_.ledger is ledger
    entries = ledger.entries
    n_fits = 2 * len(grid) + 1
    assert len(entries) == 2 * n_fits  # per fit: the static first-moment release and the iterations
    assert all(e.mu is not None for e in entries)
    # each fit spends exactly its epsilon (GDP composition of its two releases)
    pairs = zip(entries[::2], entries[1::2], strict=True)
    per_fit = [gdp_epsilon(compose_gdp([a.mu, b.mu]), a.delta + b.delta) for a, b in pairs]
    assert sorted(per_fit) == pytest.approx(sorted(grid * 2 + [search.best_params_["epsilon"]]), rel=1e-6)
    # the ledger's total is the exact GDP composition of the whole search
    mu = compose_gdp(e.mu for e in entries)
    eps, delta = ledger.spent()
    assert delta == pytest.approx(math.fsum(e.delta for e in entries))
    assert eps == pytest.approx(gdp_epsilon(mu, delta), rel=1e-9)
    assert eps < sum(per_fit)


def test_ledger_refuses_overspending_before_any_release():
    X, y = _binary_data()
    ledger = PrivacyLedger(max_epsilon=0.5)
    est = DPBayesianLogisticRegression(epsilon=1.0, ledger=ledger, classes=["no", "yes"], **LR_FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        est.fit(X, y)
    assert ledger.entries == [] and not hasattr(est, "coef_")
    lda = DPLatentDirichletAllocation(epsilon=1.0, ledger=ledger, learning_method="online", batch_size=50,
                                      accountant="rdp", **LDA_FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        lda.fit(np.random.default_rng(0).poisson(1.0, size=(100, 20)))
    assert ledger.entries == []
    est.set_params(epsilon=0.5).fit(X, y)
    assert ledger.spent()[0] == pytest.approx(0.5)


def test_pipeline_countvectorizer_lda_classifier():
    rng = np.random.default_rng(0)
    sport = ["goal", "match", "team", "score", "league", "coach"]
    money = ["bank", "stock", "market", "price", "trade", "bond"]
    docs, labels = [], []
    for i in range(300):
        words = sport if i % 2 else money
        docs.append(" ".join(rng.choice(words, size=20)) + " " + " ".join(rng.choice(sport + money, size=4)))
        labels.append(i % 2)
    pipe = make_pipeline(CountVectorizer(),
                         DPLatentDirichletAllocation(n_components=2, epsilon=INF, max_doc_length=30, random_state=0),
                         LogisticRegression())
    pipe.fit(docs[:200], labels[:200])
    assert pipe.score(docs[200:], labels[200:]) > 0.9
    names = pipe[:-1].get_feature_names_out()
    assert list(names) == ["dplatentdirichletallocation0", "dplatentdirichletallocation1"]
    clone(pipe).fit(docs, labels)


def test_joblib_round_trip(tmp_path):
    X, y = _binary_data()
    clf = DPBayesianLogisticRegression(ledger=PrivacyLedger(), classes=["no", "yes"], **LR_FAST).fit(X, y)
    lda = DPLatentDirichletAllocation(**LDA_FAST).fit(np.random.default_rng(0).poisson(1.0, size=(80, 15)))
    with pytest.warns(LedgerCopyWarning):
        joblib.dump((clf, lda), tmp_path / "m.joblib")
    clf2, lda2 = joblib.load(tmp_path / "m.joblib")
    np.testing.assert_array_equal(clf2.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(lda2.sample(5, random_state=1).toarray(), lda.sample(5, random_state=1).toarray())
    assert clf2.privacy_report_ == clf.privacy_report_
    assert len(clf2.ledger.entries) == 2


def test_engine_with_builtin_models_matches_estimators():
    X, y = _binary_data()
    clf = DPBayesianLogisticRegression(epsilon=1.0, classes=[0, 1], **LR_FAST).fit(X, (y == "yes").astype(int))
    vb = DPVariationalBayes(model=LogisticModel(), epsilon=1.0, **LR_FAST).fit(X, (y == "yes").astype(int))
    np.testing.assert_allclose(vb.params_["mean"], clf.posterior_mean_)
    assert vb.score(X, (y == "yes").astype(int)) == pytest.approx(
        np.mean(clf.predict_log_proba(X)[np.arange(len(y)), (y == "yes").astype(int)]))
    assert vb.privacy_report_["epsilon"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs a model"):
        DPVariationalBayes().fit(X)
