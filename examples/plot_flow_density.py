"""
Exact densities and conditional sampling with a DP normalizing flow
===================================================================

Fit a :class:`~skdpgen.DPFlowSynthesizer` with :math:`\\varepsilon = 1` on a small mixed table
(one continuous column, one categorical column, a binary label), then

* sample rows, and rows of one class only (``given=``: exact, the label leads the discrete order);
* score held-out rows with the exact log-density in the original units, with the label summed
  out or given;
* read the privacy report: the DP row count and ONE DP-SGD release.
"""

import math

import numpy as np
import pandas as pd

from skdpgen import DPFlowSynthesizer

rng = np.random.default_rng(0)
n = 4000
group = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
label = rng.choice(["no", "yes"], n, p=[0.6, 0.4])
value = rng.normal(0, 1, n) + 2.0 * (label == "yes") - 1.0 * (group == "b")
X = pd.DataFrame({"value": value.clip(-6, 6), "group": group})
y = pd.Series(label, name="label")
schema = {"value": {"type": "continuous", "bounds": [-6, 6]},
          "group": {"type": "categorical", "categories": ["a", "b", "c"]},
          "label": {"type": "categorical", "categories": ["no", "yes"]}}

# %%
# Fit with a public schema (bounds and categories from documentation, not from the rows).
# ``random_state`` seeds the networks' initialisation; the privacy noise and DP-SGD's Poisson
# batches are fresh operating-system entropy at every fit, so the numbers below vary from run to
# run.  Each ``sample`` call takes its own ``random_state``.
flow = DPFlowSynthesizer(epsilon=1.0, delta=1e-5, schema=schema, epochs=10, hidden=(64, 64),
                         n_layers=4, random_state=0).fit(X, y)

# %%
# Sampling, also conditionally on the label.
X_syn, y_syn = flow.sample(2000, random_state=1, return_y=True)
print(pd.crosstab(X_syn["group"], y_syn, normalize=True).round(3))
yes = flow.sample(1000, random_state=2, given={"label": "yes"})
print(f"mean value | label=yes: synthetic {yes['value'].mean():.2f}, real {X['value'][y == 'yes'].mean():.2f}")

# %%
# Exact log-densities in the original units (a probability for the discrete part).
X_new = pd.DataFrame({"value": [0.0, 2.0, 5.5], "group": ["a", "b", "c"]})
print("log p(x):      ", np.round(flow.score_samples(X_new), 3))
print("log p(x, yes): ", np.round(flow.score_samples(X_new, pd.Series(["yes"] * 3)), 3))

# %%
# What was spent: a Gaussian release of the row count and one DP-SGD release.
report = flow.privacy_report_
print(f"epsilon spent {report['epsilon']:.3f} (target 1.0), delta {report['delta']:.1e}, "
      f"{report['neighbouring']}")
for r in report["releases"]:
    print(f"  {r['name']}: epsilon {r['epsilon']:.3f}")
assert report["epsilon"] <= 1.0 + 1e-9 and math.isfinite(report["epsilon"])
