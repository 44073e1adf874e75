"""
Public schemas: declare them, estimate them privately, or knowingly leak
=======================================================================

A synthesizer needs to know each column's kind, its bounds (numeric columns) and its categories
(discrete columns) before it can encode the table.  Read from the private rows, these facts
leak: the exact maximum of ``income`` is one person's income, and a category held by a single
row reveals that row.  skdpgen offers three ways to get them:

1. **Declare** a :class:`~skdpgen.Schema` from public knowledge (documentation, code books,
   common sense): free, and the whole budget goes to the model.
2. **Estimate** it with differential privacy: pass no schema and a share ``schema_share`` of
   the budget is spent on noisy histograms; rare categories are dropped into ``"(other)"``.
3. **Infer** it from the data with :meth:`Schema.infer <skdpgen.Schema.infer>`: exact, not
   private, and it says so with a :class:`~skdpgen.PrivacyLeakWarning`.  Only for public data.
"""

import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from skdpgen import DPMMDSynthesizer, PrivacyLeakWarning, Schema
from skdpgen.encoding import TabularEncoder

# A small "private" table: 3000 people, with a town where only two of them live.
rng = np.random.default_rng(0)
n = 3000
X = pd.DataFrame({
    "age": rng.integers(18, 90, n),
    "income": np.round(rng.lognormal(10, 1, n), 2),
    "town": rng.choice(["Lisbon", "Porto", "Braga", "Faro"], n, p=[0.5, 0.3, 0.15, 0.05]).astype(object),
    "member": rng.random(n) < 0.3,
})
X.loc[:1, "town"] = "Vila Nova de Cerveira"  # two rows only
X.loc[rng.random(n) < 0.1, "income"] = np.nan  # 10% missing
y = pd.Series(np.where(X["income"].fillna(0) > 30000, "high", "low"), name="band")

# %%
# 1. Declare the schema (a dict, or a JSON file)
# ----------------------------------------------
# ``__target__`` names the label column; its categories must be declared too.  ``income``
# spans several orders of magnitude: with bounds ``[0, 1e6]`` the default ``scale="auto"``
# picks a log scale (lower bound >= 0 and upper bound >= 1000 x max(lower, 1)), which resolves
# small incomes better than a linear map to [0, 1].
declared = {
    "age": {"type": "integer", "bounds": [18, 100]},
    "income": {"type": "continuous", "bounds": [0, 1_000_000], "nullable": True},
    "town": {"type": "categorical", "categories": ["Braga", "Faro", "Lisbon", "Porto"], "unknown": "other"},
    "member": {"type": "boolean"},
    "band": {"type": "categorical", "categories": ["high", "low"]},
    "__target__": "band",
}
schema = Schema(declared)
print(schema)
print("income is mapped on a", schema["income"].resolved_scale, "scale;",
      "age on a", schema["age"].resolved_scale, "scale")

tmp = tempfile.TemporaryDirectory()
path = Path(tmp.name) / "schema.json"
path.write_text(json.dumps(declared, indent=2))
assert Schema.from_json(path) == schema  # a path works wherever a schema is expected

# %%
# The encoder clips values outside the declared bounds and sends undeclared categories to the
# "other" slot (because of ``unknown="other"``; with the default ``"error"`` it would raise).
enc = TabularEncoder(schema).fit(X)
odd = pd.DataFrame({"age": [120], "income": [np.nan], "town": ["Vila Nova de Cerveira"], "member": [True]})
print(enc.inverse_transform(enc.transform(odd)))

# %%
# Fitting with the declared schema spends the whole budget on the model: one release.
synth = DPMMDSynthesizer(epsilon=1.0, schema=str(path), n_iter=300, batch_size=256, hidden=(128, 128),
                         random_state=0).fit(X, y)
print([(r["name"], round(r["epsilon"], 3)) for r in synth.privacy_report_["releases"]])

# %%
# 2. No schema: estimated with differential privacy
# -------------------------------------------------
# ``schema_share=0.1`` (the default) of the budget (of :math:`\mu^2` in Gaussian-DP terms) goes
# to one noisy release of the histograms of all columns; kinds come from the dtypes.  Bounds
# cover about the 0.1%-99.9% quantiles of the noisy histograms; the noise removes thin tails, so
# with few rows or a small budget they come out narrower, and the rows beyond them are clipped.
# The town held by two rows does not pass the release threshold and becomes "(other)".
auto = DPMMDSynthesizer(epsilon=1.0, n_iter=300, batch_size=256, hidden=(128, 128), random_state=0).fit(X, y)
print(auto.schema_)
q = X["income"].quantile([0.001, 0.999]).round(0).tolist()
print(f"(for comparison, not private: the 0.1% and 99.9% quantiles of income are {q})")
for r in auto.privacy_report_["releases"]:
    print(f"  {r['name']}: {r['mechanism']}, epsilon {r['epsilon']:.3f}, delta {r['delta']:.1e}")
print(f"whole fit: epsilon {auto.privacy_report_['epsilon']:.3f}, delta {auto.privacy_report_['delta']:.1e}")
print(auto.sample(2000, random_state=0)["town"].value_counts().to_dict())

# %%
# 3. ``Schema.infer``: exact, and a privacy leak
# ----------------------------------------------
# It reads the exact min/max and every category, including the town of two people, so it
# always warns.  Use it on public data (for example a public sample of the same population).
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    leaky = Schema.infer(X, y, target_name="band")
print(f"{caught[0].category.__name__}: {caught[0].message}")
print(leaky["town"].categories, leaky["income"].bounds)
assert issubclass(caught[0].category, PrivacyLeakWarning)

tmp.cleanup()
