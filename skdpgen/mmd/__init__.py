"""Kernel mean-embedding synthesizers (DP-MERF, DP-HP, DP-NTK, DP-MEPF)."""

from .features import HermiteFeatures, NTKFeatures, PerceptualFeatures, RandomFourierFeatures
from .generator import TabularGenerator
from .synthesizer import DPMMDSynthesizer

__all__ = [
    "DPMMDSynthesizer",
    "HermiteFeatures",
    "NTKFeatures",
    "PerceptualFeatures",
    "RandomFourierFeatures",
    "TabularGenerator",
]
