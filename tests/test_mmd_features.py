"""Feature maps: norms bounded by 1 (the sensitivity argument) and convergence to their kernels."""

import math

import numpy as np
import pytest
import torch
from sklearn.decomposition import (
    NMF,
    PCA,
    FactorAnalysis,
    IncrementalPCA,
    LatentDirichletAllocation,
    SparsePCA,
    TruncatedSVD,
)

from skdpgen.encoding import TabularEncoder
from skdpgen.mmd.features import (
    HermiteFeatures,
    NTKFeatures,
    PerceptualFeatures,
    RandomFourierFeatures,
    hermite_functions,
    make_feature_map,
    mehler_kernel,
)

SCHEMA = {
    "a": {"type": "continuous", "bounds": [0, 1]},
    "b": {"type": "integer", "bounds": [0, 10], "nullable": True},
    "c": {"type": "categorical", "categories": ["x", "y", "z"]},
}


@pytest.fixture(scope="module")
def blocks():
    import pandas as pd

    X = pd.DataFrame({"a": [0.1, 0.5], "b": [1.0, np.nan], "c": ["x", "z"]})
    enc = TabularEncoder(SCHEMA).fit(X)
    return enc.blocks_, enc.n_outputs_


def _random_model_space(blocks, n_outputs, n, seed, soft=False):
    """Arbitrary points of the model space: values in [0, 1], one-hot (or soft) groups."""
    rng = np.random.default_rng(seed)
    Z = np.zeros((n, n_outputs))
    for b in blocks:
        if b.kind == "continuous":
            Z[:, b.start] = rng.uniform(0, 1, n)
        else:
            w = b.stop - b.start
            Z[:, b.start:b.stop] = rng.dirichlet(np.ones(w), n) if soft else np.eye(w)[rng.integers(0, w, n)]
    return torch.as_tensor(Z, dtype=torch.float64)


def test_hermite_truncated_kernel_converges_to_mehler_closed_form():
    x = torch.linspace(-1.5, 1.5, 13, dtype=torch.float64)
    rho = 0.9
    errors = []
    for order in (5, 20, 50, 100, 200):
        coef = torch.tensor([rho ** (c / 2) for c in range(order + 1)], dtype=torch.float64)
        H = hermite_functions(x, order) * coef
        exact = mehler_kernel(x.numpy()[:, None], x.numpy()[None, :], rho)
        errors.append(np.abs(H @ H.T - exact).max().item())
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False)), errors
    assert errors[-1] < 1e-8
    assert errors[0] > 1e-2  # low orders really are truncations


def test_hermite_functions_are_orthonormal():
    x = torch.linspace(-12, 12, 20001, dtype=torch.float64)
    psi = hermite_functions(x, 10)
    gram = (psi.T @ psi) * (x[1] - x[0])
    np.testing.assert_allclose(gram.numpy(), np.eye(11), atol=1e-8)


@pytest.mark.parametrize("soft", [False, True])
def test_hermite_feature_norm_at_most_one(blocks, soft):
    bl, n_out = blocks
    fmap = HermiteFeatures(bl, order=30, length_scale=0.2, dtype=torch.float64)
    Z = _random_model_space(bl, n_out, 5000, 0, soft=soft)
    norms = fmap(Z).norm(dim=1)
    assert norms.max() <= 1.0 + 1e-12
    # at the centre of the continuous coordinates with hard one-hots, close to the bound
    Z0 = _random_model_space(bl, n_out, 1, 1)
    Z0[:, [b.start for b in bl if b.kind == "continuous"]] = 0.5
    assert fmap(Z0).norm() > 0.95


def test_hermite_features_approximate_sum_kernel(blocks):
    bl, n_out = blocks
    fmap = HermiteFeatures(bl, order=150, length_scale=0.3, dtype=torch.float64)
    Z = _random_model_space(bl, n_out, 20, 3)
    K = (fmap(Z) @ fmap(Z).T).numpy()
    rho, G = fmap.rho, len(bl)
    kmax = (math.pi * (1 - rho**2)) ** -0.5
    expected = np.zeros_like(K)
    for b in bl:
        if b.kind == "continuous":
            u = 2 * Z[:, b.start].numpy() - 1
            expected += mehler_kernel(u[:, None], u[None, :], rho) / kmax
        else:
            oh = Z[:, b.start:b.stop].numpy()
            expected += oh @ oh.T
    np.testing.assert_allclose(K, expected / G, atol=1e-6)


def test_rff_unit_norm_and_gaussian_kernel():
    Z = torch.rand(50, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    fmap = RandomFourierFeatures(4, 20000, length_scale=0.7, seed=0, dtype=torch.float64)
    phi = fmap(Z)
    np.testing.assert_allclose(phi.norm(dim=1).numpy(), 1.0, atol=1e-12)
    exact = torch.exp(-torch.cdist(Z, Z) ** 2 / (2 * 0.7**2))
    assert (phi @ phi.T - exact).abs().max() < 0.05  # Monte Carlo error ~ 1/sqrt(D/2)


def test_rff_same_seed_same_map_and_no_global_rng():
    state = torch.get_rng_state()
    a = RandomFourierFeatures(3, 10, 1.0, seed=5)
    b = RandomFourierFeatures(3, 10, 1.0, seed=5)
    assert torch.equal(a.omega, b.omega)
    assert torch.equal(state, torch.get_rng_state())
    with pytest.raises(ValueError, match="even"):
        RandomFourierFeatures(3, 11, 1.0, seed=0)


def test_ntk_features_unit_norm_and_match_autograd():
    fmap = NTKFeatures(5, width=8, seed=0, dtype=torch.float64)
    Z = torch.rand(7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    phi = fmap(Z)
    np.testing.assert_allclose(phi.norm(dim=1).numpy(), 1.0, atol=1e-12)
    # closed form equals the autograd gradient of f(x) = v.relu(Wx+b)/sqrt(h), normalised
    W, b, v = (t.clone().requires_grad_(True) for t in (fmap.W, fmap.b, fmap.v))
    for i in range(len(Z)):
        f = v @ torch.relu(W @ Z[i] + b) / math.sqrt(8)
        gW, gb, gv = torch.autograd.grad(f, (W, b, v))
        g = torch.cat([gv, gb, gW.flatten()])
        np.testing.assert_allclose(phi[i].numpy(), (g / g.norm()).detach().numpy(), atol=1e-12)


def test_perceptual_features_from_module_and_pca(blocks):
    bl, n_out = blocks
    rng = np.random.default_rng(0)
    public = rng.uniform(size=(100, n_out))
    pca = PCA(n_components=3).fit(public)
    fmap = PerceptualFeatures(pca, n_out, moments=2, dtype=torch.float64)
    Z = _random_model_space(bl, n_out, 200, 2)
    norms = fmap(Z).norm(dim=1)
    assert norms.max() <= 1.0 + 1e-12 and fmap.n_features == 6
    net = torch.nn.Sequential(torch.nn.Linear(n_out, 4), torch.nn.Tanh())
    fmap2 = PerceptualFeatures(net, n_out, dtype=torch.float32)
    np.testing.assert_allclose(fmap2(Z.float()).norm(dim=1).detach().numpy(), 1.0, atol=1e-5)
    with pytest.raises(TypeError, match="feature_extractor"):
        PerceptualFeatures("not a model", n_out)


def test_make_feature_map_defaults_depend_only_on_layout(blocks):
    bl, n_out = blocks
    kw = dict(blocks=bl, n_inputs=n_out, seed=0, device="cpu", n_features=None, length_scale=None,
              hermite_order=10, ntk_width=16)
    rff = make_feature_map("rff", **kw)
    assert rff.n_features == 2000 and rff.length_scale == pytest.approx(0.5 * math.sqrt(len(bl)))
    assert make_feature_map("hermite", **kw).length_scale == 0.2
    with pytest.raises(ValueError, match="feature_extractor"):
        make_feature_map("perceptual", **kw)
    with pytest.raises(ValueError, match="features must be"):
        make_feature_map("nope", **kw)


@pytest.mark.parametrize("make", [lambda: PCA(n_components=3, whiten=True), lambda: PCA(n_components=3),
                                  lambda: IncrementalPCA(n_components=3, whiten=True),
                                  lambda: TruncatedSVD(n_components=3, random_state=0)],
                         ids=["pca-whiten", "pca", "ipca-whiten", "tsvd"])
def test_perceptual_linear_projection_matches_transform(blocks, make):
    # PCA(whiten=True) used to ignore the whitening (off by up to 0.18 after normalisation)
    bl, n_out = blocks
    est = make().fit(np.random.default_rng(0).uniform(size=(100, n_out)))
    Z = _random_model_space(bl, n_out, 200, 3)
    ref = est.transform(Z.numpy())
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    phi = PerceptualFeatures(est, n_out, dtype=torch.float64)(Z).numpy()
    np.testing.assert_allclose(phi, ref, atol=1e-10)
    assert np.linalg.norm(phi, axis=1).max() <= 1.0 + 1e-12


@pytest.mark.parametrize("make", [lambda: NMF(n_components=2, max_iter=2000),
                                  lambda: LatentDirichletAllocation(n_components=2, max_iter=2, random_state=0),
                                  lambda: FactorAnalysis(n_components=2), lambda: SparsePCA(n_components=2)],
                         ids=["nmf", "lda", "fa", "sparsepca"])
def test_perceptual_refuses_nonlinear_transformers_with_components(blocks, make):
    # their transform is not (Z - mean_) @ components_.T: they used to be silently replaced by it
    _, n_out = blocks
    est = make().fit(np.random.default_rng(0).uniform(size=(50, n_out)))
    with pytest.raises(TypeError, match=r"not a linear projection.*torch\.nn\.Module or a callable"):
        PerceptualFeatures(est, n_out)


def test_perceptual_module_of_the_caller_is_not_changed(blocks):
    bl, n_out = blocks
    net = torch.nn.Linear(n_out, 4).to(torch.float64).train()
    before = net.weight.detach().clone()
    fmap = PerceptualFeatures(net, n_out, dtype=torch.float32)
    assert fmap(_random_model_space(bl, n_out, 5, 0).float()).dtype == torch.float32
    assert net.weight.dtype == torch.float64 and net.training
    assert all(p.requires_grad for p in net.parameters())
    assert torch.equal(net.weight, before)


def test_perceptual_width_mismatch_is_a_clear_value_error(blocks):
    _, n_out = blocks
    names = [f"col{i}" for i in range(n_out)]
    wrong = n_out - 2
    pca = PCA(n_components=2).fit(np.random.default_rng(0).uniform(size=(20, wrong)))
    for extractor in (pca, torch.nn.Sequential(torch.nn.Linear(wrong, 3), torch.nn.Tanh())):
        with pytest.raises(ValueError, match=rf"expects {wrong} inputs while the model space has {n_out} columns"
                                             r".*'col0'.*get_feature_names_out"):
            PerceptualFeatures(extractor, n_out, feature_names=names)
    weight = torch.ones(wrong, 3)
    with pytest.raises(ValueError, match=rf"model space has {n_out} columns.*get_feature_names_out"):
        PerceptualFeatures(lambda Z: Z @ weight, n_out)  # the width is found only by the probe
