"""Noise-adding mechanisms.  Every draw comes from a local generator passed in by the caller.

Global random number generators are never seeded or used here, so fitting an estimator does not
disturb (nor depend on) ``numpy.random`` or ``torch``'s global state.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["gaussian_mechanism", "gaussian_noise_like"]


def gaussian_noise_like(value: torch.Tensor | np.ndarray, noise_std: float, rng) -> torch.Tensor | np.ndarray:
    """Gaussian noise with the shape of ``value``, from ``rng``.

    ``rng`` is a :class:`numpy.random.Generator` for numpy input and a :class:`torch.Generator`
    (on any device; the noise is moved to the tensor's device) for torch input.  Noise is drawn
    in float64.
    """
    _check_noise_std(noise_std)
    if isinstance(value, torch.Tensor):
        if not isinstance(rng, torch.Generator):
            raise TypeError("a torch.Tensor needs a torch.Generator")
        noise = torch.randn(value.shape, generator=rng, dtype=torch.float64, device=rng.device)
        return (noise * float(noise_std)).to(value.device)
    if not isinstance(rng, np.random.Generator):
        raise TypeError("a numpy array needs a numpy.random.Generator")
    return rng.standard_normal(np.shape(value)) * float(noise_std)


def gaussian_mechanism(value: torch.Tensor | np.ndarray, noise_std: float, rng) -> torch.Tensor | np.ndarray:
    r"""Release ``value + N(0, noise_std^2 I)`` in float64.

    With L2 sensitivity :math:`\Delta` the release is exactly :math:`(\Delta/s)`-GDP; the caller
    records it in a :class:`~skdpgen.PrivacyLedger` (see :class:`~skdpgen.privacy.PrivacyRelease`).
    """
    _check_noise_std(noise_std)
    if isinstance(value, torch.Tensor):
        return value.to(torch.float64) + gaussian_noise_like(value, noise_std, rng)
    return np.asarray(value, dtype=np.float64) + gaussian_noise_like(value, noise_std, rng)


def _check_noise_std(noise_std) -> None:
    try:
        ok = float(noise_std) >= 0 and np.isfinite(float(noise_std))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"noise_std must be finite and >= 0, got {noise_std!r}")
