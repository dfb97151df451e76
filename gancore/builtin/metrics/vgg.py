"""VGG16's fc2 features: the space Kynkäänniemi et al. (2019) measure precision and recall in.

The network is torchvision's VGG16 with its ImageNet weights loaded from a local file
(``vgg16-397923af.pth``). The paper and stylegan2-ada use a TensorFlow port of the same architecture;
their weights differ, so the numbers are close to theirs, not identical.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from gancore.errors import GancoreError
from gancore.evaluation import FeatureExtractor
from gancore.weights import file_digest

INPUT_SIZE = 224
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
PREPROCESSING = f"uint8/255,grey-to-rgb,bilinear-antialias-{INPUT_SIZE},imagenet-normalised"
FEATURES = 4096


class VGG16Features(FeatureExtractor):
    """The 4096 activations of VGG16's second fully connected layer, after its ReLU (Keras' ``fc2``)."""

    name = "VGG16"

    def __init__(self, state: dict[str, Tensor], digest: str, device: torch.device) -> None:
        from torchvision.models import vgg16

        network = vgg16(weights=None)
        try:
            network.load_state_dict(state)
        except (RuntimeError, TypeError) as exc:
            raise GancoreError(f"not torchvision's VGG16 weights: {str(exc).splitlines()[0]}") from None
        self.network = network.eval().requires_grad_(False).to(device)
        self.mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        self.std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        self.key = f"vgg16-fc2/sha256:{digest}/{PREPROCESSING}"

    @classmethod
    def from_file(cls, path: Path, device: torch.device) -> VGG16Features:
        """Load the weights with ``weights_only`` (no code runs)."""
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError) as exc:
            raise GancoreError(f"cannot read the VGG16 weights {path}: {exc}") from None
        try:
            return cls(state, file_digest(path), device)
        except GancoreError as exc:
            raise GancoreError(f"{path} is {exc}") from None

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        x = samples.float() / 255
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=True)
        x = (x - self.mean) / self.std
        net = self.network
        hidden = torch.flatten(net.avgpool(net.features(x)), 1)
        return {"features": net.classifier[:5](hidden)}  # fc1, ReLU, dropout (identity in eval), fc2, ReLU
