"""Privacy core: accountants, noise mechanisms and the budget ledger."""

from .accounting import (
    RDP_ORDERS,
    calibrate_gaussian,
    calibrate_subsampled_noise,
    compose_gdp,
    gdp_delta,
    gdp_epsilon,
    gdp_log_delta,
    gdp_mu,
    rdp_to_epsilon,
    sparse_histogram_delta,
    sparse_histogram_threshold,
    subsampled_gaussian_epsilon,
    subsampled_gaussian_rdp,
)
from .ledger import ADD_REMOVE, PrivacyLedger, PrivacyRelease, Reservation
from .mechanisms import gaussian_mechanism, gaussian_noise_like

__all__ = [
    "ADD_REMOVE",
    "RDP_ORDERS",
    "PrivacyLedger",
    "PrivacyRelease",
    "Reservation",
    "calibrate_gaussian",
    "calibrate_subsampled_noise",
    "compose_gdp",
    "gaussian_mechanism",
    "gaussian_noise_like",
    "gdp_delta",
    "gdp_epsilon",
    "gdp_log_delta",
    "gdp_mu",
    "rdp_to_epsilon",
    "sparse_histogram_delta",
    "sparse_histogram_threshold",
    "subsampled_gaussian_epsilon",
    "subsampled_gaussian_rdp",
]
