"""MLP <-> torch conversion and unit removal (real, smaller networks equal to masked ones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.neural_network import MLPClassifier, MLPRegressor
from torch import nn

from skdpgen.pruning import analyse_network, magnitude_importances, mlp_to_torch, prune_network, torch_to_mlp
from skdpgen.pruning.networks import gated_forward

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 6))
    y = (X[:, 0] + X[:, 1] ** 2 > 1).astype(int) + (X[:, 2] > 0)
    return X, y


@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
def test_mlp_round_trip(data, activation):
    X, y = data
    mlp = MLPClassifier(hidden_layer_sizes=(7, 5), activation=activation, max_iter=30, random_state=0).fit(X, y)
    net = mlp_to_torch(mlp, dtype=torch.float64)
    logits = net(torch.as_tensor(X)).detach().numpy()
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(1, keepdims=True), mlp.predict_proba(X),
                               rtol=1e-6, atol=1e-9)
    back = torch_to_mlp(net, mlp)
    np.testing.assert_allclose(back.predict_proba(X), mlp.predict_proba(X), rtol=1e-6)


def _mask_scales(plan, keep):
    scales = []
    for layer, k in zip(plan.layers, keep, strict=True):
        s = torch.zeros(1, layer.n_units, dtype=torch.float64)
        s[0, k] = 1.0
        scales.append(s)
    return scales


def test_pruned_mlp_equals_masked(data):
    X, _ = data
    mlp = MLPRegressor(hidden_layer_sizes=(9, 8), max_iter=20, random_state=0).fit(X, X[:, 0])
    net = mlp_to_torch(mlp, dtype=torch.float64)
    plan = analyse_network(net, torch.as_tensor(X[:1]))
    keep = [np.array([0, 3, 4, 8]), np.array([1, 2, 7])]
    small = prune_network(net, plan, keep)
    Xt = torch.as_tensor(X)
    with torch.no_grad():
        np.testing.assert_allclose(small(Xt).numpy(), gated_forward(net, plan, Xt, _mask_scales(plan, keep)).numpy(),
                                   rtol=1e-10, atol=1e-12)
    rebuilt = torch_to_mlp(small, mlp)
    assert rebuilt.hidden_layer_sizes == (4, 3)
    assert [c.shape for c in rebuilt.coefs_] == [(6, 4), (4, 3), (3, 1)]
    np.testing.assert_allclose(rebuilt.predict(X), small(Xt).detach().numpy()[:, 0], rtol=1e-8)


def lenet(c1=4, c2=6, f1=12, f2=10):
    return nn.Sequential(
        nn.Conv2d(1, c1, 3, padding=1), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 3), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(c2 * 2 * 2, f1), nn.ReLU(), nn.Dropout(0.1), nn.Linear(f1, f2), nn.Tanh(),
        nn.Linear(f2, 3))


def test_pruned_cnn_equals_masked():
    torch.manual_seed(0)
    net = lenet().double().eval()
    for m in net:  # non-trivial batch-norm statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    X = torch.randn(5, 1, 12, 12, dtype=torch.float64)
    plan = analyse_network(net, X[:1])
    assert plan.n_units == [4, 6, 12, 10]
    assert plan.layers[1].block == 4 and plan.layers[1].gate_at == 8
    keep = [np.array([0, 2]), np.array([1, 3, 5]), np.arange(0, 12, 2), np.array([0, 9])]
    small = prune_network(net, plan, keep).eval()
    with torch.no_grad():
        np.testing.assert_allclose(small(X).numpy(), gated_forward(net, plan, X, _mask_scales(plan, keep)).numpy(),
                                   rtol=1e-9, atol=1e-12)
    assert small[0].weight.shape == (2, 1, 3, 3) and small[1].num_features == 2
    assert small[4].weight.shape == (3, 2, 3, 3) and small[9].weight.shape == (6, 12)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in net.parameters())
    imp = magnitude_importances(net, plan)
    assert [len(v) for v in imp] == plan.n_units and all(v.sum() == pytest.approx(1.0) for v in imp)


def test_unsupported_networks_are_refused():
    with pytest.raises(ValueError, match="not supported"):
        analyse_network(nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 2)), torch.zeros(1, 3))
    with pytest.raises(ValueError, match="at least two"):
        analyse_network(nn.Sequential(nn.Linear(3, 2)), torch.zeros(1, 3))
    with pytest.raises(TypeError):
        analyse_network(nn.Linear(3, 2), torch.zeros(1, 3))
