"""Time and peak memory of ``sample(n)`` for a wide table (10 numeric columns and one of 500 categories).

``sample`` generates and decodes a bounded block of rows at a time, so its memory is the output
table plus one block, whatever ``n``.  Run one configuration per process (peak RSS is per process)::

    python benchmarks/bench_sample_memory.py --model mmd --n 1000000
    python benchmarks/bench_sample_memory.py --model flow --n 200000
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import pandas as pd
import torch

from skdpgen import DPFlowSynthesizer, DPMMDSynthesizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["mmd", "flow"], default="mmd")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--categories", type=int, default=500)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    cats = [f"c{i}" for i in range(args.categories)]
    X = pd.DataFrame(rng.normal(size=(3000, 10)).clip(-4, 4), columns=[f"x{i}" for i in range(10)])
    X["cat"] = rng.choice(cats, 3000)
    schema = {c: {"type": "continuous", "bounds": [-4, 4]} for c in X.columns[:10]}
    schema["cat"] = {"type": "categorical", "categories": cats}
    if args.model == "mmd":
        model = DPMMDSynthesizer(schema=schema, epsilon=1.0, n_iter=20, random_state=0, device="cpu").fit(X)
    else:
        model = DPFlowSynthesizer(schema=schema, epsilon=1.0, epochs=1, n_layers=2, hidden=(32,), random_state=0,
                                  device="cpu").fit(X)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    out = model.sample(args.n, random_state=0)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table_mb = out.memory_usage(deep=False).sum() / 2**20
    print(f"{args.model} sample({args.n}): {seconds:.1f} s, peak RSS {peak:.0f} MiB (before sampling {before:.0f} "
          f"MiB), output table {table_mb:.0f} MiB, rows {len(out)}, dtypes {dict(out.dtypes.value_counts())}")


if __name__ == "__main__":
    main()
