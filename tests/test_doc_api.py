"""doc/api.md lists every estimator's parameters, in the code's order (guards against stale docs)."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import skdpgen

API = Path(__file__).resolve().parents[1] / "doc" / "api.md"
ESTIMATORS = ["DPFlowSynthesizer", "DPMMDSynthesizer", "DPVariationalBayes", "DPLatentDirichletAllocation",
              "DPBayesianLogisticRegression", "DirichletPruner", "DirichletFeatureSelector"]


def _split_top_level(args: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in args:
        depth += ch in "([{"
        depth -= ch in ")]}"
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in [*parts, cur] if p.strip()]


def documented_parameters(name: str) -> list[str]:
    text = API.read_text()
    match = re.search(rf"```python\n{name}\((.*?)\)\n", text, re.S)
    assert match, f"no signature block for {name} in doc/api.md"
    args = _split_top_level(" ".join(match.group(1).split()))
    return [re.split(r"[=:]", a)[0].strip() for a in args if a != "*"]


@pytest.mark.parametrize("name", ESTIMATORS)
def test_api_doc_lists_the_parameters_of_the_code(name):
    code = list(inspect.signature(getattr(skdpgen, name)).parameters)
    assert documented_parameters(name) == code
