"""Dirichlet pruning of trained networks and Dirichlet feature importance (Q-FIT)."""

from .dirichlet import DirichletGate, dirichlet_kl, sample_dirichlet
from .networks import analyse_network, magnitude_importances, mlp_to_torch, prune_network, torch_to_mlp
from .pruner import DirichletPruner, select_units
from .selector import DirichletFeatureSelector

__all__ = [
    "DirichletFeatureSelector",
    "DirichletGate",
    "DirichletPruner",
    "analyse_network",
    "dirichlet_kl",
    "magnitude_importances",
    "mlp_to_torch",
    "prune_network",
    "sample_dirichlet",
    "select_units",
    "torch_to_mlp",
]
