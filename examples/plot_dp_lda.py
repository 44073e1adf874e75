"""
Private topic models and private Bayesian logistic regression (VIPS)
====================================================================

Variational Bayes in private settings (Park et al. 2020) privatises the expected sufficient
statistics of conjugate-exponential models.  Here: a topic model
(:class:`~skdpgen.DPLatentDirichletAllocation`) fitted at :math:`\\varepsilon = 1` on a corpus
drawn from a known LDA model, compared with the non-private fit; synthetic documents sampled from
it; and a :class:`~skdpgen.DPBayesianLogisticRegression` with its posterior.

Everything is made in the script; it runs in about ten seconds on two CPU cores.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment

from skdpgen import DPBayesianLogisticRegression, DPLatentDirichletAllocation

rng = np.random.default_rng(0)
n_topics, n_words, n_docs, length = 5, 100, 10_000, 50
topics = rng.dirichlet(np.full(n_words, 0.05), size=n_topics)
theta = rng.dirichlet(np.full(n_topics, 0.2), size=n_docs)
X = rng.multinomial(length, theta @ topics)  # a document-term count matrix


def topic_error(lda):
    """Mean L1 distance between matched estimated and true topic-word distributions (0 is perfect, 2 the worst)."""
    est = lda.components_ / lda.components_.sum(axis=1, keepdims=True)
    cost = np.abs(est[:, None, :] - topics[None]).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cost[rows, cols].mean()


# %%
# Private and non-private topics
# ------------------------------
# ``max_doc_length`` caps each document's tokens: the L2 sensitivity of the released topic-word
# statistics.  Few iterations are better under privacy: each one is a noisy release.
for eps, n_iter in ((float("inf"), 10), (1.0, 5)):
    lda = DPLatentDirichletAllocation(n_components=n_topics, epsilon=eps, max_iter=n_iter, max_doc_length=length,
                                      doc_topic_prior=0.2, topic_word_prior=0.05, random_state=0).fit(X)
    print(f"epsilon={eps}: topic L1 error {topic_error(lda):.3f}, spent epsilon "
          f"{lda.privacy_report_['epsilon']:.3f}, perplexity {lda.perplexity(X):.1f}")

# %%
# Synthetic documents: post-processing, no further privacy cost
S = lda.sample(3, random_state=0)
print("synthetic document lengths:", np.asarray(S.sum(axis=1)).ravel(), "(mean length estimated with DP:",
      f"{lda.mean_doc_length_:.1f})")

# %%
# Bayesian logistic regression
# ----------------------------
# Rows must have L2 norm at most 1 (a public bound; larger rows are scaled down).  The labels are
# declared public (``classes=``): read from ``y`` they would be released without privacy.
Z = rng.normal(size=(20_000, 4)) / 3
y = (rng.random(len(Z)) < 1 / (1 + np.exp(-(Z @ [4.0, -3.0, 0.0, 1.5] + 0.5)))).astype(int)
clf = DPBayesianLogisticRegression(epsilon=1.0, classes=[0, 1], random_state=0).fit(Z, y)
print("posterior mean", np.round(clf.coef_.ravel(), 2), "intercept", np.round(clf.intercept_, 2))
print("posterior sd  ", np.round(np.sqrt(np.diag(clf.coef_cov_)), 2))
print("training accuracy", round(clf.score(Z, y), 3), "| releases:",
      [r["name"] for r in clf.privacy_report_["releases"]])
