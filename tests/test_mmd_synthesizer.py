"""DPMMDSynthesizer end to end: sampling, dtypes, chunked fitting, privacy report, utility."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA

from skdpgen import DPMMDSynthesizer, PrivacyLedger
from skdpgen.encoding import TabularEncoder
from skdpgen.metrics import tstr_score
from skdpgen.mmd.synthesizer import _COUNT_WEIGHT
from skdpgen.privacy import gdp_epsilon, gdp_mu

FAST = dict(n_iter=300, batch_size=256, hidden=(64, 64), latent_dim=8, device="cpu")



def make_table(n, seed):
    """Two classes differing in a continuous, an integer, a categorical and a nullable column."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = pd.DataFrame({
        "income": np.clip(rng.normal(40 + 20 * y, 10), 0, 100),
        "age": np.clip(rng.normal(30 + 15 * y, 8), 18, 90).round().astype(int),
        "city": np.where(rng.random(n) < 0.2 + 0.6 * y, "north", np.where(rng.random(n) < 0.5, "south", "east")),
        "score": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 1, n) + 0.5 * y),
    })
    X["city"] = X["city"].astype(object)
    labels = np.where(y == 1, "yes", "no")
    return X, pd.Series(labels, name="label")


SCHEMA = {
    "income": {"type": "continuous", "bounds": [0, 100]},
    "age": {"type": "integer", "bounds": [18, 90]},
    "city": {"type": "categorical", "categories": ["east", "north", "south"]},
    "score": {"type": "continuous", "bounds": [0, 1.5], "nullable": True},
    "label": {"type": "categorical", "categories": ["no", "yes"]},
    "__target__": "label",
}


@pytest.fixture(scope="module")
def table():
    return make_table(3000, 0)


@pytest.fixture(scope="module")
def fitted(table):
    X, y = table
    return DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, random_state=0, **FAST).fit(X, y)


def test_sample_keeps_columns_dtypes_categories_and_labels(fitted, table):
    X, _ = table
    X_fake, y_fake = fitted.sample(500, random_state=1, return_y=True)
    assert list(X_fake.columns) == list(X.columns)
    assert (X_fake.dtypes == X.dtypes).all()
    assert set(X_fake["city"]) <= {"east", "north", "south"}
    assert X_fake["income"].between(0, 100).all() and X_fake["age"].between(18, 90).all()
    assert set(y_fake) <= {"no", "yes"} and y_fake.name == "label" and len(y_fake) == 500
    assert X_fake["score"].isna().any()  # missing values are modelled, not dropped
    again = fitted.sample(500, random_state=1, return_y=True)
    pd.testing.assert_frame_equal(X_fake, again[0])
    assert fitted.get_feature_names_out().tolist() == list(X.columns)


def test_class_conditional_structure_is_learned_without_privacy():
    X, y = make_table(4000, 1)
    X_te, y_te = make_table(2000, 2)
    syn = DPMMDSynthesizer(epsilon=math.inf, schema=SCHEMA, random_state=0, **FAST).fit(X, y)
    X_fake, y_fake = syn.sample(4000, random_state=0, return_y=True)
    assert abs((y_fake == "yes").mean() - (y == "yes").mean()) < 0.03
    # class-conditional means of the continuous column are reproduced (true gap 20)
    gap = X_fake["income"][y_fake == "yes"].mean() - X_fake["income"][y_fake == "no"].mean()
    assert 14 < gap < 26
    assert abs(X_fake["score"].isna().mean() - 0.2) < 0.06
    auc = tstr_score(syn, X_te, y_te, n_samples=4000)
    assert auc > 0.9  # the real-data ceiling on this table is about 0.97


def test_private_fit_keeps_utility(table):
    X, y = table
    X_te, y_te = make_table(2000, 3)
    syn = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, random_state=0, **FAST).fit(X, y)
    assert tstr_score(syn, X_te, y_te, n_samples=3000) > 0.85


def test_privacy_report_composes_to_the_target(fitted):
    rep = fitted.privacy_report_
    assert rep["neighbouring"] == "add/remove one row"
    assert rep["epsilon"] <= 1.0 + 1e-9 and rep["delta"] <= 1e-5 * (1 + 1e-12)
    (release,) = rep["releases"]
    sens = math.sqrt(1 + _COUNT_WEIGHT**2)
    assert release["sensitivity"] == pytest.approx(sens)
    assert release["noise_std"] == pytest.approx(sens / gdp_mu(1.0, 1e-5), rel=1e-9)


def test_estimated_schema_is_charged_and_total_composes_exactly(table):
    X, y = table
    ledger = PrivacyLedger()
    syn = DPMMDSynthesizer(epsilon=2.0, delta=1e-5, random_state=0, ledger=ledger, **FAST).fit(X, y)
    names = [r.name for r in ledger.entries]
    assert names[0] == "schema" and names[-1] == "DPMMDSynthesizer.embedding"
    mus = [r.mu for r in ledger.entries]
    extra = sum(r.extra_delta for r in ledger.entries)
    eps = gdp_epsilon(math.sqrt(sum(m * m for m in mus)), 1e-5 - extra)
    assert eps == pytest.approx(2.0, rel=1e-6)
    assert ledger.spent()[0] == pytest.approx(2.0, rel=1e-6)
    assert syn.privacy_report_["epsilon"] == pytest.approx(2.0, rel=1e-6)
    # the schema was estimated, not read: bounds lie on the public grid and cover the data
    lo, hi = syn.schema_["income"].bounds
    assert lo <= np.percentile(X["income"], 1) and hi >= np.percentile(X["income"], 99)


def test_partial_fit_chunks_release_the_same_embedding_as_fit(table):
    X, y = table
    full = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, random_state=3, n_iter=0, device="cpu").fit(X, y)
    chunked = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, random_state=3, n_iter=0, device="cpu")
    for start in range(0, len(X), 700):
        chunked.partial_fit(X.iloc[start:start + 700], y.iloc[start:start + 700])
    with pytest.raises(Exception, match="finalize|fitted"):
        chunked.sample(1)
    chunked.finalize()
    torch.testing.assert_close(full.embedding_, chunked.embedding_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(full.class_prior_, chunked.class_prior_)
    assert not hasattr(chunked, "_sums")  # the exact sums are gone after the release


def test_numpy_in_numpy_out_and_unconditional():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(500, 3))
    schema = {f"x{i}": {"type": "continuous", "bounds": [0, 1]} for i in range(3)}
    syn = DPMMDSynthesizer(epsilon=1.0, schema=schema, random_state=0, **FAST).fit(X)
    out = syn.sample(20)
    assert isinstance(out, np.ndarray) and out.shape == (20, 3)
    with pytest.raises(ValueError, match="return_y"):
        syn.sample(5, return_y=True)


@pytest.mark.parametrize("features", ["rff", "ntk", "perceptual"])
def test_other_feature_maps_fit_and_sample(table, features):
    X, y = table
    extra = {}
    if features == "perceptual":
        # an extractor fitted on PUBLIC data of the same schema (here: a fresh draw)
        public, _ = make_table(500, 99)
        enc = TabularEncoder({k: v for k, v in SCHEMA.items() if k not in ("label", "__target__")}).fit(public)
        extra = {"feature_extractor": PCA(n_components=5).fit(enc.transform(public)), "perceptual_moments": 2}
    syn = DPMMDSynthesizer(features=features, epsilon=1.0, schema=SCHEMA, random_state=0, **FAST, **extra)
    syn.fit(X, y)
    X_fake = syn.sample(100, random_state=0)
    assert X_fake.shape == (100, X.shape[1])
    assert syn.privacy_report_["epsilon"] <= 1.0 + 1e-9


def test_score_prefers_a_trained_generator(table):
    X, y = table
    X_te, y_te = make_table(1000, 5)
    untrained = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, random_state=0, **{**FAST, "n_iter": 0}).fit(X, y)
    trained = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, random_state=0, **FAST).fit(X, y)
    assert trained.score(X_te, y_te) > untrained.score(X_te, y_te)
    assert trained.score(X_te, y_te) <= 0.0
    assert trained.score(X_te, y_te) == trained.score(X_te, y_te)


def test_device_auto_is_cpu_without_cuda(fitted):
    if not torch.cuda.is_available():
        assert fitted.device_.type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            DPMMDSynthesizer(device="cuda", schema=SCHEMA).fit(*make_table(50, 0))


def test_global_rng_untouched(table):
    X, y = table
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, random_state=0, **{**FAST, "n_iter": 5}).fit(X, y).sample(10)
    assert np.array_equal(np_state, np.random.get_state()[1])
    assert torch.equal(torch_state, torch.get_rng_state())


# ----------------------------------------------------------------------------- failed fits
TINY = dict(n_iter=2, batch_size=16, hidden=(8,), hermite_order=2, latent_dim=4, random_state=0, device="cpu")


def test_failed_fit_keeps_no_exact_statistics_and_partial_fit_starts_afresh(table):
    X, y = table
    ledger = PrivacyLedger(max_epsilon=0.5)
    syn = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, ledger=ledger, **TINY)
    with pytest.raises(Exception, match="max_epsilon"):
        syn.fit(X, y)  # the ledger refuses the release
    assert not any(hasattr(syn, a) for a in ("_sums", "_counts", "_stream_has_y"))
    assert ledger.entries == []
    syn.set_params(ledger=None)
    syn.partial_fit(X.iloc[:1000], y.iloc[:1000])  # a fresh stream, no AttributeError
    syn.partial_fit(X.iloc[1000:], y.iloc[1000:])
    syn.finalize()
    ref = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, **{**TINY, "n_iter": 0}).fit(X, y)
    torch.testing.assert_close(syn.embedding_, ref.embedding_, rtol=1e-5, atol=1e-7)


def test_failed_fit_without_schema_keeps_no_unrecorded_schema(table):
    X, y = table
    syn = DPMMDSynthesizer(epsilon=1.0, ledger=PrivacyLedger(max_epsilon=0.5), **TINY)
    with pytest.raises(Exception, match="max_epsilon"):
        syn.fit(X, y)
    # the DP schema was estimated but its release was refused: nothing derived from the rows stays
    assert not any(hasattr(syn, a) for a in ("_sums", "_counts", "schema_", "encoder_", "classes_"))


def test_encoder_error_part_way_deletes_the_sums(table):
    X, y = table
    bad = X.copy()
    bad.loc[2500, "city"] = "atlantis"  # in a later chunk: earlier chunks were already summed
    syn = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, chunk_size=500, **TINY)
    with pytest.raises(ValueError, match="not among the schema's categories"):
        syn.fit(bad, y)
    assert not hasattr(syn, "_sums") and not hasattr(syn, "_counts")
    # partial_fit: a rejected chunk adds none of its rows, the stream goes on
    syn.partial_fit(X.iloc[:2000], y.iloc[:2000])
    before = syn._counts.clone()
    with pytest.raises(ValueError, match="not among the schema's categories"):
        syn.partial_fit(bad.iloc[2000:], y.iloc[2000:])
    torch.testing.assert_close(syn._counts, before)
    syn.partial_fit(X.iloc[2000:], y.iloc[2000:])
    assert float(syn._counts.sum()) == len(X)
    # a rejected first chunk starts no stream
    fresh = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, chunk_size=500, **TINY)
    with pytest.raises(ValueError, match="not among the schema's categories"):
        fresh.partial_fit(bad, y)
    assert not hasattr(fresh, "_sums")


def test_failed_finalize_deletes_the_sums(table):
    X, y = table
    syn = DPMMDSynthesizer(epsilon=1.0, schema=SCHEMA, ledger=PrivacyLedger(max_epsilon=0.5), **TINY)
    syn.partial_fit(X, y)
    with pytest.raises(Exception, match="max_epsilon"):
        syn.finalize()
    assert not hasattr(syn, "_sums") and not hasattr(syn, "_counts")
    with pytest.raises(ValueError, match="nothing to finalize"):
        syn.finalize()


# ----------------------------------------------------------------------------- estimated schema, missing values
def test_rare_missing_value_without_schema_is_imputed_not_fatal():
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame({"a": rng.uniform(0, 10, n), "k": rng.integers(0, 50, n).astype(float),
                      "m": pd.array(rng.integers(0, 9, n), dtype="Int64")})
    X.loc[7, "a"] = np.nan
    X.loc[11, "m"] = pd.NA
    with warnings.catch_warnings(record=True) as record:  # a warning, if any, reads only the noisy counts
        warnings.simplefilter("always")
        syn = DPMMDSynthesizer(epsilon=5.0, **TINY).fit(X)
    imputation = [w for w in record if "imputed" in str(w.message)]
    assert len(imputation) <= 1  # at most one warning per fit
    assert not any(ch.isdigit() for w in imputation for ch in str(w.message))  # no count
    assert syn.schema_["a"].missing == "impute" and not syn.schema_["a"].nullable
    out = syn.sample(500, random_state=0)
    assert not out.isna().any().any()
    assert (out.dtypes == X.dtypes).all()


# ----------------------------------------------------------------------------- dtypes of numpy input
@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.float32, np.float64])
def test_numpy_input_dtype_is_kept(dtype):
    rng = np.random.default_rng(0)
    A = rng.integers(0, 10, size=(400, 3)).astype(dtype)
    schema = {f"x{i}": {"type": "integer", "bounds": [0, 9]} for i in range(3)}
    for kw in ({"schema": schema}, {"epsilon": 8.0}):  # declared and DP-estimated schema
        out = DPMMDSynthesizer(**{**TINY, **kw}).fit(A).sample(50)
        assert isinstance(out, np.ndarray) and out.dtype == dtype and out.shape == (50, 3)


# ----------------------------------------------------------------------------- no data-inferred category list
def test_data_inferred_categorical_dtype_does_not_leak_a_rare_value():
    import pickle

    rng = np.random.default_rng(0)
    values = rng.choice(["red", "green", "blue"], 3000).astype(object)
    values[17] = "RARE_PERSON_NAME"
    X = pd.DataFrame({"colour": pd.Categorical(values), "v": rng.uniform(0, 1, 3000)})
    assert "RARE_PERSON_NAME" in X["colour"].cat.categories  # pandas inferred it from the rows
    model = DPMMDSynthesizer(epsilon=5.0, **TINY).fit(X)
    assert "RARE_PERSON_NAME" not in model.schema_["colour"].categories
    assert b"RARE_PERSON_NAME" not in pickle.dumps(model)
    for dtypes in (model.dtypes_, model.encoder_.dtypes_):
        assert "RARE_PERSON_NAME" not in list(dtypes["colour"].categories)
    out = model.sample(200, random_state=0)
    assert isinstance(out["colour"].dtype, pd.CategoricalDtype)
    assert list(out["colour"].cat.categories) == [*model.schema_["colour"].categories, "(other)"]


def _label_schema(categories):
    return {**{k: v for k, v in SCHEMA.items() if k != "label"},
            "label": {"type": "categorical", "categories": categories}}


@pytest.mark.parametrize("kind", ["category", "object", "int32", "bool", "Int64"])
def test_sample_return_y_keeps_the_label_dtype(table, kind):
    # a category y used to come back as str; its categories are the released classes only
    X, y = table
    yes = (y == "yes").to_numpy()
    if kind == "category":  # "maybe" never occurs: it must not reach the fitted estimator
        labels = y.astype(pd.CategoricalDtype(["yes", "no", "maybe"], ordered=True))
        classes = ["no", "yes"]
    elif kind == "object":
        labels, classes = y.astype(object), ["no", "yes"]
    elif kind == "bool":
        labels, classes = pd.Series(yes, name="label"), [False, True]
    else:
        labels, classes = pd.Series(yes.astype(np.int32), name="label").astype(kind), [0, 1]
    syn = DPMMDSynthesizer(epsilon=1.0, schema=_label_schema(classes), random_state=0, **{**FAST, "n_iter": 2})
    _, y_fake = syn.fit(X, labels).sample(50, random_state=0, return_y=True)
    assert y_fake.dtype == (pd.CategoricalDtype(["no", "yes"], ordered=True) if kind == "category" else labels.dtype)
    assert set(y_fake.tolist()) <= set(classes) and y_fake.name == "label"
    if kind == "category":
        assert list(y_fake.cat.categories) == ["no", "yes"] and "maybe" not in repr(syn.__dict__)


def test_perceptual_fit_leaves_the_callers_module_unchanged(table):
    X, y = table
    n_out = TabularEncoder({k: v for k, v in SCHEMA.items() if k not in ("label", "__target__")}).fit(X).n_outputs_
    net = torch.nn.Linear(n_out, 4).to(torch.float64).train()
    syn = DPMMDSynthesizer(features="perceptual", feature_extractor=net, epsilon=1.0, schema=SCHEMA, random_state=0,
                           **{**FAST, "n_iter": 2}).fit(X, y)
    assert net.weight.dtype == torch.float64 and net.training
    assert all(p.requires_grad for p in net.parameters())
    assert syn.feature_map_.fn is not net


def test_perceptual_extractor_of_the_wrong_width_names_the_model_space(table):
    X, y = table
    net = torch.nn.Linear(3, 4)
    syn = DPMMDSynthesizer(features="perceptual", feature_extractor=net, epsilon=1.0, schema=SCHEMA, **FAST)
    with pytest.raises(ValueError, match=r"expects 3 inputs while the model space has 8 columns.*'income', 'age', "
                                         r"'city=east'.*get_feature_names_out"):
        syn.fit(X, y)


def test_large_samples_are_decoded_block_by_block():
    # more rows than one decoding block: same columns and dtypes, every row decoded, a fresh RangeIndex
    from skdpgen.mmd import synthesizer

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400).clip(-3, 3), "c": rng.choice(["x", "y", "z"], 400)})
    model = DPMMDSynthesizer(epsilon=float("inf"), n_iter=5, chunk_size=1000, random_state=0).fit(X)
    n = synthesizer._DECODE_ROWS + 1234
    out = model.sample(n, random_state=0)
    assert len(out) == n and list(out.dtypes) == list(model.sample(5, random_state=0).dtypes)
    assert out.index.equals(pd.RangeIndex(n)) and not out.isna().any().any()
    assert set(out["c"]) <= {"x", "y", "z", "(other)"}  # the estimated schema's slot for unreleased values
