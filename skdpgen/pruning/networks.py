r"""Networks the pruner understands: scikit-learn MLPs <-> torch, structure analysis, unit removal.

A prunable network is a :class:`torch.nn.Sequential` of

* weight layers: :class:`~torch.nn.Linear` and :class:`~torch.nn.Conv2d` (``groups=1``);
* per-unit layers: :class:`~torch.nn.BatchNorm1d`/:class:`~torch.nn.BatchNorm2d` (pruned with the
  layer before them), element-wise activations, pooling, dropout;
* at most one :class:`~torch.nn.Flatten` between the convolutional and the linear part.

Every weight layer but the last has *units* (output neurons or channels) that can be removed.
Removing unit :math:`k` of layer :math:`l` deletes row :math:`k` of :math:`W_l` (output channel
:math:`k` of a convolution), entry :math:`k` of its bias and of the batch-norm that follows, and
the inputs of the next weight layer that read it: column :math:`k` of a Linear layer, input
channel :math:`k` of a convolution, or the block of :math:`H W` columns
:math:`kHW, \dots, (k+1)HW - 1` of a Linear layer after ``Flatten`` (channel-major order).  The
result is a genuinely smaller network (smaller weight tensors, fewer FLOPs), not a mask.

A scikit-learn :class:`~sklearn.neural_network.MLPClassifier`/``MLPRegressor`` is converted to
``Sequential(Linear, act, ..., Linear)`` (logits; the output activation is applied by the loss)
and back (:func:`torch_to_mlp`: smaller ``coefs_``/``intercepts_`` and ``hidden_layer_sizes``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

__all__ = [
    "NetworkPlan",
    "analyse_network",
    "gated_forward",
    "magnitude_importances",
    "mlp_to_torch",
    "prune_network",
    "torch_to_mlp",
]

_MLP_ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "logistic": nn.Sigmoid, "identity": nn.Identity}
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh,
                nn.Sigmoid, nn.Softplus, nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid, nn.Identity, nn.Dropout,
                nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)
_OUTPUT_ONLY = (nn.Softmax, nn.LogSoftmax)


# ---------------------------------------------------------------------------------------------
# scikit-learn MLP <-> torch


def is_sklearn_mlp(estimator) -> bool:
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    return isinstance(estimator, (MLPClassifier, MLPRegressor))


def mlp_to_torch(mlp, device=None, dtype=torch.float32) -> nn.Sequential:
    """A fitted MLP as ``Sequential(Linear, act, ..., Linear)`` returning pre-output-activation values."""
    act = _MLP_ACTIVATIONS[mlp.activation]
    layers: list[nn.Module] = []
    n = len(mlp.coefs_)
    for i, (W, b) in enumerate(zip(mlp.coefs_, mlp.intercepts_, strict=True)):
        lin = nn.Linear(W.shape[0], W.shape[1], device="meta").to_empty(device=device or "cpu")
        with torch.no_grad():
            lin.weight.copy_(torch.as_tensor(np.ascontiguousarray(W.T)))
            lin.bias.copy_(torch.as_tensor(b))
        layers.append(lin.to(dtype))
        if i < n - 1:
            layers.append(act())
    return nn.Sequential(*layers)


def torch_to_mlp(net: nn.Sequential, template):
    """A fitted copy of the MLP ``template`` with the weights (and layer sizes) of ``net``.

    Optimiser state and early-stopping snapshots (which have the old shapes) are dropped, so a
    later ``partial_fit`` or ``warm_start`` fit starts a fresh optimiser on the new shapes.
    """
    linears = [m for m in net if isinstance(m, nn.Linear)]
    dtype = template.coefs_[0].dtype
    out = copy.deepcopy(template)
    out.coefs_ = [m.weight.detach().cpu().numpy().T.astype(dtype, copy=True) for m in linears]
    out.intercepts_ = [m.bias.detach().cpu().numpy().astype(dtype, copy=True) for m in linears]
    sizes = tuple(int(m.out_features) for m in linears[:-1])
    out.hidden_layer_sizes = sizes
    for name in ("_optimizer", "_best_coefs", "_best_intercepts"):
        if hasattr(out, name):
            delattr(out, name)
    return out


# ---------------------------------------------------------------------------------------------
# structure


@dataclass
class PrunableLayer:
    """One weight layer whose units can be removed, and what depends on them."""

    index: int  # position in the Sequential
    n_units: int
    kind: str  # "linear" or "conv"
    batchnorms: list[int] = field(default_factory=list)
    gate_at: int = 0  # the gate multiplies the input of the module at this position
    next_index: int = 0  # the next weight layer
    block: int = 1  # columns of the next layer per unit (H*W after Flatten, else 1)


@dataclass
class NetworkPlan:
    """The prunable layers of a Sequential network (the last weight layer is never pruned)."""

    layers: list[PrunableLayer]
    n_modules: int

    @property
    def n_units(self) -> list[int]:
        return [layer.n_units for layer in self.layers]


def _check_module(i: int, m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        if type(m).forward is not nn.Linear.forward:
            raise ValueError(f"module {i} ({type(m).__name__}) subclasses nn.Linear with its own forward")
        return "linear"
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or type(m).forward is not nn.Conv2d.forward:
            raise ValueError(f"module {i}: only plain nn.Conv2d with groups=1 can be pruned, got {m!r}")
        return "conv"
    if isinstance(m, _BATCHNORM):
        return "bn"
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise ValueError(f"module {i}: only nn.Flatten(start_dim=1, end_dim=-1) is supported, got {m!r}")
        return "flatten"
    if isinstance(m, _ELEMENTWISE + _POOLS):
        return "other"
    if isinstance(m, _OUTPUT_ONLY):
        return "output"
    raise ValueError(f"module {i} ({type(m).__name__}) is not supported by the pruner: use a Sequential of "
                     "Linear/Conv2d layers with BatchNorm, element-wise activations, pooling, dropout and "
                     "one Flatten")


def analyse_network(net: nn.Module, example: torch.Tensor) -> NetworkPlan:
    """Find the prunable layers of ``net`` (a Sequential) given one example input batch."""
    if not isinstance(net, nn.Sequential):
        raise TypeError(f"the network must be a torch.nn.Sequential, got {type(net).__name__}")
    modules = list(net)
    kinds = [_check_module(i, m) for i, m in enumerate(modules)]
    weights = [i for i, k in enumerate(kinds) if k in ("linear", "conv")]
    if len(weights) < 2:
        raise ValueError("the network needs at least two Linear/Conv2d layers (hidden units to prune)")
    # the input shape of each Flatten (for the H*W block size)
    shapes: dict[int, tuple[int, ...]] = {}
    x = example
    with torch.no_grad():
        for i, m in enumerate(modules):
            if kinds[i] == "flatten":
                shapes[i] = tuple(x.shape)
            x = m(x)
    layers = []
    for a, b in zip(weights[:-1], weights[1:], strict=True):
        seg = list(range(a + 1, b))
        flat = [i for i in seg if kinds[i] == "flatten"]
        if len(flat) > 1:
            raise ValueError(f"more than one Flatten between modules {a} and {b}")
        if any(kinds[i] == "output" for i in seg):
            raise ValueError("Softmax/LogSoftmax is only allowed after the last weight layer")
        layer = modules[a]
        kind = kinds[a]
        if kind == "linear" and flat:
            raise ValueError(f"Flatten after the Linear layer {a} is not supported")
        if kinds[b] == "conv" and kind == "linear":
            raise ValueError(f"a Conv2d layer ({b}) after a Linear layer ({a}) is not supported")
        stop = flat[0] if flat else b
        bns = [i for i in seg if kinds[i] == "bn"]
        if any(i > stop for i in bns):
            raise ValueError("BatchNorm after Flatten is not supported")
        n_units = layer.out_features if kind == "linear" else layer.out_channels
        for i in bns:
            if modules[i].num_features != n_units:
                raise ValueError(f"BatchNorm {i} has {modules[i].num_features} features, layer {a} has {n_units} units")
        block = 1
        if flat:
            shape = shapes[flat[0]]
            if len(shape) != 4 or shape[1] != n_units:
                raise ValueError(f"unexpected shape {shape} before Flatten {flat[0]}")
            block = int(shape[2] * shape[3])
        layers.append(PrunableLayer(index=a, n_units=int(n_units), kind=kind, batchnorms=bns, gate_at=stop,
                                    next_index=b, block=block))
    return NetworkPlan(layers=layers, n_modules=len(modules))


def gated_forward(net: nn.Sequential, plan: NetworkPlan, x: torch.Tensor,
                  scales: list[torch.Tensor] | None, start: int = 0) -> torch.Tensor:
    """Forward pass with each prunable layer's units multiplied by ``scales[l]`` (shape (B, K_l)).

    The scale is applied where the layer's units leave their block (after batch-norm, activation
    and pooling; before Flatten or the next weight layer).  ``start``: ``x`` is the input of module
    ``start`` (the output of ``net[:start]``, e.g. precomputed once for a frozen network).
    """
    at = {} if scales is None else {layer.gate_at: s for layer, s in zip(plan.layers, scales, strict=True)}
    for i, m in enumerate(list(net)[int(start):], int(start)):
        s = at.get(i)
        if s is not None:
            x = x * (s[:, :, None, None] if x.dim() == 4 else s)
        x = m(x)
    return x


# ---------------------------------------------------------------------------------------------
# unit removal


def _take(param: torch.Tensor, idx: torch.Tensor, dim: int) -> nn.Parameter:
    return nn.Parameter(param.detach().index_select(dim, idx).clone(), requires_grad=param.requires_grad)


def prune_network(net: nn.Sequential, plan: NetworkPlan, keep: list[torch.Tensor | np.ndarray]) -> nn.Sequential:
    """A smaller copy of ``net`` keeping the units ``keep[l]`` (sorted indices) of each prunable layer."""
    if len(keep) != len(plan.layers):
        raise ValueError(f"keep must give the kept units of {len(plan.layers)} layers, got {len(keep)}")
    new = copy.deepcopy(net)
    modules = list(new)
    for layer, k in zip(plan.layers, keep, strict=True):
        idx = torch.as_tensor(np.sort(np.asarray(k, dtype=np.int64)), device=modules[layer.index].weight.device)
        if idx.numel() == 0:
            raise ValueError(f"layer {layer.index} would lose all its units")
        m = modules[layer.index]
        m.weight = _take(m.weight, idx, 0)
        if m.bias is not None:
            m.bias = _take(m.bias, idx, 0)
        if layer.kind == "linear":
            m.out_features = int(idx.numel())
        else:
            m.out_channels = int(idx.numel())
        for j in layer.batchnorms:
            bn = modules[j]
            if bn.weight is not None:
                bn.weight = _take(bn.weight, idx, 0)
                bn.bias = _take(bn.bias, idx, 0)
            if bn.running_mean is not None:
                bn.running_mean = bn.running_mean.index_select(0, idx).clone()
                bn.running_var = bn.running_var.index_select(0, idx).clone()
            bn.num_features = int(idx.numel())
        nxt = modules[layer.next_index]
        cols = idx if layer.block == 1 else (idx[:, None] * layer.block + torch.arange(
            layer.block, device=idx.device)).reshape(-1)
        nxt.weight = _take(nxt.weight, cols, 1)
        if isinstance(nxt, nn.Linear):
            nxt.in_features = int(cols.numel())
        else:
            nxt.in_channels = int(cols.numel())
    return new


def magnitude_importances(net: nn.Sequential, plan: NetworkPlan) -> list[np.ndarray]:
    """Structured magnitude (L1-norm) importances: the L1 norm of each unit's incoming weights.

    The criterion of Li et al. (ICLR 2017, "Pruning Filters for Efficient ConvNets"), used as a
    baseline; normalised to sum to one per layer.
    """
    modules = list(net)
    out = []
    for layer in plan.layers:
        w = modules[layer.index].weight.detach()
        norms = w.abs().reshape(w.shape[0], -1).sum(1).double().cpu().numpy()
        out.append(norms / norms.sum())
    return out


def count_parameters(net: nn.Module) -> int:
    return int(sum(p.numel() for p in net.parameters()))
