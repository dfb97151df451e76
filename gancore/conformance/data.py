"""The Metric and Dataset contracts as executable clauses."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from hypothesis import strategies as st

from gancore.conformance.clauses import Checker, NotCheckable, expect
from gancore.conformance.probes import ProbeGenerator
from gancore.errors import GancoreError
from gancore.evaluation import Evaluation, FeatureExtractor, Features
from gancore.interfaces import Dataset, Generator, Metric

SAMPLES = 12
"""Every request for features is cut to this many samples, so that a metric asking for 50k is checked in seconds."""

CANDIDATE_DATA: list[tuple[str, dict[str, Any]]] = [
    ("digits", {}), ("stacked_digits", {"size": 256}), ("gaussians_grid", {"size": 512}),
    ("gaussians_ring", {"size": 512}),
]
"""Built-in data sets the kit tries, in turn, for a metric given none: the first the metric accepts is used."""


class _Small(Evaluation):
    """An evaluation that serves at most SAMPLES samples per request; ``mirror`` serves real samples as the
    generated ones, the case where every distance must vanish."""

    def __init__(self, generator: Generator, dataset: Dataset, mirror: bool, cache: Path) -> None:
        super().__init__(generator, dataset, seed=0, batch_size=SAMPLES, data_key="conformance", cache=cache,
                         progress=False)
        self.mirror = mirror

    def generated(self, extractor: FeatureExtractor, n: int, keep_rows: bool = True) -> dict[str, Features]:
        if self.mirror:
            return self.real(extractor, n, keep_rows)
        return super().generated(extractor, min(n, SAMPLES), keep_rows)

    def real(self, extractor: FeatureExtractor, n: int | None = None, keep_rows: bool = True) -> dict[str, Features]:
        return super().real(extractor, min(n or SAMPLES, SAMPLES), keep_rows)


def choose_data(metric: Metric, registry: Any) -> Dataset:
    """The first candidate data set the metric accepts; a missing weights file makes it uncheckable."""
    reasons = []
    for name, params in CANDIDATE_DATA:
        dataset = registry.create("dataset", name, params)
        try:
            metric.check(dataset)
        except ValueError as exc:
            reasons.append(f"{name}: {exc}")
            continue
        except GancoreError as exc:
            raise NotCheckable(str(exc)) from None
        return dataset
    raise NotCheckable("it accepts none of the built-in data sets the kit tries (" + "; ".join(reasons) +
                       "); pass data=(name, params) of one it measures")


def check_metric(ck: Checker, make: Callable[[int], Any], dataset: Dataset) -> None:
    """Declared bounds, the value at identical sets, and the same value twice for one seed."""
    metric: Metric = make(0)
    with ck.clause("a Metric whose declared bounds are ordered intervals"):
        expect(isinstance(metric, Metric), f"built a {type(metric).__name__}")
        expect(all(lo <= hi for lo, hi in metric.bounds.values()), f"bounds {metric.bounds}")
    try:
        metric.check(dataset)
    except (ValueError, GancoreError) as exc:
        raise NotCheckable(f"it refuses the data set {type(dataset).__name__}: {exc}") from None
    torch.manual_seed(0)
    G = ProbeGenerator(tuple(dataset.shape), dataset.num_classes).eval()
    with tempfile.TemporaryDirectory(prefix="gancore-conformance-") as folder:
        _check_values(ck, make, metric, G, dataset, Path(folder))


def _check_values(ck: Checker, make: Callable[[int], Any], metric: Metric, G: Generator, dataset: Dataset,
                  cache: Path) -> None:
    """The metric's values on identical sets and on a generator's samples; real features are embedded once
    (cached in a folder of the kit's own) for all three evaluations."""
    def values(result: Any, where: str) -> dict[str, float]:
        expect(isinstance(result, dict) and result, f"{where}: compute returned {result!r}, not a dict of values")
        expect(all(isinstance(k, str) and isinstance(v, int | float) for k, v in result.items()),
               f"{where}: {result!r} is not a dict of numbers by name")
        bad = {k: v for k, v in result.items() if not math.isfinite(v)}
        expect(not bad, f"{where}: non-finite values {bad}")
        out = {k: float(v) for k, v in result.items()}
        outside = {k: v for k, v in out.items() if k in metric.bounds and
                   not metric.bounds[k][0] <= v <= metric.bounds[k][1]}
        expect(not outside, f"{where}: {outside} outside the declared bounds {metric.bounds}")
        return out

    with ck.clause("when the generated set is the real set, values are finite, within bounds, and equal to the "
                   "declared identical values (FID 0, precision and recall 1)"):
        same = values(make(0).compute(_Small(G, dataset, True, cache)), "identical sets")
        missing = sorted(set(metric.identical) - set(same))
        expect(not missing, f"declared identical values for {missing}, which compute does not return")
        off = {k: same[k] for k, v in metric.identical.items() if not math.isclose(same[k], v, abs_tol=1e-4)}
        expect(not off, f"{off}; declared {metric.identical}")
    with ck.clause("on a generator's samples, values are finite, within bounds, have the same names, and are the "
                   "same when computed again with the same seed"):
        first = values(make(0).compute(_Small(G, dataset, False, cache)), "generated samples")
        expect(set(first) == set(same), f"names {sorted(first)} differ from {sorted(same)}")
        metric = make(0)
        torch.manual_seed(1)  # another global RNG state: only the evaluation's seed may fix the values
        again = values(metric.compute(_Small(G, dataset, False, cache)), "generated samples again")
        expect(again == first, f"{again} the second time, {first} the first")


def check_dataset(ck: Checker, make: Callable[[int], Any]) -> None:
    """Length, item shape and dtype, labels in range, the same item twice, the end of indexing, collation."""
    data: Dataset = make(0)
    with ck.clause("a Dataset with items, an item shape of (D,) or (C, H, W), and num_classes ≥ 0"):
        expect(isinstance(data, Dataset), f"built a {type(data).__name__}")
        expect(len(data) > 0, "it is empty")
        shape = tuple(data.shape)
        expect(len(shape) in (1, 3) and all(isinstance(s, int) and s > 0 for s in shape), f"shape {shape}")
        expect(isinstance(data.num_classes, int) and data.num_classes >= 0, f"num_classes {data.num_classes!r}")
    images = len(shape) == 3

    def item(index: int) -> None:
        pair = data[index]
        expect(isinstance(pair, tuple) and len(pair) == 2, f"item {index} is {type(pair).__name__}, not (x, label)")
        x, label = pair
        expect(isinstance(x, torch.Tensor) and tuple(x.shape) == shape, f"x of shape {getattr(x, 'shape', x)}")
        dtype = torch.uint8 if images else torch.float32
        expect(x.dtype == dtype, f"x of dtype {x.dtype}; {'images' if images else 'points'} are {dtype}")
        expect(isinstance(label, int) and not isinstance(label, bool), f"label {label!r} is not an int")
        allowed = range(data.num_classes) if data.num_classes else range(1)
        expect(label in allowed, f"label {label} outside [0, {max(data.num_classes, 1)})")
        x2, label2 = data[index]
        expect(torch.equal(x, x2) and label == label2, "the same index gave two different items")

    ck.holds("item i is (x, label): x of the data's shape (uint8 images, float32 points), label an int in "
             "[0, num_classes) (0 when unconditional), the same every time", item,
             max_examples=2 * ck.max_examples, index=st.integers(0, len(data) - 1))
    with ck.clause("indexing one past the end raises IndexError"):
        try:
            data[len(data)]
        except IndexError:
            pass
        else:
            raise AssertionError(f"data[{len(data)}] returned an item")
    with ck.clause("a DataLoader collates items into (N, *shape) batches and (N,) labels"):
        x, y = next(iter(torch.utils.data.DataLoader(data, batch_size=min(4, len(data)))))
        n = min(4, len(data))
        expect(tuple(x.shape) == (n, *shape) and tuple(y.shape) == (n,), f"{tuple(x.shape)}, {tuple(y.shape)}")
