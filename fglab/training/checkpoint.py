"""Atomic per-epoch checkpoints: tensors in safetensors, the rest in JSON beside them, and a
SHA-256 of both inside the file, checked before a checkpoint is resumed from."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from fglab.io import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)
PARTS = ("model", "best", "optim")


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed from: damaged, truncated, empty or unchecked."""


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in state.items()}


def flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer state as named tensors plus its JSON-able parameter groups."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensor = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{index}.{name}"] = tensor.detach().clone().contiguous()
    return tensors, {"param_groups": state["param_groups"]}


def restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class CheckpointStore:
    """``DIR/<stage>.safetensors``: model, best model and optimizer tensors, with the epoch,
    history, best epoch and done flag as JSON in its metadata, and the SHA-256 of all of them,
    in one atomic write (so the tensors and the epoch they belong to never disagree).
    ``DIR/<stage>.json`` is a readable copy of that metadata.

    :meth:`exists` verifies a checkpoint; a bad one is moved aside (``.damaged``) with a
    warning naming it, and the stage trains again from its first epoch. :meth:`load` of a bad
    one raises :class:`CheckpointError` naming the file."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._verified: dict[str, tuple[dict, dict, dict, dict]] = {}

    def _paths(self, stage: str) -> tuple[Path, Path]:
        return self.directory / f"{stage}.safetensors", self.directory / f"{stage}.json"

    def exists(self, stage: str) -> bool:
        """Whether ``stage`` has a sound checkpoint (kept for the :meth:`load` that follows)."""
        tensor_path, meta_path = self._paths(stage)
        if not tensor_path.is_file():
            return False
        try:
            self._verified[stage] = self._read(stage)
        except CheckpointError as error:
            for path in (tensor_path, meta_path):
                if path.is_file():
                    os.replace(path, path.with_name(f"{path.name}.damaged"))
            logger.warning("%s: moved aside to %s.damaged, stage %s trains again from its first "
                           "epoch", error, tensor_path.name, stage)
            return False
        return True

    def save(
        self,
        stage: str,
        model: dict[str, torch.Tensor],
        best: dict[str, torch.Tensor],
        optimizer: torch.optim.Optimizer,
        meta: dict[str, Any],
    ) -> None:
        optim_tensors, optim_meta = flatten_optimizer(optimizer)
        tensors = {f"model.{k}": v for k, v in _clone(model).items()}
        tensors.update({f"best.{k}": v for k, v in _clone(best).items()})
        tensors.update({f"optim.{k}": v for k, v in optim_tensors.items()})
        tensor_path, meta_path = self._paths(stage)
        text = json.dumps({**meta, "optimizer": optim_meta}, indent=2)
        metadata = {"meta": text, "sha256": _digest(tensors, text)}
        self._verified.pop(stage, None)
        atomic_write_bytes(tensor_path, save_tensors(tensors, metadata=metadata))
        atomic_write_text(meta_path, text)

    def load(self, stage: str) -> tuple[dict, dict, dict, dict]:
        """(model state, best state, optimizer tensors, meta)."""
        return self._verified.pop(stage, None) or self._read(stage)

    def _read(self, stage: str) -> tuple[dict, dict, dict, dict]:
        path = self._paths(stage)[0]
        fix = f"delete it to train stage {stage} again from its first epoch"
        try:
            data = path.read_bytes()
        except OSError as error:
            raise CheckpointError(f"checkpoint {path} is unreadable ({error}); {fix}") from error
        if not data:
            raise CheckpointError(f"checkpoint {path} is empty; {fix}")
        try:  # anything the parser says of a damaged file means the same: do not resume
            tensors = load_tensors(data)
            header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")])
            metadata = header.get("__metadata__") or {}
            text, expected = metadata.get("meta"), metadata.get("sha256")
        except (SafetensorError, ValueError, AttributeError, RuntimeError) as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"checkpoint {path} is damaged ({reason}); {fix}") from error
        if not isinstance(text, str) or not isinstance(expected, str):
            raise CheckpointError(
                f"checkpoint {path} has no checksum (damaged, or written by an older fglab); {fix}"
            )
        if _digest(tensors, text) != expected:
            raise CheckpointError(f"checkpoint {path} does not match its SHA-256 (damaged); {fix}")
        parts: dict[str, dict[str, torch.Tensor]] = {name: {} for name in PARTS}
        for key, value in tensors.items():
            prefix, _, name = key.partition(".")
            if prefix not in parts:
                raise CheckpointError(f"checkpoint {path} holds an unknown tensor {key!r}; {fix}")
            parts[prefix][name] = value
        for key, value in {**parts["model"], **parts["best"]}.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise CheckpointError(f"checkpoint {path}: weight {key} is not finite; {fix}")
        return parts["model"], parts["best"], parts["optim"], json.loads(text)


def _digest(tensors: dict[str, torch.Tensor], meta: str) -> str:
    """SHA-256 of the metadata text and every tensor's name, dtype, shape and bytes."""
    digest = hashlib.sha256(meta.encode("utf-8"))
    for key in sorted(tensors):
        tensor = tensors[key].detach().contiguous().reshape(-1)
        digest.update(f"\0{key}\0{tensor.dtype}\0{tuple(tensors[key].shape)}\0".encode())
        digest.update(tensor.view(torch.uint8).numpy())
    return digest.hexdigest()
