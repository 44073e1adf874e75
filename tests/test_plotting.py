"""skdpgen.plotting: figures are produced (Agg backend) and saved."""

import numpy as np
import pandas as pd
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from skdpgen.plotting import (  # noqa: E402
    plot_association_difference,
    plot_marginals,
    plot_privacy_utility,
)

SCHEMA = {"x": {"type": "continuous", "bounds": [-5, 5]},
          "c": {"type": "categorical", "categories": ["a", "b", "c"]}}


@pytest.fixture(scope="module")
def frames():
    rng = np.random.default_rng(0)

    def draw(n, s=0.0):
        return pd.DataFrame({"x": rng.normal(s, 1, n), "c": rng.choice(list("abc"), n), "k": rng.integers(0, 4, n)})

    return draw(500), draw(500, 0.5)


def test_plot_marginals(frames, tmp_path):
    import matplotlib.pyplot as plt

    fig = plot_marginals(*frames, schema=SCHEMA, columns=["x", "c"], ncols=2)
    assert len([a for a in fig.axes if a.get_visible()]) == 2
    assert "TVD" in fig.axes[0].get_title()
    fig.savefig(tmp_path / "m.png")
    assert (tmp_path / "m.png").stat().st_size > 0
    plt.close(fig)
    fig = plot_marginals(*frames)  # no schema: all three columns
    assert len([a for a in fig.axes if a.get_visible()]) == 3
    plt.close(fig)


def test_plot_association_difference(frames):
    import matplotlib.pyplot as plt

    fig = plot_association_difference(*frames)
    assert "association" in fig.axes[0].get_title()
    plt.close(fig)
    fig, ax = plt.subplots()
    assert plot_association_difference(*frames, schema=SCHEMA, columns=["x", "c"], ax=ax) is fig
    plt.close(fig)


def test_plot_privacy_utility_from_cv_results():
    import matplotlib.pyplot as plt

    cv = {"param_epsilon": [0.1, 1.0, 10.0] * 2, "param_n_iter": [10] * 3 + [20] * 3,
          "mean_test_score": [0.6, 0.7, 0.8, 0.62, 0.72, 0.82], "std_test_score": [0.01] * 6}
    fig = plot_privacy_utility(cv, ceiling=0.9)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3  # two settings + the ceiling
    assert ax.get_xscale() == "log"
    plt.close(fig)
    df = pd.DataFrame({"epsilon": [0.3, 1, 3], "score": [0.7, 0.8, 0.85]})
    plt.close(plot_privacy_utility(df, logx=False))
    with pytest.raises(ValueError, match="param_delta"):
        plot_privacy_utility(cv, param="delta")
