"""DPMMDSynthesizer fit and sample time on a table with categorical columns of very different widths.

One 500-category column, five 4-category columns and a nullable numeric column (3,000 rows,
declared schema, epsilon 1, one torch thread).  The generator's one-hot heads are padded within
buckets of similar width, so the wide column does not pad the narrow ones.  Run (the previous
code: the same command with ``PYTHONPATH`` pointing at an older checkout)::

    python benchmarks/bench_mmd_wide_categories.py
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import torch

from skdpgen import DPMMDSynthesizer


def main() -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 3000
    big = [f"c{i}" for i in range(500)]
    X = pd.DataFrame({"big": rng.choice(big, n)})
    for j in range(5):
        X[f"s{j}"] = rng.choice(list("abcd"), n)
    X["v"] = rng.normal(size=n).clip(-4, 4)
    X.loc[X.index[:300], "v"] = np.nan
    schema = {"big": {"type": "categorical", "categories": big},
              **{f"s{j}": {"type": "categorical", "categories": list("abcd")} for j in range(5)},
              "v": {"type": "continuous", "bounds": [-4, 4], "nullable": True}}
    fits = []
    for _ in range(3):
        t0 = time.perf_counter()
        model = DPMMDSynthesizer(schema=schema, epsilon=1.0, n_iter=100, random_state=0, device="cpu").fit(X)
        fits.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    model.sample(200_000, random_state=0)
    print(f"fit(n_iter=100): median {np.median(fits):.2f} s over 3; sample(200000): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
