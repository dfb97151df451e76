"""Write a CIFAR-10-shaped tarball of synthetic, class-structured images, for runs on machines without the data.

Each class is a smooth colour gradient at its own angle and palette plus a random blob, so a
conditional G has something learnable; the file is in the official python format and is read
by gancore's ``cifar10`` dataset like the real one.

    python benchmarks/synthetic_cifar.py /tmp/cifar --per-batch 10000
    gancore run recipes/r3gan_cifar10.yaml -o data.params.root=/tmp/cifar
"""

from __future__ import annotations

import argparse
import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

CLASSES = 10


def synthetic_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """n images as CIFAR rows (n, 3072: R plane, G plane, B plane) and their classes."""
    labels = rng.integers(0, CLASSES, n)
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    angle = labels * np.pi / CLASSES
    ramp = np.cos(angle)[:, None, None] * xx + np.sin(angle)[:, None, None] * yy
    palette = np.stack([np.linspace(0.1, 0.9, CLASSES), np.linspace(0.9, 0.1, CLASSES),
                        (np.arange(CLASSES) % 3) / 2], axis=1)[labels]
    centre = rng.uniform(6, 26, (n, 2))
    radius = rng.uniform(3, 8, n)
    blob = ((xx[None] * 31 - centre[:, 0, None, None]) ** 2 + (yy[None] * 31 - centre[:, 1, None, None]) ** 2
            < radius[:, None, None] ** 2)
    image = palette[:, :, None, None] * (0.4 + 0.6 * ramp[:, None]) + 0.5 * blob[:, None]
    image += rng.normal(0, 0.03, image.shape)
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8).reshape(n, 3072), labels.tolist()


def write_tarball(root: Path, per_batch: int, seed: int = 0) -> Path:
    """cifar-10-python.tar.gz under ``root`` with five training batches and a test batch of ``per_batch`` images."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in ["batches.meta", *[f"data_batch_{i}" for i in range(1, 6)], "test_batch"]:
            if name == "batches.meta":
                content: dict[bytes, object] = {b"label_names": [f"synthetic{i}".encode() for i in range(CLASSES)]}
            else:
                data, labels = synthetic_images(per_batch, rng)
                content = {b"data": data, b"labels": labels, b"batch_label": name.encode()}
            payload = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--per-batch", type=int, default=10_000, help="images per batch file (CIFAR-10: 10,000)")
    args = parser.parse_args()
    print(write_tarball(args.root, args.per_batch))


if __name__ == "__main__":
    main()
