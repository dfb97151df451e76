"""The fd metric: Fréchet distance in a timm backbone's features, with weights from a local file.

Small random timm models stand in for DINOv2: they are saved to local files and loaded back, and the
features are checked against timm's own loading (``pretrained_cfg_overlay=dict(file=...)``) and timm's own
evaluation transform applied to PIL images.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import Tensor

import gancore
from gancore.builtin.datasets.base import TensorImageDataset
from gancore.builtin.metrics.backbone import Preprocessing, TimmFeatures
from gancore.builtin.metrics.distances import frechet_distance
from gancore.errors import GancoreError
from gancore.evaluation import Evaluation
from gancore.weights import WeightsNotFound

timm = pytest.importorskip("timm")
save_file = pytest.importorskip("safetensors.torch").save_file

BACKBONE = "test_vit"
SIZE = 64
"""Input side the backbone is run at (its config says 160): timm's filter resamples the position embedding."""
CPU = torch.device("cpu")


class LinearGenerator(gancore.Generator):
    """z ↦ tanh(Az + b) as 3 × 16 × 16 images, with A and b fixed by a seed."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__(z_dim=8, num_classes=0, resolution=16, channels=3)
        rng = torch.Generator().manual_seed(seed)
        self.register_buffer("weight", torch.randn(3 * 16 * 16, 8, generator=rng) / 2)
        self.register_buffer("bias", torch.randn(3 * 16 * 16, generator=rng) / 2)

    def forward(self, z: Tensor, c: Tensor | None = None) -> Tensor:
        return torch.tanh(z @ self.weight.T + self.bias).view(-1, 3, 16, 16)


def _random_state(name: str, seed: int) -> dict[str, Tensor]:
    """The state dict of a randomly initialised timm model, with its classifier."""
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False).state_dict()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One random test_vit in four files (safetensors, .pth, a wrapped .pt, Meta's DINOv2 layout), another
    random test_vit, and a test_resnet."""
    folder = tmp_path_factory.mktemp("weights")
    state = _random_state(BACKBONE, 0)
    paths = {k: folder / n for k, n in [("safetensors", "vit.safetensors"), ("pth", "vit.pth"),
                                        ("wrapped", "vit_checkpoint.pt"), ("meta", "vit_meta.pth"),
                                        ("other", "vit_other.safetensors"), ("resnet", "resnet.pth")]}
    save_file({k: v.contiguous() for k, v in state.items()}, paths["safetensors"])
    torch.save(state, paths["pth"])
    torch.save({"state_dict": state, "epoch": 3}, paths["wrapped"])
    # Meta's DINOv2 checkpoints carry a mask token that timm's ViT filter removes
    torch.save({**state, "mask_token": torch.zeros(1, state["cls_token"].shape[-1])}, paths["meta"])
    save_file({k: v.contiguous() for k, v in _random_state(BACKBONE, 1).items()}, paths["other"])
    torch.save(_random_state("test_resnet", 0), paths["resnet"])
    return paths


@pytest.fixture(scope="module")
def images() -> Tensor:
    """48 uint8 RGB images of 16 × 16: smooth random fields, like downsampled photographs."""
    rng = torch.Generator().manual_seed(0)
    coarse = torch.rand(48, 3, 4, 4, generator=rng)
    fine = torch.nn.functional.interpolate(coarse, size=(16, 16), mode="bilinear", align_corners=False)
    return (255 * (fine + 0.1 * torch.rand(fine.shape, generator=rng)).clamp(0, 1)).round().to(torch.uint8)


@pytest.fixture()
def evaluation(images: Tensor) -> Evaluation:
    return Evaluation(LinearGenerator(), TensorImageDataset(images, None, 0, False), batch_size=16, progress=False)


def _fd(evaluation: Evaluation, weights: Path) -> float:
    metric = gancore.create("metric", "fd", backbone=BACKBONE, backbone_weights=str(weights), image_size=SIZE,
                            num_gen=32)
    metric.check(evaluation.dataset)
    return metric.compute(evaluation)["fd"]


def _timm_reference(weights: Path, images: Tensor) -> Tensor:
    """Features as timm computes them by itself: its pretrained loader on the local file, its evaluation
    transform on PIL images."""
    model = timm.create_model(BACKBONE, pretrained=True, pretrained_cfg_overlay={"file": str(weights)},
                              num_classes=0, img_size=SIZE).eval()
    config = timm.data.resolve_model_data_config(model, args={"input_size": (3, SIZE, SIZE)})
    transform = timm.data.create_transform(**config)
    batch = torch.stack([transform(Image.fromarray(x.permute(1, 2, 0).numpy())) for x in images])
    with torch.no_grad():
        return model(batch)


def test_fd_end_to_end_and_features_match_timm(evaluation: Evaluation, files: dict[str, Path], images: Tensor) -> None:
    fd = _fd(evaluation, files["safetensors"])
    assert math.isfinite(fd) and fd > 0
    extractor = TimmFeatures(BACKBONE, files["safetensors"], CPU, SIZE)
    real = evaluation.real(extractor)["features"]
    assert real.rows is not None and real.rows.shape == (len(images), 64)
    assert abs(frechet_distance(real.mean, real.cov, real.mean, real.cov)) < 1e-6 * float(real.cov.trace())
    reference = _timm_reference(files["pth"], images)
    torch.testing.assert_close(real.rows, reference, atol=2e-3 * float(reference.abs().max()), rtol=0)


def test_weight_files_agree(files: dict[str, Path], images: Tensor) -> None:
    """safetensors, .pth, a checkpoint with a state_dict entry and Meta's layout load the same network."""
    extractors = {k: TimmFeatures(BACKBONE, files[k], CPU, SIZE) for k in ("safetensors", "pth", "wrapped", "meta")}
    with torch.no_grad():
        features = {k: e(images[:8])["features"] for k, e in extractors.items()}
    for k in ("pth", "wrapped", "meta"):
        torch.testing.assert_close(features[k], features["safetensors"], atol=0, rtol=0)
    assert all(e.key.startswith(f"timm:{BACKBONE}/sha256:") and f"{SIZE}x{SIZE}" in e.key for e in extractors.values())


def test_other_weights_give_another_fd_and_key(evaluation: Evaluation, files: dict[str, Path]) -> None:
    first = TimmFeatures(BACKBONE, files["safetensors"], CPU, SIZE)
    second = TimmFeatures(BACKBONE, files["other"], CPU, SIZE)
    assert first.key != second.key
    assert TimmFeatures(BACKBONE, files["safetensors"], CPU).key != first.key  # another input size
    assert _fd(evaluation, files["other"]) != pytest.approx(_fd(evaluation, files["safetensors"]), rel=1e-3)


def test_missing_weights_are_named(evaluation: Evaluation, tmp_path: Path) -> None:
    dataset = evaluation.dataset
    with pytest.raises(WeightsNotFound, match="backbone_weights") as found:
        gancore.create("metric", "fd").check(dataset)
    assert found.value.param == "backbone_weights"
    assert "vit_large_patch14_dinov2" in str(found.value) and "huggingface.co" in str(found.value)
    absent = tmp_path / "dinov2_vits14.safetensors"
    with pytest.raises(WeightsNotFound, match="backbone_weights") as found:
        gancore.create("metric", "fd", backbone=BACKBONE, backbone_weights=str(absent)).check(dataset)
    assert str(absent) in str(found.value) and found.value.param == "backbone_weights"


def test_wrong_or_unreadable_weights_are_refused(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(GancoreError) as found:
        TimmFeatures(BACKBONE, files["resnet"], CPU)
    message = str(found.value)
    assert isinstance(found.value, WeightsNotFound) and found.value.param == "backbone_weights"
    assert "backbone_weights" in message and str(files["resnet"]) in message
    assert "missing keys cls_token" in message and "unexpected keys conv1" in message
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsNotFound, match="cannot be read") as found:
        TimmFeatures(BACKBONE, junk, CPU)
    assert str(junk) in str(found.value)


def test_unknown_backbone_and_non_images_are_refused(evaluation: Evaluation, files: dict[str, Path]) -> None:
    weights = str(files["safetensors"])
    with pytest.raises(ValueError, match="close matches: .*vit_small_patch14_dinov2"):
        gancore.create("metric", "fd", backbone="vit_small_patch14_dino", backbone_weights=weights).check(
            evaluation.dataset)
    points = TensorImageDataset(torch.zeros(4, 2, dtype=torch.uint8), None, 0, False)
    with pytest.raises(ValueError, match="RGB or greyscale images"):
        gancore.create("metric", "fd", backbone=BACKBONE, backbone_weights=weights).check(points)


@pytest.mark.parametrize("crop_mode", ["center", "squash", "border"])
def test_preprocessing_is_timms_eval_transform(crop_mode: str) -> None:
    """On non-square images, against timm's transform of PIL images: equal up to PIL's fixed-point rounding
    (at most two 8-bit levels, in a few pixels)."""
    rng = torch.Generator().manual_seed(1)
    images = (255 * torch.nn.functional.interpolate(torch.rand(3, 3, 6, 5, generator=rng), size=(30, 24),
                                                    mode="bilinear")).round().to(torch.uint8)
    for interpolation, size, crop_pct in [("bicubic", (20, 20), 0.875), ("bilinear", (40, 36), 1.0)]:
        config = {"input_size": (3, *size), "interpolation": interpolation, "mean": (0.485, 0.456, 0.406),
                  "std": (0.229, 0.224, 0.225), "crop_pct": crop_pct, "crop_mode": crop_mode}
        transform = timm.data.create_transform(**config)
        expected = torch.stack([transform(Image.fromarray(x.permute(1, 2, 0).numpy())) for x in images])
        ours = Preprocessing.of(config)(images)
        assert ours.shape == expected.shape
        levels = (ours - expected).abs() * torch.tensor(config["std"]).view(1, 3, 1, 1) * 255
        assert levels.max() <= 2.01 and (levels > 1.01).double().mean() < 0.01
    grey = images[:, :1]
    torch.testing.assert_close(Preprocessing.of(config)(grey), Preprocessing.of(config)(grey.expand(-1, 3, -1, -1)))



def test_dinov2_in_metas_layout_loads_at_another_size(tmp_path: Path) -> None:
    """The recommended backbone: a (random) ViT-S/14 DINOv2 saved as Meta's checkpoints are, at 518 px with a mask
    token, is converted and run at 28 px exactly as timm's own loader does."""
    torch.manual_seed(0)
    model = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save({**model.state_dict(), "mask_token": torch.zeros(1, model.embed_dim)}, path)
    extractor = TimmFeatures("vit_small_patch14_dinov2", path, CPU, 28)
    assert "/28x28,bicubic-as-pil,center-crop-1,mean=0.485,0.456,0.406,std=0.229,0.224,0.225" in extractor.key
    reference = timm.create_model("vit_small_patch14_dinov2", pretrained=True,
                                  pretrained_cfg_overlay={"file": str(path)}, num_classes=0, img_size=28).eval()
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = extractor(images)["features"]
        torch.testing.assert_close(features, reference(extractor.preprocessing(images)), atol=0, rtol=0)
    assert features.shape == (4, 384)
