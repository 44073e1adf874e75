"""Tests of the DP-SGD engine: exact per-example norms, clipping, noise, sampling, accounting."""

from __future__ import annotations

import copy
import math
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from skdpgen._torch import make_linear, torch_generator
from skdpgen.dpsgd import DPSGDConfig, PerExampleClipper, poisson_sample, train_dpsgd
from skdpgen.exceptions import PrivacyBudgetExceeded
from skdpgen.privacy import PrivacyLedger, subsampled_gaussian_epsilon

# ---------------------------------------------------------------------------------------------
# models whose forward returns the per-example loss


class MLPLoss(nn.Module):
    """Regression MLP; a row is (x, y) with y in the last column."""

    def __init__(self, d: int, hidden: int, gen: torch.Generator):
        super().__init__()
        self.net = nn.Sequential(make_linear(d, hidden, gen, "cpu"), nn.Tanh(),
                                 make_linear(hidden, hidden, gen, "cpu"), nn.Tanh(),
                                 make_linear(hidden, 1, gen, "cpu"))

    def forward(self, batch):
        return (self.net(batch[:, :-1])[:, 0] - batch[:, -1]) ** 2


class SharedConditionerFlow(nn.Module):
    """Affine coupling flow whose ONE conditioner serves every stage (told the stage by a one-hot):
    each of its Linear layers is called ``n_stages`` times per forward, on different inputs."""

    def __init__(self, d: int, hidden: int, n_stages: int, gen: torch.Generator):
        super().__init__()
        self.d, self.half, self.n_stages = d, d // 2, n_stages
        self.cond = nn.Sequential(make_linear(self.half + n_stages, hidden, gen, "cpu"), nn.Tanh(),
                                  make_linear(hidden, hidden, gen, "cpu"), nn.Tanh(),
                                  make_linear(hidden, 2 * (d - self.half), gen, "cpu"))

    def forward(self, x):
        z, logdet = x, x.new_zeros(x.shape[0])
        eye = torch.eye(self.n_stages, dtype=x.dtype)
        for k in range(self.n_stages):
            x1, x2 = (z[:, :self.half], z[:, self.half:]) if k % 2 == 0 else (z[:, -self.half:], z[:, :-self.half])
            st = self.cond(torch.cat([x1, eye[k].expand(x.shape[0], -1)], dim=1))
            s, t = torch.tanh(st[:, :x2.shape[1]]), st[:, x2.shape[1]:]
            x2 = x2 * torch.exp(s) + t
            z = torch.cat([x1, x2], dim=1) if k % 2 == 0 else torch.cat([x2, x1], dim=1)
            logdet = logdet + s.sum(1)
        return 0.5 * z.pow(2).sum(1) - logdet


class SequenceModel(nn.Module):
    """A Linear layer applied along a middle (sequence) axis: (B, L, d) inputs."""

    def __init__(self, gen):
        super().__init__()
        self.token = make_linear(4, 6, gen, "cpu")
        self.head = make_linear(6, 1, gen, "cpu")

    def forward(self, x):
        h = torch.tanh(self.token(x.reshape(x.shape[0], 3, 4))).mean(1)
        return self.head(h)[:, 0].pow(2)


def _loss(model, batch):
    return model(batch)


def _reference_grads(model, batch):
    """Exact per-example gradients with torch.func: {parameter name: (B, *shape)}."""
    params = {k: v.detach() for k, v in model.named_parameters()}

    def single(p, row):
        return functional_call(model, p, (row[None],))[0]

    return vmap(grad(single), in_dims=(None, 0))(params, batch)


def _layer_sq_norms(model, ref, layer_names):
    """(B, n_layers) squared per-example norms from the reference gradients."""
    cols = []
    for name in layer_names:
        prefix = "" if name == "(root)" else name + "."
        layer = model.get_submodule(name) if name != "(root)" else model
        cols.append(sum(ref[prefix + k].flatten(1).pow(2).sum(1) for k, p in layer.named_parameters()
                        if p.requires_grad))
    return torch.stack(cols, dim=1)


def _make(kind: str, seed: int = 0):
    gen = torch_generator(seed)
    if kind == "mlp":
        model, batch = MLPLoss(5, 16, gen), torch.randn(9, 6, generator=gen)
    elif kind == "shared":
        model, batch = SharedConditionerFlow(6, 12, 3, gen), torch.randn(9, 6, generator=gen)
    elif kind == "partial":  # a frozen weight, a layer without bias
        model, batch = MLPLoss(5, 16, gen), torch.randn(9, 6, generator=gen)
        model.net[0].weight.requires_grad_(False)
        model.net[4] = make_linear(16, 1, gen, "cpu", bias=False)
    else:
        model, batch = SequenceModel(gen), torch.randn(9, 12, generator=gen)
    return model.double(), batch.double()


# ---------------------------------------------------------------------------------------------
# per-example norms and clipping


@pytest.mark.parametrize("kind", ["mlp", "shared", "sequence", "partial"])
@pytest.mark.parametrize("method", ["auto", "ghost", "materialize"])
@pytest.mark.parametrize("n", [9, 1])
def test_per_example_norms_match_torch_func(kind, method, n):
    model, batch = _make(kind)
    batch = batch[:n]
    ref = _reference_grads(model, batch)
    with PerExampleClipper(model, max_grad_norm=1.0, clipping="per_layer", norm_method=method) as clipper:
        out = clipper.clip_and_sum(_loss, batch)
        expected = _layer_sq_norms(model, ref, clipper.layer_names).sqrt()
    assert out.layer_norms.shape == (n, len(clipper.layer_names))
    torch.testing.assert_close(out.layer_norms, expected, rtol=1e-5, atol=0)
    torch.testing.assert_close(out.group_norms, expected, rtol=1e-5, atol=0)  # per-layer groups
    torch.testing.assert_close(out.loss, model(batch).detach())


def test_per_example_norms_float32():
    model, batch = _make("shared")
    model, batch = model.float(), batch.float()
    ref = _reference_grads(model, batch)
    with PerExampleClipper(model, max_grad_norm=1.0) as clipper:
        out = clipper.clip_and_sum(_loss, batch)
        expected = _layer_sq_norms(model, ref, clipper.layer_names).sum(1).sqrt()
    torch.testing.assert_close(out.group_norms[:, 0], expected, rtol=1e-5, atol=1e-6)


def test_empty_batch():
    model, batch = _make("shared")
    with PerExampleClipper(model, max_grad_norm=1.0, clipping="per_layer") as clipper:
        out = clipper.clip_and_sum(_loss, batch[:0])
        assert out.loss.shape == (0,)
        assert out.group_norms.shape == (0, 3) and out.layer_norms.shape == (0, 3)
        assert all(p.grad is not None and not p.grad.any() for p in clipper.parameters())


@pytest.mark.parametrize("kind", ["mlp", "shared", "partial"])
@pytest.mark.parametrize("clipping", ["flat", "per_layer"])
@pytest.mark.parametrize("method", ["ghost", "materialize"])
def test_clipped_sum_equals_naive_clip_and_sum(kind, clipping, method):
    model, batch = _make(kind)
    ref = _reference_grads(model, batch)
    c = 0.5
    with PerExampleClipper(model, max_grad_norm=c, clipping=clipping, norm_method=method) as clipper:
        clipper.clip_and_sum(_loss, batch)
        names = clipper.layer_names
        sq = _layer_sq_norms(model, ref, names)
        if clipping == "flat":
            factors = (c / sq.sum(1).sqrt()).clamp(max=1)[:, None].expand(-1, len(names))
        else:
            factors = (c / math.sqrt(len(names)) / sq.sqrt()).clamp(max=1)
        assert (factors < 1).float().mean() > 0.3  # clipping is active for many examples
        for j, name in enumerate(names):
            layer = model.get_submodule(name)
            for k, p in layer.named_parameters():
                if p.requires_grad:
                    naive = torch.einsum("b,b...->...", factors[:, j], ref[f"{name}.{k}"])
                    torch.testing.assert_close(p.grad, naive, rtol=1e-7, atol=1e-10)
                else:
                    assert p.grad is None


def test_per_layer_thresholds_and_clipped_norms():
    model, batch = _make("shared")
    ref = _reference_grads(model, batch)
    c = 0.3
    with PerExampleClipper(model, max_grad_norm=c, clipping="per_layer") as clipper:
        out = clipper.clip_and_sum(_loss, batch)
        sq = _layer_sq_norms(model, ref, clipper.layer_names)
    thresholds = torch.tensor([clipper.thresholds[g] for g in clipper.groups], dtype=torch.float64)
    assert math.isclose(float(thresholds.pow(2).sum()), c**2, rel_tol=1e-12)
    torch.testing.assert_close(thresholds, torch.full((3,), c / math.sqrt(3), dtype=torch.float64))
    clipped = out.factors * sq.sqrt()
    assert (clipped <= thresholds * (1 + 1e-9)).all()
    # the whole clipped per-example gradient stays within C: the sensitivity is unchanged
    assert (clipped.pow(2).sum(1).sqrt() <= c * (1 + 1e-9)).all()


def test_custom_groups_and_weights():
    model, batch = _make("mlp")
    groups = {"net.0": "first", "net.2": "rest", "net.4": "rest"}
    with PerExampleClipper(model, max_grad_norm=2.0, clipping=groups, group_weights={"first": 1, "rest": 3}) as cl:
        out = cl.clip_and_sum(_loss, batch)
        assert cl.groups == ["first", "rest"]
        assert math.isclose(cl.thresholds["rest"], 3 * cl.thresholds["first"])
        assert math.isclose(math.hypot(*cl.thresholds.values()), 2.0)
        assert out.group_norms.shape == (9, 2)
        torch.testing.assert_close(out.group_norms[:, 1], out.layer_norms[:, 1:].pow(2).sum(1).sqrt())
    with pytest.raises(ValueError, match="missing"):
        PerExampleClipper(model, clipping={"net.0": "a"})
    with pytest.raises(ValueError, match="group_weights"):
        PerExampleClipper(model, clipping=groups, group_weights={"first": 1.0})


# ---------------------------------------------------------------------------------------------
# refusals


class _Custom(nn.Module):
    def __init__(self, extra: nn.Module):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.extra = extra

    def forward(self, x):
        return self.extra(self.lin(x))


class _MyLinear(nn.Linear):
    def forward(self, x):
        return super().forward(x) * 2


@pytest.mark.parametrize("extra, match", [
    (nn.LayerNorm(4), "extra.*LayerNorm.*trainable"),
    (nn.Conv1d(1, 1, 3), "extra.*Conv1d"),
    (nn.BatchNorm1d(4, affine=False), "BatchNorm1d.*mixes examples"),
    (_MyLinear(4, 4), "own forward"),
])
def test_refuses_unsupported_modules(extra, match):
    with pytest.raises(ValueError, match=match):
        PerExampleClipper(_Custom(extra))


def test_refuses_bare_parameter_and_accepts_frozen_or_parameter_free():
    model = _Custom(nn.LayerNorm(4, elementwise_affine=False))
    model.scale = nn.Parameter(torch.ones(1))
    with pytest.raises(ValueError, match="the model itself"):
        PerExampleClipper(model)
    model.scale.requires_grad_(False)
    model.extra = nn.LayerNorm(4).requires_grad_(False)
    with PerExampleClipper(model) as clipper:
        assert clipper.layer_names == ["lin"]


def test_refuses_inplace_unbatched_and_outside_use():
    gen = torch_generator(0)
    lin = make_linear(4, 3, gen, "cpu")
    x = torch.randn(5, 4, generator=gen)
    with PerExampleClipper(lin) as clipper:
        with pytest.raises(ValueError, match="modified in place"):
            clipper.clip_and_sum(lambda m, b: F.relu(m(b), inplace=True).sum(1), x)
        with pytest.raises(ValueError, match="first dimension"):
            clipper.clip_and_sum(lambda m, b: m(torch.cat([b, b]))[:5].sum(1), x)
        with pytest.raises(ValueError, match=r"shape \(5,\)"):
            clipper.clip_and_sum(lambda m, b: m(b), x)
        with pytest.raises(ValueError, match="outside a call"):
            clipper.clip_and_sum(lambda m, b: m(b).sum(1) + F.linear(b, m.weight).sum(1), x)


# ---------------------------------------------------------------------------------------------
# sampling, noise, accounting, training


def test_poisson_sampling_rate_and_local_rng():
    state = torch.get_rng_state()
    gen = torch_generator(1)
    sizes = torch.tensor([len(poisson_sample(1000, 0.05, gen)) for _ in range(400)], dtype=torch.float64)
    assert abs(float(sizes.mean()) - 50) < 4 * math.sqrt(1000 * 0.05 * 0.95 / 400)
    assert 0.75 < float(sizes.var()) / (1000 * 0.05 * 0.95) < 1.25
    idx = poisson_sample(1000, 0.05, gen)
    assert idx.unique().numel() == idx.numel() and idx.dtype == torch.long
    assert torch.equal(state, torch.get_rng_state())


def test_noise_std_on_gradient():
    gen = torch_generator(3)
    model = make_linear(200, 100, gen, "cpu")
    data = torch.randn(100, 200, generator=gen)
    cfg = DPSGDConfig(epsilon=2.0, delta=1e-5, epochs=0.1, batch_size=10, max_grad_norm=0.7,
                      optimizer="sgd", lr=0.0)
    res = train_dpsgd(model, lambda m, b: 0.0 * m(b).sum(1), data, cfg, generator=gen)  # zero gradient
    assert res.steps == 1 and res.sample_rate == pytest.approx(0.1)
    noise = torch.cat([model.weight.grad.flatten(), model.bias.grad])
    expected = res.noise_multiplier * 0.7 / (0.1 * 100)
    assert abs(float(noise.std()) / expected - 1) < 0.03
    assert abs(float(noise.mean())) < 4 * expected / math.sqrt(noise.numel())
    assert res.release.noise_std == pytest.approx(res.noise_multiplier * 0.7)


def test_update_scale_uses_released_values_only(monkeypatch):
    """With a sample rate from a released row count, the exact row count does not reach the weights."""
    import skdpgen.dpsgd as dpsgd

    scales = []
    original = dpsgd._noise_and_scale_

    def record(params, noise_std, scale, generator):
        scales.append(scale)
        original(params, noise_std, scale, generator)

    monkeypatch.setattr(dpsgd, "_noise_and_scale_", record)
    model = make_linear(3, 1, torch_generator(0), "cpu")
    loss = lambda m, b: m(b)[:, 0] ** 2  # noqa: E731
    n_hat, b = 1000.0, 50  # the released row count sets the rate: q = b / n_hat
    for n in (1000, 1001):  # neighbouring datasets
        cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=0.05, batch_size=b, sample_rate=b / n_hat)
        train_dpsgd(model, loss, torch.randn(n, 3, generator=torch_generator(n)), cfg, generator=torch_generator(1))
    assert scales == [1 / b, 1 / b]
    # without sample_rate, N is public and the divisor is q N = min(batch_size, N)
    scales.clear()
    for n, expected in ((1000, 1 / 50), (30, 1 / 30)):
        cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=0.05, batch_size=50)
        train_dpsgd(model, loss, torch.randn(n, 3, generator=torch_generator(n)), cfg, generator=torch_generator(1))
        assert scales[-1] == pytest.approx(expected)


def test_ledger_records_one_calibrated_release():
    model, data = _make("mlp")
    data = torch.randn(200, 6, dtype=torch.float64, generator=torch_generator(4))
    ledger = PrivacyLedger()
    cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=2, batch_size=20, accountant="prv")
    res = train_dpsgd(model, _loss, data, cfg, generator=torch_generator(5), ledger=ledger, owner="test")
    assert len(ledger) == 1
    rel = ledger.entries[0]
    assert rel is res.release and rel.owner == "test" and rel.name == "dpsgd"
    assert rel.noise_multiplier == res.noise_multiplier > 0
    assert rel.sample_rate == pytest.approx(0.1) and rel.steps == res.steps == 20
    assert rel.sensitivity == 1.0
    assert res.epsilon == rel.epsilon <= 1.0 * (1 + 1e-9)
    assert res.epsilon == pytest.approx(subsampled_gaussian_epsilon(res.noise_multiplier, 0.1, 20, 1e-5))
    assert res.epsilon > 0.99  # calibrated, not loose
    assert ledger.spent()[0] == pytest.approx(res.epsilon)


def test_given_noise_multiplier_is_used_and_its_epsilon_recorded():
    """Several runs at one sigma calibrated for all their steps compose to exactly one longer run."""
    model, _ = _make("mlp")
    data = torch.randn(200, 6, dtype=torch.float64, generator=torch_generator(4))
    cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=2, batch_size=20, noise_multiplier=2.5)
    res = train_dpsgd(model, _loss, data, cfg, generator=torch_generator(5))
    assert res.noise_multiplier == 2.5 and res.steps == 20
    assert res.epsilon == pytest.approx(subsampled_gaussian_epsilon(2.5, 0.1, 20, 1e-5))
    for bad in (-1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="noise_multiplier"):
            DPSGDConfig(epsilon=1.0, delta=1e-5, noise_multiplier=bad)


def test_budget_checked_before_training():
    model, _ = _make("mlp")
    data = torch.randn(50, 6, dtype=torch.float64)
    before = copy.deepcopy(model.state_dict())
    ledger = PrivacyLedger(max_epsilon=0.5)
    cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=1, batch_size=10, accountant="rdp")
    with pytest.raises(PrivacyBudgetExceeded):
        train_dpsgd(model, _loss, data, cfg, generator=torch_generator(0), ledger=ledger)
    assert len(ledger) == 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert all(not h for m in model.modules() for h in (m._forward_hooks,))  # hooks removed


def test_failures_record_what_was_released():
    data = torch.randn(100, 6, dtype=torch.float64, generator=torch_generator(1))
    cfg = DPSGDConfig(epsilon=2.0, delta=1e-5, epochs=1, batch_size=10, accountant="rdp")
    model, _ = _make("mlp")
    before = copy.deepcopy(model.state_dict())
    ledger = PrivacyLedger()
    with pytest.raises(ValueError, match="outside a call"):  # structural error on the first batch
        train_dpsgd(model, lambda m, b: m(b) + F.linear(b[:, :-1], m.net[0].weight).sum(1), data, cfg,
                    generator=torch_generator(2), ledger=ledger)
    assert len(ledger) == 0 and all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    calls = []

    def flaky(m, b):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return m(b)

    with pytest.raises(RuntimeError, match="boom"):
        train_dpsgd(model, flaky, data, cfg, generator=torch_generator(2), ledger=ledger)
    assert len(ledger) == 1 and ledger.entries[0].steps == 10  # the planned release: 2 steps were taken


def _race(n_threads: int, target, barrier: threading.Barrier) -> list[BaseException | None]:
    """Run ``target(i)`` in threads; a thread that fails aborts ``barrier`` (its partners go on)."""
    errors: list[BaseException | None] = [None] * n_threads

    def run(i):
        try:
            target(i)
        except BaseException as exc:
            errors[i] = exc
            barrier.abort()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return errors


def test_concurrent_runs_on_a_shared_ledger_never_train_unrecorded():
    """Two threads, one ledger affording one run: the budget is reserved before the first step, so the
    refused run raises before training (its model untouched) and the ledger records every run that trained."""
    data = torch.randn(40, 6, dtype=torch.float64, generator=torch_generator(1))
    cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=1, batch_size=10, accountant="rdp")  # q = 0.25
    ledger = PrivacyLedger(max_epsilon=1.1)
    barrier = threading.Barrier(2)
    models = [_make("mlp", seed)[0] for seed in (0, 1)]
    before = [copy.deepcopy(m.state_dict()) for m in models]
    calls = [0, 0]
    results = [None, None]

    def target(i):
        def loss(model, batch):
            calls[i] += 1
            if calls[i] == 1:  # both threads start training before either finishes (before the fix)
                try:
                    barrier.wait(timeout=10)
                except threading.BrokenBarrierError:
                    pass
            return model(batch)

        results[i] = train_dpsgd(models[i], loss, data, cfg, generator=torch_generator(2 + i), ledger=ledger,
                                 owner=f"thread{i}")

    errors = _race(2, target, barrier)
    refused = [i for i, e in enumerate(errors) if e is not None]
    assert len(refused) == 1 and isinstance(errors[refused[0]], PrivacyBudgetExceeded)
    (r,), (ok,) = refused, [i for i in (0, 1) if i not in refused]
    assert calls[r] == 0  # refused before any step
    assert all(torch.equal(v, models[r].state_dict()[k]) for k, v in before[r].items())
    assert [e.owner for e in ledger.entries] == [f"thread{ok}"] and ledger.entries[0] is results[ok].release
    assert ledger.spent()[0] <= 1.1


def test_early_stopping_records_steps_taken():
    model, _ = _make("mlp")
    data = torch.randn(100, 6, dtype=torch.float64, generator=torch_generator(1))
    ledger = PrivacyLedger()
    cfg = DPSGDConfig(epsilon=2.0, delta=1e-5, epochs=5, batch_size=10, accountant="rdp",
                      early_stopping=lambda step, m: step >= 3)
    res = train_dpsgd(model, _loss, data, cfg, generator=torch_generator(2), ledger=ledger)
    assert res.steps == 3 and res.planned_steps == 50 and res.stopped_early
    assert ledger.entries[0].steps == 3 and res.epsilon < 2.0


def test_empty_batches_give_noise_only_steps():
    model, _ = _make("mlp")
    data = torch.randn(1000, 6, dtype=torch.float64, generator=torch_generator(1))
    cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=0.02, batch_size=1, accountant="rdp", diagnostics=True,
                      verbose=1)
    res = train_dpsgd(model, _loss, data, cfg, generator=torch_generator(2))
    assert res.steps == 20 and 0.0 in res.history["batch_size"]
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_epsilon_inf_is_plain_sgd_through_the_same_code():
    model, _ = _make("shared")
    data = torch.randn(40, 6, dtype=torch.float64, generator=torch_generator(1))
    plain = copy.deepcopy(model)
    ledger = PrivacyLedger()
    cfg = DPSGDConfig(epsilon=math.inf, delta=1e-5, epochs=1, batch_size=40, max_grad_norm=None,
                      optimizer="sgd", lr=0.1)
    res = train_dpsgd(model, _loss, data, cfg, generator=torch_generator(2), ledger=ledger)
    assert res.noise_multiplier == 0 and res.steps == 1 and math.isinf(res.epsilon)
    assert len(ledger) == 1 and math.isinf(ledger.spent()[0])
    plain(data).mean().backward()
    with torch.no_grad():
        for p in plain.parameters():
            p -= 0.1 * p.grad
    for p, r in zip(model.parameters(), plain.parameters(), strict=True):
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="only allowed with epsilon=inf"):
        DPSGDConfig(epsilon=1.0, delta=1e-5, max_grad_norm=None)


@pytest.mark.parametrize("epsilon, clipping", [(math.inf, "flat"), (8.0, "flat"), (8.0, "per_layer")])
def test_training_reduces_loss(epsilon, clipping):
    gen = torch_generator(7)
    x = torch.randn(2000, 5, generator=gen)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 0.0, 1.5]) + 0.1 * torch.randn(2000, generator=gen)
    data = torch.cat([x, y[:, None]], dim=1)
    model = MLPLoss(5, 32, gen)
    with torch.no_grad():
        before = float(model(data).mean())
    cfg = DPSGDConfig(epsilon=epsilon, delta=1e-5, epochs=8, batch_size=200, max_grad_norm=1.0,
                      clipping=clipping, lr=0.02, accountant="rdp")
    res = train_dpsgd(model, _loss, data, cfg, generator=gen)
    with torch.no_grad():
        after = float(model(data).mean())
    assert res.steps == 80
    assert after < 0.15 * before, (before, after)


def test_model_mode_restored_and_hooks_removed():
    model, _ = _make("mlp")
    model.eval()
    seen = []
    cfg = DPSGDConfig(epsilon=1.0, delta=1e-5, epochs=0.2, batch_size=10, accountant="rdp",
                      early_stopping=lambda step, m: seen.append(m.training) or False)
    train_dpsgd(model, _loss, torch.randn(50, 6, dtype=torch.float64), cfg, generator=torch_generator(0))
    assert seen == [True] and not model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_non_finite_example_is_dropped():
    model, batch = _make("shared")
    ref = _reference_grads(model, batch)
    bad = batch.clone()
    bad[2, 0] = float("nan")
    with PerExampleClipper(model, max_grad_norm=0.5) as clipper:
        out = clipper.clip_and_sum(_loss, bad)
        assert out.factors[2, 0] == 0 and torch.isnan(out.loss[2])
        names = clipper.layer_names
        norms = _layer_sq_norms(model, ref, names).sum(1).sqrt()
        factors = (0.5 / norms).clamp(max=1)
        factors[2] = 0
        torch.testing.assert_close(out.factors[:, 0], factors)
        for name in names:
            naive = torch.einsum("b,b...->...", factors, ref[f"{name}.weight"])
            torch.testing.assert_close(model.get_submodule(name).weight.grad, naive, rtol=1e-7, atol=1e-10)
        assert not clipper._checked  # the structural check waits for a finite batch
        clipper.clip_and_sum(_loss, batch)
        assert clipper._checked


def test_tuple_data_and_config_validation():
    gen = torch_generator(0)
    lin = make_linear(3, 1, gen, "cpu")
    x, y = torch.randn(30, 3, generator=gen), torch.randn(30, generator=gen)
    cfg = DPSGDConfig(epsilon=3.0, delta=1e-5, epochs=1, batch_size=10, accountant="rdp")
    res = train_dpsgd(lin, lambda m, b: (m(b[0])[:, 0] - b[1]) ** 2, (x, y), cfg, generator=gen)
    assert res.steps == 3
    with pytest.raises(ValueError, match="same number of rows"):
        train_dpsgd(lin, _loss, (x, y[:5]), cfg, generator=gen)
    for bad in [dict(epsilon=0), dict(delta=1.0), dict(batch_size=0), dict(clipping="nope"),
                dict(accountant="x"), dict(optimizer="lbfgs"), dict(norm_method="x"), dict(max_grad_norm=-1)]:
        with pytest.raises(ValueError):
            DPSGDConfig(**{"epsilon": 1.0, "delta": 1e-5, **bad})


def test_gram_norm_of_a_tied_layer_holds_when_the_calls_gradients_cancel():
    # one Linear called twice, out = L(x) - L(x + e): the per-call gradients (~|x|) nearly cancel; the Gram
    # route sums large terms of opposite sign, which float32 could not (clipped contributions reached 5.6 C)
    from skdpgen.dpsgd import PerExampleClipper

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(16, 8)

        def forward(self, x, e):
            return self.lin(x) - self.lin(x + e)

    gen = torch.Generator().manual_seed(0)
    model = Twice()
    x = torch.randn(64, 16, generator=gen) * 2500.0
    e = torch.randn(64, 16, generator=gen) * 0.75
    u = torch.randn(64, 8, generator=gen) / 8**0.5
    true = torch.einsum("bp,bd->bpd", u.double(), x.double() - (x + e).double()).pow(2).sum((1, 2)).sqrt()
    clipper = PerExampleClipper(model, 1.0, "flat", None, "ghost")
    try:
        out = clipper.clip_and_sum(lambda m, b: (m(b[0], b[1]) * b[2]).sum(1), (x, e, u))
    finally:
        clipper.remove()
    assert (out.factors[:, 0].double() * true).max() <= 1.0 + 1e-3  # every clipped contribution within C
    torch.testing.assert_close(out.group_norms[:, 0].double(), true, rtol=1e-3, atol=1e-6)
