"""DPLatentDirichletAllocation: agreement with scikit-learn's online VB, sensitivity, topic recovery, sampling."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from sklearn.decomposition import LatentDirichletAllocation
from sklearn.decomposition._lda import _update_doc_distribution

from skdpgen import DPLatentDirichletAllocation
from skdpgen.bayes import LDAModel
from skdpgen.bayes.lda import lda_e_step

INF = float("inf")


def lda_corpus(n_docs, seed, n_topics=4, n_words=60, length=40):
    topics = np.random.default_rng(123).dirichlet(np.full(n_words, 0.05), size=n_topics)
    rng = np.random.default_rng(seed)
    theta = rng.dirichlet(np.full(n_topics, 0.2), size=n_docs)
    return rng.multinomial(length, theta @ topics), topics


def topic_l1_error(components, topics):
    est = components / components.sum(axis=1, keepdims=True)
    cost = np.abs(est[:, None, :] - topics[None]).sum(-1)
    r, c = linear_sum_assignment(cost)
    return float(cost[r, c].mean())


@pytest.fixture(scope="module")
def small_corpus():
    X, topics = lda_corpus(300, 0)
    return sp.csr_matrix(X.astype(float)), topics


def test_vectorised_e_step_matches_sklearn(small_corpus):
    X, _ = small_corpus
    lam = np.random.default_rng(1).gamma(100.0, 0.01, (4, X.shape[1])) * 30
    exp_tw = LDAModel(4).project({"lambda": lam})["exp_dirichlet_component"]
    gamma_ref, ss_ref = _update_doc_distribution(X, exp_tw, 0.25, 100, 1e-3, True, None)
    ss_ref = ss_ref * exp_tw
    gamma, ss = lda_e_step(X, exp_tw, 0.25, 100, 1e-3, cal_sstats=True)
    # scikit-learn's Cython e-step uses its own digamma approximation (~1e-8 relative off scipy's)
    np.testing.assert_allclose(gamma, gamma_ref, rtol=1e-5)
    np.testing.assert_allclose(ss, ss_ref, rtol=1e-5, atol=1e-9)
    # subset invariance: a document's result does not depend on the others (per-document stopping)
    g_sub, _ = lda_e_step(X[10:20], exp_tw, 0.25, 100, 1e-3)
    np.testing.assert_allclose(g_sub, gamma[10:20], rtol=1e-12)


def test_perplexity_score_transform_match_sklearn_for_same_topics(small_corpus):
    X, _ = small_corpus
    sk = LatentDirichletAllocation(n_components=4, learning_method="online", max_iter=3, random_state=0).fit(X)
    dp = DPLatentDirichletAllocation(n_components=4, epsilon=INF, max_iter=1, random_state=0).fit(X)
    dp.components_ = sk.components_.copy()
    dp.exp_dirichlet_component_ = sk.exp_dirichlet_component_.copy()
    assert dp.perplexity(X) == pytest.approx(sk.perplexity(X), rel=1e-6)
    assert dp.score(X) == pytest.approx(sk.score(X), rel=1e-6)
    np.testing.assert_allclose(dp.transform(X), sk.transform(X), rtol=1e-5)


@pytest.mark.parametrize("method", ["online", "batch"])
def test_non_private_fit_reproduces_sklearn(small_corpus, method):
    # epsilon=inf follows scikit-learn's schedule: fixed consecutive batches (gen_batches, the last
    # one smaller: 64, 64, 64, 64, 44), rho_t = (offset + t)^-decay counted per minibatch, updates
    # scaled by n_docs / batch rows, lambda and the e-step's gamma drawn from RandomState(seed).
    # The full Reuters comparison is in benchmarks/bench_bayes_lda.py.
    X, _ = small_corpus
    for seed in range(2):
        kw = dict(n_components=4, learning_method=method, max_iter=3, batch_size=64, learning_offset=5.0,
                  learning_decay=0.6, random_state=seed)
        sk = LatentDirichletAllocation(**kw).fit(X)
        dp = DPLatentDirichletAllocation(epsilon=INF, max_doc_length=1000, doc_length=40, **kw).fit(X)
        assert dp.perplexity(X) == pytest.approx(sk.perplexity(X), rel=0.02)
        # same topics up to scikit-learn's Cython digamma approximation (~1e-9 relative here)
        np.testing.assert_allclose(dp.components_, sk.components_, rtol=1e-6, atol=1e-8)
        if method == "online":
            assert dp.n_steps_ == sk.n_batch_iter_ - 1 == 3 * 5
            assert dp.n_samples_estimate_ is None  # no (DP) count: the non-private reference uses n_docs
            assert "fixed consecutive minibatches" in dp.privacy_report_["accounting"]


def test_private_online_mode_uses_poisson_batches(small_corpus, monkeypatch):
    X, _ = small_corpus
    kw = dict(n_components=4, learning_method="online", sample_rate=0.25, max_iter=1, doc_length=40,
              max_doc_length=40, accountant="rdp", random_state=0, verbose=1)
    # epsilon=inf: fixed batches of ceil(0.25 * 300) = 75 documents; finite epsilon: Poisson sampling
    sizes: list[int] = []
    local_step = LDAModel.local_step

    def recording(self, batch, *args, **kwargs):
        sizes.append(int(batch[0].shape[0]))
        return local_step(self, batch, *args, **kwargs)

    monkeypatch.setattr(LDAModel, "local_step", recording)
    for eps, expect_fixed in ((INF, True), (1e6, False)):
        sizes.clear()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            lda = DPLatentDirichletAllocation(epsilon=eps, **kw).fit(X)
        printed = buf.getvalue()
        # verbose prints the batch sizes only without privacy (a Poisson draw would reveal the row count)
        assert ("batch=75" in printed) == expect_fixed and ("sample rate=0.25" in printed) != expect_fixed
        assert lda.n_steps_ == 4
        if expect_fixed:
            assert sizes == [75, 75, 75, 75]
        else:
            assert sizes != [75, 75, 75, 75] and all(40 < b < 110 for b in sizes)
            assert lda.privacy_report_["releases"][0]["mechanism"] == "subsampled_gaussian"


def test_online_mean_doc_length_not_biased_by_zero_start():
    X, _ = lda_corpus(300, 0)  # 40 tokens per document
    lda = DPLatentDirichletAllocation(n_components=4, epsilon=INF, learning_method="online", batch_size=64,
                                      max_iter=1, max_doc_length=100, max_doc_update_iter=20, random_state=0).fit(X)
    assert lda.mean_doc_length_ == pytest.approx(40.0, rel=1e-9)


def test_per_document_statistics_bounded_by_cap():
    rng = np.random.default_rng(0)
    X = sp.csr_matrix(rng.poisson(3.0, size=(40, 25)).astype(float))
    X = sp.vstack([sp.csr_matrix(([500.0], ([0], [3])), shape=(1, 25)), X[1:]], format="csr")  # one long word
    model = LDAModel(3, max_doc_length=30)
    state = model.project({"lambda": rng.gamma(2.0, 1.0, (3, 25))})
    for d in range(X.shape[0]):
        ess = model.local_step((X[d],), state, None)["topic_word"]
        assert ess.min() >= 0
        assert np.linalg.norm(ess) <= np.abs(ess).sum() + 1e-9 <= 30 + 1e-9
    assert model.ess_pieces(25)[0].bound == 30


def test_topic_recovery_improves_with_corpus_size():
    errors = {}
    for n in (1000, 8000):
        X, topics = lda_corpus(n, seed=n)
        kw = dict(n_components=4, max_doc_length=40, doc_topic_prior=0.2, topic_word_prior=0.05, doc_length=40,
                  random_state=0, max_iter=5, max_doc_update_iter=50)
        errors[n, 1.0] = topic_l1_error(DPLatentDirichletAllocation(epsilon=1.0, **kw).fit(X).components_, topics)
        if n == 8000:
            errors[n, INF] = topic_l1_error(DPLatentDirichletAllocation(epsilon=INF, **kw).fit(X).components_, topics)
    # loose, honest bounds: a perfect fit is 0, unrelated topics are ~2
    assert errors[8000, INF] < 0.15
    assert errors[8000, 1.0] < errors[1000, 1.0]
    assert errors[8000, 1.0] < 1.0


def test_privacy_report_and_dp_document_length():
    X, _ = lda_corpus(500, 0)
    lda = DPLatentDirichletAllocation(n_components=4, epsilon=1.0, max_iter=4, max_doc_length=40, random_state=0).fit(X)
    rep = lda.privacy_report_
    assert rep["neighbouring"] == "add/remove one row"
    assert rep["epsilon"] == pytest.approx(1.0)
    names = [r["name"] for r in rep["releases"]]
    assert names == ["DPLatentDirichletAllocation.n_samples", "DPLatentDirichletAllocation.ess_x4"]
    assert rep["sensitivity"]["ess"] == pytest.approx(40 * np.sqrt(1 + 0.1**2))
    assert 1.0 <= lda.mean_doc_length_ <= 40
    # a declared length: no count, all of the budget on the topics
    lda2 = DPLatentDirichletAllocation(n_components=4, epsilon=1.0, max_iter=4, max_doc_length=40, doc_length=40,
                                       random_state=0).fit(X)
    assert [r["name"] for r in lda2.privacy_report_["releases"]] == ["DPLatentDirichletAllocation.ess_x4"]
    assert lda2.noise_std_ < lda.noise_std_


def test_online_mode_accounting():
    X, _ = lda_corpus(400, 0)
    lda = DPLatentDirichletAllocation(n_components=4, epsilon=2.0, learning_method="online", sample_rate=0.25,
                                      max_iter=2, doc_length=40, max_doc_length=40, accountant="rdp",
                                      random_state=0).fit(X)
    assert lda.n_steps_ == 8 and lda.sample_rate_ == 0.25
    rel = lda.privacy_report_["releases"]
    assert len(rel) == 1 and rel[0]["mechanism"] == "subsampled_gaussian" and rel[0]["steps"] == 8
    assert lda.privacy_report_["epsilon"] <= 2.0 + 1e-9
    # batch_size instead of a public rate: a DP count decides q (count_share of the budget)
    lda = DPLatentDirichletAllocation(n_components=4, epsilon=2.0, learning_method="online", batch_size=100,
                                      max_iter=1, doc_length=40, max_doc_length=40, accountant="rdp",
                                      random_state=0).fit(X)
    assert [r["name"] for r in lda.privacy_report_["releases"]][0].endswith("n_samples")
    assert 0.15 < lda.sample_rate_ < 0.4
    assert lda.privacy_report_["epsilon"] <= 2.0 + 1e-9


def test_sample_draws_bag_of_words():
    X, _ = lda_corpus(300, 0)
    lda = DPLatentDirichletAllocation(n_components=4, epsilon=INF, max_iter=5, doc_length=25, random_state=0).fit(X)
    S = lda.sample(400, random_state=0)
    assert sp.issparse(S) and S.shape == (400, X.shape[1]) and S.dtype == np.int64
    lengths = np.asarray(S.sum(axis=1)).ravel()
    assert lengths.min() >= 1 and abs(lengths.mean() - 25) < 1.5
    np.testing.assert_array_equal(S.toarray(), lda.sample(400, random_state=0).toarray())
    # the synthetic word frequencies follow the corpus'
    f_real = X.sum(0) / X.sum()
    f_syn = np.asarray(S.sum(0)).ravel() / S.sum()
    uniform = np.full_like(f_syn, 1.0 / f_syn.size)
    assert np.abs(f_real - f_syn).sum() < 0.5 * np.abs(f_real - uniform).sum()


def test_global_rng_untouched_and_sparse_dense_agree():
    X, _ = lda_corpus(200, 0)
    state = np.random.get_state()
    a = DPLatentDirichletAllocation(n_components=3, epsilon=1.0, max_iter=2, random_state=0).fit(X)
    b = DPLatentDirichletAllocation(n_components=3, epsilon=1.0, max_iter=2, random_state=0).fit(sp.csr_matrix(X))
    assert np.array_equal(np.random.get_state()[1], state[1])
    np.testing.assert_allclose(a.components_, b.components_)
    with pytest.raises(ValueError, match="Negative"):
        DPLatentDirichletAllocation().fit(-np.ones((3, 3)))


def test_engine_score_of_lda_is_the_total_bound_as_sklearn(small_corpus):
    # DPVariationalBayes.score with LDAModel is scikit-learn's LatentDirichletAllocation.score (a total
    # over the documents, like DPLatentDirichletAllocation.score), not a mean per document
    from skdpgen import DPVariationalBayes

    X, _ = small_corpus
    vb = DPVariationalBayes(model=LDAModel(4), epsilon=INF, max_iter=2, random_state=0).fit(X)
    sk = LatentDirichletAllocation(n_components=4, max_iter=1, random_state=0).fit(X)
    sk.components_ = vb.params_["lambda"].copy()
    sk.exp_dirichlet_component_ = vb.params_["exp_dirichlet_component"].copy()
    assert vb.score(X) == pytest.approx(sk.score(X), rel=1e-6)
    assert vb.score(X) < 10 * sk.score(X[:20])  # a total: far below the bound of 20 documents
    assert "TOTAL" in DPVariationalBayes.score.__doc__
