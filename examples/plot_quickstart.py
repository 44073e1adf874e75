"""
Quickstart: private synthetic data in four lines
================================================

Fit a :class:`~skdpgen.DPMMDSynthesizer` on scikit-learn's breast cancer table with a
privacy budget of :math:`\\varepsilon = 1`, draw synthetic rows (and their labels), read the
privacy report, and measure utility by *train on synthetic, test on real* (TSTR): a classifier
trained only on synthetic rows is scored on real rows that the synthesizer never saw.

The table ships with scikit-learn (no download).  Its public schema (column kinds and bounds
taken from the data set's documentation, not from the rows) comes with the loader, so the whole
budget goes to the model.
"""

import time

from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skdpgen import DPMMDSynthesizer
from skdpgen.datasets import load_breast_cancer_table
from skdpgen.metrics import default_classifier, tstr_score

X, y, schema = load_breast_cancer_table()
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
print(f"{len(X_train)} private training rows, {X.shape[1]} columns, classes {sorted(y.unique())}")

# %%
# Fit
# ---
# ``y`` makes the fit class-conditional: the generator learns ``X | y`` and the class
# proportions are released with noise.  ``n_iter`` (generator steps) costs no privacy: the
# private rows are read once, to release a noisy kernel mean embedding; training the generator
# only reads that release.  A small network and 300 steps keep this example fast.
# ``random_state`` seeds the feature map and the generator's training (``sample`` takes its own
# ``random_state``); the privacy noise is fresh at every fit
# (``skdpgen.config_context(reproducible_noise=True)`` would make it follow the seed, for tests).
start = time.perf_counter()
synth = DPMMDSynthesizer(epsilon=1.0, delta=1e-5, schema=schema, features="hermite", n_iter=300,
                         batch_size=256, hidden=(128, 128), random_state=0)
synth.fit(X_train, y_train)
print(f"fitted in {time.perf_counter() - start:.1f} s")

# %%
# Sample
# ------
# Sampling is post-processing: draw as many rows as you like, at no privacy cost.  With
# ``return_y=True`` you also get the labels the rows were generated for.
X_syn, y_syn = synth.sample(len(X_train), random_state=1, return_y=True)
print(X_syn.iloc[:5, :4].round(3))
print(y_syn.value_counts().to_dict())

# %%
# Privacy report
# --------------
# Every release that went into the fit is listed with its mechanism, sensitivity and noise.
report = synth.privacy_report_
print(f"({report['epsilon']:.3f}, {report['delta']:.0e})-DP, neighbouring relation: "
      f"{report['neighbouring']}")
for r in report["releases"]:
    print(f"  {r['name']}: {r['mechanism']}, L2 sensitivity {r['sensitivity']:.3f}, "
          f"noise std {r['noise_std']:.3f}, epsilon {r['epsilon']:.3f}")

# %%
# Utility: train on synthetic, test on real
# -----------------------------------------
# ``tstr_score`` samples from the synthesizer, fits a gradient-boosting classifier on the
# synthetic rows and reports its ROC-AUC on the real held-out rows.  The same classifier trained
# on the real training rows gives the non-private ceiling.
auc_syn = tstr_score(synth, X_test, y_test, n_samples=len(X_train), random_state=0)
clf = default_classifier(X_train).fit(X_train, y_train)
auc_real = roc_auc_score(y_test == clf.classes_[1], clf.predict_proba(X_test)[:, 1])
print(f"ROC-AUC on real test rows: trained on synthetic {auc_syn:.3f}, trained on real {auc_real:.3f}")

# %%
# ``score`` is :math:`-\mathrm{MMD}^2` between held-out rows and synthetic rows under a fixed
# evaluation kernel: higher is better, 0 is a perfect match.  It is what
# :class:`~sklearn.model_selection.GridSearchCV` maximises by default.
print(f"score (negative MMD^2) on the test rows: {synth.score(X_test, y_test):.5f}")
