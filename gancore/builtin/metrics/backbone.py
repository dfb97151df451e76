"""Fréchet distance in the feature space of any timm backbone; DINOv2's is the recommended one.

Stein et al. (2023, "Exposing flaws of generative model evaluation metrics") find the Inception network a
poor judge of modern generators and recommend FD_DINOv2: the Fréchet distance of the CLS-token features of
a DINOv2 ViT (ViT-L/14 at 224 px in the paper). Any timm backbone serves: it is built by timm without
pretrained weights (nothing is downloaded), its weights are read from a local file, and images are prepared
as its own data config says (timm's evaluation transform), on the device.

timm is imported when a backbone is first checked or built (importing it takes seconds).
"""

from __future__ import annotations

import difflib
import inspect
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn

from gancore.builtin.metrics.distances import frechet_distance
from gancore.builtin.metrics.image_metrics import NumGen, NumReal, require_images
from gancore.components import component
from gancore.errors import GancoreError
from gancore.evaluation import Evaluation, FeatureExtractor
from gancore.interfaces import Dataset, Metric
from gancore.weights import WeightsNotFound, file_digest

PARAM = "backbone_weights"
"""The metric parameter that names the weights file; WeightsNotFound carries it."""
FILTER_NAMES = ("checkpoint_filter_fn", "_filter_fn")
"""Module-level names timm gives the function its builder converts checkpoints with (``pretrained_filter_fn``)."""
INTERPOLATIONS = ("bilinear", "bicubic")
"""The resampling modes of timm's pretrained configs, which torch's antialiased interpolation does as PIL."""
SHOWN = 5
"""Mismatching keys named in an error, per kind of mismatch."""


def _timm() -> ModuleType:
    """timm, imported on first use, or a GancoreError saying how to install it."""
    try:
        import timm
    except ImportError:
        raise GancoreError("the fd metric embeds images with a timm backbone: install timm and safetensors "
                           "(pip install timm safetensors)") from None
    return timm


def check_backbone(name: str) -> None:
    """Raise ValueError unless timm knows ``name`` (an architecture, optionally ``.tag``), naming close matches."""
    timm = _timm()
    if timm.is_model(name):
        return
    close = timm.list_models(f"*{name}*")[:10] or difflib.get_close_matches(name, timm.list_models(), n=5)
    hint = f"close matches: {', '.join(close)}" if close else "timm.list_models('*dinov2*') lists such names"
    raise ValueError(f"backbone {name!r} is not a timm model; {hint}")


def weights_hint(backbone: str) -> str:
    """Where the weights of a backbone are published, from timm's pretrained config (no network access)."""
    config = _timm().models.get_pretrained_cfg(backbone)
    places = []
    if config is not None and config.hf_hub_id:
        places.append(f"timm's model.safetensors of https://huggingface.co/{config.hf_hub_id}")
    if config is not None and config.url:
        places.append(config.url)
    return f" ({' or '.join(places)})" if places else ""


@dataclass(frozen=True)
class Preprocessing:
    """timm's evaluation transform of a data config (``transforms_imagenet_eval``) on batches of uint8 images.

    timm applies it to PIL images, so it is done as PIL does: grey is repeated to RGB; the image is resized
    as ``crop_mode`` says to the input size over ``crop_pct`` (``center``: the shorter side; ``squash``: both
    sides; ``border``: the longer side), width then height, each pass antialiased and kept to 8 bits;
    centre-cropped (or padded: with the mean colour for ``border``, black otherwise) to the input size,
    scaled to [0, 1] and normalised with ``mean`` and ``std``.
    """

    size: tuple[int, int]
    interpolation: str
    crop_pct: float
    crop_mode: str
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @classmethod
    def of(cls, config: dict[str, Any]) -> Preprocessing:
        """The preprocessing of a config from ``timm.data.resolve_model_data_config``."""
        from timm.data import DEFAULT_CROP_PCT

        if config["interpolation"] not in INTERPOLATIONS:
            raise GancoreError(f"the backbone's data config resamples with {config['interpolation']!r}; the fd "
                               f"metric does {' or '.join(INTERPOLATIONS)}")
        _, height, width = config["input_size"]
        return cls((height, width), config["interpolation"], config.get("crop_pct") or DEFAULT_CROP_PCT,
                   config.get("crop_mode") or "center", tuple(config["mean"]), tuple(config["std"]))

    def __str__(self) -> str:
        """A description that names the transform exactly, for the extractor's key."""
        mean = ",".join(f"{v:g}" for v in self.mean)
        std = ",".join(f"{v:g}" for v in self.std)
        return (f"{self.size[0]}x{self.size[1]},{self.interpolation}-as-pil,{self.crop_mode}-crop-"
                f"{self.crop_pct:g},mean={mean},std={std}")

    def resized(self, height: int, width: int) -> tuple[int, int]:
        """The size an image of ``height`` × ``width`` is resampled to before the crop."""
        scale_h, scale_w = (math.floor(s / self.crop_pct) for s in self.size)
        if self.crop_mode == "squash":
            return scale_h, scale_w
        if self.crop_mode == "border" or scale_h != scale_w:  # timm's ResizeKeepRatio
            longest = 1.0 if self.crop_mode == "border" else 0.0
            ratio_h, ratio_w = height / scale_h, width / scale_w
            ratio = max(ratio_h, ratio_w) * longest + min(ratio_h, ratio_w) * (1 - longest)
            return round(height / ratio), round(width / ratio)
        if height <= width:  # torchvision's Resize(int): the shorter side to the scale
            return scale_h, int(scale_h * width / height)
        return int(scale_h * height / width), scale_h

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 images (N, 1 or 3, H, W) to the backbone's float input (N, 3, *size)."""
        if images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images, got {images.dtype}; quantise generated images first")
        x = images.float()
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        height, width = x.shape[-2:]
        new_height, new_width = self.resized(height, width)
        if new_width != width:
            x = _resample(x, (height, new_width), self.interpolation)
        if new_height != height:
            x = _resample(x, (new_height, new_width), self.interpolation)
        fill = [round(255 * v) for v in self.mean] if self.crop_mode == "border" else [0] * 3
        x = _centre(x, self.size, fill) / 255
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std


def _resample(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    """One pass of PIL's separable resize of 8-bit images (values 0..255): antialiased, rounded and clipped."""
    return F.interpolate(x, size=size, mode=mode, align_corners=False, antialias=True).round().clamp(0, 255)


def _centre(x: Tensor, size: tuple[int, int], fill: list[int]) -> Tensor:
    """Centre crop to ``size``, padding with ``fill`` where the image is smaller (timm's center_crop_or_pad)."""
    out = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1).repeat(len(x), 1, *size)
    spans = []
    for have, want in zip(x.shape[-2:], size):
        if have >= want:
            start = int(round((have - want) / 2))
            spans.append((slice(start, start + want), slice(0, want)))
        else:
            start = (want - have) // 2
            spans.append((slice(0, have), slice(start, start + have)))
    (rows_in, rows_out), (cols_in, cols_out) = spans
    out[..., rows_out, cols_out] = x[..., rows_in, cols_in]
    return out


def _checkpoint_filter(backbone: str) -> Callable[..., dict[str, Tensor]] | None:
    """The function that converts foreign checkpoints for this architecture (Meta's DINOv2 files, OpenCLIP's,
    ...) and resamples position embeddings to the model's input size, found by timm's naming convention in the
    module that registers the architecture; None if that module has none (timm-format files need none)."""
    timm = _timm()
    architecture = timm.models.split_model_name_tag(backbone)[0]
    module = sys.modules[timm.models.model_entrypoint(architecture).__module__]
    return next((getattr(module, n) for n in FILTER_NAMES if callable(getattr(module, n, None))), None)


def _read(path: Path) -> dict[str, Tensor]:
    """A checkpoint's state dict by timm's reader: safetensors by extension, else ``torch.load`` with
    ``weights_only`` (no code runs); an EMA, ``state_dict`` or ``model`` entry unwrapped, DDP prefixes removed."""
    try:
        return _timm().models.load_state_dict(str(path), device="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise WeightsNotFound(f"{PARAM} = {path} cannot be read as a weights file ({type(exc).__name__}: {exc})",
                              PARAM) from None


def _mismatches(state: dict[str, Tensor], expected: dict[str, Tensor]) -> list[str]:
    """The first missing, unexpected and wrongly shaped keys of a state dict, as phrases; empty if it fits."""
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} (the model's is {tuple(v.shape)})" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    phrases = []
    for what, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("keys of other shapes", shapes)):
        if keys:
            more = f" and {len(keys) - SHOWN} more" if len(keys) > SHOWN else ""
            phrases.append(f"{what} {', '.join(keys[:SHOWN])}{more}")
    return phrases


def load_backbone(backbone: str, path: Path, image_size: int | None = None) -> nn.Module:
    """The timm backbone without its classifier, with the weights of a local file, in eval mode.

    The model is created with ``pretrained=False`` (and ``img_size`` when timm's config says its input size is
    fixed); the file's state dict goes through the architecture's checkpoint filter, loses the classifier's
    keys, and must then match the model exactly.
    """
    timm = _timm()
    config = timm.models.get_pretrained_cfg(backbone)
    sized = {"img_size": image_size} if image_size and config is not None and config.fixed_input_size else {}
    model = timm.create_model(backbone, pretrained=False, num_classes=0, **sized)
    state = _read(path)
    convert = _checkpoint_filter(backbone)
    if convert is not None:
        try:
            state = convert(state, model) if len(inspect.signature(convert).parameters) > 1 else convert(state)
        except Exception as exc:  # noqa: BLE001 - a checkpoint of another network fails in its own ways
            raise WeightsNotFound(f"{PARAM} = {path} cannot be converted for {backbone}: {exc!r}; give the "
                                  f"weights of {backbone}{weights_hint(backbone)}", PARAM) from None
    expected = model.state_dict()
    classifiers = model.pretrained_cfg.get("classifier") or ()
    for name in (classifiers,) if isinstance(classifiers, str) else classifiers:
        for key in (f"{name}.weight", f"{name}.bias"):
            if key not in expected:
                state.pop(key, None)
    problems = _mismatches(state, expected)
    if problems:
        raise WeightsNotFound(f"{PARAM} = {path} does not hold the weights of {backbone}: {'; '.join(problems)}; "
                              f"give the weights of {backbone}{weights_hint(backbone)}, or name the backbone "
                              f"they belong to", PARAM)
    model.load_state_dict(state)
    return model.eval().requires_grad_(False)


class TimmFeatures(FeatureExtractor):
    """A timm backbone's pooled pre-logits features of uint8 images (the CLS token for a DINOv2 ViT).

    ``image_size`` overrides the backbone's input side (DINOv2's configs say 518; Stein et al. use 224);
    the key names the backbone, the file's SHA-256 and the preprocessing, so changing either recomputes the
    cached reference features.
    """

    def __init__(self, backbone: str, path: Path, device: torch.device, image_size: int | None = None) -> None:
        self.model = load_backbone(backbone, path, image_size).to(device)
        override = {"input_size": (3, image_size, image_size)} if image_size else None
        self.preprocessing = Preprocessing.of(_timm().data.resolve_model_data_config(self.model, args=override))
        self.key = f"timm:{backbone}/sha256:{file_digest(path)}/{self.preprocessing}"
        self.name = f"timm {backbone}"

    def __call__(self, samples: Tensor) -> dict[str, Tensor]:
        return {"features": self.model(self.preprocessing(samples))}


@component("metric", "fd")
class FD(Metric):
    """Fréchet distance in a timm backbone's feature space: FD_DINOv2 (Stein et al. 2023) by default."""

    bounds = {"fd": (0.0, math.inf)}
    identical = {"fd": 0.0}

    def __init__(
        self,
        backbone: Annotated[str, Field(min_length=1, description=(
            "timm model name (architecture, optionally .tag); DINOv2 ViTs are recommended, ViT-L/14 in the "
            "paper"))] = "vit_large_patch14_dinov2",
        backbone_weights: Annotated[str | None, Field(description=(
            "path of the backbone's weights: a .safetensors, .pth, .pt or .bin file (timm's or, for DINOv2, "
            "Meta's checkpoint); required, nothing is downloaded"))] = None,
        image_size: Annotated[Annotated[int, Field(ge=1)] | None, Field(description=(
            "input side of the backbone; null: its config's (518 for DINOv2; the paper uses 224)"))] = None,
        num_gen: NumGen = 50_000,
        num_real: NumReal = None,
    ) -> None:
        self.backbone = backbone
        self.backbone_weights = backbone_weights
        self.image_size = image_size
        self.num_gen = num_gen
        self.num_real = num_real

    def check(self, dataset: Dataset) -> None:
        require_images(dataset)
        check_backbone(self.backbone)
        self.weights()

    def weights(self) -> Path:
        """The weights file, which must be given and exist."""
        if not self.backbone_weights:
            raise WeightsNotFound(
                f"the weights of the backbone {self.backbone} are needed{weights_hint(self.backbone)}; gancore "
                f"downloads nothing: give the local file's path with the metric's parameter {PARAM} "
                f"(gancore eval --backbone-weights PATH)", PARAM)
        path = Path(self.backbone_weights).expanduser()
        if not path.is_file():
            raise WeightsNotFound(f"{PARAM} names {path}, which is not a file; it should hold the weights of "
                                  f"{self.backbone}{weights_hint(self.backbone)}", PARAM)
        return path

    def compute(self, evaluation: Evaluation) -> dict[str, float]:
        path = self.weights()
        network = evaluation.shared(f"timm:{self.backbone}:{path}:{self.image_size}",
                                    lambda: TimmFeatures(self.backbone, path, evaluation.device, self.image_size))
        real = evaluation.real(network, self.num_real, keep_rows=False)["features"]
        fake = evaluation.generated(network, self.num_gen)["features"]
        return {"fd": frechet_distance(real.mean, real.cov, fake.mean, fake.cov)}
