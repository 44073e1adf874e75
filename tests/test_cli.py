"""The ``skdpgen`` command line."""

import json

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
    fake = pd.read_csv(out)
    assert fake.shape[1] == 31
    # the rows are treated as private: the DP row count is written and shown, not the 398 training rows
    assert len(fake) != 398 and f"wrote {len(fake)} synthetic rows" in text
    assert not any("398" in line for line in text.splitlines() if "privacy" not in line and "release" not in line)
