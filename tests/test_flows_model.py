"""Rational-quadratic splines and the shared-conditioner coupling flow: exactness, densities, DP-readiness."""

import copy
import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

from skdpgen.flows import SplineCouplingFlow, n_spline_params, rational_quadratic_spline

K = 8
B = 3.0



def _spline_inputs(n=2001, d=3, scale=2.0, dtype=torch.float64, seed=0):
    """A grid covering both tails (|x| up to 2B) and random (sharp) spline parameters per point."""
    g = torch.Generator().manual_seed(seed)
    x = torch.linspace(-2 * B, 2 * B, n, dtype=dtype).unsqueeze(1).repeat(1, d)
    x = x + 0.01 * torch.rand(n, d, generator=g, dtype=dtype)
    p = scale * torch.randn(n, d, n_spline_params(K), generator=g, dtype=dtype)
    return x, (p[..., :K], p[..., K:2 * K], p[..., 2 * K:])


def _rqs(x, params, inverse=False):
    return rational_quadratic_spline(x, *params, inverse=inverse, bound=B)


def _trapezoid_mass(log_density, lo, hi, n):
    grid = torch.linspace(lo, hi, n, dtype=torch.float64)
    return torch.trapezoid(torch.exp(log_density(grid.unsqueeze(1))), grid).item()


def _trapezoid_mass_2d(flow, lo, hi, n, chunk=100_000):
    grid = torch.linspace(lo, hi, n, dtype=torch.float64)
    pts = torch.cartesian_prod(grid, grid)
    with torch.no_grad():
        dens = torch.cat([flow.log_prob(c).exp() for c in pts.split(chunk)]).view(n, n)
    return torch.trapezoid(torch.trapezoid(dens, grid, dim=1), grid).item()


def _train(flow, X, steps, lr, batch=512, seed=0):
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, X.shape[0], (batch,), generator=g)
        loss = -flow.log_prob(X[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return flow


# ----------------------------------------------------------------------------- spline
def test_spline_inverse_and_logdet():
    x, params = _spline_inputs()
    y, ld = _rqs(x, params)
    x_back, ld_inv = _rqs(y, params, inverse=True)
    assert y.shape == x.shape == ld.shape
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(ld_inv, -ld, atol=1e-8, rtol=0)
    # and the other way round
    z_fwd, _ = _rqs(_rqs(x, params, inverse=True)[0], params)
    torch.testing.assert_close(z_fwd, x, atol=1e-8, rtol=0)


def test_spline_float32():
    x, params = _spline_inputs(dtype=torch.float32, scale=1.0)
    y, ld = _rqs(x, params)
    assert y.dtype == ld.dtype == torch.float32
    x_back, ld_inv = _rqs(y, params, inverse=True)
    # y -> x is ill-conditioned where g' is tiny (an error e in y costs e / g' in x): compare in y
    torch.testing.assert_close(_rqs(x_back, params)[0], y, atol=1e-5, rtol=0)
    torch.testing.assert_close(x_back, x, atol=1e-3, rtol=0)
    torch.testing.assert_close(ld_inv, -ld, atol=1e-3, rtol=0)


@pytest.mark.parametrize("inverse", [False, True])
def test_spline_logdet_matches_autograd_derivative(inverse):
    x, params = _spline_inputs(n=501)
    x = x.clone().requires_grad_(True)
    y, ld = _rqs(x, params, inverse=inverse)
    (dy,) = torch.autograd.grad(y.sum(), x)  # elementwise map: the Jacobian is diagonal
    torch.testing.assert_close(ld, torch.log(dy), atol=1e-5, rtol=0)
    # central differences, away from the knots where the second derivative jumps
    h = 1e-6
    fd = (_rqs(x.detach() + h, params, inverse)[0] - _rqs(x.detach() - h, params, inverse)[0]) / (2 * h)
    np.testing.assert_allclose(fd.numpy(), ld.detach().exp().numpy(), rtol=1e-5, atol=1e-8)


def test_spline_identity_tails_monotone_and_zero_params():
    x, params = _spline_inputs()
    y, ld = _rqs(x, params)
    out = x.abs() > B
    assert out.any() and (~out).any()
    assert torch.equal(y[out], x[out]) and torch.equal(ld[out], torch.zeros_like(ld[out]))
    inside = ~out
    assert (y[inside].abs() <= B).all()
    # strictly increasing along the grid, for one fixed parameter set per dimension
    grid = torch.linspace(-2 * B, 2 * B, 4001, dtype=torch.float64).unsqueeze(1).repeat(1, 3)
    fixed = tuple(p[:1].expand(grid.shape[0], -1, -1) for p in params)
    yg, ldg = _rqs(grid, fixed)
    assert (torch.diff(yg, dim=0) > 0).all()
    assert torch.isfinite(ldg).all()
    # C^1 at the boundaries: derivative 1 on both sides of +-B
    edge = torch.tensor([[-B, -B + 1e-12, B - 1e-12, B]], dtype=torch.float64).T.repeat(1, 3)
    _, ld_edge = _rqs(edge, tuple(p[:1].expand(4, -1, -1) for p in params))
    assert ld_edge.abs().max() < 1e-6
    # all-zero parameters: the identity
    zeros = tuple(torch.zeros_like(p) for p in params)
    y0, ld0 = _rqs(x, zeros)
    torch.testing.assert_close(y0, x, atol=1e-12, rtol=0)
    torch.testing.assert_close(ld0, torch.zeros_like(ld0), atol=1e-12, rtol=0)


def test_spline_gradients_finite_and_bad_shapes():
    x, params = _spline_inputs(n=101)
    params = tuple(p.clone().requires_grad_(True) for p in params)
    x = x.clone().requires_grad_(True)
    y, ld = _rqs(x, params)
    (y.sum() + ld.sum()).backward()
    assert all(torch.isfinite(t.grad).all() for t in (x, *params))
    w, h, d = params
    with pytest.raises(ValueError, match="K - 1"):
        rational_quadratic_spline(x, w, h, d[..., :-1])
    with pytest.raises(ValueError, match="minimum bin size"):
        rational_quadratic_spline(x, w, h, d, min_bin_width=0.2)


# ----------------------------------------------------------------------------- flow: structure
def test_only_linear_layers_no_buffers_and_shared_conditioner():
    flow = SplineCouplingFlow(5, n_stages=6, hidden_features=(32, 32), n_bins=K, context_features=3,
                              base="student_t", learn_df=True, generator=0)
    for module in flow.modules():
        if list(module.parameters(recurse=False)):
            assert isinstance(module, nn.Linear), type(module)
    assert list(flow.buffers()) == []
    # the shared Linear layers run once per stage and forward
    calls = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=name: calls.__setitem__(k, calls.get(k, 0) + 1))
             for name, m in flow.conditioner.named_children() if isinstance(m, nn.Linear)]
    flow.log_prob(torch.randn(4, 5), torch.randn(4, 3))
    for h in hooks:
        h.remove()
    assert len(calls) == 3 and set(calls.values()) == {6}


def test_parameter_count_independent_of_depth():
    def count(n_stages):
        flow = SplineCouplingFlow(6, n_stages=n_stages, hidden_features=(64, 64), n_bins=K, generator=0)
        return sum(p.numel() for p in flow.parameters())

    small, big = count(2), count(12)
    # only the one-hot stage code grows: hidden_features[0] weights per extra stage
    assert big - small == 10 * 64
    # an unshared flow would pay a whole conditioner per stage
    assert big < 1.2 * small < 12 / 2 * small


def test_partitions_cover_every_coordinate():
    for d in (1, 2, 3, 4, 7):
        flow = SplineCouplingFlow(d, n_stages=4, generator=d)
        for s in range(0, 4, 2):
            (t0, i0), (t1, i1) = flow.partitions[s], flow.partitions[s + 1]
            for tr, ident in ((t0, i0), (t1, i1)):
                assert sorted(tr + ident) == list(range(d))
                assert len(tr) == d - d // 2
            assert set(t0) | set(t1) == set(range(d))  # every coordinate transformed in each pair


# ----------------------------------------------------------------------------- flow: exactness
@pytest.mark.parametrize("base", ["normal", "student_t"])
def test_log_prob_is_change_of_variables(base):
    flow = SplineCouplingFlow(3, n_stages=4, hidden_features=(32,), n_bins=K, bound=B, context_features=2,
                              base=base, df=[3.0, 5.0, 30.0], generator=1, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x = 1.5 * torch.randn(5, 3, generator=g, dtype=torch.float64)
    x[0, 1] = 4.0  # one coordinate in a tail
    ctx = torch.randn(5, 2, generator=g, dtype=torch.float64)
    z, logdet = flow.forward_transform(x, ctx)
    lp = flow.log_prob(x, ctx)
    for i in range(5):
        jac = torch.autograd.functional.jacobian(lambda xi, i=i: flow.forward_transform(xi[None], ctx[i:i + 1])[0][0],
                                                 x[i])
        assert abs(torch.slogdet(jac).logabsdet.item() - logdet[i].item()) < 1e-8
    if base == "normal":
        base_lp = stats.norm.logpdf(z.detach().numpy()).sum(1)
    else:
        base_lp = stats.t.logpdf(z.detach().numpy(), df=[3.0, 5.0, 30.0]).sum(1)
    np.testing.assert_allclose(lp.detach().numpy(), base_lp + logdet.detach().numpy(), atol=1e-10)
    x_back, logdet_inv = flow.inverse_transform(z, ctx)
    torch.testing.assert_close(x_back, x, atol=1e-8, rtol=0)
    torch.testing.assert_close(logdet_inv, -logdet, atol=1e-8, rtol=0)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_shapes_dtypes_and_inverse(d):
    flow = SplineCouplingFlow(d, n_stages=3, hidden_features=(16,), generator=2)
    assert all(p.dtype == torch.float32 for p in flow.parameters())
    x = torch.randn(7, d, generator=torch.Generator().manual_seed(1))
    z, ld = flow.forward_transform(x)
    assert z.shape == (7, d) and ld.shape == (7,) and flow.log_prob(x).shape == (7,)
    torch.testing.assert_close(flow.inverse_transform(z)[0], x, atol=1e-5, rtol=0)
    torch.testing.assert_close(flow(x), flow.log_prob(x))
    with pytest.raises(ValueError, match="shape"):
        flow.log_prob(torch.randn(7, d + 1))
    with pytest.raises(ValueError, match="no context"):
        flow.log_prob(x, torch.randn(7, 2))


def test_density_integrates_to_one_1d():
    flow = SplineCouplingFlow(1, n_stages=4, hidden_features=(32,), n_bins=K, bound=B, generator=3,
                              dtype=torch.float64)
    mass_init = _trapezoid_mass(flow.log_prob, -15.0, 15.0, 30001)
    # briefly trained on a bimodal target: a far from Gaussian density
    g = torch.Generator().manual_seed(0)
    comp = torch.rand(4000, generator=g) < 0.4
    X = torch.where(comp, -1.5 + 0.3 * torch.randn(4000, generator=g), 1.0 + 0.6 * torch.randn(4000, generator=g))
    _train(flow, X.double().unsqueeze(1), steps=150, lr=1e-2)
    mass_trained = _trapezoid_mass(flow.log_prob, -15.0, 15.0, 30001)
    with torch.no_grad():
        lp = flow.log_prob(X.double().unsqueeze(1)).mean().item()
    assert lp > -1.45  # it did learn something (a single Gaussian fit is about -1.57)
    assert abs(mass_init - 1) < 1e-2 and abs(mass_trained - 1) < 1e-2, (mass_init, mass_trained)


def test_density_integrates_to_one_2d():
    flow = SplineCouplingFlow(2, n_stages=4, hidden_features=(32,), n_bins=K, bound=B, generator=4,
                              dtype=torch.float64)
    mass_init = _trapezoid_mass_2d(flow, -10.0, 10.0, 401)
    g = torch.Generator().manual_seed(1)
    angle = 2 * math.pi * torch.rand(4000, generator=g)
    radius = 2.0 + 0.2 * torch.randn(4000, generator=g)
    X = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], 1).double()  # a ring
    _train(flow, X, steps=150, lr=1e-2)
    mass_trained = _trapezoid_mass_2d(flow, -10.0, 10.0, 401)
    assert abs(mass_init - 1) < 1e-2 and abs(mass_trained - 1) < 1e-2, (mass_init, mass_trained)


# ----------------------------------------------------------------------------- flow: sampling
def test_sampling_reproducible_and_global_rng_untouched():
    torch_state, np_state = torch.get_rng_state(), np.random.get_state()
    flow = SplineCouplingFlow(3, n_stages=4, hidden_features=(16,), context_features=2, generator=5)
    flow_none = SplineCouplingFlow(3, n_stages=2, base="student_t", generator=None)
    ctx = torch.tensor([1.0, 0.0])
    a = flow.sample(50, torch.Generator().manual_seed(7), context=ctx)
    b = flow.sample(50, torch.Generator().manual_seed(7), context=ctx.expand(50, 2))
    c = flow.sample(50, torch.Generator().manual_seed(8), context=ctx)
    t = flow_none.sample(50, torch.Generator().manual_seed(7))
    flow.log_prob(a, ctx)
    assert torch.equal(torch.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (50, 3) and not a.requires_grad and torch.isfinite(t).all()
    # same seed, same model
    twin = SplineCouplingFlow(3, n_stages=4, hidden_features=(16,), context_features=2, generator=5)
    assert torch.equal(twin.sample(50, torch.Generator().manual_seed(7), context=ctx), a)
    with pytest.raises(ValueError, match="context"):
        flow.sample(5, torch.Generator().manual_seed(0))


def test_student_t_base_sampling_and_learned_df():
    flow = SplineCouplingFlow(2, n_stages=2, base="student_t", df=[2.5, 8.0], identity_init=True, generator=6,
                              dtype=torch.float64)
    z = flow.sample(20000, torch.Generator().manual_seed(0)).numpy()
    for j, nu in enumerate([2.5, 8.0]):
        assert stats.kstest(z[:, j], stats.t(df=nu).cdf).pvalue > 1e-3
    np.testing.assert_allclose(flow.log_prob(torch.from_numpy(z[:10])).detach().numpy(),
                               stats.t.logpdf(z[:10], df=[2.5, 8.0]).sum(1), atol=1e-10)
    learned = SplineCouplingFlow(2, n_stages=2, base="student_t", df=4.0, learn_df=True, generator=6,
                                 dtype=torch.float64)
    np.testing.assert_allclose(learned.degrees_of_freedom(3).detach().numpy(), 4.0, rtol=1e-6)
    learned.log_prob(torch.randn(8, 2, dtype=torch.float64) * 3).mean().backward()
    assert learned.df_head.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="df"):
        SplineCouplingFlow(2, base="student_t", df=0.1)


def test_copy_and_pickle_keep_the_density():
    flow = SplineCouplingFlow(3, n_stages=3, hidden_features=(16,), generator=9)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    flow.log_prob(x)  # fill the index cache
    for clone in (copy.deepcopy(flow), pickle.loads(pickle.dumps(flow))):
        torch.testing.assert_close(clone.log_prob(x), flow.log_prob(x), atol=0, rtol=0)


# ----------------------------------------------------------------------------- DP-readiness and fit
def test_opacus_per_sample_gradients_exact_with_shared_conditioner():
    from opacus import GradSampleModule
    from torch.func import functional_call, grad, vmap

    flow = SplineCouplingFlow(3, n_stages=3, hidden_features=(16,), n_bins=4, context_features=2,
                              base="student_t", learn_df=True, generator=10, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    x, ctx = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 2, generator=g, dtype=torch.float64)
    params = {k: v.detach() for k, v in flow.named_parameters()}
    ref = vmap(grad(lambda p, xi, ci: functional_call(flow, p, (xi[None], ci[None])).sum()),
               in_dims=(None, 0, 0))(params, x, ctx)
    gsm = GradSampleModule(copy.deepcopy(flow), loss_reduction="sum")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gsm(x, ctx).sum().backward()
    for name, p in gsm.named_parameters():
        torch.testing.assert_close(p.grad_sample, ref[name.removeprefix("_module.")], atol=1e-10, rtol=0)


def test_fits_correlated_gaussian_to_true_likelihood():
    rng = np.random.default_rng(0)
    mean, cov = np.array([0.5, -1.0]), np.array([[1.0, 0.8], [0.8, 1.5]])
    X = rng.multivariate_normal(mean, cov, 25_000)
    train, test = torch.tensor(X[:20_000], dtype=torch.float32), torch.tensor(X[20_000:], dtype=torch.float32)
    flow = SplineCouplingFlow(2, n_stages=4, hidden_features=(64, 64), n_bins=8, generator=1)
    _train(flow, train, steps=500, lr=3e-3)
    with torch.no_grad():
        ll = flow.log_prob(test).mean().item()
    true_ll = stats.multivariate_normal(mean, cov).logpdf(X[20_000:]).mean()
    assert abs(true_ll - ll) < 0.05, (ll, true_ll)
