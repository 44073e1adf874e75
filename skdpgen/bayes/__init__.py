"""Private variational Bayes (VIPS) for conjugate-exponential models.

:class:`DPVariationalBayes` is the engine (any :class:`VBModel`); :class:`DPLatentDirichletAllocation`
and :class:`DPBayesianLogisticRegression` are the built-in models as scikit-learn estimators;
:class:`DPBayesianGaussianMixture` is an experimental third.
"""

from .engine import DPVariationalBayes, ESSPiece, VBModel, plan_vips_budget
from .gmm import DPBayesianGaussianMixture, GaussianMixtureModel
from .lda import DPLatentDirichletAllocation, LDAModel
from .logistic import DPBayesianLogisticRegression, LogisticModel

__all__ = [
    "DPBayesianGaussianMixture",
    "DPBayesianLogisticRegression",
    "DPLatentDirichletAllocation",
    "DPVariationalBayes",
    "ESSPiece",
    "GaussianMixtureModel",
    "LDAModel",
    "LogisticModel",
    "VBModel",
    "plan_vips_budget",
]
