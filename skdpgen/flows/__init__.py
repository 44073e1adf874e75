"""Normalizing flows: rational-quadratic spline transforms and the shared-conditioner coupling flow."""

from .model import SplineCouplingFlow
from .splines import n_spline_params, rational_quadratic_spline
from .synthesizer import DPFlowSynthesizer

__all__ = ["DPFlowSynthesizer", "SplineCouplingFlow", "rational_quadratic_spline", "n_spline_params"]
