"""The Gaussian mechanism: right noise, reproducible from its generator, global RNGs untouched."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from skdpgen.privacy import gaussian_mechanism, gaussian_noise_like

N = 200_000


def _numpy_noise(sigma, seed=0, shape=(N,)):
    return gaussian_mechanism(np.zeros(shape), sigma, np.random.default_rng(seed))


def _torch_noise(sigma, seed=0, shape=(N,), dtype=torch.float32):
    return gaussian_mechanism(torch.zeros(shape, dtype=dtype), sigma,
                              torch.Generator().manual_seed(seed)).numpy()


@pytest.mark.parametrize("draw", [_numpy_noise, _torch_noise])
@pytest.mark.parametrize("sigma", [0.01, 1.0, 37.5])
def test_noise_has_the_right_mean_and_std(draw, sigma):
    noise = draw(sigma)
    # 5 standard errors: the mean has s.e. sigma / sqrt(n), the std about sigma / sqrt(2 n)
    assert abs(noise.mean()) < 5 * sigma / math.sqrt(N)
    assert abs(noise.std() - sigma) < 5 * sigma / math.sqrt(2 * N)
    # and it is Gaussian (Kolmogorov-Smirnov against N(0, sigma^2); fixed seed)
    assert stats.kstest(noise[:20_000] / sigma, "norm").pvalue > 1e-3


@pytest.mark.parametrize("draw", [_numpy_noise, _torch_noise])
def test_coordinates_are_independent(draw):
    noise = draw(1.0, shape=(N // 2, 2))
    corr = np.corrcoef(noise[:, 0], noise[:, 1])[0, 1]
    assert abs(corr) < 5 / math.sqrt(N // 2)


def test_value_is_shifted_not_replaced():
    value = np.array([[1.0, -2.0], [3.0, 1e6]])
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    out = gaussian_mechanism(value, 0.5, rng_a)
    np.testing.assert_array_equal(out, value + gaussian_noise_like(value, 0.5, rng_b))
    assert out.dtype == np.float64 and out.shape == value.shape
    t = torch.tensor([[1, 2], [3, 4]], dtype=torch.int64)
    out_t = gaussian_mechanism(t, 0.5, torch.Generator().manual_seed(3))
    assert out_t.dtype == torch.float64 and out_t.shape == t.shape
    np.testing.assert_array_equal(gaussian_mechanism(value, 0.0, np.random.default_rng(0)), value)
    assert torch.equal(gaussian_mechanism(t, 0.0, torch.Generator().manual_seed(0)), t.double())


def test_reproducible_from_the_generator():
    a = _numpy_noise(1.0, seed=7, shape=(100,))
    b = _numpy_noise(1.0, seed=7, shape=(100,))
    c = _numpy_noise(1.0, seed=8, shape=(100,))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    at = _torch_noise(1.0, seed=7, shape=(100,))
    bt = _torch_noise(1.0, seed=7, shape=(100,))
    np.testing.assert_array_equal(at, bt)
    # successive draws from one generator differ (the generator advances)
    rng = np.random.default_rng(0)
    assert not np.array_equal(gaussian_noise_like(np.zeros(5), 1.0, rng),
                              gaussian_noise_like(np.zeros(5), 1.0, rng))


def test_global_random_state_is_never_touched():
    # the legacy global numpy API is what is being checked here
    saved_np, saved_torch = np.random.get_state(), torch.get_rng_state()  # noqa: NPY002
    try:
        np.random.seed(123)  # noqa: NPY002
        torch.manual_seed(123)
        np_state = np.random.get_state()  # noqa: NPY002
        torch_state = torch.get_rng_state().clone()
        gaussian_mechanism(np.zeros(1000), 1.0, np.random.default_rng(0))
        gaussian_mechanism(torch.zeros(1000), 1.0, torch.Generator().manual_seed(0))
        gaussian_noise_like(torch.zeros(10), 2.0, torch.Generator().manual_seed(1))
        after = np.random.get_state()  # noqa: NPY002
        assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1])
        assert after[2:] == np_state[2:]
        assert torch.equal(torch.get_rng_state(), torch_state)
        # and the output does not depend on the global state either
        np.random.seed(1)  # noqa: NPY002
        torch.manual_seed(1)
        a = _numpy_noise(1.0, seed=5, shape=(10,)), _torch_noise(1.0, seed=5, shape=(10,))
        np.random.seed(2)  # noqa: NPY002
        torch.manual_seed(2)
        b = _numpy_noise(1.0, seed=5, shape=(10,)), _torch_noise(1.0, seed=5, shape=(10,))
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    finally:
        np.random.set_state(saved_np)  # noqa: NPY002
        torch.set_rng_state(saved_torch)


@pytest.mark.parametrize("bad", [-1.0, float("nan"), math.inf, "x"])
def test_bad_noise_std_raises(bad):
    with pytest.raises(ValueError, match="noise_std"):
        gaussian_mechanism(np.zeros(3), bad, np.random.default_rng(0))
    with pytest.raises(ValueError, match="noise_std"):
        gaussian_noise_like(torch.zeros(3), bad, torch.Generator())


def test_wrong_generator_type_raises():
    with pytest.raises(TypeError, match="torch.Generator"):
        gaussian_mechanism(torch.zeros(3), 1.0, np.random.default_rng(0))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        gaussian_mechanism(np.zeros(3), 1.0, torch.Generator())
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        gaussian_mechanism(np.zeros(3), 1.0, 0)
