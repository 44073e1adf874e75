"""Dirichlet gates: closed-form KL against Monte Carlo, local-generator sampling, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from skdpgen.pruning import DirichletGate, dirichlet_kl, sample_dirichlet
from skdpgen.pruning.dirichlet import dirichlet_kl_torch


@pytest.mark.parametrize("a, b", [([1.0, 2.0, 3.0], [0.5, 0.5, 0.5]),
                                  ([0.3, 4.0], [2.0, 1.0]),
                                  ([5.0, 5.0, 1.0, 0.2], [1.0, 1.0, 1.0, 1.0])])
def test_kl_matches_monte_carlo(a, b):
    rng = np.random.default_rng(0)
    s = rng.dirichlet(a, size=200_000)
    s = np.clip(s, 1e-300, None)
    mc = np.mean(stats.dirichlet.logpdf(s.T, a) - stats.dirichlet.logpdf(s.T, b))
    se = np.std(stats.dirichlet.logpdf(s.T, a) - stats.dirichlet.logpdf(s.T, b)) / np.sqrt(len(s))
    assert dirichlet_kl(a, b) == pytest.approx(mc, abs=5 * se + 1e-3)


def test_kl_properties_and_torch_version():
    a = np.array([1.0, 2.0, 0.5])
    assert dirichlet_kl(a, a) == pytest.approx(0.0, abs=1e-12)
    assert dirichlet_kl(a, [1.0, 1.0, 1.0]) > 0
    batch = dirichlet_kl(np.stack([a, 2 * a]), a)
    assert batch.shape == (2,) and batch[0] == pytest.approx(0.0, abs=1e-12)
    t = dirichlet_kl_torch(torch.tensor(a, dtype=torch.float64), torch.tensor([0.5, 0.5, 0.5], dtype=torch.float64))
    assert float(t) == pytest.approx(dirichlet_kl(a, [0.5, 0.5, 0.5]))
    with pytest.raises(ValueError):
        dirichlet_kl([1.0, -1.0], [1.0, 1.0])
    with pytest.raises(ValueError):
        dirichlet_kl([1.0, 1.0], [1.0, 1.0, 1.0])


def test_sampling_uses_the_local_generator_only():
    alpha = torch.tensor([0.5, 2.0, 3.0])
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    s1 = sample_dirichlet(alpha.expand(1000, 3), torch.Generator().manual_seed(7))
    assert torch.equal(torch.random.get_rng_state(), before)
    s2 = sample_dirichlet(alpha.expand(1000, 3), torch.Generator().manual_seed(7))
    assert torch.equal(s1, s2)
    assert torch.allclose(s1.sum(1), torch.ones(1000))
    # the mean of Dir(alpha) is alpha / sum(alpha)
    big = sample_dirichlet(alpha.expand(100_000, 3), torch.Generator().manual_seed(1))
    assert torch.allclose(big.mean(0), alpha / alpha.sum(), atol=5e-3)


def test_reparameterised_gradient_matches_the_analytic_one():
    # d/d alpha_1 E[s_1] = d/d alpha_1 alpha_1 / sum(alpha) = (sum - alpha_1) / sum^2
    alpha = torch.tensor([0.7, 1.5, 2.0], requires_grad=True)
    s = sample_dirichlet(alpha.expand(200_000, 3), torch.Generator().manual_seed(0))
    s[:, 0].mean().backward()
    total = float(alpha.detach().sum())
    expected = (total - 0.7) / total**2
    assert float(alpha.grad[0]) == pytest.approx(expected, rel=0.05)


def test_gate_parameters_are_one_linear_layer():
    gate = DirichletGate(5, init=3.0)
    assert isinstance(gate.rho, torch.nn.Linear) and gate.rho.in_features == 1
    assert torch.allclose(gate.concentration(), torch.full((5,), 3.0), atol=1e-5)
    scales, alpha = gate.scales(4, torch.Generator().manual_seed(0))
    assert scales.shape == (4, 5) and alpha.shape == (4, 5)
    assert torch.allclose(scales.sum(1), torch.full((4,), 5.0))
    mean_scales, _ = gate.scales(2, torch.Generator(), sample=False)
    assert torch.allclose(mean_scales, torch.ones(2, 5), atol=1e-5)


def test_shared_samples_keep_per_row_gradients_exact():
    from skdpgen.pruning.dirichlet import kl_rows, sample_dirichlet_shared

    gate = DirichletGate(4, init=2.0)
    with torch.no_grad():
        gate.rho.weight.copy_(torch.tensor([[0.3], [1.0], [-0.5], [2.0]]))
    alpha = gate(6)
    s = sample_dirichlet_shared(alpha, torch.Generator().manual_seed(0), n_distinct=2)
    assert torch.equal(s[0], s[2]) and torch.equal(s[1], s[3]) and not torch.equal(s[0], s[1])
    # each row's loss depends on the parameters through its own row only, with the exact gradient
    w = torch.arange(4.0)
    (g_rows,) = torch.autograd.grad((s * w).sum(1)[1], alpha)
    assert torch.count_nonzero(g_rows.sum(1)) <= 1 and g_rows[0].abs().sum() == 0
    # the same gradient through an independent sampler with the same Gamma draw
    a0 = alpha[:1].detach().clone().requires_grad_(True)
    g0 = torch._standard_gamma(a0.detach().expand(2, 4), generator=torch.Generator().manual_seed(0))
    dg = torch._standard_gamma_grad(a0.detach().expand(2, 4), g0)
    g = g0[1:2] + (a0 - a0.detach()) * dg[1:2]
    ((g / g.sum()) * w).sum().backward()
    assert torch.allclose(g_rows[1], a0.grad[0], atol=1e-6)
    # closed-form KL gradient == autograd's
    k = kl_rows(alpha, 0.5)
    ref = dirichlet_kl_torch(alpha, torch.full_like(alpha, 0.5))
    assert torch.allclose(k, ref, atol=1e-5)
    (gk,) = torch.autograd.grad(k[2], alpha)
    (gr,) = torch.autograd.grad(ref[2], alpha)
    assert torch.allclose(gk, gr, atol=1e-5)
