"""Evaluation of synthetic data: utility (train-synthetic-test-real) and more."""

from .utility import default_classifier, tstr_score, tstr_scorer

__all__ = ["default_classifier", "tstr_score", "tstr_scorer"]
