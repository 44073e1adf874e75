"""Privacy core: accountants, noise mechanisms and the budget ledger."""

from .accounting import (
    calibrate_gaussian,
    calibrate_subsampled_noise,
    compose_gdp,
    gdp_delta,
    gdp_epsilon,
    gdp_mu,
    sparse_histogram_delta,
    sparse_histogram_threshold,
    subsampled_gaussian_epsilon,
)
from .ledger import ADD_REMOVE, PrivacyLedger, PrivacyRelease
from .mechanisms import gaussian_mechanism, gaussian_noise_like

__all__ = [
    "ADD_REMOVE",
    "PrivacyLedger",
    "PrivacyRelease",
    "calibrate_gaussian",
    "calibrate_subsampled_noise",
    "compose_gdp",
    "gaussian_mechanism",
    "gaussian_noise_like",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_mu",
    "sparse_histogram_delta",
    "sparse_histogram_threshold",
    "subsampled_gaussian_epsilon",
]
