"""The conformance kit catches broken components: a kit that passes everything would prove nothing.

Each component here has a ``defect`` parameter (or a parameter such as ``center``) that breaks exactly one
clause of its kind's contract. A broken one must fail with that clause, and its correct twin (``defect="none"``,
or the fixed parameter) must pass, so that the failure comes from the defect and not from the scaffolding.
The networks are tiny MLPs on 2-D points or 1×8×8 images, so that the file stays fast.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import gancore.conformance
import gancore.testing
from gancore import (
    CORE_API_VERSION,
    Augmenter,
    Dataset,
    Discriminator,
    Evaluation,
    FeatureExtractor,
    GancoreError,
    Generator,
    Loss,
    Metric,
    PenaltyContext,
    Regularizer,
    cli,
    component,
    hookimpl,
)
from gancore.conformance import ConformanceError, NotCheckable, Report, check_component, components_of
from gancore.registry import Registry
from gancore.testing import make_registry

# -- generators ----------------------------------------------------------------------------------------

GeneratorDefect = Literal["none", "shape", "non_finite", "batch_centred", "unconditional_batch_centred", "ignores_c",
                          "orphan", "unsaved_state", "scale"]


@component("generator", "tiny_g")
class TinyGenerator(Generator):
    """z (and a class embedding) → linear, SiLU → linear (+ a fixed noise buffer); tanh for 1×R×R images."""

    def __init__(self, resolution: int = 0, num_classes: int = 0, defect: GeneratorDefect = "none") -> None:
        super().__init__(4, num_classes, resolution, 1 if resolution else 2)
        self.defect = defect
        size = math.prod(self.output_shape)
        self.embed = nn.Embedding(num_classes, 4) if num_classes else None
        self.hidden = nn.Linear(4 + (4 if num_classes else 0), 16)
        self.out = nn.Linear(16, size)
        noise = 0.01 * torch.randn(size)
        if defect == "unsaved_state":
            self.noise = noise  # a plain attribute: the state dict does not hold it
        else:
            self.register_buffer("noise", noise)
        if defect == "orphan":
            self.orphan = nn.Parameter(torch.zeros(size))  # never used in forward

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            e = self.embed(c)
            z = torch.cat([z, 0 * e if self.defect == "ignores_c" else e], 1)
        h = F.silu(self.hidden(z))
        if self.defect == "batch_centred" or (self.defect == "unconditional_batch_centred" and self.embed is None):
            h = h - h.mean(0, keepdim=True)  # normalises over the batch in eval mode too
        x = self.out(h) + self.noise
        if self.resolution:
            x = torch.tanh(x)
        if self.defect == "scale":
            x = 100 * x
        if self.defect == "non_finite":
            x = x / 0
        x = x.view(len(x), *self.output_shape)
        if self.defect == "shape":
            x = x[..., :-1]
        return x


# -- discriminators ------------------------------------------------------------------------------------

DiscriminatorDefect = Literal["none", "logit_shape", "minibatch_std", "detaches"]


@component("discriminator", "tiny_d")
class TinyDiscriminator(Discriminator):
    """flatten → linear, SiLU → linear, plus a class projection; ``minibatch_std`` appends the batch's spread."""

    def __init__(self, channels: int = 1, resolution: int = 8, num_classes: int = 0,
                 defect: DiscriminatorDefect = "none") -> None:
        super().__init__(num_classes)
        self.defect = defect
        self.hidden = nn.Linear(channels * (resolution * resolution if resolution else 1), 16)
        self.head = nn.Linear(16 + (defect == "minibatch_std"), 1)
        self.embed = nn.Embedding(num_classes, 16) if num_classes else None

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        if self.defect == "detaches":
            x = x.detach()
        h = F.silu(self.hidden(x.flatten(1)))
        features = h
        if self.defect == "minibatch_std":
            spread = (h.var(0, unbiased=False) + 1e-8).sqrt().mean()
            features = torch.cat([h, spread.expand(len(h), 1)], 1)
        out = self.head(features)
        if self.embed is not None:
            out = out + (self.embed(c) * h).sum(1, keepdim=True)
        return out if self.defect == "logit_shape" else out.squeeze(1)


@component("discriminator", "tiny_d_declared")
class DeclaredBatchDependent(TinyDiscriminator):
    """tiny_d, declaring that a logit may depend on the rest of its batch."""

    batch_dependent = True


# -- losses ----------------------------------------------------------------------------------------------

LossDefect = Literal["none", "flipped", "overflow", "sum", "in_place"]


@component("loss", "tiny_loss")
class TinyLoss(Loss):
    """The non-saturating logistic loss, softplus(−r) + softplus(f) for D and softplus(−f) for G."""

    def __init__(self, defect: LossDefect = "none") -> None:
        self.defect = defect

    def _reduce(self, value: Tensor) -> Tensor:
        return value.sum() if self.defect == "sum" else value.mean()

    def _softplus(self, x: Tensor) -> Tensor:
        return torch.log1p(torch.exp(x)) if self.defect == "overflow" else F.softplus(x)

    def discriminator_loss(self, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
        if self.defect == "in_place":
            with torch.no_grad():  # "stabilises" D by clipping its logits, the caller's tensors included
                real_logits.clamp_(-10, 10)
                fake_logits.clamp_(-10, 10)
        if self.defect == "flipped":
            return self._reduce(self._softplus(real_logits) + self._softplus(-fake_logits))
        return self._reduce(self._softplus(-real_logits) + self._softplus(fake_logits))

    def generator_loss(self, fake_logits: Tensor, real_logits: Tensor | None) -> Tensor:
        return self._reduce(self._softplus(-fake_logits))


# -- regularizers --------------------------------------------------------------------------------------


@component("regularizer", "tiny_gp")
class TinyGradientPenalty(Regularizer):
    """sign · (‖∇ₓD(real)‖ − center)², declaring ``ideal_gradient_norm = declared``."""

    input_gradients = ("real",)

    def __init__(self, center: float = 0.0, declared: float = 0.0, sign: float = 1.0, nonnegative: bool = True) -> None:
        self.center, self.sign = center, sign
        self.ideal_gradient_norm = declared
        self.nonnegative = nonnegative

    def penalty(self, ctx: PenaltyContext) -> Tensor:
        grad = ctx.input_gradient("real").flatten(1)
        if self.center == 0:
            value = grad.square().sum(1)
        else:
            value = (grad.norm(dim=1) - self.center).square()
        return self.sign * value.mean()


@component("regularizer", "tiny_rescale")
class TinyRescale(Regularizer):
    """Doubles every parameter of the network at build time; ``refuse_twice`` makes a second attach an error."""

    def __init__(self, refuse_twice: bool = False) -> None:
        self.refuse_twice = refuse_twice

    def attach(self, network: nn.Module) -> None:
        if self.refuse_twice and getattr(network, "_tiny_rescaled", False):
            raise ValueError("tiny_rescale is already attached to this network")
        with torch.no_grad():
            for p in network.parameters():
                p.mul_(2)
        network._tiny_rescaled = True


# -- augmenters ----------------------------------------------------------------------------------------

AugmenterDefect = Literal["none", "not_identity", "detaches", "numpy_rng", "unclamped"]


@component("augmenter", "tiny_aug")
class TinyAugmenter(Augmenter):
    """Adds 0.1·N(0, 1) noise to each image with probability p; update moves p by ±0.6 with D's mean sign."""

    def __init__(self, p: float = 0.5, defect: AugmenterDefect = "none") -> None:
        super().__init__(p)
        self.defect = defect

    def update(self, kimg: float, real_logits: Tensor) -> None:
        p = float(self.p) + 0.6 * float(torch.sign(real_logits.mean()))
        self.p.fill_(p if self.defect == "unclamped" else min(max(p, 0.0), 1.0))

    def forward(self, x: Tensor) -> Tensor:
        if self.defect == "not_identity":
            x = x + 0.01 * torch.randn_like(x)  # noise applied whatever p is
        chosen = (torch.rand(len(x), device=x.device) < self.p).view(-1, *[1] * (x.dim() - 1))
        if self.defect == "numpy_rng":
            noise = torch.from_numpy(np.random.standard_normal(tuple(x.shape))).to(x)
        else:
            noise = torch.randn_like(x)
        y = torch.where(chosen, x + 0.1 * noise, x)
        return y.detach() if self.defect == "detaches" else y


# -- metrics -----------------------------------------------------------------------------------------


class PointFeatures(FeatureExtractor):
    """2-D points are their own features."""

    key = "test-conformance-kit-points"
    name = "points"

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        return {"points": samples.float()}


MetricDefect = Literal["none", "identical_wrong", "nondeterministic", "negative"]


@component("metric", "tiny_metric")
class MeanDistance(Metric):
    """The distance between the means of the generated and the real points."""

    bounds = {"distance": (0.0, math.inf)}
    identical = {"distance": 0.0}

    def __init__(self, defect: MetricDefect = "none") -> None:
        self.defect = defect
        if defect == "identical_wrong":
            self.identical = {"distance": 1.0}

    def check(self, dataset: Dataset) -> None:
        if tuple(dataset.shape) != (2,):
            raise ValueError("tiny_metric measures 2-D points")

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        fake = evaluation.generated(PointFeatures(), 100)["points"].mean
        real = evaluation.real(PointFeatures(), 100)["points"].mean
        distance = float((fake - real).norm())
        if self.defect == "nondeterministic":
            distance *= 1 + float(torch.rand(()))  # unseeded; still 0 at identical sets
        if self.defect == "negative":
            distance = -distance
        return {"distance": distance}


POINTS = ("gaussians_grid", {"size": 64})


# -- data sets -----------------------------------------------------------------------------------------

DatasetDefect = Literal["none", "label_range", "float_images", "wraps"]
BAD_LABELS_FROM = 15
"""With ``label_range`` items are labelled in blocks of 5, index // 5: labels reach 3 from item 15 on."""


@component("dataset", "tiny_data")
class TinyData(Dataset):
    """``size`` flat grey 1×8×8 images, labelled index mod 3."""

    num_classes = 3

    def __init__(self, size: int = 20, defect: DatasetDefect = "none") -> None:
        self.size, self.defect = size, defect

    @property
    def shape(self) -> tuple[int, ...]:
        return (1, 8, 8)

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> tuple[Tensor, int]:
        if self.defect == "wraps":
            index %= self.size
        elif not 0 <= index < self.size:
            raise IndexError(f"index {index} out of range for {self.size} items")
        x = torch.full((1, 8, 8), 10 * index % 256, dtype=torch.uint8)
        if self.defect == "float_images":
            x = x.float() / 255
        label = index // 5 if self.defect == "label_range" else index % 3
        return x, label


@component("dataset", "needs_root")
def needs_root(root: str) -> TinyData:
    """A data set read from a folder that must be given."""
    return TinyData()


# -- the plugin ----------------------------------------------------------------------------------------


def make_plugin(name: str, *components: Any) -> ModuleType:
    """A plugin module named ``name`` whose hook returns ``components``."""
    module = ModuleType(name)
    module.GANCORE_API_VERSION = CORE_API_VERSION  # type: ignore[attr-defined]

    def gancore_components() -> Sequence[Any]:
        return list(components)

    module.gancore_components = hookimpl(gancore_components)  # type: ignore[attr-defined]
    return module


ALL = [TinyGenerator, TinyDiscriminator, DeclaredBatchDependent, TinyLoss, TinyGradientPenalty, TinyRescale,
       TinyAugmenter, MeanDistance, TinyData, needs_root]


@pytest.fixture(scope="module")
def registry() -> Registry:
    return make_registry(make_plugin("broken_kit", *ALL))


def breaks(registry: Registry, kind: str, name: str, params: dict[str, Any], clause: str,
           **kwargs: Any) -> ConformanceError:
    """Check the component, which must break the clause whose text contains ``clause``."""
    with pytest.raises(ConformanceError) as caught:
        check_component(kind, name, params, registry=registry, **kwargs)
    error = caught.value
    assert clause in error.clause, f"expected the clause {clause!r} to break, got:\n{error}"
    assert error.component == f"{kind}:{name}"
    assert error.clause in str(error)
    return error


@dataclass(frozen=True)
class Case:
    """A broken component, a distinctive part of the clause it breaks (and of the failure's detail, where a clause
    covers several defects), and its correct twin; ``data`` is the data set a metric is checked on."""

    kind: str
    name: str
    broken: dict[str, Any]
    clause: str
    detail: str | None = None
    twin: dict[str, Any] = field(default_factory=dict)
    data: tuple[str, dict[str, Any]] | None = None

    @property
    def id(self) -> str:
        return "-".join([self.name, *(f"{k}={v}" for k, v in self.broken.items())])


CASES = [
    Case("generator", "tiny_g", {"defect": "shape"}, "has shape (N, *output_shape)", "output shape (2, 1)"),
    Case("generator", "tiny_g", {"defect": "non_finite"}, "dtype float32 and finite values", "non-finite output"),
    Case("generator", "tiny_g", {"defect": "batch_centred"}, "the same alone as in a batch", "computed alone differs"),
    Case("generator", "tiny_g", {"num_classes": 3, "defect": "ignores_c"}, "the class changes the sample",
         twin={"num_classes": 3}),
    Case("generator", "tiny_g", {"defect": "orphan"}, "gradients reach every parameter", "['orphan']"),
    Case("generator", "tiny_g", {"defect": "unsaved_state"}, "a state dict saved and loaded", "samples differ"),
    Case("generator", "tiny_g", {"resolution": 8, "defect": "scale"}, "images are on the data's [-1, 1] scale",
         "beyond ±1.5", twin={"resolution": 8}),
    Case("discriminator", "tiny_d", {"defect": "logit_shape"}, "logits of shape (N,)", "logits of shape (2, 1)"),
    Case("discriminator", "tiny_d", {"defect": "minibatch_std"}, "does not depend on the others in its batch",
         "when other samples join the batch"),
    Case("discriminator", "tiny_d", {"defect": "detaches"}, "twice differentiable in x"),
    Case("loss", "tiny_loss", {"defect": "flipped"}, "sign convention", "D's loss"),
    Case("loss", "tiny_loss", {"defect": "overflow"}, "both losses are finite scalars", "loss is inf"),
    Case("loss", "tiny_loss", {"defect": "sum"}, "each loss is a batch mean", "on the repeated batch"),
    Case("loss", "tiny_loss", {"defect": "in_place"}, "inputs left unchanged", "changed its inputs in place"),
    Case("regularizer", "tiny_gp", {"sign": -1.0}, "≥ 0 unless declared otherwise", "< 0",
         twin={"sign": -1.0, "nonnegative": False}),
    Case("regularizer", "tiny_gp", {"center": 1.0, "declared": 0.0}, "the penalty vanishes at a critic", "penalty 1",
         twin={"center": 1.0, "declared": 1.0}),
    Case("regularizer", "tiny_rescale", {}, "attaching twice", "attaching again changed", twin={"refuse_twice": True}),
    Case("augmenter", "tiny_aug", {"defect": "not_identity"}, "at p = 0 the augmenter is the identity",
         "output differs from the input"),
    Case("augmenter", "tiny_aug", {"defect": "detaches"}, "gradients flow back to the input"),
    Case("augmenter", "tiny_aug", {"defect": "numpy_rng"}, "the same torch seed gives the same output",
         "two different outputs"),
    Case("augmenter", "tiny_aug", {"defect": "unclamped"}, "keeps p in [0, 1]", "after update"),
    Case("metric", "tiny_metric", {"defect": "identical_wrong"}, "equal to the declared identical values",
         "declared {'distance': 1.0}", data=POINTS),
    Case("metric", "tiny_metric", {"defect": "nondeterministic"}, "the same when computed again",
         "the second time", data=POINTS),
    Case("metric", "tiny_metric", {"defect": "negative"}, "on a generator's samples, values are finite, within bounds",
         "outside the declared bounds", data=POINTS),
    Case("dataset", "tiny_data", {"defect": "label_range"}, "label an int in [0, num_classes)",
         "label 3 outside [0, 3)"),
    Case("dataset", "tiny_data", {"defect": "float_images"}, "uint8 images, float32 points", "dtype torch.float32"),
    Case("dataset", "tiny_data", {"defect": "wraps"}, "indexing one past the end raises IndexError",
         "data[20] returned an item"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_a_broken_component_breaks_its_clause(registry: Registry, case: Case) -> None:
    error = breaks(registry, case.kind, case.name, case.broken, case.clause, data=case.data)
    if case.detail is not None:
        assert case.detail in error.detail, f"expected {case.detail!r} in the detail, got:\n{error}"


TWINS = list({(c.kind, c.name, json.dumps(c.twin, sort_keys=True)): c for c in CASES}.values())


@pytest.mark.parametrize("case", TWINS, ids=[f"{c.name}-{json.dumps(c.twin, sort_keys=True)}" for c in TWINS])
def test_the_correct_twin_conforms(registry: Registry, case: Case) -> None:
    report = check_component(case.kind, case.name, case.twin, registry=registry, data=case.data)
    assert isinstance(report, Report) and report.component == f"{case.kind}:{case.name}"
    assert len(report.clauses) >= 3 and len(report.seconds) == len(report.clauses)
    assert report.notes == []


# -- what the failures say -----------------------------------------------------------------------------


def test_the_overflow_is_shrunk_to_one_pair_of_logits(registry: Registry) -> None:
    error = breaks(registry, "loss", "tiny_loss", {"defect": "overflow"}, "both losses are finite scalars")
    (real, fake) = error.example["pair"]  # type: ignore[index]
    assert len(real) == len(fake) == 1, error.example
    # exp overflows float32 beyond 88.7: the shrunk culprit is just past it, the other logit shrunk to 0
    culprit = max(abs(real[0]), abs(fake[0]))
    assert 88.7 < culprit < 100, error.example
    assert min(abs(real[0]), abs(fake[0])) == 0.0, error.example
    assert "smallest failing example: pair=" in str(error)
    assert "inf" in error.detail


def test_the_label_out_of_range_is_shrunk_to_the_first_bad_index(registry: Registry) -> None:
    error = breaks(registry, "dataset", "tiny_data", {"defect": "label_range"}, "label an int in [0, num_classes)")
    assert error.example == {"index": BAD_LABELS_FROM}
    assert "label 3 outside [0, 3)" in error.detail


def test_the_in_place_loss_is_named_as_such(registry: Registry) -> None:
    error = breaks(registry, "loss", "tiny_loss", {"defect": "in_place"}, "inputs left unchanged")
    assert "changed its inputs in place" in error.detail
    assert any(abs(v) > 10 for side in error.example["pair"] for v in side)  # type: ignore[index]


def test_the_unclamped_update_reports_p(registry: Registry) -> None:
    error = breaks(registry, "augmenter", "tiny_aug", {"defect": "unclamped"}, "keeps p in [0, 1]")
    assert "p = " in error.detail and error.example is not None and "steps" in error.example


def test_a_declared_batch_dependence_skips_that_clause_with_a_note(registry: Registry) -> None:
    report = check_component("discriminator", "tiny_d_declared", {"defect": "minibatch_std"}, registry=registry)
    assert any("batch_dependent" in note for note in report.notes), report.notes
    assert not any("depend on the others" in clause for clause in report.clauses)
    assert "batch_dependent" in str(report)


def test_a_conditional_generator_is_checked_on_both_paths(registry: Registry) -> None:
    report = check_component("generator", "tiny_g", {"num_classes": 3}, registry=registry)
    assert any(c.startswith("[num_classes=0] ") for c in report.clauses)
    assert any("the class changes the sample" in c and not c.startswith("[") for c in report.clauses)


def test_a_generator_broken_only_without_classes_fails_on_that_path(registry: Registry) -> None:
    """The kit also builds a conditional generator with num_classes=0; the clause names that variant."""
    error = breaks(registry, "generator", "tiny_g", {"num_classes": 3, "defect": "unconditional_batch_centred"},
                   "the same alone as in a batch")
    assert error.clause.startswith("[num_classes=0] "), error.clause


# -- what the kit cannot check -------------------------------------------------------------------------


def test_a_required_parameter_makes_a_component_not_checkable(registry: Registry) -> None:
    with pytest.raises(NotCheckable, match="needs the parameter root"):
        check_component("dataset", "needs_root", registry=registry)
    report = check_component("dataset", "needs_root", {"root": "/anywhere"}, registry=registry)
    assert report.clauses


def test_a_metric_without_its_weights_is_not_checkable(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Any) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("GANCORE_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(NotCheckable, match="pt_inception"):
        check_component("metric", "fid", registry=make_registry())


# -- finding a plugin's components ---------------------------------------------------------------------


def test_components_of_finds_a_plugin_by_entry_point_and_by_distribution() -> None:
    from gancore.registry import default_registry

    registry = default_registry()
    expected = [("regularizer", "spectral_norm"), ("regularizer", "orthogonal"), ("regularizer", "orthogonal_init")]
    for name in ["sn", "gancore-sn", "gancore_sn", "GANCORE-SN"]:
        assert sorted(components_of(registry, name)) == sorted(expected), name
    assert ("loss", "hinge") in components_of(registry, "gancore")


def test_components_of_a_test_plugin(registry: Registry) -> None:
    assert ("loss", "tiny_loss") in components_of(registry, "broken_kit")
    assert ("loss", "tiny_loss") in components_of(registry, "broken-kit")
    assert len(components_of(registry, "broken_kit")) == len(ALL)


def test_components_of_an_unknown_plugin_lists_what_is_installed(registry: Registry) -> None:
    with pytest.raises(GancoreError, match="no installed plugin or distribution is named 'nonesuch'") as caught:
        components_of(registry, "nonesuch")
    assert "gancore" in str(caught.value) and "broken_kit" in str(caught.value)


def test_components_of_a_plugin_that_failed_to_load_says_why() -> None:
    stale = make_plugin("stale", TinyLoss)
    stale.GANCORE_API_VERSION = 0  # type: ignore[attr-defined]
    with pytest.raises(GancoreError, match="'stale' is not usable"):
        components_of(make_registry(stale), "stale")


# -- the pytest plugin and the command line: a small plugin -------------------------------------------


@pytest.fixture
def small_plugin(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """The process-wide registry, as the pytest plugin and ``gancore check`` see it: the built-ins and the
    plugin ``small_kit`` of one broken and one correct loss, a correct augmenter and a data set that needs a
    parameter."""
    broken = component("loss", "tiny_loss_flipped")(lambda: TinyLoss("flipped"))
    fine = component("loss", "tiny_loss_fine")(lambda: TinyLoss())

    def bad_example(margin: float = 1.0) -> TinyLoss:
        return TinyLoss()

    refused = component("loss", "tiny_loss_bad_example", examples=[{"margn": 2.0}])(bad_example)
    registry = make_registry(make_plugin("small_kit", broken, fine, refused, TinyAugmenter, needs_root))
    for module in (cli, gancore.testing, gancore.conformance):
        monkeypatch.setattr(module, "default_registry", lambda: registry)
    return registry


def test_pytest_runs_the_kit_on_an_installed_plugin(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--gancore-conformance", "gancore-sn", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*conformance::regularizer:spectral_norm[[]0[]] PASSED*",
                                 "*conformance::regularizer:orthogonal[[]0[]] PASSED*",
                                 "*conformance::regularizer:orthogonal_init[[]0[]] PASSED*"])


def test_pytest_fails_a_broken_component_with_its_clause(small_plugin: Registry, pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--gancore-conformance", "small-kit", "-p", "no:cacheprovider", "-v", "-rs")
    result.assert_outcomes(passed=2, failed=2, skipped=1)
    result.stdout.fnmatch_lines(["*conformance::loss:tiny_loss_flipped[[]0[]] FAILED*",
                                 "*conformance::loss:tiny_loss_fine[[]0[]] PASSED*",
                                 "*conformance::loss:tiny_loss_bad_example[[]0[]] FAILED*",
                                 "*conformance::augmenter:tiny_aug[[]0[]] PASSED*",
                                 "*conformance::dataset:needs_root[[]0[]] SKIPPED*"])
    result.stdout.fnmatch_lines(["*loss:tiny_loss_flipped breaks the contract clause: sign convention*",
                                 "*smallest failing example: n=*"])
    result.stdout.fnmatch_lines(["*not checkable: dataset 'needs_root' needs the parameter root*"])
    result.stdout.fnmatch_lines(["*the example's parameters are refused: params.margn: unknown key*"])


def test_pytest_refuses_an_unknown_plugin_as_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--gancore-conformance", "nonesuch", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--gancore-conformance nonesuch*no installed plugin*"])


def test_gancore_check_passes_an_installed_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "gancore-sn"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in ["spectral_norm", "orthogonal", "orthogonal_init"]:
        assert any(line.startswith(f"ok    regularizer:{name} {{}}") for line in lines), lines
    assert lines[-1] == "3 conform, 0 fail, 0 not checked"


def test_gancore_check_fails_a_broken_plugin(small_plugin: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "small_kit"]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(line.startswith("FAIL  loss:tiny_loss_flipped {}") for line in lines), out
    assert any(line.startswith("ok    loss:tiny_loss_fine {}") for line in lines), out
    assert any(line.startswith("ok    augmenter:tiny_aug {}") for line in lines), out
    assert any(line.startswith("skip  dataset:needs_root {}") for line in lines), out
    assert "breaks the contract clause: sign convention" in out
    assert "smallest failing example: n=" in out
    # a declared example that its own component refuses is the plugin's fault, not a lack of input
    assert any(line.startswith("FAIL  loss:tiny_loss_bad_example {\"margn\": 2.0}") for line in lines), out
    assert "the example's parameters are refused: params.margn: unknown key; allowed keys: margin" in out
    assert lines[-1] == "2 conform, 2 fail, 1 not checked"


def test_gancore_check_kind_filters(small_plugin: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "small-kit", "--kind", "augmenter", "--max-examples", "2"]) == 0
    out = capsys.readouterr().out
    assert "ok    augmenter:tiny_aug {}" in out and "loss:" not in out and "dataset:" not in out
    assert out.splitlines()[-1] == "1 conform, 0 fail, 0 not checked"
    assert cli.main(["check", "small_kit", "--kind", "loss"]) == 1
    out = capsys.readouterr().out
    assert "augmenter:" not in out and out.splitlines()[-1] == "1 conform, 2 fail, 0 not checked"


def test_gancore_check_refuses_a_kind_the_plugin_lacks(small_plugin: Registry,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "small_kit", "--kind", "metric"]) == 2
    assert "small_kit registers no metric" in capsys.readouterr().err


def test_gancore_check_refuses_zero_examples(small_plugin: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "small_kit", "--max-examples", "0"]) == 2
    assert "--max-examples 0: give at least 1" in capsys.readouterr().err


def test_gancore_check_refuses_an_unknown_plugin(small_plugin: Registry, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", "nonesuch"]) == 2
    assert "no installed plugin or distribution is named 'nonesuch'" in capsys.readouterr().err
