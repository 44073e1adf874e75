"""The ``skdpgen`` command line."""

import json

import numpy as np
import pandas as pd
import pytest

from skdpgen.cli import main


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
    assert pd.read_csv(out).shape[1] == 31
