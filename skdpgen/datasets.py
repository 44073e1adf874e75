"""Data sets that ship with scikit-learn (no download), with public schemas.

The bounds below are *public metadata*: rounded, widened ranges of the physical quantities as
published in the data set's documentation (``load_breast_cancer().DESCR``), not statistics read
from the rows at run time.  This is how a data holder should declare a schema: from domain
knowledge or documentation, never from the private table.
"""

from __future__ import annotations

import pandas as pd

from .schema import Schema

__all__ = ["load_breast_cancer_table", "BREAST_CANCER_BOUNDS"]

# Upper bounds: the documented maximum widened by 25% and rounded up; lower bounds: 0 (all
# quantities are non-negative lengths, areas, ratios).
BREAST_CANCER_BOUNDS = {
    "mean radius": 40.0, "mean texture": 50.0, "mean perimeter": 250.0, "mean area": 3500.0,
    "mean smoothness": 0.25, "mean compactness": 0.45, "mean concavity": 0.55,
    "mean concave points": 0.3, "mean symmetry": 0.4, "mean fractal dimension": 0.125,
    "radius error": 4.0, "texture error": 6.5, "perimeter error": 30.0, "area error": 700.0,
    "smoothness error": 0.04, "compactness error": 0.2, "concavity error": 0.5,
    "concave points error": 0.07, "symmetry error": 0.1, "fractal dimension error": 0.04,
    "worst radius": 50.0, "worst texture": 65.0, "worst perimeter": 350.0, "worst area": 5500.0,
    "worst smoothness": 0.3, "worst compactness": 1.5, "worst concavity": 2.0,
    "worst concave points": 0.4, "worst symmetry": 0.85, "worst fractal dimension": 0.3,
}


def breast_cancer_schema() -> Schema:
    """Public schema of :func:`load_breast_cancer_table` (features and the ``diagnosis`` target)."""
    columns = {name: {"type": "continuous", "bounds": [0.0, hi]} for name, hi in BREAST_CANCER_BOUNDS.items()}
    columns["diagnosis"] = {"type": "categorical", "categories": ["malignant", "benign"]}
    return Schema.from_dict({**columns, "__target__": "diagnosis"})


def load_breast_cancer_table() -> tuple[pd.DataFrame, pd.Series, Schema]:
    """scikit-learn's breast cancer data as ``(X, y, schema)``.

    ``X``: 569 rows, 30 continuous columns; ``y``: the ``diagnosis`` ("malignant"/"benign").
    """
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X = data.data.astype("float64")
    y = pd.Series(data.target_names[data.target.to_numpy()], name="diagnosis").astype(object)
    return X, y, breast_cancer_schema()
