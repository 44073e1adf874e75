"""scikit-learn conventions found missing by review: tags, feature names, label dtypes, prefit estimators."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier
from sklearn.metrics import get_scorer
from sklearn.neural_network import MLPClassifier
from sklearn.utils import get_tags
from torch import nn

import skdpgen
from skdpgen import (
    DirichletFeatureSelector,
    DirichletPruner,
    DPBayesianLogisticRegression,
    DPFlowSynthesizer,
    DPMMDSynthesizer,
)
from skdpgen.bayes import DPBayesianGaussianMixture, DPLatentDirichletAllocation

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.mark.parametrize("make", [
    lambda e: DPMMDSynthesizer(epsilon=e), lambda e: DPFlowSynthesizer(epsilon=e),
    lambda e: DPBayesianLogisticRegression(epsilon=e), lambda e: DPLatentDirichletAllocation(epsilon=e),
    lambda e: DPBayesianGaussianMixture(epsilon=e),
    lambda e: DirichletPruner(None, epsilon=None if e == float("inf") else e),
    lambda e: DirichletFeatureSelector(epsilon=None if e == float("inf") else e),
])
def test_private_fits_are_tagged_non_deterministic(make):
    # fresh privacy noise at every fit: one random_state does not fix the result (unless reproducible_noise)
    with skdpgen.config_context(reproducible_noise=False):
        assert get_tags(make(1.0)).non_deterministic is True
        assert get_tags(make(float("inf"))).non_deterministic is False
    with skdpgen.config_context(reproducible_noise=True):
        assert get_tags(make(1.0)).non_deterministic is False


def _table(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=list("abcd"))
    y = (X["a"] + 0.5 * X["b"] > 0).astype(int)
    return X, y


def test_pruned_mlp_checks_the_column_names_of_the_pruner_fit():
    X, y = _table()
    mlp = MLPClassifier((16,), max_iter=300, random_state=0).fit(X.to_numpy(), y)  # fitted on an array
    pruner = DirichletPruner(mlp, compression=0.25, min_steps=5, fine_tune_epochs=0, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X has feature names, but ... fitted without" on a correct call
        assert pruner.score(X, y) > 0.8
    np.testing.assert_array_equal(pruner.pruned_estimator_.feature_names_in_, list("abcd"))
    with pytest.raises(ValueError, match="feature names"):
        pruner.predict(X[list("dcba")])


def test_prefit_network_with_parameters_set_after_its_fit_is_refused():
    X, y = _table()
    mlp = MLPClassifier((16,), max_iter=300, random_state=0).fit(X, y)
    pruner = DirichletPruner(mlp, min_steps=5, fine_tune_epochs=0, random_state=0)
    pruner.set_params(estimator__hidden_layer_sizes=(4,))  # what a grid over estimator__* does
    with pytest.raises(ValueError, match=r"hidden layers \(16,\) but hidden_layer_sizes=\(4,\)"):
        pruner.fit(X, y)


def test_torch_pruner_with_auto_loss_is_a_classifier_once_fitted():
    X, y = _table()
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    pruner = DirichletPruner(net, min_steps=5, fine_tune_epochs=1, random_state=0)
    assert not is_classifier(pruner)  # "auto" is decided by the data (documented: pass loss="classification")
    pruner.fit(X.to_numpy(np.float32), y.to_numpy())
    assert is_classifier(pruner) and pruner.task_ == "multiclass"
    assert 0.0 <= get_scorer("roc_auc")(pruner, X.to_numpy(np.float32), y.to_numpy()) <= 1.0
    assert is_classifier(DirichletPruner(net, loss="classification"))


@pytest.mark.parametrize("dtype, values", [("category", ["no", "yes"]), ("Int64", [0, 1]), ("boolean", [False, True])])
def test_flow_gives_labels_back_in_their_dtype(dtype, values):
    X, y = _table(400)
    labels = pd.Series(pd.array(np.asarray(values, dtype=object)[y.to_numpy()], dtype=dtype), name="label")
    flow = DPFlowSynthesizer(epsilon=float("inf"), epochs=1, n_layers=1, hidden=(8,), random_state=0,
                             device="cpu").fit(X, labels)
    _, ys = flow.sample(20, random_state=0, return_y=True)
    assert ys.dtype == labels.dtype and ys.name == "label"
    assert set(ys.dropna().tolist()) <= set(values)


def test_get_feature_names_out_checks_input_features():
    X, _ = _table()
    m = DPMMDSynthesizer(epsilon=float("inf"), n_iter=3, random_state=0).fit(X)
    assert list(m.get_feature_names_out(list("abcd"))) == list("abcd")
    with pytest.raises(ValueError, match="input_features"):
        m.get_feature_names_out(["q", "r"])


def _tensors(value) -> list:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, torch.nn.Module):
        return [*value.parameters(), *value.buffers()]
    if isinstance(value, list | tuple):
        return [t for v in value for t in _tensors(v)]
    if getattr(type(value), "_holds_torch_state", False):
        return [t for v in vars(value).values() for t in _tensors(v)]
    return []


def test_torch_state_is_pickled_on_the_cpu_and_models_fitted_on_a_gpu_load_without_one():
    import pickle

    import torch

    from skdpgen._torch import portable, resolve_device

    X, y = _table()
    for model in (DPMMDSynthesizer(epsilon=float("inf"), features="rff", n_iter=3, random_state=0, device="cpu"),
                  DPFlowSynthesizer(epsilon=float("inf"), epochs=1, n_layers=1, hidden=(8,), n_components=2,
                                    random_state=0, device="cpu")):
        model.fit(X, y)
        # every torch tensor and module (also inside feature maps and flow ensembles) moves, the original not
        moved = {k: portable(v, "meta") for k, v in vars(model).items()}
        for name in ("embedding_", "generator_", "model_", "feature_map_"):
            if name in moved:
                tensors = _tensors(moved[name])
                assert tensors and all(t.device.type == "meta" for t in tensors), name
                assert all(t.device.type == "cpu" for t in _tensors(getattr(model, name))), name
        assert all(t.device.type == "cpu" for t in model.__getstate__().values() if isinstance(t, torch.Tensor))
        if not torch.cuda.is_available():  # what a GPU-fitted model's device_ says, loaded on a CPU-only machine
            expected = model.sample(5, random_state=1)
            model.device_ = torch.device("cuda")
            back = pickle.loads(pickle.dumps(model))
            assert back.device_.type == "cpu"
            pd.testing.assert_frame_equal(back.sample(5, random_state=1), expected)
    with pytest.raises(ValueError, match="not supported"):
        resolve_device(torch.device("mps"))
