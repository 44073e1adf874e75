"""The generator network of DPMMDSynthesizer: latent noise (and a class) to the model space."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._torch import make_linear

__all__ = ["TabularGenerator"]


class TabularGenerator(nn.Module):
    r"""MLP :math:`G(z, y)` with one output head per column block of the model space.

    Continuous blocks go through a sigmoid (values in :math:`[0, 1]`, the scaled public bounds);
    each one-hot block (categories, missing indicator) through a straight-through Gumbel-softmax:
    the forward pass emits a hard one-hot *sample* (exactly what :meth:`sample` decodes) while
    gradients flow through the relaxed softmax (Jang, Gu & Poole 2017).

    Parameters
    ----------
    blocks : sequence of :class:`~skdpgen.encoding.Block`
    n_outputs : int
        Width of the model space.
    n_classes : int
        Number of classes of the conditioning label (1: unconditional).
    latent_dim : int
    hidden : sequence of int
    generator : torch.Generator
        Initialises the weights (torch's global RNG is not used).
    """

    def __init__(self, blocks: Sequence, n_outputs: int, n_classes: int, latent_dim: int,
                 hidden: Sequence[int], generator: torch.Generator, device):
        super().__init__()
        self.latent_dim = int(latent_dim)
        self.n_classes = int(n_classes)
        sizes = [self.latent_dim + self.n_classes, *hidden]
        layers: list[nn.Module] = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [make_linear(n_in, n_out, generator, device), nn.LayerNorm(n_out, device=device),
                       nn.SiLU()]
        layers.append(make_linear(sizes[-1], n_outputs, generator, device))
        self.net = nn.Sequential(*layers)
        cont = [b.start for b in blocks if b.kind == "continuous"]
        self.register_buffer("cont_idx", torch.tensor(cont, dtype=torch.long, device=device))
        # one-hot groups padded to (n_groups, width) in a few buckets of similar widths (a power of 2
        # apart at most): one pass per bucket, and a wide column does not pad every other one to its width
        groups = [list(range(b.start, b.stop)) for b in blocks if b.kind != "continuous"]
        buckets: dict[int, list[list[int]]] = {}
        for g in groups:
            buckets.setdefault(max(len(g) - 1, 1).bit_length(), []).append(g)
        self.n_buckets = len(buckets)
        for k, members in enumerate(buckets[key] for key in sorted(buckets)):
            width = max(len(g) for g in members)
            index = torch.zeros(len(members), width, dtype=torch.long)
            valid = torch.zeros(len(members), width, dtype=torch.bool)
            for i, g in enumerate(members):
                index[i, :len(g)] = torch.tensor(g)
                valid[i, :len(g)] = True
            self.register_buffer(f"group_index_{k}", index.to(device))
            self.register_buffer(f"group_valid_{k}", valid.to(device))
            self.register_buffer(f"flat_positions_{k}", index[valid].to(device))

    def forward(self, z: torch.Tensor, y_onehot: torch.Tensor, generator: torch.Generator,
                temperature: float = 1.0) -> torch.Tensor:
        logits = self.net(torch.cat([z, y_onehot], dim=1))
        out = torch.empty_like(logits)
        if len(self.cont_idx):
            out[:, self.cont_idx] = torch.sigmoid(logits[:, self.cont_idx])
        for k in range(self.n_buckets):
            index, valid = getattr(self, f"group_index_{k}"), getattr(self, f"group_valid_{k}")
            grouped = logits[:, index].masked_fill(~valid, float("-inf"))
            sample = _gumbel_softmax_st(grouped, generator, temperature)
            out[:, getattr(self, f"flat_positions_{k}")] = sample[:, valid]
        return out


def _gumbel_softmax_st(logits: torch.Tensor, generator: torch.Generator, temperature: float) -> torch.Tensor:
    """Straight-through Gumbel-softmax over the last axis (hard sample forward, softmax backward)."""
    u = torch.rand(logits.shape, generator=generator, device=logits.device, dtype=logits.dtype)
    gumbel = -torch.log(-torch.log(u.clamp(1e-10, 1.0 - 1e-7)))
    soft = torch.softmax((logits + gumbel) / temperature, dim=-1)
    hard = torch.zeros_like(soft).scatter_(-1, soft.argmax(dim=-1, keepdim=True), 1.0)
    return hard + soft - soft.detach()
