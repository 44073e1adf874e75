"""
The privacy-utility curve, and what the search itself costs
===========================================================

How much utility does each extra unit of :math:`\\varepsilon` buy?  Map it with
:class:`~sklearn.model_selection.GridSearchCV` over ``epsilon``, scoring each fit by
*train on synthetic, test on real* (:func:`skdpgen.metrics.tstr_scorer`) on the held-out fold.

**Tuning is not free.** Every fit in the search reads the private rows and releases a noisy
embedding, so the search as a whole spends privacy budget: far more than any single
``epsilon`` in the grid.  A :class:`~skdpgen.PrivacyLedger` passed as ``ledger=`` survives
``clone``, so it records every fit of the search and states the total.  Use such a search to
*map* the curve (on this public data set, or on data you may spend budget on), then choose
``epsilon`` for the real release; do not report the selected model as
:math:`\\varepsilon`-DP with the :math:`\\varepsilon` of its grid point.
"""

import time

import pandas as pd
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split

from skdpgen import DPMMDSynthesizer, PrivacyLedger
from skdpgen.datasets import load_breast_cancer_table
from skdpgen.metrics import tstr_scorer

X, y, schema = load_breast_cancer_table()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)

# %%
# A grid over epsilon, with one ledger for the whole search
# ---------------------------------------------------------
# ``refit=False``: a refit on all training rows would be one more private fit (and one more
# release in the ledger).  ``n_jobs=1`` keeps every fit in this process, so the ledger sees
# them all (a threading backend works too; separate processes do not share the ledger).
# The downstream model of the TSTR score is a random forest here (``estimator=``; the default
# is a gradient-boosting classifier), a common choice in TSTR evaluations.
classifier = RandomForestClassifier(n_estimators=100, random_state=0)
ledger = PrivacyLedger()
synth = DPMMDSynthesizer(schema=schema, n_iter=300, batch_size=128, hidden=(128, 128),
                         random_state=0, ledger=ledger)
epsilons = [0.1, 0.3, 1.0, 3.0, 10.0]
search = GridSearchCV(synth, {"epsilon": epsilons}, scoring=tstr_scorer(classifier, metric="roc_auc"),
                      cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0), refit=False, n_jobs=1)
start = time.perf_counter()
search.fit(X_train, y_train)
print(f"{len(ledger)} private fits in {time.perf_counter() - start:.1f} s")

# %%
# The curve
# ---------
# TSTR ROC-AUC on the held-out folds, against the ceiling of a classifier trained on the real
# rows (a non-private reference: it reads the rows without noise; fine here, on public data).
table = pd.DataFrame({
    "epsilon": epsilons,
    "TSTR ROC-AUC (mean)": search.cv_results_["mean_test_score"],
    "(std over folds)": search.cv_results_["std_test_score"],
})
print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
clf = classifier.fit(X_train, y_train)
ceiling = roc_auc_score(y_test == clf.classes_[1], clf.predict_proba(X_test)[:, 1])
print(f"ceiling (trained on the real rows, tested on the test split; non-private reference, public data): "
      f"{ceiling:.3f}")

# %%
# What the whole search spent
# ---------------------------
# The ledger composes all releases exactly (Gaussian DP): :math:`\\mu = \\sqrt{\\sum_i \\mu_i^2}`.
# The total is dominated by the largest epsilon of the grid, times the number of folds.
eps_total, delta_total = ledger.spent()
print(f"the search spent epsilon = {eps_total:.2f} at delta = {delta_total:.1e} "
      f"({len(ledger)} releases; the largest single fit was epsilon = {max(epsilons):g})")
print(ledger.to_frame()[["name", "epsilon", "delta", "noise_std"]].head(4).to_string())

# %%
# A ledger with a budget refuses to overspend
# -------------------------------------------
# ``PrivacyLedger(max_epsilon=...)`` raises :class:`~skdpgen.PrivacyBudgetExceeded` *before*
# any noise is drawn, so a search cannot run past an agreed budget.  Gaussian releases compose
# better than additively: two fits at epsilon = 1 cost about 1.4, not 2.
from skdpgen import PrivacyBudgetExceeded  # noqa: E402

# (``n_iter=0`` skips the generator's training: only the release matters here.)
capped = PrivacyLedger(max_epsilon=1.5)
for attempt in (1, 2, 3):
    try:
        DPMMDSynthesizer(epsilon=1.0, schema=schema, n_iter=0, ledger=capped).fit(X_train, y_train)
        print(f"fit {attempt} at epsilon=1: accepted, ledger now at epsilon={capped.spent()[0]:.2f}")
    except PrivacyBudgetExceeded as exc:
        print(f"fit {attempt} at epsilon=1: refused ({exc})")

# %%
# Plot (if matplotlib is installed)
# ---------------------------------
try:
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover
    plt = None
if plt is not None:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(epsilons, table["TSTR ROC-AUC (mean)"], yerr=table["(std over folds)"], marker="o",
                capsize=3, label="DPMMDSynthesizer (hermite)")
    ax.axhline(ceiling, color="gray", linestyle="--", label="trained on real rows (not private)")
    ax.axhline(0.5, color="lightgray", linestyle=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("epsilon (delta = 1e-5)")
    ax.set_ylabel("TSTR ROC-AUC")
    ax.set_title(f"breast cancer; the search spent epsilon = {eps_total:.1f}")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig("privacy_utility_curve.png", dpi=120)
    print("saved privacy_utility_curve.png")
