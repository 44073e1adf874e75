"""DirichletFeatureSelector (Q-FIT): estimator checks, known relevant features, DP path, composition."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from skdpgen import DirichletFeatureSelector, PrivacyLedger, dirichlet_kl
from skdpgen.exceptions import PrivacyBudgetExceeded

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = dict(hidden=(8,), amortized_hidden=(4,), epochs=3, batch_size=32, random_state=0, device="cpu")


@parametrize_with_checks([
    DirichletFeatureSelector(**FAST),
    DirichletFeatureSelector(amortized=False, n_features_to_select=0.5, **FAST),
])
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def _xor(n=600, seed=0, d=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    return X, y


def test_finds_the_xor_pair():
    X, y = _xor()
    sel = DirichletFeatureSelector(n_features_to_select=2, hidden=(32, 32), epochs=40, random_state=0).fit(X, y)
    assert set(np.flatnonzero(sel.get_support())) == {0, 1}
    assert sel.feature_importances_.sum() == pytest.approx(1.0)
    assert sel.ranking_[:2].tolist() in ([1, 2], [2, 1])
    assert sel.transform(X).shape == (len(X), 2)
    np.testing.assert_array_equal(sel.get_feature_names_out(), ["x0", "x1"])
    local = sel.local_importances(X[:20])
    assert local.shape == (20, 6) and np.allclose(local.sum(1), 1.0)
    # a linear model cannot see XOR: the interactions are found by the selector's own network
    assert sel.feature_importances_[:2].min() > sel.feature_importances_[2:].max()


def test_explains_a_given_mlp_and_compares_with_dirichlet_kl():
    X, y = _xor(n=500, seed=1)
    mlp = MLPClassifier(hidden_layer_sizes=(32, 32), max_iter=300, random_state=0).fit(X, y)
    sel = DirichletFeatureSelector(mlp, n_features_to_select=2, epochs=20, random_state=0).fit(X, y)
    assert sel.estimator_ is not mlp and sel.task_ == "binary"
    assert set(np.flatnonzero(sel.get_support())) == {0, 1}
    own = DirichletFeatureSelector(n_features_to_select=2, hidden=(32, 32), epochs=20, random_state=0).fit(X, y)
    kl_same = dirichlet_kl(sel.concentrations_, sel.concentrations_)
    kl = dirichlet_kl(sel.concentrations_, own.concentrations_)
    assert kl_same == pytest.approx(0.0, abs=1e-12) and kl > 0
    # torch modules are accepted too (a copy is frozen)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    s2 = DirichletFeatureSelector(net, epochs=2, random_state=0).fit(X, y)
    assert s2.n_features_to_select_ == 3 and all(p.requires_grad for p in net.parameters())
    with pytest.raises(TypeError, match="differentiable"):
        DirichletFeatureSelector(LogisticRegression()).fit(X, y)


def test_regression_target():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 5))
    y = 2 * X[:, 2] + X[:, 4] ** 2
    sel = DirichletFeatureSelector(n_features_to_select=2, hidden=(16,), epochs=30, random_state=0).fit(X, y)
    assert sel.task_ == "regression"
    assert set(np.flatnonzero(sel.get_support())) == {2, 4}


def test_private_fit():
    X, y = _xor(n=400)
    ledger = PrivacyLedger()
    with pytest.raises(ValueError, match="classes="):
        DirichletFeatureSelector(epsilon=1.0, **FAST).fit(X, y)
    sel = DirichletFeatureSelector(epsilon=1.0, classes=[0, 1], ledger=ledger, **FAST).fit(X, y)
    rep = sel.privacy_report_
    assert rep["neighbouring"] == "add/remove one row"
    assert rep["epsilon"] <= 1.0 + 1e-6
    assert [r["name"] for r in rep["releases"]] == ["DirichletFeatureSelector.row_count",
                                                    "DirichletFeatureSelector.dpsgd"]
    assert len(ledger.entries) == 2
    assert sel.feature_importances_.sum() == pytest.approx(1.0)
    # no data-derived standardisation under DP
    assert np.all(sel._x_mean == 0) and np.all(sel._x_scale == 1)
    # a refit the ledger refuses (reserved before any noise) leaves the selector unfitted, nothing recorded
    refusing = PrivacyLedger(max_epsilon=0.5)
    with pytest.raises(PrivacyBudgetExceeded):
        sel.set_params(ledger=refusing).fit(X, y)
    assert len(refusing) == 0 and not hasattr(sel, "feature_importances_")
    assert not hasattr(sel, "n_samples_estimate_") and not hasattr(sel, "classes_")


def test_pipeline_grid_search_and_reproducibility():
    X, y = _xor(n=300)
    pipe = make_pipeline(DirichletFeatureSelector(n_features_to_select=2, **FAST), LogisticRegression())
    search = GridSearchCV(pipe, {"dirichletfeatureselector__n_features_to_select": [1, 3]}, cv=2,
                          error_score="raise").fit(X, y)
    assert search.best_params_["dirichletfeatureselector__n_features_to_select"] in (1, 3)
    a = clone(pipe[0]).fit(X, y)
    b = clone(pipe[0]).fit(X, y)
    np.testing.assert_array_equal(a.concentrations_, b.concentrations_)


def test_declared_classes_fix_the_task():
    # regression: with classes=, one non-integer y value switched the fit to regression (a private row
    # deciding the task, the loss and the released network's output width)
    X, y = _xor(n=200)
    yf = y.astype(float)
    yf[0] = 0.5
    with pytest.raises(ValueError, match="y has some labels not in classes") as err:
        DirichletFeatureSelector(epsilon=1.0, classes=[0, 1], **FAST).fit(X, yf)
    assert "0.5" not in str(err.value)
    with pytest.raises(ValueError, match=r"y has labels 0.5 not in classes=\[0, 1\]"):  # not private: named
        DirichletFeatureSelector(classes=[0, 1], **FAST).fit(X, yf)
    yf[0] = 0.0
    for eps in (1.0, float("inf"), None):
        sel = DirichletFeatureSelector(epsilon=eps, classes=[1, 0], **FAST).fit(X, yf)
        assert sel.task_ == "multiclass" and sel.classes_.tolist() == [0, 1]
        assert sel.network_[-1].out_features == 2
    # a float y of labels is classification with classes=, and a string label set works too
    sel = DirichletFeatureSelector(classes=["a", "b", "c"], **FAST).fit(X, np.array(["a", "b"])[y])
    assert sel.network_[-1].out_features == 3
    with pytest.raises(ValueError, match="one label per row"):
        DirichletFeatureSelector(classes=[0, 1], **FAST).fit(X, np.column_stack([y, y]))


def test_private_task_does_not_depend_on_the_values_of_y():
    X, y = _xor(n=200)
    # without classes=, a private fit is regression whatever the values, and needs a float y
    assert DirichletFeatureSelector(epsilon=1.0, **FAST).fit(X, y.astype(float)).task_ == "regression"
    for labels in (y, y.astype(bool), np.array(["a", "b"])[y]):
        with pytest.raises(ValueError, match="classes="):
            DirichletFeatureSelector(epsilon=1.0, **FAST).fit(X, labels)


def test_explained_networks_must_output_logits_and_know_the_labels():
    X, y = _xor(n=200)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2), torch.nn.Softmax(1))
    with pytest.raises(ValueError, match="without its final Softmax"):
        DirichletFeatureSelector(net, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="labels 0..1; y has labels 7 outside"):
        DirichletFeatureSelector(net[:-1], **FAST).fit(X, np.where(np.arange(len(y)) < 2, 7, y))
    mlp = MLPClassifier(hidden_layer_sizes=(4,), max_iter=20, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match="not fitted on"):
        DirichletFeatureSelector(mlp, **FAST).fit(X, np.where(np.arange(len(y)) < 2, 7, y))
