"""skdpgen: differentially private generative models for scikit-learn users."""

from .bayes import DPBayesianLogisticRegression, DPLatentDirichletAllocation, DPVariationalBayes
from .exceptions import PrivacyBudgetExceeded, PrivacyLeakWarning
from .flows import DPFlowSynthesizer
from .mmd import DPMMDSynthesizer
from .privacy import PrivacyLedger, PrivacyRelease
from .pruning import DirichletFeatureSelector, DirichletPruner, dirichlet_kl
from .schema import ColumnSpec, Schema

__version__ = "0.1.0.dev0"

__all__ = [
    "ColumnSpec",
    "DPBayesianLogisticRegression",
    "DPFlowSynthesizer",
    "DPLatentDirichletAllocation",
    "DPMMDSynthesizer",
    "DPVariationalBayes",
    "DirichletFeatureSelector",
    "DirichletPruner",
    "PrivacyBudgetExceeded",
    "PrivacyLeakWarning",
    "PrivacyLedger",
    "PrivacyRelease",
    "Schema",
    "__version__",
    "dirichlet_kl",
]
