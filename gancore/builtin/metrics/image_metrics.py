"""FID, KID, IS and precision/recall of generated images, under their generic names and the literature's.

Generated images are quantised to uint8 before they are embedded, like stored data (stylegan2-ada and
R3GAN do the same). ``fid50k_full`` and its kin fix the sample counts of stylegan2-ada's metrics:
50,000 generated images against the whole data set ("full", x-flips included when the data has them).
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field

from gancore.builtin.metrics.distances import frechet_distance, inception_score, kernel_distance, precision_recall
from gancore.builtin.metrics.inception import InceptionFeatures
from gancore.builtin.metrics.vgg import VGG16Features
from gancore.components import component
from gancore.evaluation import Evaluation
from gancore.interfaces import Dataset, Metric
from gancore.weights import FID_INCEPTION, VGG16, WeightsFile, find_weights

NumGen = Annotated[int, Field(ge=2, description="generated images")]
NumReal = Annotated[
    Annotated[int, Field(ge=2)] | None,
    Field(description="real images, drawn by a fixed permutation; null: the whole data set"),
]
InceptionWeights = Annotated[
    str | None,
    Field(description=f"path of {FID_INCEPTION.filename}; else ${FID_INCEPTION.env}, else torch's hub checkpoint "
          f"folder"),
]
Download = Annotated[bool, Field(description="download missing weights into torch's hub folder (needs internet)")]


def require_images(dataset: Dataset) -> None:
    """ValueError unless the data's items are RGB or greyscale images, which image networks embed."""
    shape = tuple(dataset.shape)
    if len(shape) != 3 or shape[0] not in (1, 3):
        raise ValueError(f"it measures RGB or greyscale images, but the data's items are shaped {shape}")


class ImageMetric(Metric):
    """A metric of RGB or greyscale images that embeds them with one published network."""

    weights_file: WeightsFile = FID_INCEPTION

    def __init__(self, weights: str | None, download: bool) -> None:
        self.weights = weights
        self.download = download

    def check(self, dataset: Dataset) -> None:
        require_images(dataset)
        find_weights(self.weights_file, self.weights, self.download)

    def extractor(self, evaluation: Evaluation) -> InceptionFeatures | VGG16Features:
        """The network, loaded once per evaluation however many metrics use it."""
        path = find_weights(self.weights_file, self.weights, self.download)
        if self.weights_file is VGG16:
            return evaluation.shared(f"vgg16:{path}", lambda: VGG16Features.from_file(path, evaluation.device))
        return evaluation.shared(f"inception:{path}", lambda: InceptionFeatures(path, evaluation.device))


@component("metric", "fid")
class FID(ImageMetric):
    """Fréchet Inception distance (Heusel et al. 2017): Fréchet distance of pool3 features' Gaussians."""

    bounds = {"fid": (0.0, math.inf)}
    identical = {"fid": 0.0}

    def __init__(self, num_gen: NumGen = 50_000, num_real: NumReal = None, inception_weights: InceptionWeights = None,
                 download: Download = False) -> None:
        super().__init__(inception_weights, download)
        self.num_gen = num_gen
        self.num_real = num_real

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        network = self.extractor(evaluation)
        real = evaluation.real(network, self.num_real, keep_rows=False)["features"]
        fake = evaluation.generated(network, self.num_gen)["features"]
        return {"fid": frechet_distance(real.mean, real.cov, fake.mean, fake.cov)}


@component("metric", "kid")
class KID(ImageMetric):
    """Kernel Inception distance (Bińkowski et al. 2018): unbiased MMD² with a cubic kernel, over subsets."""

    # unbiased: below 0 when the sets are near, and not 0 for a set against itself (the cross term keeps
    # each sample's kernel with itself), so neither bounds nor an identical value are declared

    def __init__(self, num_gen: NumGen = 50_000, num_real: NumReal = None,
                 num_subsets: Annotated[int, Field(ge=1)] = 100,
                 max_subset_size: Annotated[int, Field(ge=2)] = 1000,
                 inception_weights: InceptionWeights = None, download: Download = False) -> None:
        super().__init__(inception_weights, download)
        self.num_gen = num_gen
        self.num_real = num_real
        self.num_subsets = num_subsets
        self.max_subset_size = max_subset_size

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        network = self.extractor(evaluation)
        real = evaluation.real(network, self.num_real)["features"].rows
        fake = evaluation.generated(network, self.num_gen)["features"].rows
        assert real is not None and fake is not None
        subsets = torch.Generator().manual_seed(evaluation.seed)
        return {"kid": kernel_distance(real, fake, self.num_subsets, self.max_subset_size, subsets)}


@component("metric", "is")
class InceptionScore(ImageMetric):
    """Inception Score (Salimans et al. 2016) on the FID Inception's 1008-way softmax: mean and std over splits."""

    bounds = {"is_mean": (1.0, 1008.0), "is_std": (0.0, math.inf)}

    def __init__(self, num_gen: NumGen = 50_000, splits: Annotated[int, Field(ge=1)] = 10,
                 inception_weights: InceptionWeights = None, download: Download = False) -> None:
        super().__init__(inception_weights, download)
        self.num_gen = num_gen
        self.splits = splits

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        logits = evaluation.generated(self.extractor(evaluation), self.num_gen)["logits"].rows
        assert logits is not None
        mean, std = inception_score(logits, self.splits)
        return {"is_mean": mean, "is_std": std}


@component("metric", "pr")
class PrecisionRecall(ImageMetric):
    """Improved precision and recall (Kynkäänniemi et al. 2019): k-NN balls in VGG16 fc2 (or Inception) space."""

    bounds = {"precision": (0.0, 1.0), "recall": (0.0, 1.0)}
    identical = {"precision": 1.0, "recall": 1.0}

    def __init__(self, num_gen: NumGen = 50_000, num_real: NumReal = None,
                 k: Annotated[int, Field(ge=1, description="the k-th nearest neighbour sets each ball's radius")] = 3,
                 network: Annotated[Literal["vgg16", "inception"], Field(
                     description="feature space: the paper's VGG16 fc2, or the FID Inception's pool3")] = "vgg16",
                 vgg16_weights: Annotated[str | None, Field(
                     description=f"path of {VGG16.filename}; else ${VGG16.env}, else torch's hub folder")] = None,
                 inception_weights: InceptionWeights = None, download: Download = False) -> None:
        super().__init__(vgg16_weights if network == "vgg16" else inception_weights, download)
        self.weights_file = VGG16 if network == "vgg16" else FID_INCEPTION
        self.num_gen = num_gen
        self.num_real = num_real
        self.k = k

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        network = self.extractor(evaluation)
        real = evaluation.real(network, self.num_real)["features"].rows
        fake = evaluation.generated(network, self.num_gen)["features"].rows
        assert real is not None and fake is not None
        device = evaluation.device
        precision, recall = precision_recall(real.to(device), fake.to(device), self.k, dtype=torch.float32)
        return {"precision": precision, "recall": recall}


@component("metric", "fid50k_full")
def fid50k_full(inception_weights: InceptionWeights = None, download: Download = False) -> FID:
    """FID of 50k generated images against the whole data set (stylegan2-ada, R3GAN)."""
    return FID(50_000, None, inception_weights, download)


@component("metric", "kid50k_full")
def kid50k_full(inception_weights: InceptionWeights = None, download: Download = False) -> KID:
    """KID of 50k generated images against the whole data set: 100 subsets of 1000 (stylegan2-ada)."""
    return KID(50_000, None, 100, 1000, inception_weights, download)


@component("metric", "is50k")
def is50k(inception_weights: InceptionWeights = None, download: Download = False) -> InceptionScore:
    """Inception Score of 50k generated images over 10 splits (stylegan2-ada)."""
    return InceptionScore(50_000, 10, inception_weights, download)


@component("metric", "pr50k3_full")
def pr50k3_full(vgg16_weights: Annotated[str | None, Field(description=f"path of {VGG16.filename}")] = None,
                download: Download = False) -> PrecisionRecall:
    """Precision and recall with k = 3 in VGG16 space, 50k generated against the whole data set (stylegan2-ada)."""
    return PrecisionRecall(50_000, None, 3, "vgg16", vgg16_weights, None, download)


COMPONENTS = [FID, KID, InceptionScore, PrecisionRecall, fid50k_full, kid50k_full, is50k, pr50k3_full]
