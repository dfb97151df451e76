"""A run's generator loaded from its files, and grids of its samples."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from gancore.batchnorm import stand
from gancore.errors import GancoreError
from gancore.images import save_samples
from gancore.interfaces import Generator

if TYPE_CHECKING:
    from gancore.recipe import Recipe
    from gancore.registry import Registry


@dataclass
class LoadedRun:
    """A run's G EMA as saved in one file, with that file, its progress and the run's recipe."""

    generator: Generator
    source: Path
    kimg: float
    recipe: Recipe


def load_generator(run_dir: Path, registry: Registry, checkpoint: Path | None = None,
                   device: str = "auto") -> LoadedRun:
    """G's EMA of a run, rebuilt from the run's recipe, from a checkpoint (default: the newest good one).

    A run without checkpoints (written before they existed) falls back to its ``network-final.pt``.
    Every file is opened with ``weights_only`` loading, so none can run code.
    """
    from gancore import checkpoint as checkpoints
    from gancore import recipe as recipes
    from gancore.build import build_networks
    from gancore.distributed import join

    recipe_path = run_dir / "recipe.yaml"
    if not recipe_path.is_file():
        raise GancoreError(f"{run_dir} is not a gancore run directory (it has no recipe.yaml)")
    recipe, raw = recipes.load(recipe_path, registry)
    G = build_networks(recipe, registry).generator
    if checkpoint is not None:
        found = checkpoints.read(checkpoint)
        checkpoints.check_recipe(found, raw)
        state, source, kimg = found.state["generator_ema"], found.path, found.nimg / 1000
    elif checkpoints.listed(run_dir):
        found, refused = checkpoints.newest_good(run_dir, raw)
        for reason in refused:
            print(f"skipping a checkpoint: {reason}", file=sys.stderr)
        state, source, kimg = found.state["generator_ema"], found.path, found.nimg / 1000
    elif (run_dir / "network-final.pt").is_file():
        source = run_dir / "network-final.pt"
        saved = torch.load(source, map_location="cpu", weights_only=True)
        state, kimg = saved["generator_ema"], float(saved["kimg"])
    else:
        raise GancoreError(f"{run_dir} holds neither checkpoints nor network-final.pt: nothing to load")
    G.load_state_dict(state)
    return LoadedRun(G.to(join(device).device).eval().requires_grad_(False), source, kimg, recipe)


@torch.no_grad()
def sample_grid(G: Generator, n: int, out: Path, seed: int = 0, truncation: float | None = None,
                label: int | None = None) -> Path:
    """Write ``n`` samples of ``G`` as a PNG grid (a scatter plot for points); labels cycle unless one is given."""
    if n < 1:
        raise GancoreError(f"--n {n}: ask for at least one sample")
    if label is not None and not 0 <= label < max(G.num_classes, 1):
        raise GancoreError(f"--class {label}: the generator has {G.num_classes} classes"
                           if G.num_classes else f"--class {label}: the generator is unconditional")
    device = next(G.parameters()).device
    stand(G, G.standing_statistics, seed=seed)
    rng = torch.Generator(device).manual_seed(seed)
    try:
        z = G.sample_z(n, device, rng, truncation=truncation)
    except ValueError as exc:
        raise GancoreError(f"--truncation {truncation}: {exc}") from None
    c = None
    if G.num_classes:
        c = torch.full((n,), label, device=device) if label is not None else torch.arange(n, device=device) % G.num_classes
    images = torch.cat([G(z[i:i + 256], None if c is None else c[i:i + 256]) for i in range(0, n, 256)])
    out.parent.mkdir(parents=True, exist_ok=True)
    save_samples(images, out)
    return out
