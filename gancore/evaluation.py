"""One evaluation of a generator against its data, shared by the metrics computed together.

Samples are embedded in fixed global batches: generated batch b is drawn from its own seed (seed, b),
real batch b is a fixed slice of the data, and process r embeds batches r, r + W, r + 2W, ... of W
processes. The features are gathered and reduced in batch order, so the numbers do not depend on W.
An extractor's output over a set is computed once per evaluation, whichever metrics ask for it, and
real-data features are cached on disk under a key of the data, the network and its preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from abc import ABCMeta, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor
from tqdm import tqdm

from gancore.batchnorm import stand
from gancore.data import default_workers
from gancore.distributed import World, all_gather_rows, broadcast, broadcast_tensors, derive_seed
from gancore.images import to_uint8
from gancore.interfaces import Dataset, Generator
from gancore.weights import cache_dir

if TYPE_CHECKING:
    from gancore.recipe import Recipe

STATS_FORMAT = "gancore-reference-features/1"
"""Written into every cached file; a file of another format is computed again."""
ROWS_UP_TO = 200_000
"""Sets up to this size keep their rows even when only moments are asked for: one embedding then serves
every metric, and the moments are always the two-pass ones. Larger sets (ImageNet in full) stream them."""
FINGERPRINT_ITEMS = 16
"""Items read (evenly spaced) to fingerprint a data set's content for the cache key."""

Source = Literal["generated", "real"]


class FeatureExtractor(metaclass=ABCMeta):
    """Maps a batch of samples to named feature matrices (N, D) for metrics.

    Images arrive as uint8 (N, C, H, W), generated ones quantised exactly like stored data; 2-D toy
    points as float (N, D). ``key`` names the network, its weights and its preprocessing, and is part
    of the cache key of reference features; ``name`` is what progress bars show.
    """

    key: str
    name: str

    @abstractmethod
    def __call__(self, samples: Tensor) -> dict[str, Tensor]: ...


@dataclass
class Features:
    """One output of an extractor over a set of samples: its rows (when kept) and its mean and covariance."""

    count: int
    rows: Tensor | None = None
    _moments: tuple[Tensor, Tensor] | None = field(default=None, repr=False)

    @property
    def mean(self) -> Tensor:
        return self._stats()[0]

    @property
    def cov(self) -> Tensor:
        """Covariance divided by N − 1, float64."""
        return self._stats()[1]

    def _stats(self) -> tuple[Tensor, Tensor]:
        if self._moments is None:
            from gancore.builtin.metrics.distances import feature_moments

            assert self.rows is not None
            self._moments = feature_moments(self.rows)
        return self._moments

    def state(self) -> dict[str, Tensor]:
        """What the cache stores: the rows if kept, else the moments."""
        if self.rows is not None:
            return {"rows": self.rows}
        return {"mean": self.mean, "cov": self.cov, "count": torch.tensor(self.count)}

    @classmethod
    def from_state(cls, state: dict[str, Tensor]) -> Features:
        if "rows" in state:
            return cls(len(state["rows"]), state["rows"])
        return cls(int(state["count"]), None, (state["mean"], state["cov"]))


class _Reducer:
    """Accumulates one output batch by batch: rows on the CPU, or float64 sums for the moments."""

    def __init__(self, keep_rows: bool) -> None:
        self.keep_rows = keep_rows
        self.rows: list[Tensor] = []
        self.total: Tensor | None = None
        self.outer: Tensor | None = None
        self.count = 0

    def add(self, x: Tensor) -> None:
        self.count += len(x)
        if self.keep_rows:
            self.rows.append(x.cpu())
            return
        x = x.double()
        if self.total is None:
            self.total, self.outer = x.sum(0), x.T @ x
        else:
            assert self.outer is not None
            self.total += x.sum(0)
            self.outer += x.T @ x

    def result(self) -> Features:
        if self.keep_rows:
            return Features(self.count, torch.cat(self.rows))
        assert self.total is not None and self.outer is not None
        if self.count < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.count}")
        mean = self.total / self.count
        cov = (self.outer - self.count * torch.outer(mean, mean)) / (self.count - 1)
        return Features(self.count, None, (mean.cpu(), cov.cpu()))


class Evaluation:
    """Generated and real features for the metrics of one evaluation; every process calls the same methods.

    ``data_key`` names the data as configured (the recipe's data section); with the content fingerprint
    it keys the cache of real features in ``cache`` (None: no cache).
    """

    def __init__(self, generator: Generator, dataset: Dataset, *, world: World | None = None, seed: int = 0,
                 batch_size: int = 64, data_key: str = "", cache: Path | None = None, progress: bool = True) -> None:
        self.generator = generator
        self.dataset = dataset
        self.world = world or World()
        self.device = self.world.device
        self.seed = seed
        self.batch_size = batch_size
        self.data_key = data_key
        self.cache = cache
        self.progress = progress
        self._memo: dict[tuple[Any, ...], tuple[bool, dict[str, Features]]] = {}
        self._shared: dict[str, Any] = {}
        self._stood = False

    @classmethod
    def of_run(cls, generator: Generator, dataset: Dataset, recipe: Recipe, world: World,
               batch_size: int = 64) -> Evaluation:
        """The evaluation of a run's generator: seeded by the recipe, keyed by its data section, cached in
        gancore's cache folder; so the trainer's final metrics and ``gancore eval`` of the same weights agree."""
        data_key = json.dumps(recipe.data.model_dump(mode="json"), sort_keys=True)
        return cls(generator, dataset, world=world, seed=recipe.seed, batch_size=batch_size, data_key=data_key,
                   cache=cache_dir(), progress=world.main)

    @property
    def images(self) -> bool:
        """Whether the samples are images (C, H, W) rather than points."""
        return len(self.dataset.shape) == 3

    def shared(self, key: str, make: Callable[[], Any]) -> Any:
        """One object per key for this evaluation, so metrics that use one network load it once."""
        if key not in self._shared:
            self._shared[key] = make()
        return self._shared[key]

    def generated(self, extractor: FeatureExtractor, n: int, keep_rows: bool = True) -> dict[str, Features]:
        """The extractor's outputs over ``n`` samples of the generator (labels uniform over its classes).

        ``keep_rows`` False says that the metric needs only the mean and covariance (see ROWS_UP_TO).
        """
        return self._features("generated", extractor, n, keep_rows)

    def real(self, extractor: FeatureExtractor, n: int | None = None, keep_rows: bool = True) -> dict[str, Features]:
        """The extractor's outputs over the data set: all of it (``n`` None or ≥ its size), else ``n`` items
        drawn without replacement by a fixed permutation (seed 0), the same in every evaluation."""
        count = len(self.dataset) if n is None else min(n, len(self.dataset))
        return self._features("real", extractor, count, keep_rows)

    # -- the work ----------------------------------------------------------------------------------------

    def _features(self, source: Source, extractor: FeatureExtractor, n: int, keep_rows: bool) -> dict[str, Features]:
        if n < 1:
            raise ValueError(f"asked for the features of {n} {source} samples")
        keep_rows = keep_rows or n <= ROWS_UP_TO
        memo = (source, extractor.key, n)
        if memo in self._memo and (self._memo[memo][0] or not keep_rows):
            return self._memo[memo][1]
        if source == "real":
            result = self._cached(extractor, n, keep_rows)
        else:
            result = self._embed(source, extractor, n, keep_rows)
        self._memo[memo] = (keep_rows, result)
        return result

    def _cached(self, extractor: FeatureExtractor, n: int, keep_rows: bool) -> dict[str, Features]:
        """Real features from the cache (rows serve a request for moments too), else embedded and stored."""
        if self.cache is None:
            return self._embed("real", extractor, n, keep_rows)
        key = {"format": STATS_FORMAT, "data": self.data_key, "content": _fingerprint(self.dataset),
               "extractor": extractor.key, "items": n, "of": len(self.dataset)}
        candidates = [True] if keep_rows else [True, False]
        path = broadcast(self._find(key, candidates) if self.world.main else None, self.world)
        if path is not None:
            state = _load(path, key) if self.world.main else None
            if broadcast(state is not None, self.world):
                flat = broadcast_tensors({f"{o}/{k}": v for o, part in state.items() for k, v in part.items()}
                                         if state is not None else None, self.world)
                outputs: dict[str, dict[str, Tensor]] = {}
                for name, tensor in flat.items():
                    output, part = name.rsplit("/", 1)
                    outputs.setdefault(output, {})[part] = tensor
                return {o: Features.from_state(s) for o, s in outputs.items()}
        result = self._embed("real", extractor, n, keep_rows)
        if self.world.main:
            _store(self._path(key, keep_rows), key, {o: f.state() for o, f in result.items()})
        return result

    def _path(self, key: dict[str, Any], rows: bool) -> Path:
        assert self.cache is not None
        digest = hashlib.sha256(json.dumps({**key, "rows": rows}, sort_keys=True).encode()).hexdigest()[:32]
        return self.cache / "reference" / f"{digest}.pt"

    def _find(self, key: dict[str, Any], candidates: list[bool]) -> Path | None:
        for rows in candidates:
            if self._path(key, rows).is_file():
                return self._path(key, rows)
        return None

    def _embed(self, source: Source, extractor: FeatureExtractor, n: int, keep_rows: bool) -> dict[str, Features]:
        """Embed n samples in global batches shared out over processes; gather and reduce them in batch order."""
        W, r, B = self.world.size, self.world.rank, self.batch_size
        num_batches = math.ceil(n / B)
        rounds = math.ceil(num_batches / W)
        mine = [b for b in range(r, num_batches, W)]
        batches = self._generated_batches(mine, n) if source == "generated" else self._real_batches(mine, n)
        reducers: dict[str, _Reducer] = {}
        label = f"{extractor.name}: {n} {source} {'images' if self.images else 'samples'}"
        with tqdm(total=n, desc=label, unit="img", dynamic_ncols=True, mininterval=1.0, file=sys.stderr,
                  disable=not (self.progress and self.world.main)) as bar:
            for k in range(rounds):
                samples = next(batches)
                with torch.no_grad():
                    outputs = extractor(samples)
                names = list(outputs)
                widths = [outputs[o].reshape(len(samples), -1).shape[1] for o in names]
                flat = torch.zeros(B, sum(widths), device=self.device)
                flat[:len(samples)] = torch.cat([outputs[o].reshape(len(samples), -1).float() for o in names], 1)
                for rank, part in enumerate(all_gather_rows(flat, self.world)):
                    b = k * W + rank
                    if b >= num_batches:
                        continue
                    rows = part[:min(B, n - b * B)]
                    for name, piece in zip(names, rows.split(widths, 1)):
                        reducers.setdefault(name, _Reducer(keep_rows)).add(piece)
                    bar.update(len(rows))
        return {name: reducer.result() for name, reducer in reducers.items()}

    def _generated_batches(self, mine: list[int], n: int) -> Iterator[Tensor]:
        """This process's generated batches as the extractor takes them; one sample when it has none left."""
        G, B = self.generator, self.batch_size
        if not self._stood:
            stand(G, G.standing_statistics, seed=self.seed)
            self._stood = True
        for b in [*mine, None]:
            size = 1 if b is None else min(B, n - b * B)
            rng = torch.Generator(self.device).manual_seed(derive_seed(self.seed, "generated", b))
            z = G.sample_z(size, self.device, rng)
            c = torch.randint(G.num_classes, (size,), device=self.device, generator=rng) if G.num_classes else None
            with torch.no_grad():
                x = G(z, c)
            yield to_uint8(x) if self.images else x.float()

    def _real_batches(self, mine: list[int], n: int) -> Iterator[Tensor]:
        """This process's real batches, fetched by loader workers; one item when it has none left."""
        B = self.batch_size
        if n >= len(self.dataset):
            order = torch.arange(len(self.dataset))
        else:
            order = torch.randperm(len(self.dataset), generator=torch.Generator().manual_seed(0))[:n]
        lists = [order[b * B:(b + 1) * B].tolist() for b in mine] + [order[:1].tolist()]
        workers = default_workers(self.dataset, self.world)
        loader = torch.utils.data.DataLoader(self.dataset, batch_sampler=lists, num_workers=workers,
                                             pin_memory=self.device.type == "cuda")
        for x, _ in loader:
            yield x.to(self.device, non_blocking=True)


RESULTS = "metrics.jsonl"
"""Every evaluation of a run, one JSON line per metric, in the run directory."""


def append_results(run_dir: Path, entries: list[dict[str, Any]]) -> Path:
    """Append each metric's entry (name, params, kimg, results, ...) to the run's RESULTS, stamped with the time."""
    path = run_dir / RESULTS
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    with path.open("a") as file:
        for entry in entries:
            file.write(json.dumps({**entry, "time": stamp}) + "\n")
    return path


def _fingerprint(dataset: Dataset) -> str:
    """SHA-256 of a data set's size, item shape, classes and FINGERPRINT_ITEMS evenly spaced items."""
    digest = hashlib.sha256(f"{len(dataset)}/{tuple(dataset.shape)}/{dataset.num_classes}".encode())
    for i in torch.linspace(0, len(dataset) - 1, min(FINGERPRINT_ITEMS, len(dataset))).long().tolist():
        x, label = dataset[i]
        digest.update(x.contiguous().numpy().tobytes())
        digest.update(str(label).encode())
    return digest.hexdigest()


def _load(path: Path, key: dict[str, Any]) -> dict[str, dict[str, Tensor]] | None:
    """A cache file's features, or None (with a warning) when it is unreadable or holds another key."""
    try:
        found = torch.load(path, map_location="cpu", weights_only=True)
        if found.get("key") == key:
            return found["features"]
        problem = "it was written for other data or another network"
    except Exception as exc:  # noqa: BLE001 - any unreadable file is computed again, never trusted
        problem = f"it cannot be read ({exc})"
    print(f"warning: ignoring the cached reference features {path}: {problem}; computing them again",
          file=sys.stderr)
    return None


def _store(path: Path, key: dict[str, Any], features: dict[str, dict[str, Tensor]]) -> None:
    """Write a cache file atomically (a crash leaves no half-written file under the final name)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        torch.save({"key": key, "features": features}, partial)
        os.replace(partial, path)
    except OSError as exc:
        print(f"warning: could not cache the reference features in {path}: {exc}", file=sys.stderr)
