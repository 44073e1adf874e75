"""Shared test set-up."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """One torch intra-op thread for the whole suite.

    The models in the tests are tiny: on small (2-vCPU) machines intra-op threads only add
    synchronisation, which made small fits 10-100x slower (see benchmarks/RESULTS.md, "Threads").
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
