"""The FID Inception network: InceptionV3 as TensorFlow's 2015-12-05 graph that FID, KID and IS are defined with.

Written from the architecture, with the layer names of torchvision's Inception3 so that the standard
weights file ``pt_inception-2015-12-05-6726825d.pth`` loads without remapping. What makes it the FID
network and not torchvision's: 1008 output classes, BatchNorm ε = 0.001, average pools in the pool
branches of the A, C and E blocks that do not count padded zeros, and max pooling in the last E block.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gancore.errors import GancoreError
from gancore.evaluation import FeatureExtractor
from gancore.weights import file_digest

FEATURES = 2048
"""Size of the pool3 features FID and KID use."""
CLASSES = 1008
"""Logits of the classifier IS uses (TensorFlow's 1008-way softmax)."""
INPUT_SIZE = 299
PREPROCESSING = "uint8/255,grey-to-rgb,bilinear-299-half-pixel,to-[-1,1]"
"""pytorch-fid's input convention, as the network's ``prepare`` applies it; part of the cache key."""


class ConvBN(nn.Module):
    """Convolution without bias, BatchNorm (ε = 0.001), ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int | tuple[int, int], stride: int = 1,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _pool_branch(x: Tensor, pooling: str) -> Tensor:
    """3×3 stride-1 pooling of the pool branch: average without padded zeros, or max (the last E block)."""
    if pooling == "max":
        return F.max_pool2d(x, 3, stride=1, padding=1)
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class BlockA(nn.Module):
    """35×35 block: 1×1, 5×5, double 3×3 and pool branches."""

    def __init__(self, cin: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 64, 1)
        self.branch5x5_1 = ConvBN(cin, 48, 1)
        self.branch5x5_2 = ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, padding=1)
        self.branch_pool = ConvBN(cin, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_pool_branch(x, "avg")),
        ], 1)


class BlockB(nn.Module):
    """Reduction 35 → 17: stride-2 3×3, double 3×3 and max-pool branches."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBN(cin, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBN(cin, 64, 1)
        self.branch3x3dbl_2 = ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, 3, stride=2),
        ], 1)


class BlockC(nn.Module):
    """17×17 block with factorised 7×7 convolutions (1×7 then 7×1) of ``c7`` channels."""

    def __init__(self, cin: int, c7: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBN(cin, 192, 1)
        self.branch7x7_1 = ConvBN(cin, c7, 1)
        self.branch7x7_2 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBN(cin, c7, 1)
        self.branch7x7dbl_2 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        double = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            double = layer(double)
        return torch.cat([
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(_pool_branch(x, "avg")),
        ], 1)


class BlockD(nn.Module):
    """Reduction 17 → 8: stride-2 3×3, 7×7 then stride-2 3×3, and max-pool branches."""

    def __init__(self, cin: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBN(cin, 192, 1)
        self.branch3x3_2 = ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBN(cin, 192, 1)
        self.branch7x7x3_2 = ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        seven = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([self.branch3x3_2(self.branch3x3_1(x)), seven, F.max_pool2d(x, 3, stride=2)], 1)


class BlockE(nn.Module):
    """8×8 block with split 1×3 / 3×1 outputs; ``pooling`` is "avg" (Mixed_7b) or "max" (Mixed_7c)."""

    def __init__(self, cin: int, pooling: str) -> None:
        super().__init__()
        self.pooling = pooling
        self.branch1x1 = ConvBN(cin, 320, 1)
        self.branch3x3_1 = ConvBN(cin, 384, 1)
        self.branch3x3_2a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBN(cin, 448, 1)
        self.branch3x3dbl_2 = ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBN(cin, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return torch.cat([
            self.branch1x1(x),
            self.branch3x3_2a(single), self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double), self.branch3x3dbl_3b(double),
            self.branch_pool(_pool_branch(x, self.pooling)),
        ], 1)


class FIDInception(nn.Module):
    """The FID InceptionV3: images to (2048-d pool3 features, 1008 logits).

    Input: uint8 images (N, C, H, W) with 1 or 3 channels (grey is repeated), as pytorch-fid prepares
    them: scaled to [0, 1], resized to 299×299 bilinearly (align_corners False), then to [−1, 1].
    """

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBN(80, 192, 3)
        self.Mixed_5b = BlockA(192, 32)
        self.Mixed_5c = BlockA(256, 64)
        self.Mixed_5d = BlockA(288, 64)
        self.Mixed_6a = BlockB(288)
        self.Mixed_6b = BlockC(768, 128)
        self.Mixed_6c = BlockC(768, 160)
        self.Mixed_6d = BlockC(768, 160)
        self.Mixed_6e = BlockC(768, 192)
        self.Mixed_7a = BlockD(768)
        self.Mixed_7b = BlockE(1280, "avg")
        self.Mixed_7c = BlockE(2048, "max")
        self.fc = nn.Linear(FEATURES, CLASSES)

    @staticmethod
    def prepare(images: Tensor) -> Tensor:
        """uint8 images to the network's input: RGB, 299×299, on [−1, 1]."""
        if images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images, got {images.dtype}; quantise generated images first")
        x = images.float() / 255
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return 2 * x - 1

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = self.prepare(images)
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, 3, stride=2)
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
                      self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        features = x.mean((2, 3))
        return features, self.fc(features)

    @classmethod
    def from_file(cls, path: str | Path) -> FIDInception:
        """The network with the standard weights from a local file (``weights_only`` loading: no code runs)."""
        path = Path(path).expanduser()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise GancoreError(f"the FID Inception weights {path} do not exist; get "
                               f"pt_inception-2015-12-05-6726825d.pth (pytorch-fid's release 'fid_weights') "
                               f"and give its path") from None
        network = cls()
        try:
            network.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise GancoreError(f"{path} is not the FID Inception weights file: {str(exc).splitlines()[0]}") from None
        return network.eval().requires_grad_(False)


class InceptionFeatures(FeatureExtractor):
    """The FID Inception's pool3 features (FID, KID, precision/recall) and its logits (IS) of uint8 images.

    ``logits`` leave out the classifier's bias, as the original Inception Score code did (and
    stylegan2-ada follows): the score is defined on softmax(pool3 · W).
    """

    name = "FID Inception"

    def __init__(self, path: Path, device: torch.device) -> None:
        self.network = FIDInception.from_file(path).to(device)
        self.key = f"fid-inception/sha256:{file_digest(path)}/{PREPROCESSING}"

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        features, _ = self.network(samples)
        return {"features": features, "logits": features @ self.network.fc.weight.T}
