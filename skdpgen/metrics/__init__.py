"""Evaluation of synthetic data: fidelity, utility (train-synthetic-test-real) and privacy.

Every metric reads the REAL rows: its output is not differentially private (evaluation is not a
release).  :func:`evaluate` runs them all and returns one tidy table.
"""

from .fidelity import (
    association_difference,
    association_matrix,
    column_summary,
    detection_auc,
    marginal_tvd,
    mmd,
    pairwise_tvd,
)
from .privacy import (
    AuditResult,
    audit_mechanism,
    audit_synthesizer,
    clopper_pearson,
    distance_to_closest_record,
    empirical_epsilon,
)
from .report import evaluate
from .utility import (
    default_classifier,
    default_models,
    default_regressor,
    tstr_evaluate,
    tstr_score,
    tstr_scorer,
)

__all__ = [
    "AuditResult",
    "association_difference",
    "association_matrix",
    "audit_mechanism",
    "audit_synthesizer",
    "clopper_pearson",
    "column_summary",
    "default_classifier",
    "default_models",
    "default_regressor",
    "detection_auc",
    "distance_to_closest_record",
    "empirical_epsilon",
    "evaluate",
    "marginal_tvd",
    "mmd",
    "pairwise_tvd",
    "tstr_evaluate",
    "tstr_score",
    "tstr_scorer",
]
