"""Global configuration (as :func:`sklearn.get_config`): whether privacy noise follows ``random_state``."""

from __future__ import annotations

import math
import os
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["config_context", "fresh_noise", "get_config", "privacy_seed", "set_config"]

_local = threading.local()


def _config() -> dict:
    # default of each thread: False, or the environment variable SKDPGEN_REPRODUCIBLE_NOISE=1
    # (which worker processes inherit; for benchmarks that must reproduce their figures)
    if not hasattr(_local, "config"):
        _local.config = {"reproducible_noise": os.environ.get("SKDPGEN_REPRODUCIBLE_NOISE", "") == "1"}
    return _local.config


def get_config() -> dict:
    """The current settings (a copy); see :func:`set_config`."""
    return dict(_config())


def set_config(reproducible_noise: bool | None = None) -> None:
    """Change skdpgen's settings for the current thread.

    Parameters
    ----------
    reproducible_noise : bool, optional
        ``False`` (default): the randomness of every privacy mechanism (the Gaussian noise of
        each release and the Poisson subsampling of DP-SGD and stochastic VIPS) comes from fresh
        operating-system entropy at every fit, whatever ``random_state`` is; ``random_state``
        still fixes everything else (initialisation, minibatches of non-private training,
        feature maps; ``sample(n, random_state=...)`` is seeded by its own argument).  ``True``:
        that randomness also follows ``random_state``, so that a fit is reproducible bit for bit,
        **for tests and examples only**: two releases with the same seed then share their noise, and e.g. fits at two
        epsilons (``GridSearchCV`` over ``epsilon`` with a fixed ``random_state``) or two
        finalisations of overlapping data cancel each other's noise by a difference, so the
        ledger's composed guarantee no longer holds.  Knowing the seed removes the noise too.
        The environment variable ``SKDPGEN_REPRODUCIBLE_NOISE=1`` sets the default of every
        thread and process (the benchmarks use it, so that their figures reproduce).
    """
    if reproducible_noise is not None:
        _config()["reproducible_noise"] = bool(reproducible_noise)


@contextmanager
def config_context(*, reproducible_noise: bool | None = None) -> Iterator[None]:
    """:func:`set_config` inside a ``with`` block, restored afterwards.

    Examples
    --------
    >>> import skdpgen
    >>> with skdpgen.config_context(reproducible_noise=True):  # a reproducible test fit
    ...     pass
    """
    old = get_config()
    set_config(reproducible_noise=reproducible_noise)
    try:
        yield
    finally:
        set_config(**old)


def privacy_seed(seed: int, private: bool = True) -> int:
    """The seed of a privacy mechanism's randomness: ``seed`` itself only when the fit is not
    private or ``reproducible_noise`` is set, otherwise 63 fresh bits of OS entropy
    (:mod:`secrets`), so that no two releases share their noise."""
    if not private or _config()["reproducible_noise"]:
        return int(seed)
    return secrets.randbits(63)


def fresh_noise(epsilon) -> bool:
    """Whether a fit at ``epsilon`` draws fresh privacy noise (so two fits with one ``random_state`` differ).

    For scikit-learn's ``non_deterministic`` tag: true for a finite ``epsilon`` (``None`` or
    infinite: no noise) unless ``reproducible_noise`` is set.  An invalid ``epsilon`` counts as
    private (``fit`` will reject it).
    """
    if epsilon is None:
        return False
    try:
        private = math.isfinite(float(epsilon))
    except (TypeError, ValueError):
        private = True
    return private and not _config()["reproducible_noise"]
