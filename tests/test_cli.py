"""The ``skdpgen`` command line."""

import json
import os

import numpy as np
import pandas as pd
import pytest

from skdpgen import cli
from skdpgen.cli import main


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if the command reaches the fit (which spends the budget)."""
    def refuse(*args, **kwargs):
        raise AssertionError("the fit was reached")
    monkeypatch.setattr(cli, "_synthesizer", refuse)


@pytest.fixture
def spy(monkeypatch):
    """Keep the synthesizer the command builds."""
    made = []
    original = cli._synthesizer

    def build(args, schema):
        made.append(original(args, schema))
        return made[-1]
    monkeypatch.setattr(cli, "_synthesizer", build)
    return made


@pytest.fixture
def csv_table(tmp_path):
    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame({"age": rng.integers(18, 80, n), "hours": rng.uniform(1, 60, n),
                       "sex": rng.choice(["Female", "Male"], n), "income": rng.choice(["low", "high"], n)})
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    schema = {"age": {"type": "integer", "bounds": [17, 90]}, "hours": {"type": "continuous", "bounds": [1, 99]},
              "sex": {"type": "categorical", "categories": ["Female", "Male"]},
              "income": {"type": "categorical", "categories": ["low", "high"]}}
    spath = tmp_path / "schema.json"
    spath.write_text(json.dumps(schema))
    return path, spath, df


def test_synthesize_with_schema_and_target(csv_table, tmp_path, capsys):
    path, spath, df = csv_table
    out, report = tmp_path / "fake.csv", tmp_path / "report.json"
    code = main(["synthesize", str(path), "--epsilon", "1", "--out", str(out), "--schema", str(spath),
                 "--target", "income", "--n-iter", "30", "--n-samples", "123", "--report", str(report)])
    assert code == 0
    fake = pd.read_csv(out)
    assert list(fake.columns) == list(df.columns) and len(fake) == 123
    assert set(fake["income"]) <= {"low", "high"} and set(fake["sex"]) <= {"Female", "Male"}
    rep = json.loads(report.read_text())
    assert rep["epsilon"] <= 1 + 1e-9 and rep["neighbouring"] == "add/remove one row"
    assert "privacy: (" in capsys.readouterr().out


def test_default_row_count_is_the_dp_estimate_not_the_exact_count(csv_table, tmp_path, capsys, spy):
    path, spath, df = csv_table
    out = tmp_path / "fake.csv"
    assert main(["synthesize", str(path), "--out", str(out), "--schema", str(spath), "--target", "income",
                 "--n-iter", "5"]) == 0
    (syn,) = spy
    n = max(1, round(syn.n_samples_estimate_))
    assert n != len(df)  # the DP estimate (noise std about 11 rows here) differs from the exact count
    assert len(pd.read_csv(out)) == n
    text = capsys.readouterr().out
    assert f"wrote {n} synthetic rows" in text and "DP estimate" in text
    assert str(len(df)) not in text.split("privacy:")[0]  # the exact count is never printed


@pytest.mark.parametrize("n", ["0", "-5"])
def test_n_samples_below_one_is_an_error_before_the_fit(csv_table, tmp_path, capsys, no_fit, n):
    path, spath, _ = csv_table
    out = tmp_path / "f.csv"
    assert main(["synthesize", str(path), "--out", str(out), "--schema", str(spath), "--n-samples", n]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--n-samples must be >= 1, got {n}" in err
    assert not out.exists()


def test_bad_paths_and_schema_files_fail_before_the_fit(csv_table, tmp_path, capsys, no_fit):
    path, spath, _ = csv_table
    good = str(tmp_path / "f.csv")
    cases = [
        (["--out", str(tmp_path / "no_such_dir" / "x.csv"), "--schema", str(spath)], "no such folder"),
        (["--out", str(tmp_path), "--schema", str(spath)], "is a folder"),
        (["--out", good, "--schema", str(spath), "--report", str(tmp_path / "nope" / "r.json")], "--report"),
        (["--out", good, "--schema", str(tmp_path / "missing.json")], "missing.json"),
        (["--out", good, "--schema", str(tmp_path)], "cannot read"),
    ]
    broken = tmp_path / "broken.json"
    broken.write_text('{"age": {"type": "integer",')
    cases.append((["--out", good, "--schema", str(broken)], "broken.json is not valid JSON"))
    invalid = tmp_path / "invalid.json"
    invalid.write_text('{"age": {"type": "integer", "bounds": [5, 1]}}')
    cases.append((["--out", good, "--schema", str(invalid)], "invalid.json: column 'age'"))
    for extra, message in cases:
        assert main(["synthesize", str(path), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("skdpgen: error:") and err.count("\n") == 1 and message in err, (extra, err)


def test_target_conflicting_with_the_schema_target(csv_table, tmp_path, capsys, no_fit):
    path, spath, _ = csv_table
    schema = json.loads(spath.read_text())
    spath.write_text(json.dumps({**schema, "__target__": "income"}))
    assert main(["synthesize", str(path), "--out", str(tmp_path / "f.csv"), "--schema", str(spath),
                 "--target", "sex"]) == 2
    err = capsys.readouterr().err
    assert "--target 'sex' conflicts with the target 'income'" in err and err.count("\n") == 1


def test_write_error_after_the_fit_is_one_line(csv_table, tmp_path, capsys, monkeypatch):
    path, spath, _ = csv_table

    def fail(*args, **kwargs):
        raise PermissionError(13, "Permission denied", "fake.csv")
    monkeypatch.setattr(pd.DataFrame, "to_csv", fail)
    assert main(["synthesize", str(path), "--out", str(tmp_path / "fake.csv"), "--schema", str(spath),
                 "--n-iter", "2"]) == 2
    err = capsys.readouterr().err
    assert err == "skdpgen: error: Permission denied: fake.csv\n"


def test_synthesize_without_schema_estimates_it_with_dp(csv_table, tmp_path, capsys):
    path, _, _ = csv_table
    code = main(["synthesize", str(path), "--epsilon", "8", "--out", str(tmp_path / "f.csv"), "--n-iter", "10"])
    assert code == 0
    assert "release schema" in capsys.readouterr().out


def test_errors_are_reported_not_raised(csv_table, tmp_path, capsys):
    path, spath, _ = csv_table
    assert main(["synthesize", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "f.csv")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["synthesize", str(path), "--out", str(tmp_path / "f.csv"), "--target", "nope"]) == 2
    assert "--target" in capsys.readouterr().err
    assert main(["synthesize", str(path), "--out", str(tmp_path / "f.csv"), "--epsilon", "-1",
                 "--schema", str(spath)]) == 2
    assert "epsilon" in capsys.readouterr().err


def test_demo_runs_on_bundled_data(tmp_path, capsys):
    out = tmp_path / "demo.csv"
    assert main(["demo", "--out", str(out), "--n-iter", "30"]) == 0
    text = capsys.readouterr().out
    assert "ROC-AUC" in text and "neighbouring relation" in text
    # the classifier trained on the real rows is labelled as a non-private reference on public data
    (reference,) = [line for line in text.splitlines() if "trained on the real" in line]
    assert "NOT private" in reference and "public demo data" in reference
    fake = pd.read_csv(out)
    assert fake.shape[1] == 31
    # the rows are treated as private: the DP row count is written and shown, not the 398 training rows
    assert len(fake) != 398 and f"wrote {len(fake)} synthetic rows" in text
    assert not any("398" in line for line in text.splitlines() if "privacy" not in line and "release" not in line)


# --- the input is never overwritten ------------------------------------------------------------
def _same_file_cases(path, spath, tmp_path):
    """(extra arguments, words of the message) naming the input CSV or the schema as an output."""
    link = tmp_path / "link.csv"
    link.symlink_to(path)
    hard = tmp_path / "hard.csv"
    os.link(path, hard)
    other = str(tmp_path / "f.csv")
    dotted = str(tmp_path / "sub" / ".." / path.name)
    (tmp_path / "sub").mkdir()
    return [
        (["--out", str(path)], "--out"),
        (["--out", dotted], "--out"),
        (["--out", str(link)], "--out"),
        (["--out", str(hard)], "--out"),
        (["--out", other, "--report", str(path)], "--report"),
        (["--out", str(spath)], "the schema file"),
        (["--out", other, "--report", other], "is the same file as --out"),
    ]


def test_output_naming_the_input_is_refused_before_the_fit(csv_table, tmp_path, capsys, no_fit):
    path, spath, _ = csv_table
    before, schema_before = path.read_bytes(), spath.read_bytes()
    for extra, words in _same_file_cases(path, spath, tmp_path):
        assert main(["synthesize", str(path), "--schema", str(spath), "--n-samples", "3", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith("skdpgen: error:") and err.count("\n") == 1, err
        assert "is the same file as" in err and words in err and "overwrite" in err, (extra, err)
        assert path.read_bytes() == before and spath.read_bytes() == schema_before
    assert not (tmp_path / "f.csv").exists()


def test_demo_refuses_report_over_its_output(tmp_path, capsys, no_fit):
    out = str(tmp_path / "demo.csv")
    assert main(["demo", "--out", out, "--report", out]) == 2
    assert "--report" in capsys.readouterr().err


def test_an_existing_output_file_is_overwritten(csv_table, tmp_path):
    path, spath, df = csv_table
    out = tmp_path / "fake.csv"
    out.write_text("old\n")
    assert main(["synthesize", str(path), "--out", str(out), "--schema", str(spath), "--n-iter", "2",
                 "--n-samples", "7"]) == 0
    fake = pd.read_csv(out)
    assert list(fake.columns) == list(df.columns) and len(fake) == 7


# --- the separator ----------------------------------------------------------------------------
@pytest.mark.parametrize(("sep", "hint"), [(";", "--sep ';'"), ("\t", "--sep '\\t'"), ("|", "--sep '|'")])
def test_a_csv_with_another_separator_is_refused_before_the_fit(csv_table, tmp_path, capsys, no_fit, sep, hint):
    _, _, df = csv_table
    path = tmp_path / "other_sep.csv"
    df.to_csv(path, index=False, sep=sep)
    assert main(["synthesize", str(path), "--out", str(tmp_path / "f.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "one column" in err and hint in err, err


def test_sep_option_reads_and_writes_with_the_separator(csv_table, tmp_path, capsys):
    path, spath, df = csv_table
    semi = tmp_path / "semi.csv"
    df.to_csv(semi, index=False, sep=";")
    out = tmp_path / "fake.csv"
    assert main(["synthesize", str(semi), "--sep", ";", "--out", str(out), "--schema", str(spath),
                 "--target", "income", "--n-iter", "2", "--n-samples", "5"]) == 0
    assert f"fitted {df.shape[1] - 1} columns" in capsys.readouterr().out
    fake = pd.read_csv(out, sep=";")
    assert list(fake.columns) == list(df.columns) and len(fake) == 5
    # a comma-separated file given with --sep ';' is refused as well
    assert main(["synthesize", str(path), "--sep", ";", "--out", str(out), "--schema", str(spath)]) == 2
    assert "--sep ','" in capsys.readouterr().err


@pytest.mark.parametrize("sep", [";;", "", "\n"])
def test_bad_sep_is_an_error(csv_table, tmp_path, capsys, no_fit, sep):
    path, _, _ = csv_table
    assert main(["synthesize", str(path), "--out", str(tmp_path / "f.csv"), "--sep", sep]) == 2
    assert "--sep must be one character" in capsys.readouterr().err


# --- column kinds do not depend on a missing value --------------------------------------------
@pytest.fixture
def nullable_table(tmp_path):
    """An integer column with one missing value and a boolean column with many."""
    rng = np.random.default_rng(1)
    n = 400
    df = pd.DataFrame({"age": pd.array(rng.integers(18, 80, n), dtype="Int64"),
                       "flag": pd.array(rng.choice([True, False], n), dtype="boolean"),
                       "hours": rng.uniform(1, 60, n)})
    df.loc[3, "age"] = pd.NA
    df.loc[: n // 2, "flag"] = pd.NA
    path = tmp_path / "nullable.csv"
    df.to_csv(path, index=False)
    return path


def test_missing_values_do_not_change_the_column_kinds(nullable_table, tmp_path, spy):
    out = tmp_path / "fake.csv"
    assert main(["synthesize", str(nullable_table), "--out", str(out), "--epsilon", "8",
                 "--n-iter", "2", "--n-samples", "50"]) == 0
    (syn,) = spy
    assert syn.schema_["age"].kind == "integer" and syn.schema_["flag"].kind == "boolean"
    assert syn.schema_["hours"].kind == "continuous"
    text = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert text["age"].str.fullmatch(r"\d+").all()  # integers, no decimals
    assert set(text["flag"]) <= {"True", "False", ""}


def test_schema_kinds_decide_how_columns_are_read(tmp_path, capsys, spy):
    rng = np.random.default_rng(2)
    n = 300
    # y: classes 0/1 (declared as the strings "0", "1"); hours: integer-looking but continuous;
    # age: written as floats ("41.0") but declared integer
    df = pd.DataFrame({"age": rng.integers(18, 80, n).astype(float), "hours": rng.integers(1, 60, n),
                       "y": rng.integers(0, 2, n)})
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    schema = {"age": {"type": "integer", "bounds": [17, 90]}, "hours": {"type": "continuous", "bounds": [1, 99]},
              "y": {"type": "categorical", "categories": ["0", "1"]}}
    spath = tmp_path / "schema.json"
    spath.write_text(json.dumps(schema))
    out = tmp_path / "fake.csv"
    assert main(["synthesize", str(path), "--out", str(out), "--schema", str(spath), "--target", "y",
                 "--n-iter", "2", "--n-samples", "40"]) == 0
    assert list(spy[0].classes_) == ["0", "1"]
    text = pd.read_csv(out, dtype=str)
    assert text["age"].str.fullmatch(r"\d+").all()
    assert text["hours"].str.contains(r"\.").any()  # not rounded to integers
    assert set(text["y"]) <= {"0", "1"}


def test_a_real_one_column_file_with_a_separator_in_its_header_is_read(tmp_path):
    from skdpgen.cli import _read_csv

    path = tmp_path / "one.csv"
    path.write_text("price;usd\n1.5\n2.5\n3.0\n")
    df = _read_csv(path, ",", None)
    assert list(df.columns) == ["price;usd"] and len(df) == 3
