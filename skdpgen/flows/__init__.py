"""Normalizing flows: spline transforms, the shared-conditioner coupling flow, mixed tables, boosting."""

from .categorical import AutoregressiveCategorical
from .mixed import FlowEnsemble, MixedFlow
from .model import SplineCouplingFlow
from .splines import n_spline_params, rational_quadratic_spline
from .synthesizer import DPFlowSynthesizer

__all__ = ["AutoregressiveCategorical", "DPFlowSynthesizer", "FlowEnsemble", "MixedFlow", "SplineCouplingFlow",
           "n_spline_params", "rational_quadratic_spline"]
