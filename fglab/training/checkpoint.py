"""Atomic per-epoch checkpoints: tensors in safetensors, the rest in JSON beside them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from fglab.io import atomic_write_bytes, atomic_write_text


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
    history, best epoch and done flag as JSON in its metadata, all in one atomic write (so the
    tensors and the epoch they belong to never disagree). ``DIR/<stage>.json`` is a readable
    copy of that metadata."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def _paths(self, stage: str) -> tuple[Path, Path]:
        return self.directory / f"{stage}.safetensors", self.directory / f"{stage}.json"

    def exists(self, stage: str) -> bool:
        return self._paths(stage)[0].is_file()

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
        atomic_write_bytes(tensor_path, save_tensors(tensors, metadata={"meta": text}))
        atomic_write_text(meta_path, text)

    def load(self, stage: str) -> tuple[dict, dict, dict, dict]:
        """(model state, best state, optimizer tensors, meta)."""
        tensor_path = self._paths(stage)[0]
        with safe_open(tensor_path, framework="pt") as handle:
            meta = json.loads(handle.metadata()["meta"])
        tensors = load_tensors(tensor_path.read_bytes())
        parts: dict[str, dict[str, torch.Tensor]] = {"model": {}, "best": {}, "optim": {}}
        for key, value in tensors.items():
            prefix, name = key.split(".", 1)
            parts[prefix][name] = value
        return parts["model"], parts["best"], parts["optim"], meta
