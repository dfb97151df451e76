"""Mixed precision: bf16 autocast with fp32 parameters, and fp16 only behind a dynamic loss scale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor

from gancore import recipe as recipes
from gancore.build import build
from gancore.data import Batches
from gancore.interfaces import PenaltyContext
from gancore.precision import LossScale
from gancore.registry import default_registry
from gancore.training import Trainer


def digits(precision: str) -> dict[str, Any]:
    return {
        "data": {"name": "digits"},
        "generator": {"name": "mlp", "params": {"z_dim": 16, "width": 64, "depth": 2, "channels": 1, "resolution": 8}},
        "discriminator": {"name": "mlp", "params": {"width": 64, "depth": 2, "channels": 1, "resolution": 8}},
        "loss": {"name": "rpgan"},
        "regularizers": [{"name": "r1", "params": {"gamma": 0.1}}, {"name": "r2", "params": {"gamma": 0.1}}],
        "train": {"batch_size": 32, "total_kimg": 0.256, "device": "cpu", "num_workers": 0, "precision": precision,
                  "log_every_kimg": 0.128, "sample_every_kimg": 1},
    }


def trainer(raw: dict[str, Any], out: Path) -> Trainer:
    registry = default_registry()
    recipe = recipes.validate(raw, registry)
    return Trainer(recipe, build(recipe, registry), out, raw)


@pytest.mark.parametrize("precision,dtype", [("fp32", torch.float32), ("bf16", torch.bfloat16),
                                             ("fp16", torch.float16)])
def test_forward_passes_run_in_the_precision_and_parameters_stay_fp32(tmp_path: Path, precision: str,
                                                                        dtype: torch.dtype) -> None:
    t = trainer(digits(precision), tmp_path)
    seen: list[torch.dtype] = []
    t.D.body[0].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    start = t.G.net[0].weight.detach().clone()
    t.run()
    assert set(seen) == {dtype}
    assert all(p.dtype == torch.float32 for p in [*t.G.parameters(), *t.D.parameters()])
    assert all(s["exp_avg"].dtype == torch.float32 for s in t.d_opt.state.values())
    assert (t.G.net[0].weight - start).abs().max() > 1e-3
    assert t.bad_steps == 0
    if precision == "fp16":  # it may have halved on an overflow, as it should, but not collapsed
        assert 2.0**10 <= t.loss_scale.value <= 2.0**16
    else:
        assert t.loss_scale.value == 1.0


def test_the_input_gradient_under_a_loss_scale_is_the_unscaled_one() -> None:
    D = default_registry().create("discriminator", "mlp", {"width": 16, "depth": 2})
    x = torch.randn(8, 2, requires_grad=True)

    def gradient(scale: float) -> Tensor:
        logits = D(x)
        ctx = PenaltyContext(D, D, x, x, None, logits, logits, 0.0, ("real",), grad_scale=scale)
        return ctx.input_gradient("real")

    torch.testing.assert_close(gradient(1024.0), gradient(1.0))
    expected = torch.autograd.grad(D(x).sum(), x)[0]
    torch.testing.assert_close(gradient(1.0), expected)


def test_the_loss_scale_halves_on_overflow_and_grows_after_clean_steps() -> None:
    scale = LossScale("fp16", initial=8.0, growth_interval=3)
    assert scale.overflowed() and scale.value == 4.0
    scale.clean(), scale.clean()
    assert scale.value == 4.0
    scale.clean()
    assert scale.value == 8.0
    for _ in range(3):
        scale.overflowed()
    assert scale.value == 1.0
    assert not scale.overflowed() and scale.value == 1.0  # at 1 a non-finite step is a real one
    assert LossScale("bf16").value == 1.0 and not LossScale("bf16").overflowed()


def test_an_fp16_overflow_lowers_the_scale_and_skips_the_step_without_counting_it(tmp_path: Path) -> None:
    t = trainer(digits("fp16"), tmp_path)
    data = Batches(t.parts.dataset, 32, t.world, 0, 0, False)
    real, _ = data.next()
    t.loss_scale.value = 2.0**120  # far beyond float16: the scaled backward overflows
    before = [p.detach().clone() for p in t.D.parameters()]
    assert not t.discriminator_phase(real, None)
    assert t.loss_scale.value == 2.0**119 and t.bad_steps == 0
    assert all(torch.equal(b, p) for b, p in zip(before, t.D.parameters()))
    t.loss_scale.value = 2.0**10
    assert t.discriminator_phase(real, None)
    assert any(not torch.equal(b, p) for b, p in zip(before, t.D.parameters()))
