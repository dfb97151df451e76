"""Every component this repository ships passes the conformance kit, with each of its declared examples.

Components that need input the kit cannot invent get it here: data files in the official formats, and
weights files of the right architecture with random values (the published files cannot be downloaded in CI).
"""

from __future__ import annotations

import io
import json
import pickle
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from gancore.conformance import check_component, examples
from gancore.registry import default_registry

REGISTRY = default_registry()
SHIPPED = {"gancore", "gancore-r3gan", "gancore-ada", "gancore-sn", "gancore-biggan", "gancore-landscape"}


def _png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _cifar(root: Path) -> None:
    """The official python tarball's layout, with 4 random images per batch."""
    rng = np.random.default_rng(0)
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name in ["batches.meta", *[f"data_batch_{i}" for i in range(1, 6)], "test_batch"]:
            content: dict[bytes, Any] = {b"label_names": [b"airplane"] * 10} if name == "batches.meta" else {
                b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": rng.integers(0, 10, 4).tolist()}
            payload = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))


def _images(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(n)]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Data in each format the built-in data sets read."""
    root = tmp_path_factory.mktemp("conformance-data")
    _cifar(root)
    for i, image in enumerate(_images(6)):
        folder = root / "folder" / ("cats" if i % 2 else "dogs")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i}.png").write_bytes(_png(image))
    names = [f"00000/img{i:08d}.png" for i in range(6)]
    with zipfile.ZipFile(root / "images.zip", "w") as zf:
        for name, image in zip(names, _images(6)):
            zf.writestr(name, _png(image))
        zf.writestr("dataset.json", json.dumps({"labels": [[n, i % 3] for i, n in enumerate(names)]}))
    return {"root": root, "folder": root / "folder", "zip": root / "images.zip"}


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The FID Inception, torchvision's VGG16 and a timm ViT, with random weights in files of the right layout."""
    import timm
    from torchvision.models import vgg16

    from gancore.builtin.metrics.inception import FIDInception

    root = tmp_path_factory.mktemp("conformance-weights")
    torch.manual_seed(0)
    inception = FIDInception()
    for module in inception.modules():
        if isinstance(module, nn.Conv2d):  # Kaiming, so that features vary with the image
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
    paths = {"inception": root / "pt_inception.pth", "vgg16": root / "vgg16.pth", "vit": root / "vit.pth"}
    torch.save(inception.state_dict(), paths["inception"])
    torch.save(vgg16(weights=None).state_dict(), paths["vgg16"])
    torch.save(timm.create_model("test_vit", pretrained=False).state_dict(), paths["vit"])
    return paths


INPUTS: dict[tuple[str, str], tuple[str, Callable[[dict[str, Path]], dict[str, Any]]]] = {
    ("dataset", "cifar10"): ("files", lambda f: {"root": str(f["root"])}),
    ("dataset", "image_folder"): ("files", lambda f: {"path": str(f["folder"]), "labels": True}),
    ("dataset", "image_zip"): ("files", lambda f: {"path": str(f["zip"]), "labels": True}),
    **{("metric", name): ("weights", lambda w: {"inception_weights": str(w["inception"])})
       for name in ("fid", "kid", "is", "fid50k_full", "kid50k_full", "is50k")},
    ("metric", "pr"): ("weights", lambda w: {"network": "inception", "inception_weights": str(w["inception"])}),
    ("metric", "pr50k3_full"): ("weights", lambda w: {"vgg16_weights": str(w["vgg16"])}),
    ("metric", "fd"): ("weights", lambda w: {"backbone": "test_vit", "backbone_weights": str(w["vit"]),
                                             "image_size": 32}),
}
"""What the kit is given beyond a component's examples: files (from the fixture named) that stand in for
downloads."""


def _cases() -> list[Any]:
    cases = []
    for spec in REGISTRY.list():
        if REGISTRY.plugins[spec.plugin].distribution not in SHIPPED:
            continue
        for i, params in enumerate(examples(REGISTRY, spec.kind, spec.name)):
            marks = [pytest.mark.xdist_group("conformance_weights")] if spec.kind in ("metric", "dataset") else []
            cases.append(pytest.param(spec.kind, spec.name, params, id=f"{spec.kind}:{spec.name}[{i}]", marks=marks))
    return cases


@pytest.mark.parametrize(("kind", "name", "params"), _cases())
def test_shipped_component_conforms(kind: str, name: str, params: dict[str, Any], request: pytest.FixtureRequest) -> None:
    if (kind, name) in INPUTS:
        fixture, inputs = INPUTS[kind, name]
        params = {**params, **inputs(request.getfixturevalue(fixture))}
    report = check_component(kind, name, params)
    assert report.clauses and len(report.clauses) == len(report.seconds)


def test_every_shipped_distribution_is_installed_and_checked() -> None:
    """The parametrisation above is not silently empty: each shipped plugin is installed, loads, and has cases
    for every component it registers."""
    installed = {info.distribution: info for info in REGISTRY.plugins.values()}
    assert SHIPPED <= set(installed) and all(installed[d].status == "ok" for d in SHIPPED)
    checked = {(c.values[0], c.values[1]) for c in _cases()}
    registered = {tuple(c.split(":", 1)) for d in SHIPPED for c in installed[d].components}
    assert checked == registered
