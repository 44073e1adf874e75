"""skdpgen: differentially private generative models for scikit-learn users."""

from ._config import config_context, get_config, set_config
from .bayes import DPBayesianLogisticRegression, DPLatentDirichletAllocation, DPVariationalBayes
from .exceptions import LedgerCopyWarning, PrivacyBudgetExceeded, PrivacyLeakWarning
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
    "LedgerCopyWarning",
    "PrivacyBudgetExceeded",
    "PrivacyLeakWarning",
    "PrivacyLedger",
    "PrivacyRelease",
    "Schema",
    "__version__",
    "config_context",
    "dirichlet_kl",
    "get_config",
    "set_config",
]
