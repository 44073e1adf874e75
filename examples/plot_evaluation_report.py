"""
Evaluating synthetic data: fidelity, utility, privacy, and plots
=================================================================

See, rather than trust, what a synthesizer preserved and what it leaked.
:func:`skdpgen.metrics.evaluate` returns one tidy table of fidelity (marginal total-variation
distances, association differences, MMD, detection AUC), utility (train-synthetic-test-real with
a panel of models, next to the real-data ceiling) and a privacy heuristic (distance to closest
record, train vs holdout).  :mod:`skdpgen.plotting` draws the marginals, the association
difference and the privacy-utility curve; the figures are saved as PNG files in the folder given
on the command line (default: a temporary folder).

The metrics read the real rows: their output is **not** differentially private.

Run: ``python examples/plot_evaluation_report.py [output_folder]`` (needs matplotlib).
"""

import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pandas as pd  # noqa: E402
from sklearn.model_selection import GridSearchCV, StratifiedKFold, train_test_split  # noqa: E402

from skdpgen import DPMMDSynthesizer, PrivacyLedger  # noqa: E402
from skdpgen.datasets import load_breast_cancer_table  # noqa: E402
from skdpgen.metrics import audit_mechanism, evaluate, tstr_scorer  # noqa: E402
from skdpgen.plotting import plot_association_difference, plot_marginals, plot_privacy_utility  # noqa: E402
from skdpgen.privacy import calibrate_gaussian, gaussian_mechanism  # noqa: E402

out_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="skdpgen_report_"))
out_dir.mkdir(parents=True, exist_ok=True)

X, y, schema = load_breast_cancer_table()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
train = X_train.assign(diagnosis=y_train.to_numpy())
test = X_test.assign(diagnosis=y_test.to_numpy())

# %%
# Fit, sample, evaluate
# ---------------------
synth = DPMMDSynthesizer(epsilon=1.0, schema=schema, n_iter=300, batch_size=128, hidden=(128, 128),
                         random_state=0).fit(X_train, y_train)
X_syn, y_syn = synth.sample(len(train), random_state=0, return_y=True)
synthetic = X_syn.assign(diagnosis=y_syn.to_numpy())

report = evaluate(train, synthetic, target="diagnosis", schema=schema, test=test)
summary = report[report["column"] == ""]
pd.set_option("display.width", 120)
print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

# %%
# Marginals and associations
# --------------------------
fig = plot_marginals(train, synthetic, schema, columns=list(train.columns[:8]) + ["diagnosis"], ncols=3)
fig.savefig(out_dir / "marginals.png", dpi=120)
fig = plot_association_difference(train, synthetic, schema)
fig.savefig(out_dir / "association_difference.png", dpi=120)

# %%
# The privacy-utility curve
# -------------------------
# A grid search over epsilon scored by train-synthetic-test-real on the held-out folds.  Every fit
# of the search is a private release: the ledger states what the whole search spent.
ledger = PrivacyLedger()
search = GridSearchCV(DPMMDSynthesizer(schema=schema, n_iter=200, batch_size=128, hidden=(128, 128),
                                       random_state=0, ledger=ledger),
                      {"epsilon": [0.1, 0.3, 1.0, 3.0, 10.0]}, scoring=tstr_scorer(),
                      cv=StratifiedKFold(n_splits=3, shuffle=True, random_state=0), refit=False)
search.fit(X_train, y_train)
ceiling = report.query("metric == 'tstr_roc_auc' and model == 'hist_gradient_boosting'")["reference"].item()
fig = plot_privacy_utility(search, ceiling=ceiling, score_label="TSTR ROC-AUC")
fig.savefig(out_dir / "privacy_utility.png", dpi=120)
eps_total, delta_total = ledger.spent()
print(f"the search spent epsilon = {eps_total:.2f} (delta = {delta_total:.1e}) over {len(ledger)} fits")

# %%
# An empirical privacy audit of the Gaussian release
# --------------------------------------------------
# Run the (1, 1e-5)-DP Gaussian mechanism many times with and without a canary's contribution and
# turn the best distinguishing test into a 95 % lower bound on epsilon.  It must stay below 1.
sigma = calibrate_gaussian(1.0, 1.0, 1e-5)
audit = audit_mechanism(lambda v, rng: gaussian_mechanism(v, sigma, rng), [1.0], [0.0], n_trials=200_000,
                        delta=1e-5, claimed_epsilon=1.0)
print(f"audited lower bound {audit.epsilon_lower_bound:.2f} <= claimed 1.0: {audit.consistent}")
print(f"figures written to {out_dir}")
