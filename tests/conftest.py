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


@pytest.fixture(autouse=True, scope="session")
def _reproducible_noise():
    """Tests compare fits bit for bit, so the privacy noise follows ``random_state`` here.

    The library's default draws it from fresh OS entropy at every fit (``skdpgen.set_config``);
    ``tests/test_privacy_config.py`` checks that default.
    """
    import skdpgen

    with skdpgen.config_context(reproducible_noise=True):
        yield
