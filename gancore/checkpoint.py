"""Checkpoints: everything a run needs to continue exactly, written so that no fault can break one.

A checkpoint is a file ``checkpoints/checkpoint-<nimg>.pt`` that ``torch.load(path, weights_only=True)``
opens (tensors and plain values only: opening one never runs code from it). It holds the state,
the recipe it belongs to, and a SHA-256 of its contents; a file whose contents do not match its hash
(corrupted, cut short) or whose recipe differs from the run's is refused with the reason, and a
resume takes the newest checkpoint that passes. Files are written to a temporary name, flushed to
disk and renamed, so a crash mid-write leaves the earlier checkpoints as they were.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gancore.errors import GancoreError

FORMAT = "gancore-checkpoint/1"
FOLDER = "checkpoints"
_NAME = re.compile(r"^checkpoint-(\d+)\.pt$")

RESUMABLE_CHANGES = (
    ("train", "total_kimg"), ("train", "log_every_kimg"), ("train", "sample_every_kimg"),
    ("train", "checkpoint_every_kimg"), ("train", "keep_checkpoints"), ("train", "num_workers"),
    ("train", "num_samples"), ("train", "max_bad_steps"), ("train", "device"), ("metrics",),
)
"""Recipe keys a resumed run may change: when it ends, what it logs, where it runs; not what it trains."""


class CheckpointError(GancoreError):
    """A checkpoint could not be written, or was refused when read."""


@dataclass
class Checkpoint:
    """A verified checkpoint: its file, the images shown when it was written, its state and its recipe."""

    path: Path
    nimg: int
    state: dict[str, Any]
    recipe: dict[str, Any]


def content_hash(value: Any) -> str:
    """SHA-256 of a state's contents (tensors by dtype, shape and bytes; dict keys in order), not of the file."""
    digest = hashlib.sha256()
    for chunk in _canonical(value):
        digest.update(chunk)
    return digest.hexdigest()


def _canonical(value: Any) -> Iterator[bytes]:
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        yield f"T{t.dtype}{tuple(t.shape)}:".encode()
        yield t.reshape(-1).view(torch.uint8).numpy().data if t.numel() else b""  # type: ignore[misc]
    elif isinstance(value, dict):
        yield f"D{len(value)}:".encode()
        for key in sorted(value, key=repr):
            yield from _canonical(key)
            yield from _canonical(value[key])
    elif isinstance(value, list | tuple):
        yield f"{type(value).__name__[0]}{len(value)}:".encode()
        for item in value:
            yield from _canonical(item)
    else:
        yield f"{type(value).__name__}:{value!r};".encode()


def comparable(recipe: dict[str, Any]) -> dict[str, Any]:
    """The recipe without the keys a resumed run may change."""
    kept = {k: dict(v) if isinstance(v, dict) else v for k, v in recipe.items()}
    for path in RESUMABLE_CHANGES:
        node: Any = kept
        for key in path[:-1]:
            node = node.get(key, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return kept


def recipe_differences(ours: dict[str, Any], theirs: dict[str, Any], prefix: str = "") -> list[str]:
    """Key paths where two recipes differ, as ``path: ours vs theirs``."""
    found = []
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in ours or key not in theirs:
                found.append(f"{path}: {'absent' if key not in ours else repr(ours[key])} here vs "
                             f"{'absent' if key not in theirs else repr(theirs[key])} in the checkpoint")
            else:
                found.extend(recipe_differences(ours[key], theirs[key], path))
    elif ours != theirs:
        found.append(f"{prefix}: {ours!r} here vs {theirs!r} in the checkpoint")
    return found


def path_for(run_dir: Path, nimg: int) -> Path:
    return run_dir / FOLDER / f"checkpoint-{nimg:012d}.pt"


def listed(run_dir: Path) -> list[tuple[int, Path]]:
    """The run's checkpoint files as (nimg, path), newest first."""
    folder = run_dir / FOLDER
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found, reverse=True)


def save(run_dir: Path, nimg: int, state: dict[str, Any], recipe: dict[str, Any], keep: int) -> Path:
    """Write a checkpoint atomically, then delete all but the newest ``keep``; CheckpointError if it cannot."""
    path = path_for(run_dir, nimg)
    temporary = path.with_name(f".{path.name}.partial")
    record = {"format": FORMAT, "nimg": nimg, "recipe": recipe, "state": state,
              "sha256": content_hash({"nimg": nimg, "recipe": recipe, "state": state})}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(temporary, "wb") as file:
            torch.save(record, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
        _sync_folder(path.parent)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        earlier = [p for n, p in listed(run_dir) if n != nimg]
        kept = f"the newest earlier checkpoint, {earlier[0]}, is untouched" if earlier else "no earlier checkpoint exists"
        reason = exc.strerror or str(exc)
        raise CheckpointError(f"cannot write the checkpoint {path}: {reason}; {kept}. Free space or make "
                              f"{run_dir} writable, then resume with --resume {run_dir}") from None
    for _, old in listed(run_dir)[keep:]:
        old.unlink(missing_ok=True)
    for orphan in path.parent.glob(".checkpoint-*.pt.partial"):  # left by a writer that crashed
        orphan.unlink(missing_ok=True)
    return path


def _sync_folder(folder: Path) -> None:
    """Flush the rename itself to disk (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read(path: Path) -> Checkpoint:
    """Open and verify one checkpoint; CheckpointError says why a file is refused."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path} does not exist") from None
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only" in str(exc):
            raise CheckpointError(f"{path} holds Python objects other than tensors and plain values; it was not "
                                  f"written by gancore and is not opened, since unpickling them could run code") from None
        raise CheckpointError(f"{path} cannot be read (cut short or corrupted: {exc})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"{path} cannot be read (cut short or corrupted: {str(exc).splitlines()[0]})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gancore checkpoint (no '{FORMAT}' header)")
    expected = content_hash({k: record.get(k) for k in ("nimg", "recipe", "state")})
    if record.get("sha256") != expected:
        raise CheckpointError(f"{path} is corrupted: its contents do not match the SHA-256 it was written with")
    return Checkpoint(path, int(record["nimg"]), record["state"], record["recipe"])


def check_recipe(checkpoint: Checkpoint, recipe: dict[str, Any]) -> None:
    """Refuse a checkpoint written by a run of another recipe (beyond the keys a resume may change)."""
    differences = recipe_differences(comparable(recipe), comparable(checkpoint.recipe))
    if differences:
        shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
        raise CheckpointError(f"{checkpoint.path} belongs to another recipe: {shown}")


def newest_good(run_dir: Path, recipe: dict[str, Any]) -> tuple[Checkpoint, list[str]]:
    """The newest checkpoint of ``run_dir`` that reads, verifies and matches ``recipe``, and why newer ones were refused."""
    refused = []
    for _, path in listed(run_dir):
        try:
            checkpoint = read(path)
            check_recipe(checkpoint, recipe)
            return checkpoint, refused
        except CheckpointError as exc:
            refused.append(str(exc))
    if not refused:
        raise CheckpointError(f"{run_dir} holds no checkpoints ({run_dir / FOLDER} is missing or empty); "
                              f"nothing to resume")
    raise CheckpointError(f"no usable checkpoint in {run_dir}:\n" + "\n".join(f"  {r}" for r in refused))
