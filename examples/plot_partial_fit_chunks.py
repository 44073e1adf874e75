"""
Tables larger than memory: ``partial_fit`` on chunks, then ``finalize``
=====================================================================

:class:`~skdpgen.DPMMDSynthesizer` only needs *sums* of feature vectors (one per class) and the
class counts.  Sums can be accumulated chunk by chunk, so a table that does not fit in memory is
read in pieces with :func:`pandas.read_csv` (``chunksize=``), each piece passed to
:meth:`~skdpgen.DPMMDSynthesizer.partial_fit`.  The sums stay exact (and private to the
process) until :meth:`~skdpgen.DPMMDSynthesizer.finalize`, which adds the noise **once**, for the
whole table, and trains the generator.  The privacy cost is that of one fit, whatever the number
of chunks.

Streaming needs a declared schema: the encoder and the feature map must be fixed before the
first chunk, and a schema estimated with differential privacy would need all the rows at once.
With labels, the schema must also declare the target's categories.

Here the "large" table is scikit-learn's breast cancer data written to a temporary CSV file.
"""

import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import skdpgen
from skdpgen import DPMMDSynthesizer
from skdpgen.datasets import load_breast_cancer_table

X, y, schema = load_breast_cancer_table()
tmp = tempfile.TemporaryDirectory()
csv_path = Path(tmp.name) / "breast_cancer.csv"
X.assign(diagnosis=y).to_csv(csv_path, index=False)
print(f"wrote {len(X)} rows to {csv_path}")

# %%
# Stream the file
# ---------------
# Give ``read_csv`` the dtypes (public structure): otherwise pandas guesses them per chunk, and a
# chunk in which an integer column has a missing value would come back as float.
params = dict(epsilon=1.0, schema=schema, n_iter=300, batch_size=256, hidden=(128, 128), random_state=0)
dtypes = {name: "float64" for name in X.columns} | {"diagnosis": "object"}
start = time.perf_counter()
streamed = DPMMDSynthesizer(**params)
n_chunks = 0
for chunk in pd.read_csv(csv_path, chunksize=100, dtype=dtypes):
    labels = chunk.pop("diagnosis")
    streamed.partial_fit(chunk, labels)
    n_chunks += 1
streamed.finalize()  # one Gaussian release for all chunks, then generator training
print(f"{n_chunks} chunks, fitted in {time.perf_counter() - start:.1f} s")
print(f"privacy: epsilon={streamed.privacy_report_['epsilon']:.3f}, "
      f"{len(streamed.privacy_report_['releases'])} release(s)")

# %%
# Same result as one ``fit`` on the whole table
# ---------------------------------------------
# The sums are those of ``fit`` on the whole table (up to floating point summation order):
# chunking changes memory use, not the statistics or the privacy.  The *released* embeddings are
# equal only where the noise is too: by default every fit draws fresh noise, whatever
# ``random_state`` is.  ``skdpgen.config_context(reproducible_noise=True)`` makes the noise follow
# ``random_state`` (for tests and examples only: whoever knows the seed can remove the noise).
# ``n_iter=0`` skips the generator's training: only the release matters here.


def stream(**kwargs):
    synth = DPMMDSynthesizer(**kwargs)
    for chunk in pd.read_csv(csv_path, chunksize=100, dtype=dtypes):
        labels = chunk.pop("diagnosis")
        synth.partial_fit(chunk, labels)
    return synth.finalize()


check = params | {"n_iter": 0}
with skdpgen.config_context(reproducible_noise=True):
    same = torch.allclose(stream(**check).embedding_, DPMMDSynthesizer(**check).fit(X, y).embedding_, atol=1e-6)
print(f"reproducible noise: embedding of partial_fit + finalize == embedding of fit: {same}")
same = torch.allclose(stream(**check).embedding_, DPMMDSynthesizer(**check).fit(X, y).embedding_, atol=1e-6)
print(f"fresh noise (the default): embeddings equal: {same}")

X_syn, y_syn = streamed.sample(5, random_state=0, return_y=True)
print(X_syn.iloc[:, :4].round(2).assign(diagnosis=np.asarray(y_syn)))

tmp.cleanup()
