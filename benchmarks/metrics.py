"""The cost of FID: embedding images with the FID Inception, and the Fréchet distance of 2048-d features at 50k.

What, part 1: seconds (and images per second) to embed ``--images`` uint8 32×32 RGB images with gancore's
``InceptionFeatures`` (resize to 299, pool3 features and logits) in batches of ``--batch``, after one warm-up
batch. With ``--inception-weights`` the real FID weights are used; without, a Kaiming-initialised network
of the same shape (the cost is the same: no weight is zero). Baseline: torchvision's ``Inception3`` (random
weights, its classifier removed; the FID network differs only in its pooling branches and 1008 classes) on the
same images, prepared the same way, timed on the first ``--baseline-images``; the ratio compares rates.

What, part 2: seconds to go from ``--features`` feature rows of 2048 numbers (random, with a covariance of
full rank) to an FID, for both sets: gancore's ``feature_moments`` (float64 mean and covariance) and
``frechet_distance`` (the symmetric eigen-decomposition route), against pytorch-fid's path on the same rows:
``numpy.cov`` and ``calculate_frechet_distance`` (scipy's ``sqrtm`` of the product). Both FIDs are printed
and must agree.

    python benchmarks/metrics.py                          # this CPU: 10k images, 50k features
    python benchmarks/metrics.py --device cuda --images 50000
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from gancore.builtin.metrics.distances import feature_moments, frechet_distance
from gancore.builtin.metrics.inception import FIDInception, InceptionFeatures


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def random_inception(path: str) -> str:
    """A Kaiming-initialised FID Inception saved to ``path`` (a stand-in for the real weights: same cost)."""
    torch.manual_seed(0)
    network = FIDInception()
    for module in network.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    torch.save(network.state_dict(), path)
    return path


def time_embedding(embed: object, images: torch.Tensor, batch: int, device: torch.device) -> float:
    """Seconds to embed all images in batches, after one warm-up batch."""
    with torch.no_grad():
        embed(images[:batch].to(device))  # type: ignore[operator]
        synchronize(device)
        start = time.perf_counter()
        for i in range(0, len(images), batch):
            embed(images[i:i + batch].to(device))  # type: ignore[operator]
        synchronize(device)
    return time.perf_counter() - start


def torchvision_embedder(device: torch.device) -> object:
    """torchvision's Inception3 (random weights, no download) to its pool features, fed like ours."""
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=False, init_weights=False).to(device).eval()
    network.fc = nn.Identity()
    return lambda images: network(FIDInception.prepare(images))


def fid_time(features: int, dim: int) -> None:
    g = torch.Generator().manual_seed(0)
    mixing = torch.randn(dim, dim, generator=g) / dim**0.5
    real = torch.randn(features, dim, generator=g) @ mixing
    fake = (torch.randn(features, dim, generator=g) @ mixing) * 1.1 + 0.05
    start = time.perf_counter()
    m1, s1 = feature_moments(real)
    m2, s2 = feature_moments(fake)
    moments = time.perf_counter() - start
    start = time.perf_counter()
    ours = frechet_distance(m1, s1, m2, s2)
    distance = time.perf_counter() - start

    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = real.numpy().astype(np.float64), fake.numpy().astype(np.float64)
    start = time.perf_counter()
    n1, c1 = a.mean(0), np.cov(a, rowvar=False)
    n2, c2 = b.mean(0), np.cov(b, rowvar=False)
    base_moments = time.perf_counter() - start
    start = time.perf_counter()
    theirs = calculate_frechet_distance(n1, c1, n2, c2)
    base_distance = time.perf_counter() - start
    print(f"\nFID from {features:,} × {dim} features per set (two sets)")
    print(f"  gancore     moments {moments:7.2f} s   distance {distance:7.2f} s   total {moments + distance:7.2f} s"
          f"   FID {ours:.6f}")
    print(f"  pytorch-fid moments {base_moments:7.2f} s   distance {base_distance:7.2f} s   total "
          f"{base_moments + base_distance:7.2f} s   FID {theirs:.6f}")
    print(f"  ratio (pytorch-fid time / gancore time): moments {base_moments / moments:.2f}×, distance "
          f"{base_distance / distance:.2f}×, total {(base_moments + base_distance) / (moments + distance):.2f}×;"
          f" relative FID difference {abs(ours - theirs) / theirs:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--baseline-images", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=50_000)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--inception-weights", help="the real pt_inception-2015-12-05-6726825d.pth, if at hand")
    parser.add_argument("--skip-embedding", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    print(f"device {device} ({name}), {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    if not args.skip_embedding:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            path = args.inception_weights or random_inception(os.path.join(tmp, "inception.pth"))
            ours = InceptionFeatures(Path(path), device)
        images = torch.randint(0, 256, (args.images, 3, 32, 32), dtype=torch.uint8,
                               generator=torch.Generator().manual_seed(0))
        seconds = time_embedding(ours, images, args.batch, device)
        print(f"\nInception embedding of {args.images:,} 32×32 images (batch {args.batch}, resized to 299)")
        print(f"  gancore     {seconds:8.1f} s   {args.images / seconds:7.1f} img/s")
        base_images = images[:args.baseline_images]
        base = time_embedding(torchvision_embedder(device), base_images, args.batch, device)
        print(f"  torchvision {base:8.1f} s for {len(base_images):,}   {len(base_images) / base:7.1f} img/s")
        print(f"  ratio (gancore rate / torchvision rate): {(args.images / seconds) / (len(base_images) / base):.2f}×")
    fid_time(args.features, 2048)


if __name__ == "__main__":
    main()
