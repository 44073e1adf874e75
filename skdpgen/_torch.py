"""Torch plumbing shared by every estimator: device choice, local generators, initialisation.

Nothing here seeds or draws from torch's or numpy's global random number generators: every
estimator owns :class:`numpy.random.Generator` / :class:`torch.Generator` objects derived from
its ``random_state``.
"""

from __future__ import annotations

import copy
import functools
import math
import os
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

__all__ = [
    "resolve_device",
    "derive_seeds",
    "torch_generator",
    "init_module_",
    "make_linear",
    "torch_threads",
    "with_torch_threads",
]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` gives CUDA when it is available and the CPU otherwise."""
    if isinstance(device, torch.device):
        resolved = device
    elif device == "auto":
        resolved = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ValueError(
                f"device must be 'auto', 'cpu', 'cuda' or a torch.device, got {device!r}") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available; use device='auto' or 'cpu'")
    if resolved.type not in ("cpu", "cuda"):  # e.g. MPS: no float64, which the privacy sums need
        raise ValueError(f"device {resolved} is not supported: use 'cpu' or 'cuda'")
    return resolved


def _on(tensor: torch.Tensor, device: torch.device) -> bool:
    return tensor.device.type == device.type and (device.index is None or tensor.device.index == device.index)


def portable(value, device: torch.device | str):
    """``value`` with its torch tensors and modules on ``device``, never changing ``value`` itself.

    Tensors, modules, lists and tuples of them, and objects whose class sets
    ``_holds_torch_state = True`` (feature maps, flow ensembles) are copied when something has to
    move and returned as they are otherwise; anything else is returned as it is.  Used to pickle a
    fitted estimator with its torch state on the CPU (loadable without CUDA) and to move it back.
    """
    device = torch.device(device)
    if isinstance(value, torch.Tensor):
        return value if _on(value, device) else value.to(device)
    if isinstance(value, nn.Module):
        tensors = [*value.parameters(), *value.buffers()]
        return value if all(_on(t, device) for t in tensors) else copy.deepcopy(value).to(device)
    if isinstance(value, list | tuple):
        moved = [portable(v, device) for v in value]
        return value if all(a is b for a, b in zip(moved, value, strict=True)) else type(value)(moved)
    if getattr(type(value), "_holds_torch_state", False):
        fields = vars(value)
        moved = {k: portable(v, device) for k, v in fields.items()}
        if all(moved[k] is v for k, v in fields.items()):
            return value
        new = copy.copy(value)
        vars(new).update(moved)
        return new
    return value


class PortableStateMixin:
    """Pickle a fitted estimator with its torch state on the CPU, and put it back on ``device_`` when loaded.

    A model fitted on a GPU can then be loaded on a machine without CUDA: its ``device_``
    becomes the CPU there.  Place before :class:`~sklearn.base.BaseEstimator` in the bases.
    """

    def __getstate__(self):
        state = super().__getstate__()
        return {k: portable(v, "cpu") for k, v in state.items()}

    def __setstate__(self, state):
        super().__setstate__(state)
        device = getattr(self, "device_", None)
        if device is None:
            return
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            self.device_ = torch.device("cpu")  # fitted on a GPU, loaded without one: everything is on the CPU
        elif device.type != "cpu":
            for k, v in list(vars(self).items()):
                setattr(self, k, portable(v, device))


def derive_seeds(random_state, n: int) -> list[int]:
    """``n`` independent 63-bit seeds from an sklearn-style ``random_state`` (None, int, RandomState)."""
    if isinstance(random_state, np.random.RandomState):
        base = int(random_state.randint(0, 2**31 - 1))
    elif random_state is None:
        base = None
    elif isinstance(random_state, np.random.Generator):
        base = int(random_state.integers(0, 2**63 - 1))
    else:
        base = int(random_state)
    seq = np.random.SeedSequence(base)
    return [int(s.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for s in seq.spawn(n)]


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A :class:`torch.Generator` on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def make_linear(n_in: int, n_out: int, generator: torch.Generator, device, bias: bool = True) -> nn.Linear:
    """An :class:`torch.nn.Linear` initialised from ``generator`` (PyTorch's default scheme).

    The layer is built on the meta device first, so torch's global RNG is never touched.
    """
    layer = nn.Linear(n_in, n_out, bias=bias, device="meta").to_empty(device=device)
    init_linear_(layer, generator)
    return layer


def init_linear_(layer: nn.Linear, generator: torch.Generator) -> None:
    """PyTorch's default Linear initialisation, drawn from ``generator``."""
    gen = _generator_for(layer.weight, generator)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=gen)
        if layer.bias is not None:
            bound = 1.0 / math.sqrt(layer.in_features) if layer.in_features > 0 else 0.0
            nn.init.uniform_(layer.bias, -bound, bound, generator=gen)


def init_module_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every Linear layer of ``module`` from ``generator``."""
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            init_linear_(sub, generator)
    return module


def _generator_for(tensor: torch.Tensor, generator: torch.Generator) -> torch.Generator:
    if generator.device.type == tensor.device.type:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    return torch_generator(seed, tensor.device)


@contextmanager
def torch_threads(n_threads: int | None):
    """Run the block with ``torch.set_num_threads(n_threads)`` and restore the previous value.

    ``None`` leaves torch's setting alone; ``-1`` uses every CPU.  The setting is process-wide
    while the block runs.  Measured on 2-core virtual machines, the generator training steps of
    skdpgen (many small operations) ran 10-30x *slower* with 2 intra-op threads than with 1,
    because thread synchronisation dominates; hence the estimators' default ``n_threads=1``.
    """
    if n_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads((os.cpu_count() or 1) if n_threads == -1 else int(n_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def with_torch_threads(method):
    """Decorator: run an estimator method under ``torch_threads(self.n_threads)``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch_threads(getattr(self, "n_threads", None)):
            return method(self, *args, **kwargs)

    return wrapper
