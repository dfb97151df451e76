"""Pictures of samples: image grids and 2-D scatter plots, written as PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor


def to_uint8(images: Tensor) -> Tensor:
    """Images on the [-1, 1] scale (or uint8 already) to uint8 (N, C, H, W), clamped and rounded."""
    if images.dtype == torch.uint8:
        return images
    return (images.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def image_grid(images: Tensor, columns: int | None = None) -> np.ndarray:
    """Tile N images into one (H', W', C) uint8 array, with a one-pixel gap between tiles."""
    x = to_uint8(images).cpu()
    n, c, h, w = x.shape
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = torch.zeros(c, rows * (h + 1) - 1, cols * (w + 1) - 1, dtype=torch.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        grid[:, r * (h + 1):r * (h + 1) + h, k * (w + 1):k * (w + 1) + w] = x[i]
    return grid.permute(1, 2, 0).numpy()


def save_image_grid(images: Tensor, path: str | Path, columns: int | None = None, scale: int = 1) -> None:
    """Write a grid of images as PNG, optionally enlarged ``scale`` times with nearest neighbours."""
    array = image_grid(images, columns)
    picture = Image.fromarray(array[..., 0] if array.shape[2] == 1 else array)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)


def save_scatter(points: Tensor, path: str | Path, reference: Tensor | None = None, title: str = "") -> None:
    """Write 2-D samples as a scatter plot PNG, over a faint sample of the data when given."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if reference is not None:
        ref = reference.cpu().numpy()
        ax.scatter(ref[:, 0], ref[:, 1], s=2, c="0.75", label="data")
    pts = points.detach().float().cpu().numpy()
    ax.scatter(pts[:, 0], pts[:, 1], s=2, c="tab:blue", label="samples")
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.06), ncol=2, markerscale=4, frameon=False)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def save_samples(samples: Tensor, path: str | Path, reference: Tensor | None = None, title: str = "") -> None:
    """Images as a grid, points as a scatter plot."""
    if samples.dim() == 2:
        save_scatter(samples, path, reference, title)
    else:
        scale = max(1, 256 // (samples.shape[-1] * math.ceil(math.sqrt(len(samples)))))
        save_image_grid(samples, path, scale=scale)
