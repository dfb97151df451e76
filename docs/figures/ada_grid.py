"""Draw ADA-augmented CIFAR-shaped images for checking by eye: docs/figures/ada_grid.png.

Rows of 12: the originals (32×32 crops of scikit-learn's two sample photographs, downscaled 4×), then
R3GAN's augmentation (bgc, colour ×0.5, cutout) at p = 0.5 twice, then at p = 0.9 twice.

    python docs/figures/ada_grid.py [--out docs/figures/ada_grid.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from gancore.images import save_image_grid
from gancore.registry import default_registry
from sklearn.datasets import load_sample_images
from torch.nn import functional as F


def crops(count: int, seed: int = 0) -> torch.Tensor:
    """``count`` 32×32 images in [-1, 1]: random 128×128 crops of the sample photographs, area-downscaled 4×."""
    photos = [torch.from_numpy(img.copy()).permute(2, 0, 1).float() / 127.5 - 1 for img in load_sample_images().images]
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        y = int(torch.randint(photo.shape[1] - 128, (1,), generator=g))
        x = int(torch.randint(photo.shape[2] - 128, (1,), generator=g))
        out.append(F.avg_pool2d(photo[None, :, y:y + 128, x:x + 128], 4)[0])
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_suffix(".png"))
    parser.add_argument("--columns", type=int, default=12)
    args = parser.parse_args()
    torch.manual_seed(1)
    images = crops(args.columns)
    rows = [images]
    for p in (0.5, 0.9):
        ada = default_registry().create("augmenter", "ada", {"preset": "bgc", "color_multiplier": 0.5, "cutout": 1,
                                                             "p": p})
        with torch.no_grad():
            rows += [ada(images), ada(images)]
    save_image_grid(torch.cat(rows).clamp(-1, 1), args.out, columns=args.columns, scale=3)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
