"""The built-in data sets, built through the registry from data the tests write themselves."""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import pytest
import torch
from sklearn.datasets import load_digits

import gancore
from gancore.builtin.datasets import base
from gancore.builtin.datasets import cifar10 as cifar10_module
from gancore.errors import DataError

ROOT = Path(__file__).resolve().parent.parent


def create(name: str, **params: Any) -> Any:
    return gancore.default_registry().create("dataset", name, params)


def random_images(n: int, channels: int, side: int, seed: int) -> np.ndarray:
    """n random uint8 images (n, side, side, channels)."""
    return np.random.default_rng(seed).integers(0, 256, (n, side, side, channels), dtype=np.uint8)


def save_png(array: np.ndarray, target: Path | io.BytesIO) -> None:
    PIL.Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(target, format="PNG")


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    save_png(array, buffer)
    return buffer.getvalue()


def chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)


# -- toys ----------------------------------------------------------------------------------------


def test_gaussians_grid_has_25_modes_with_the_stated_spread() -> None:
    data = create("gaussians_grid", size=20_000)
    axis = torch.arange(-4.0, 5.0, 2.0)
    assert sorted(map(tuple, data.centers.tolist())) == sorted(map(tuple, torch.cartesian_prod(axis, axis).tolist()))
    assert data.shape == (2,) and len(data) == 20_000 and data.num_classes == 0
    nearest = torch.cdist(data.points, data.centers).argmin(1)
    residual = data.points - data.centers[nearest]
    for mode in range(25):
        assert residual[nearest == mode].std().item() == pytest.approx(0.05, rel=0.15)
    x, label = data[3]
    assert x.dtype == torch.float32 and x.shape == (2,) and label == 0


def test_gaussians_ring_has_8_centres_on_radius_2() -> None:
    data = create("gaussians_ring", size=1000)
    assert data.centers.shape == (8, 2)
    assert torch.allclose(data.centers.norm(dim=1), torch.full((8,), 2.0))
    angles = torch.atan2(data.centers[:, 1], data.centers[:, 0]).remainder(2 * math.pi).sort().values
    assert torch.allclose(angles, torch.arange(8) * (math.pi / 4), atol=1e-5)


# -- digits --------------------------------------------------------------------------------------


def sklearn_digits() -> tuple[torch.Tensor, torch.Tensor]:
    bunch = load_digits()
    return torch.from_numpy(bunch.images * 255 / 16).round().to(torch.uint8), torch.from_numpy(bunch.target)


def test_digits_are_sklearns_scaled_to_bytes() -> None:
    images, targets = sklearn_digits()
    data = create("digits")
    assert len(data) == 1797 and data.shape == (1, 8, 8) and data.num_classes == 10
    batch = data.__getitems__(list(range(1797)))
    assert torch.equal(torch.stack([x for x, _ in batch]), images.unsqueeze(1))
    assert [label for _, label in batch] == targets.tolist()
    x, label = data[5]
    assert x.dtype == torch.uint8 and isinstance(label, int) and label == int(targets[5])
    assert int(images.max()) == 255


def test_digits_resize_and_xflip() -> None:
    data = create("digits", resolution=16, xflip=True)
    assert len(data) == 2 * 1797 and data.shape == (1, 16, 16)
    original, label = data[7]
    mirrored, mirrored_label = data[1797 + 7]
    assert original.shape == (1, 16, 16) and original.dtype == torch.uint8
    assert torch.equal(mirrored, original.flip(-1)) and mirrored_label == label
    with pytest.raises(IndexError):
        data[2 * 1797]


def test_stacked_digits_channels_are_the_digits_of_their_mode() -> None:
    images, targets = sklearn_digits()
    data = create("stacked_digits", size=50_000)
    assert len(data) == 50_000 and data.shape == (3, 8, 8) and data.num_classes == 0
    assert data.modes.dtype == torch.int64 and data.modes.shape == (50_000,)
    assert torch.unique(data.modes).numel() == 1000
    for index in [0, 1, 123, 49_999]:
        x, label = data[index]
        assert label == 0 and x.dtype == torch.uint8
        mode = int(data.modes[index])
        for channel, digit in enumerate((mode // 100, mode // 10 % 10, mode % 10)):
            matches = (images == x[channel]).flatten(1).all(1)
            assert matches.any() and (targets[matches] == digit).all()
    assert create("stacked_digits", size=10, seed=1).modes.tolist() != create("stacked_digits", size=10).modes.tolist()


def test_stacked_digits_resized() -> None:
    data = create("stacked_digits", size=100, resolution=32)
    batch = data.__getitems__([0, 99])
    assert batch[0][0].shape == (3, 32, 32) and data.shape == (3, 32, 32)


# -- cifar10 -------------------------------------------------------------------------------------


def write_cifar(root: Path, per_batch: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """A tarball in the official format with ``per_batch`` images per batch; returns what each batch holds."""
    rng = np.random.default_rng(0)
    batches = {}
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name in ["batches.meta", *[f"data_batch_{i}" for i in range(1, 6)], "test_batch"]:
            if name == "batches.meta":
                content: dict[bytes, Any] = {b"label_names": [b"airplane"] * 10}
            else:
                data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
                labels = rng.integers(0, 10, per_batch).tolist()
                batches[name] = (data, labels)
                content = {b"data": data, b"labels": labels, b"batch_label": name.encode()}
            payload = pickle.dumps(content)
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return batches


def test_cifar10_reads_the_tarball(tmp_path: Path) -> None:
    batches = write_cifar(tmp_path)
    train = create("cifar10", root=str(tmp_path))
    assert len(train) == 20 and train.shape == (3, 32, 32) and train.num_classes == 10
    data, labels = batches["data_batch_3"]
    x, label = train[2 * 4 + 1]
    assert x.dtype == torch.uint8
    assert torch.equal(x, torch.from_numpy(data[1].reshape(3, 32, 32))) and label == labels[1]
    test = create("cifar10", root=str(tmp_path), split="test", xflip=True)
    data, labels = batches["test_batch"]
    assert len(test) == 8
    assert [label for _, label in test.__getitems__(list(range(8)))] == labels + labels
    assert torch.equal(test[4 + 2][0], torch.from_numpy(data[2].reshape(3, 32, 32)).flip(-1))


def assert_cifar_guidance(message: str, path: Path) -> None:
    assert "cifar-10-python.tar.gz" in message
    assert str(path) in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "download: true" in message


def test_cifar10_missing_file_says_what_to_fetch_and_where(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        create("cifar10", root=str(tmp_path / "nowhere"))
    assert_cifar_guidance(str(caught.value), tmp_path / "nowhere" / "cifar-10-python.tar.gz")


def test_cifar10_download_without_network_gives_the_same_guidance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: Any, **kwargs: Any) -> Any:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(DataError) as caught:
        create("cifar10", root=str(tmp_path / "c"), download=True)
    assert_cifar_guidance(str(caught.value), tmp_path / "c" / "cifar-10-python.tar.gz")
    assert "no network" in str(caught.value)
    assert list((tmp_path / "c").iterdir()) == []


def test_cifar10_download_with_a_bad_checksum_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: io.BytesIO(b"not the tarball"))
    with pytest.raises(DataError, match="md5"):
        create("cifar10", root=str(tmp_path), download=True)
    assert list(tmp_path.iterdir()) == []


def test_cifar10_download_moves_a_verified_file_into_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "source"
    write_cifar(source)
    payload = (source / "cifar-10-python.tar.gz").read_bytes()
    monkeypatch.setattr(cifar10_module, "MD5", hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(urllib.request, "urlopen", lambda *args, **kwargs: io.BytesIO(payload))
    data = create("cifar10", root=str(tmp_path / "cache"), download=True)
    assert len(data) == 20
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["cifar-10-python.tar.gz"]


def test_cifar10_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read"):
        create("cifar10", root=str(tmp_path))


# -- image folder --------------------------------------------------------------------------------


def test_image_folder_round_trips_pngs_with_labels(tmp_path: Path) -> None:
    images = random_images(6, 3, 8, seed=1)
    classes = ["cat", "cat", "dog", "emu", "emu", "emu"]
    for i, (image, folder) in enumerate(zip(images, classes, strict=True)):
        (tmp_path / folder / "deep").mkdir(parents=True, exist_ok=True)
        target = tmp_path / folder / ("deep" if i == 4 else "") / f"{i}.{'PNG' if i == 2 else 'png'}"
        save_png(image, target)
    (tmp_path / "notes.txt").write_text("not an image")
    data = create("image_folder", path=str(tmp_path), labels=True)
    assert len(data) == 6 and data.shape == (3, 8, 8) and data.num_classes == 3
    index = {name: i for i, name in enumerate(data.names)}
    for i, (image, folder) in enumerate(zip(images, classes, strict=True)):
        name = next(n for n in data.names if n.rsplit("/", 1)[-1].split(".")[0] == str(i))
        x, label = data[index[name]]
        assert x.dtype == torch.uint8 and torch.equal(x, chw(image))
        assert label == ["cat", "dog", "emu"].index(folder)


def test_image_folder_grey_resize_and_xflip(tmp_path: Path) -> None:
    for i, (width, height) in enumerate([(20, 12), (12, 12)]):
        PIL.Image.new("RGB", (width, height), (200, 10, 10)).save(tmp_path / f"{i}.jpg")
    data = create("image_folder", path=str(tmp_path), resolution=6, channels=1, xflip=True)
    assert len(data) == 4 and data.shape == (1, 6, 6) and data.num_classes == 0
    batch = data.__getitems__([0, 1, 2, 3])
    for x, label in batch:
        assert x.shape == (1, 6, 6) and label == 0
    assert torch.equal(batch[2][0], batch[0][0].flip(-1))


def test_image_folder_lanczos_centre_crop(tmp_path: Path) -> None:
    wide = np.zeros((4, 8, 3), dtype=np.uint8)
    wide[:, 2:6] = 255
    save_png(wide, tmp_path / "wide.png")
    x, _ = create("image_folder", path=str(tmp_path), resolution=4)[0]
    assert (x == 255).all()


def test_image_folder_mixed_sizes_name_the_file(tmp_path: Path) -> None:
    save_png(random_images(1, 3, 8, 0)[0], tmp_path / "a.png")
    save_png(random_images(1, 3, 16, 0)[0], tmp_path / "b.png")
    with pytest.raises(DataError, match=r"b\.png is 16×16"):
        create("image_folder", path=str(tmp_path))
    assert create("image_folder", path=str(tmp_path), resolution=8)[1][0].shape == (3, 8, 8)


def test_image_folder_empty_missing_and_loose_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no images"):
        create("image_folder", path=str(tmp_path))
    with pytest.raises(DataError, match="does not exist"):
        create("image_folder", path=str(tmp_path / "absent"))
    save_png(random_images(1, 3, 4, 0)[0], tmp_path / "loose.png")
    with pytest.raises(DataError, match=r"loose\.png"):
        create("image_folder", path=str(tmp_path), labels=True)


# -- image zip -----------------------------------------------------------------------------------


def write_zip(path: Path, images: np.ndarray, labels: list[int] | None, extra: tuple[str, ...] = ()) -> list[str]:
    """A dataset_tool.py-style zip: images under 00000/, and dataset.json with labels (or null)."""
    names = [f"00000/img{i:08d}.png" for i in range(len(images))]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, image in zip(names, images, strict=True):
            zf.writestr(name, png_bytes(image))
        listed = None if labels is None else [[n, c] for n, c in zip([*names, *extra], labels, strict=True)]
        zf.writestr("dataset.json", json.dumps({"labels": listed}))
    return names


def test_image_zip_round_trips_with_labels(tmp_path: Path) -> None:
    images = random_images(5, 3, 8, seed=2)
    labels = [6, 0, 2, 6, 1]
    write_zip(tmp_path / "d.zip", images, labels)
    data = create("image_zip", path=str(tmp_path / "d.zip"), xflip=True)
    assert len(data) == 10 and data.shape == (3, 8, 8) and data.num_classes == 7
    for i in range(5):
        x, label = data[i]
        assert torch.equal(x, chw(images[i])) and label == labels[i]
        mirrored, mirrored_label = data[5 + i]
        assert torch.equal(mirrored, chw(images[i]).flip(-1)) and mirrored_label == labels[i]
    unlabelled = create("image_zip", path=str(tmp_path / "d.zip"), labels=False, channels=1, resolution=4)
    assert unlabelled.num_classes == 0 and unlabelled[0][1] == 0 and unlabelled[0][0].shape == (1, 4, 4)


def test_image_zip_null_labels(tmp_path: Path) -> None:
    write_zip(tmp_path / "d.zip", random_images(3, 1, 4, seed=3), None)
    data = create("image_zip", path=str(tmp_path / "d.zip"), channels=1)
    assert data.num_classes == 0 and data.shape == (1, 4, 4) and [label for _, label in data] == [0, 0, 0]


def test_image_zip_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        create("image_zip", path=str(tmp_path / "absent.zip"))
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(DataError, match="not a readable zip"):
        create("image_zip", path=str(tmp_path / "fake.zip"))
    write_zip(tmp_path / "d.zip", random_images(2, 3, 4, seed=4), [0, 1, 2], extra=("00000/img00000099.png",))
    with pytest.raises(DataError, match=r"img00000099\.png"):
        create("image_zip", path=str(tmp_path / "d.zip"))
    assert len(create("image_zip", path=str(tmp_path / "d.zip"), labels=False)) == 2


def test_image_zip_pickles_without_its_handle(tmp_path: Path) -> None:
    images = random_images(4, 3, 8, seed=5)
    write_zip(tmp_path / "d.zip", images, [0, 1, 2, 3])
    data = create("image_zip", path=str(tmp_path / "d.zip"))
    data[0]
    copy = pickle.loads(pickle.dumps(data))
    assert torch.equal(copy[3][0], chw(images[3])) and copy[3][1] == 3


def test_image_zip_through_a_dataloader_with_workers(tmp_path: Path) -> None:
    images = random_images(12, 3, 8, seed=6)
    labels = [i % 4 for i in range(12)]
    write_zip(tmp_path / "d.zip", images, labels)
    data = create("image_zip", path=str(tmp_path / "d.zip"), xflip=True)
    loader = torch.utils.data.DataLoader(data, batch_size=5, num_workers=2, shuffle=False)
    xs, cs = zip(*loader, strict=True)
    x, c = torch.cat(xs), torch.cat(cs)
    expected = torch.stack([chw(image) for image in images])
    assert x.dtype == torch.uint8 and x.shape == (24, 3, 8, 8)
    assert torch.equal(x, torch.cat([expected, expected.flip(-1)]))
    assert c.tolist() == labels + labels


def test_synthetic_cifar_tarball_reads_as_cifar10_with_class_structure(tmp_path: Path) -> None:
    """benchmarks/synthetic_cifar.py writes what the cifar10 loader reads, and its classes differ in colour."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("synthetic_cifar", ROOT / "benchmarks" / "synthetic_cifar.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.write_tarball(tmp_path, per_batch=200)
    data = create("cifar10", root=str(tmp_path))
    assert (len(data), data.num_classes, tuple(data.shape)) == (1000, 10, (3, 32, 32))
    images = torch.stack([data[i][0] for i in range(len(data))]).float()
    labels = torch.tensor([data[i][1] for i in range(len(data))])
    colour = images.mean(dim=(2, 3))
    means = torch.stack([colour[labels == k].mean(0) for k in range(10)])
    within = torch.stack([(colour[labels == k] - means[k]).norm(dim=1).mean() for k in range(10)]).mean()
    between = torch.pdist(means).min()
    assert between > within  # the nearest two classes are further apart than an image from its class mean


# -- in memory -----------------------------------------------------------------------------------


def write_labelled_folder(root: Path, images: np.ndarray) -> None:
    """The images as PNGs in three class sub-folders of ``root``."""
    for i, image in enumerate(images):
        (root / f"class{i % 3}").mkdir(parents=True, exist_ok=True)
        save_png(image, root / f"class{i % 3}" / f"{i}.png")


def all_items(data: Any) -> tuple[torch.Tensor, list[int]]:
    """Every item of ``data``, mirrored ones first, as stacked images and their labels."""
    order = list(range(len(data)))[::-1]
    batch = data.__getitems__(order)
    images = torch.stack([x for x, _ in batch]).flip(0)
    return images, [label for _, label in batch][::-1]


@pytest.mark.parametrize("xflip", [False, True])
@pytest.mark.parametrize("kind", ["image_folder", "image_zip"])
def test_in_memory_items_equal_the_decoded_on_demand_items(tmp_path: Path, kind: str, xflip: bool) -> None:
    images = random_images(7, 3, 12, seed=7)
    if kind == "image_folder":
        write_labelled_folder(tmp_path / "d", images)
        params: dict[str, Any] = {"path": str(tmp_path / "d"), "labels": True}
    else:
        write_zip(tmp_path / "d.zip", images, [4, 0, 2, 2, 1, 3, 0])
        params = {"path": str(tmp_path / "d.zip")}
    params |= {"xflip": xflip, "resolution": 8}
    on_demand = create(kind, **params)
    held = create(kind, **params, in_memory=True)
    assert not on_demand.in_memory and on_demand.decoded is None
    assert held.in_memory and held.decoded.shape == (7, 3, 8, 8) and held.decoded.dtype == torch.uint8
    assert len(held) == len(on_demand) == 7 * (2 if xflip else 1) and held.shape == on_demand.shape
    expected, expected_labels = all_items(on_demand)
    assert len(set(expected_labels)) > 1
    for _ in range(2):  # fetching mirrored items must leave the held images as they were
        got, labels = all_items(held)
        assert got.dtype == torch.uint8 and torch.equal(got, expected) and labels == expected_labels
    assert torch.equal(held[len(held) - 1][0], expected[-1])


def test_in_memory_image_folder_serves_its_items_after_the_folder_is_gone(tmp_path: Path) -> None:
    images = random_images(5, 1, 6, seed=8)
    write_labelled_folder(tmp_path / "d", images)
    data = create("image_folder", path=str(tmp_path / "d"), channels=1, labels=True, in_memory=True)
    expected = [(chw(images[int(Path(name).stem)]), int(name[len("class")])) for name in data.names]
    shutil.rmtree(tmp_path / "d")
    for i, (image, label) in enumerate(expected):
        x, c = data[i]
        assert torch.equal(x, image) and c == label


@pytest.mark.parametrize("kind", ["image_folder", "image_zip"])
def test_in_memory_decodes_in_worker_processes_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """With workers and several batches, every image lands at its own index (each worker opens its own zip)."""
    monkeypatch.setattr(base, "PARALLEL_DECODE_MIN", 0)
    monkeypatch.setattr(base, "DECODE_BATCH", 3)
    images = random_images(11, 3, 4, seed=9)
    if kind == "image_folder":
        for i, image in enumerate(images):
            save_png(image, tmp_path / f"{i:02d}.png")
        path = tmp_path
    else:
        write_zip(tmp_path / "d.zip", images, None)
        path = tmp_path / "d.zip"
    data = create(kind, path=str(path), in_memory=True)
    assert torch.equal(data.decoded, torch.stack([chw(image) for image in images]))


@pytest.mark.parametrize("parallel", [False, True])
def test_in_memory_names_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parallel: bool) -> None:
    if parallel:
        monkeypatch.setattr(base, "PARALLEL_DECODE_MIN", 0)
    for i, image in enumerate(random_images(3, 3, 4, seed=10)):
        save_png(image, tmp_path / f"{i}.png")
    (tmp_path / "1.png").write_bytes((tmp_path / "1.png").read_bytes()[:40])
    data = create("image_folder", path=str(tmp_path), resolution=4)
    with pytest.raises(DataError, match=r"cannot read the image .*1\.png"):
        data[1]
    with pytest.raises(DataError) as caught:
        create("image_folder", path=str(tmp_path), resolution=4, in_memory=True)
    assert str(caught.value).startswith(f"cannot read the image {tmp_path / '1.png'}: ")


def test_in_memory_refuses_what_does_not_fit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for i, image in enumerate(random_images(4, 3, 16, seed=11)):
        save_png(image, tmp_path / f"{i}.png")
    needed = 4 * 3 * 16 * 16
    monkeypatch.setattr(base, "available_memory", lambda: needed - 1)
    with pytest.raises(DataError) as caught:
        create("image_folder", path=str(tmp_path), in_memory=True)
    message = str(caught.value)
    assert f"needs {needed / 2**30:.3g} GiB" in message and f"only {(needed - 1) / 2**30:.3g} GiB" in message
    assert "in_memory to false" in message
    assert create("image_folder", path=str(tmp_path)).decoded is None  # on demand, nothing is held or checked
    monkeypatch.setattr(base, "available_memory", lambda: needed)
    assert create("image_folder", path=str(tmp_path), in_memory=True).in_memory
    monkeypatch.setattr(base, "available_memory", lambda: None)
    assert create("image_folder", path=str(tmp_path), in_memory=True).in_memory


def test_available_memory_is_positive_where_posix_reports_it() -> None:
    available = base.available_memory()
    assert available is None or available > 0


def test_tensor_data_sets_are_in_memory(tmp_path: Path) -> None:
    write_cifar(tmp_path)
    assert create("cifar10", root=str(tmp_path)).in_memory
    assert create("digits").in_memory
    assert create("gaussians_ring", size=10).in_memory
