"""DPFlowSynthesizer: exact density in original units, DP-SGD release, labels, conditional sampling."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skdpgen import PrivacyLedger, PrivacyRelease
from skdpgen.flows import DPFlowSynthesizer
from skdpgen.privacy import gdp_mu

FAST = dict(n_layers=4, hidden=(32, 32), epochs=8, batch_size=256, device="cpu")



def mixed_table(n, seed):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(0, 1, n).clip(-4, 4), "b": rng.integers(0, 10, n),
                      "c": rng.choice(["x", "y", "z"], n, p=[0.5, 0.3, 0.2])})
    X["c"] = X["c"].astype(object)
    return X


SCHEMA = {"a": {"type": "continuous", "bounds": [-4, 4]}, "b": {"type": "integer", "bounds": [0, 9]},
          "c": {"type": "categorical", "categories": ["x", "y", "z"]}}


def test_density_in_original_units_integrates_to_one():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"v": rng.normal(50, 10, 3000).clip(0, 100)})
    flow = DPFlowSynthesizer(schema={"v": {"type": "continuous", "bounds": [0, 100]}}, epsilon=math.inf,
                             random_state=0, **FAST).fit(X)
    grid = np.linspace(0, 100, 4001)
    dens = np.exp(flow.score_samples(pd.DataFrame({"v": grid})))
    mass = np.trapezoid(dens, grid)
    assert 0.97 < mass < 1.0 + 1e-3  # the flow's mass outside the public bounds is clipped at sampling
    assert np.isneginf(flow.score_samples(pd.DataFrame({"v": [-1.0, 101.0]}))).all()


def test_non_private_log_likelihood_close_to_truth():
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"v": rng.normal(0, 1, 6000).clip(-5, 5)})
    X_te = pd.DataFrame({"v": rng.normal(0, 1, 3000).clip(-5, 5)})
    flow = DPFlowSynthesizer(schema={"v": {"type": "continuous", "bounds": [-5, 5]}}, epsilon=math.inf,
                             random_state=0, **{**FAST, "epochs": 20}).fit(X)
    true = float(np.mean(-0.5 * X_te["v"] ** 2 - 0.5 * math.log(2 * math.pi)))
    assert abs(flow.score(X_te) - true) < 0.05  # measured: 0.0007 nats/row


def test_private_fit_records_dpsgd_release_and_samples_right_types():
    X = mixed_table(3000, 2)
    ledger = PrivacyLedger()
    flow = DPFlowSynthesizer(schema=SCHEMA, epsilon=1.0, random_state=0, ledger=ledger, **FAST).fit(X)
    count, rel = ledger.entries
    assert count.name == "DPFlowSynthesizer.row_count" and count.sensitivity == 1.0
    assert rel.mechanism == "subsampled_gaussian" and rel.epsilon <= 1.0 + 1e-9
    # the sampling rate comes from the DP row count, not from the true n
    assert rel.sample_rate == pytest.approx(256 / flow.n_samples_estimate_)
    assert flow.n_samples_estimate_ != len(X)
    assert flow.dpsgd_.noise_multiplier > 0.5 and flow.privacy_report_["epsilon"] <= 1.0 + 1e-9
    S = flow.sample(500, random_state=0)
    assert list(S.columns) == ["a", "b", "c"] and S.dtypes.to_dict() == X.dtypes.to_dict()
    assert S["b"].between(0, 9).all() and set(S["c"]) <= {"x", "y", "z"}
    assert flow.privacy_report_["neighbouring"] == "add/remove one row"
    fake = flow.sample(1000, random_state=0)
    assert list(fake.columns) == list(X.columns) and (fake.dtypes == X.dtypes).all()
    assert set(fake["c"]) <= {"x", "y", "z"} and fake["b"].between(0, 9).all()
    pd.testing.assert_frame_equal(fake, flow.sample(1000, random_state=0))
    assert np.isfinite(flow.score(mixed_table(200, 3)))


def test_estimated_schema_and_dpsgd_compose_within_budget():
    X = mixed_table(4000, 4)
    ledger = PrivacyLedger()
    DPFlowSynthesizer(epsilon=2.0, random_state=0, ledger=ledger, **{**FAST, "epochs": 2}).fit(X)
    names = [r.name for r in ledger.entries]
    assert names == ["schema", "DPFlowSynthesizer.row_count", "DPFlowSynthesizer.dpsgd"]
    eps, delta = ledger.spent()
    assert eps <= 2.0 + 1e-9 and delta <= 1e-5 * (1 + 1e-9)


def test_budget_refused_before_training():
    from skdpgen.exceptions import PrivacyBudgetExceeded

    ledger = PrivacyLedger(max_epsilon=0.5)
    flow = DPFlowSynthesizer(schema=SCHEMA, epsilon=1.0, ledger=ledger, **FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        flow.fit(mixed_table(500, 0))
    assert len(ledger) == 0 and not hasattr(flow, "model_")


def test_refused_fit_keeps_no_unrecorded_dp_estimates():
    """Without a schema, the DP schema, classes and row count are releases: a fit the ledger refuses
    must not leave them on the object.  A fit larger than the whole budget is refused before any is drawn."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    from skdpgen.exceptions import PrivacyBudgetExceeded

    X, y = labelled_table(3000, 0)
    ledger = PrivacyLedger(max_epsilon=2.0)
    flow = DPFlowSynthesizer(epsilon=4.0, ledger=ledger, **FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        flow.fit(X, y)
    assert len(ledger) == 0
    for name in ("schema_", "classes_", "dtypes_", "encoder_", "n_samples_estimate_", "_joint_schema"):
        assert not hasattr(flow, name), name
    with pytest.raises(NotFittedError):
        check_is_fitted(flow)
    assert flow.get_params()["epsilon"] == 4.0  # the parameters are kept


def labelled_table(n, seed):
    """x depends on the label and on g; k (narrow integer) on g."""
    rng = np.random.default_rng(seed)
    g = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    lab = rng.choice(["no", "yes"], n, p=[0.6, 0.4])
    k = rng.integers(0, 3, n) + (g == "c")
    x = rng.normal(0, 1, n) + 2.0 * (lab == "yes") - 1.0 * (g == "b")
    X = pd.DataFrame({"x": x.clip(-6, 6), "g": g.astype(object), "k": k})
    return X, pd.Series(lab.astype(object), name="lab")


LSCHEMA = {"x": {"type": "continuous", "bounds": [-6, 6]}, "g": {"type": "categorical", "categories": ["a", "b", "c"]},
           "k": {"type": "integer", "bounds": [0, 3]}, "lab": {"type": "categorical", "categories": ["no", "yes"]}}


@pytest.fixture(scope="module")
def labelled_flow():
    X, y = labelled_table(4000, 0)
    return DPFlowSynthesizer(schema=LSCHEMA, epsilon=math.inf, random_state=0, **{**FAST, "epochs": 20}).fit(X, y)


def test_fit_with_label_models_it_jointly_and_samples_it(labelled_flow):
    X, y = labelled_table(4000, 0)
    S, Sy = labelled_flow.sample(4000, random_state=1, return_y=True)
    assert list(S.columns) == ["x", "g", "k"] and Sy.name == "lab" and len(Sy) == 4000
    assert abs((Sy == "yes").mean() - 0.4) < 0.04
    # the label-feature relation is learned: mean of x in each class
    for c, true in (("no", -0.3), ("yes", 1.7)):
        assert abs(S["x"][Sy == c].mean() - true) < 0.3
    # the narrow integer column is modelled as discrete: its conditional pmf given g is close
    assert abs(S["k"][S["g"] == "c"].mean() - 2.0) < 0.25 and S["k"].between(0, 3).all()
    assert S["k"].dtype == X["k"].dtype
    with pytest.raises(ValueError, match="return_y"):
        DPFlowSynthesizer(schema=SCHEMA, epsilon=math.inf, random_state=0, **{**FAST, "epochs": 1}).fit(
            mixed_table(200, 0)).sample(5, return_y=True)


def test_given_label_is_exact_and_given_other_column_is_resampled(labelled_flow):
    S, Sy = labelled_flow.sample(2000, random_state=2, given={"lab": "yes"}, return_y=True)
    assert (Sy == "yes").all() and abs(S["x"].mean() - 1.7) < 0.3
    T = labelled_flow.sample(2000, random_state=3, given={"g": "b", "lab": "no"}, return_y=True)
    assert (T[0]["g"] == "b").all() and (T[1] == "no").all() and abs(T[0]["x"].mean() + 1.0) < 0.35
    U = labelled_flow.sample(300, random_state=4, given={"k": 3})
    assert (U["k"] == 3).all() and (U["g"] == "c").mean() > 0.9  # k = 3 only happens with g = c
    for bad, match in (({"x": 1.0}, "continuous"), ({"nope": 1}, "unknown column"), ({"g": "q"}, "not a category"),
                       ({"k": 7}, "not an integer")):
        with pytest.raises(ValueError, match=match):
            labelled_flow.sample(5, given=bad)


def test_score_without_label_sums_it_out_exactly(labelled_flow):
    X, y = labelled_table(200, 9)
    joint = [labelled_flow.score_samples(X, pd.Series([c] * len(X))) for c in ("no", "yes")]
    np.testing.assert_allclose(labelled_flow.score_samples(X), np.logaddexp(*joint), rtol=1e-10)
    assert labelled_flow.score(X, y) < labelled_flow.score(X)  # log p(x, y) < log p(x)


def test_discrete_part_is_an_exact_probability():
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"g": rng.choice(["a", "b", "c"], 500).astype(object), "k": rng.integers(0, 4, 500)})
    schema = {"g": LSCHEMA["g"], "k": LSCHEMA["k"]}
    flow = DPFlowSynthesizer(schema=schema, epsilon=1.0, random_state=0, **{**FAST, "epochs": 2}).fit(X)
    cells = pd.DataFrame([(g, k) for g in "abc" for k in range(4)], columns=["g", "k"])
    assert np.exp(flow.score_samples(cells)).sum() == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("extra", [dict(n_charts=3), dict(n_components=2)])
def test_charts_and_boosting_keep_a_normalised_density(extra):
    rng = np.random.default_rng(4)
    n = 1500
    g = rng.choice(["a", "b"], n)
    X = pd.DataFrame({"u": np.where(g == "a", rng.normal(-2, 0.7, n), rng.normal(2, 1.0, n)).clip(-5, 5),
                      "g": g.astype(object)})
    schema = {"u": {"type": "continuous", "bounds": [-5, 5]}, "g": {"type": "categorical", "categories": ["a", "b"]}}
    flow = DPFlowSynthesizer(schema=schema, epsilon=math.inf, random_state=0,
                             **{**FAST, "epochs": 3}, **extra).fit(X)
    grid = np.linspace(-5, 5, 2001)
    mass = sum(np.trapezoid(np.exp(flow.score_samples(pd.DataFrame({"u": grid, "g": [c] * len(grid)}))), grid)
               for c in ("a", "b"))
    assert mass == pytest.approx(1.0, abs=0.03)
    assert flow.weights_.sum() == pytest.approx(1.0) and len(flow.weights_) == extra.get("n_components", 1)


def test_boosting_line_search_is_private_and_all_components_are_one_dpsgd_release():
    X, y = labelled_table(2000, 5)
    ledger = PrivacyLedger()
    flow = DPFlowSynthesizer(schema=LSCHEMA, epsilon=1.0, random_state=0, ledger=ledger, n_components=3,
                             **{**FAST, "epochs": 1}).fit(X, y)
    names = [e.name for e in ledger.entries]
    assert names == ["DPFlowSynthesizer.row_count", "DPFlowSynthesizer.line_search[1]",
                     "DPFlowSynthesizer.line_search[2]", "DPFlowSynthesizer.dpsgd"]
    search, sgd = ledger.entries[1], ledger.entries[-1]
    assert search.noise_std == pytest.approx(search.sensitivity / search.mu) and search.noise_std > 100
    assert sgd.steps == flow.dpsgd_.planned_steps == 3 * round(1 / sgd.sample_rate)
    eps, delta = ledger.spent(1e-5)
    assert eps <= 1.0 + 1e-9 and flow.privacy_report_["epsilon"] <= 1.0 + 1e-9
    assert len(flow.model_.components) == 3 and flow.weights_.sum() == pytest.approx(1.0)


def test_categorical_order_and_bad_label():
    X, y = labelled_table(300, 6)
    with pytest.raises(ValueError, match="categorical_order"):
        DPFlowSynthesizer(schema=LSCHEMA, categorical_order=["x"], random_state=0, **FAST).fit(X, y)
    flow = DPFlowSynthesizer(schema=LSCHEMA, categorical_order=["g"], epsilon=math.inf, random_state=0,
                             **{**FAST, "epochs": 1}).fit(X, y)
    assert [grp[0] for grp in flow._groups] == ["g", "lab", "k"]
    with pytest.raises(ValueError, match="(also|like) a column of X"):
        DPFlowSynthesizer(schema=LSCHEMA, random_state=0, **FAST).fit(X.assign(lab=y), y)


def test_grid_search_selects_by_held_out_likelihood_and_ledger_counts_every_fit():
    from sklearn.model_selection import GridSearchCV

    X = mixed_table(600, 5)
    ledger = PrivacyLedger()
    search = GridSearchCV(DPFlowSynthesizer(schema=SCHEMA, random_state=0, ledger=ledger, **{**FAST, "epochs": 1}),
                          {"epsilon": [0.5, 4.0], "n_layers": [2, 4]}, cv=2).fit(X)
    assert len(ledger) == 2 * (4 * 2 + 1)  # (row count + DP-SGD) per fit: 4 candidates x 2 folds + refit
    assert np.isfinite(search.best_score_) and search.best_params_["epsilon"] in (0.5, 4.0)
    eps, _ = ledger.spent()
    assert eps <= 2 * (0.5 + 0.5 + 4.0 + 4.0) + search.best_params_["epsilon"] + 1e-9  # <= basic composition


def test_missing_values_are_modelled_and_reproduced():
    rng = np.random.default_rng(8)
    n = 1500
    X = pd.DataFrame({"v": rng.normal(0, 1, n).clip(-4, 4), "c": rng.choice(["x", "y"], n).astype(object)})
    X.loc[rng.random(n) < 0.2, "v"] = np.nan
    X.loc[rng.random(n) < 0.1, "c"] = None
    schema = {"v": {"type": "continuous", "bounds": [-4, 4], "nullable": True},
              "c": {"type": "categorical", "categories": ["x", "y"], "nullable": True}}
    flow = DPFlowSynthesizer(schema=schema, epsilon=math.inf, random_state=0, **{**FAST, "epochs": 10}).fit(X)
    S = flow.sample(3000, random_state=0)
    assert abs(S["v"].isna().mean() - 0.2) < 0.04 and abs(S["c"].isna().mean() - 0.1) < 0.03
    assert np.isfinite(flow.score_samples(X)).all()
    only_missing = flow.sample(200, random_state=1, given={"c": None})
    assert only_missing["c"].isna().all()
    # a nullable continuous column can be fixed to "missing", never to a value (its indicator is not its value)
    assert flow.sample(100, random_state=2, given={"v": None})["v"].isna().all()
    with pytest.raises(ValueError, match="cannot be conditioned on a value") as err:
        flow.sample(5, given={"v": 0.0})
    assert "(discrete: ['c'])" in str(err.value)


TINY = dict(n_layers=2, hidden=(16, 16), epochs=1, batch_size=256, device="cpu")


@pytest.mark.parametrize("labels, rare", [(["no", "yes"], "rare"), ([0, 1], 7)])
def test_unreleased_labels_are_left_out_with_a_warning(labels, rare):
    # without a schema the classes are estimated with DP: a label held by 3 rows does not pass the
    # threshold; its rows are left out (not merged into an "(other)" class that sample would return)
    rng = np.random.default_rng(11)
    n = 3000
    X = pd.DataFrame({"a": rng.normal(0, 1, n).clip(-4, 4)})
    y = pd.Series(rng.choice(np.asarray(labels, dtype=object), n), name="lab")
    y[:3] = rare
    with pytest.warns(UserWarning, match="some rows have labels") as record:
        flow = DPFlowSynthesizer(epsilon=5.0, random_state=0, **TINY).fit(X, y)
    message = next(str(w.message) for w in record if "some rows" in str(w.message))
    assert not any(ch.isdigit() for ch in message)  # the number of rows left out is not released
    assert sorted(flow.classes_.tolist()) == sorted(labels)
    _, Sy = flow.sample(2000, random_state=0, return_y=True)
    assert Sy.notna().all() and set(Sy) <= set(labels)
    assert flow.encoder_.schema_["lab"].unknown == "error"
    scores = flow.score_samples(X.iloc[:6], y.iloc[:6])  # a label that is not a class has probability 0
    assert np.isneginf(scores[:3]).all() and np.isfinite(scores[3:]).all()


def test_integer_values_out_of_bounds_or_fractional_score_minus_inf():
    rng = np.random.default_rng(12)
    n = 600
    X = pd.DataFrame({"k": pd.array(rng.integers(0, 5, n), dtype="Int64"), "a": rng.normal(0, 1, n).clip(-4, 4),
                      "w": rng.integers(0, 100, n)})
    X.loc[::10, "k"] = pd.NA
    schema = {"k": {"type": "integer", "bounds": [0, 4], "nullable": True},
              "a": {"type": "continuous", "bounds": [-4, 4]}, "w": {"type": "integer", "bounds": [0, 99]}}
    flow = DPFlowSynthesizer(schema=schema, epsilon=math.inf, random_state=0, **TINY).fit(X)
    assert [g[2] for g in flow._groups if g[0] == "k"] == ["levels", "onehot"]  # k is discrete, w dequantised
    k = pd.array([0, 4, pd.NA, 7, -1, 5, 2.4], dtype=object)
    scores = flow.score_samples(pd.DataFrame({"k": k, "a": 0.0, "w": 10}))
    assert np.isfinite(scores[:3]).all() and np.isneginf(scores[3:]).all()
    # a wide (dequantised) integer column: a fractional value has probability 0 too
    scores = flow.score_samples(pd.DataFrame({"k": 1, "a": 0.0, "w": [0, 99, 10.5, 99.4, -0.3]}))
    assert np.isfinite(scores[:2]).all() and np.isneginf(scores[2:]).all()


def test_unreachable_epsilon_error_names_the_users_epsilon():
    import re

    X = mixed_table(300, 13)
    with pytest.raises(ValueError, match=r"at epsilon=0\.001:.*use fewer epochs.* a larger epsilon") as err:
        DPFlowSynthesizer(schema=SCHEMA, epsilon=0.001, random_state=0, **{**TINY, "batch_size": 64}).fit(X)
    # public terms only: no sampling rate or number of steps (they derive from the noisy row count)
    msg = str(err.value)
    assert "sampling rate" not in msg and "step" not in msg
    assert set(re.findall(r"\d+(?:\.\d+)?(?:e\d+)?", msg)) <= {"0.001", "1e4", "1", "64"}


def test_concurrent_fits_on_a_shared_ledger_never_keep_an_unrecorded_model(monkeypatch):
    """Two fits in threads, one ledger affording one: the budget is reserved before any noise or training,
    so the refused fit is left without a model and the ledger records every fit that trained."""
    import threading

    from sklearn.utils.validation import check_is_fitted

    from skdpgen.exceptions import PrivacyBudgetExceeded
    from skdpgen.flows import synthesizer

    barrier = threading.Barrier(2)
    real = synthesizer.train_dpsgd

    def train_together(*args, **kwargs):  # before the fix both fits passed the check and trained
        try:
            barrier.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(synthesizer, "train_dpsgd", train_together)
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"v": rng.normal(0, 1, 300).clip(-4, 4)})
    ledger = PrivacyLedger(max_epsilon=1.2)
    flows = [DPFlowSynthesizer(schema={"v": {"type": "continuous", "bounds": [-4, 4]}}, epsilon=1.0, random_state=i,
                               ledger=ledger, n_layers=2, hidden=(8,), epochs=1, batch_size=64, device="cpu")
             for i in range(2)]
    errors = [None, None]

    def run(i):
        try:
            flows[i].fit(X)
        except BaseException as exc:
            errors[i] = exc
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    refused = [i for i, e in enumerate(errors) if e is not None]
    assert len(refused) == 1 and isinstance(errors[refused[0]], PrivacyBudgetExceeded)
    bad, good = flows[refused[0]], flows[1 - refused[0]]
    assert not hasattr(bad, "model_") and not hasattr(bad, "n_samples_estimate_")
    with pytest.raises(NotFittedError):
        check_is_fitted(bad)
    check_is_fitted(good)
    by_owner = {o: [e.name for e in ledger.entries if e.owner == f"DPFlowSynthesizer#{id(f):x}"]
                for o, f in (("good", good), ("bad", bad))}
    # the refused fit drew its row count before its DP-SGD plan could be checked: that release is recorded
    assert by_owner == {"good": ["DPFlowSynthesizer.row_count", "DPFlowSynthesizer.dpsgd"],
                        "bad": ["DPFlowSynthesizer.row_count"]}
    assert ledger.spent()[0] <= 1.2


def test_inferred_categorical_dtype_does_not_leak_rare_values():
    import pickle

    rng = np.random.default_rng(14)
    n = 3000
    values = rng.choice(["red", "green", "blue"], n).astype(object)
    values[17] = "RARE_PERSON_NAME"
    X = pd.DataFrame({"c": pd.Categorical(values), "a": rng.normal(0, 1, n).clip(-4, 4)})
    flow = DPFlowSynthesizer(epsilon=5.0, random_state=0, **TINY).fit(X)
    assert b"RARE_PERSON_NAME" not in pickle.dumps(flow)
    assert "RARE_PERSON_NAME" not in list(flow.dtypes_["c"].categories)
    assert "RARE_PERSON_NAME" not in set(flow.sample(500, random_state=0)["c"].astype(object))


def test_missing_value_in_a_column_the_model_never_leaves_missing_scores_minus_inf():
    """A DP-estimated schema imputes rare missing values (missing="impute") when encoding; as a
    density, a missing value in such a column has probability 0."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=3000), "b": rng.normal(size=3000)})
    flow = DPFlowSynthesizer(epsilon=5.0, n_layers=2, hidden=(8,), epochs=1, batch_size=256, device="cpu",
                             random_state=0).fit(X)
    assert flow.schema_["a"].missing == "impute" and not flow.schema_["a"].nullable
    scores = flow.score_samples(pd.DataFrame({"a": [0.0, np.nan], "b": [0.0, 0.0]}))
    assert np.isfinite(scores[0]) and scores[1] == -np.inf


def test_sequential_fits_on_a_shared_ledger_compose_tightly():
    """The reservation is the exact plan (DP-SGD runs compose jointly in the ledger), not a
    basic-composition bound: two fits at epsilon=1 fit under max_epsilon=1.6."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=600).clip(-3, 3)})
    schema = {"a": {"type": "continuous", "bounds": [-3, 3]}}
    ledger = PrivacyLedger(max_epsilon=1.6)
    for seed in (0, 1):
        DPFlowSynthesizer(epsilon=1.0, schema=schema, ledger=ledger, n_layers=2, hidden=(8,), epochs=1,
                          batch_size=64, device="cpu", random_state=seed).fit(X)
    assert len(ledger) == 4 and ledger.spent()[0] <= 1.6


def test_a_fit_refused_after_drawing_records_what_it_drew():
    # the ledger affords the schema estimate and the row count but not the DP-SGD plan: the refusal comes
    # after those two were drawn, so they are recorded (whether a later step fails depends on the rows)
    from skdpgen.exceptions import PrivacyBudgetExceeded

    X, y = labelled_table(3000, 0)
    ledger = PrivacyLedger(max_epsilon=4.4)
    ledger.record(PrivacyRelease.gaussian("earlier", mu=gdp_mu(4.0, 1e-6), delta=1e-6))
    flow = DPFlowSynthesizer(epsilon=4.0, ledger=ledger, random_state=0, **FAST)
    with pytest.raises(PrivacyBudgetExceeded):
        flow.fit(X, y)
    names = [e.name for e in ledger.entries]
    assert names == ["earlier", "schema", "DPFlowSynthesizer.row_count"]
    assert ledger.spent()[0] <= 4.4
    assert not hasattr(flow, "n_samples_estimate_")


def test_missing_value_in_an_imputed_boolean_scores_minus_inf():
    # the DP schema imputes a boolean column's rare missing values; the model never generates one
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"v": rng.normal(0, 1, 2000).clip(-4, 4), "b": pd.array(rng.random(2000) < 0.3, "boolean")})
    X.loc[5, "b"] = pd.NA
    flow = DPFlowSynthesizer(epsilon=4.0, random_state=0, **FAST).fit(X)
    assert flow.schema_["b"].missing == "impute" and not flow.schema_["b"].nullable
    scores = flow.score_samples(X.iloc[4:7])
    assert np.isfinite(scores[[0, 2]]).all() and scores[1] == -np.inf


def test_large_samples_are_drawn_block_by_block():
    from skdpgen.flows import synthesizer

    X = mixed_table(300, 0)
    flow = DPFlowSynthesizer(schema=SCHEMA, epsilon=float("inf"), random_state=0, **FAST).fit(X)
    n = synthesizer._SAMPLE_ROWS + 77
    out = flow.sample(n, random_state=0)
    assert len(out) == n and out.index.equals(pd.RangeIndex(n))
    assert list(out.dtypes) == list(flow.sample(5, random_state=0).dtypes)
    pd.testing.assert_frame_equal(flow.sample(n, random_state=0), out)  # reproducible across blocks


def test_missing_values_of_a_nullable_column_score_their_probability():
    # the flow learns a uniform over the range at a missing value, divided out by score_samples: the missing
    # rows' total mass is P(missing) (was exp(score) = 6.1 for P = 0.3: the density of a spike at the placeholder)
    from skdpgen import ColumnSpec, Schema

    rng = np.random.default_rng(3)
    n = 4000
    v = rng.normal(0, 1, n).clip(-4, 4)
    v[rng.random(n) < 0.3] = np.nan
    w = rng.normal(0, 1, n).clip(-4, 4) + np.nan_to_num(v) * 0.5
    schema = Schema([ColumnSpec("v", "continuous", bounds=(-4, 4), nullable=True),
                     ColumnSpec("w", "continuous", bounds=(-6, 6))])
    flow = DPFlowSynthesizer(schema=schema, epsilon=float("inf"), epochs=15, batch_size=256, hidden=(32, 32),
                             n_layers=4, random_state=0, device="cpu").fit(pd.DataFrame({"v": v, "w": w}))
    g = np.linspace(-6, 6, 601)
    missing = np.trapezoid(np.exp(flow.score_samples(pd.DataFrame({"v": np.full(len(g), np.nan), "w": g}))), g)
    gv = np.linspace(-4, 4, 81)
    V, W = np.meshgrid(gv, g)
    dens = np.exp(flow.score_samples(pd.DataFrame({"v": V.ravel(), "w": W.ravel()}))).reshape(W.shape)
    observed = np.trapezoid(np.trapezoid(dens, gv, axis=1), g)
    assert abs(missing - 0.3) < 0.05  # measured 0.288
    assert abs(missing + observed - 1.0) < 0.03  # measured 0.987
