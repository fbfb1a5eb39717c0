"""Saving and loading a fitted fglab method: JSON config and vocabulary, safetensors weights
(the network and the word graph's Laplacian)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors
from scipy import sparse

from fglab.config import FGLabConfig
from fglab.io import atomic_write_bytes, atomic_write_text
from fglab.models.siamese import CrossModalNetwork
from fglab.training.fitted import FittedFGLab

Method = TypeVar("Method", bound=FittedFGLab)

CONFIG_FILE, STATE_FILE, WEIGHTS_FILE = "config.json", "state.json", "weights.safetensors"


def save_method(method: FittedFGLab, directory: Path) -> None:
    """``directory``/config.json, state.json (vocabulary, selection history), weights."""
    method.config.save(directory / CONFIG_FILE)
    first = method.networks_[0]
    state = {
        "vocabulary": method.vocabulary_,
        "language": method.language_,
        "n_image_features": int(first.image.mean.shape[0]),
        "n_classes": first.classifier.out_features if first.classifier else 0,
        "n_image_landmarks": first.image.n_landmarks,
        "n_networks": len(method.networks_),
        "n_sentence": method.n_sentence_,
        "siamese_map": getattr(method, "siamese_map_", None),
        "stages": {name: stage.to_json() for name, stage in method.stages_.items()},
        "timings": getattr(method, "timings_", {}),
    }
    atomic_write_text(directory / STATE_FILE, json.dumps(state, indent=1))
    tensors = {
        f"{_prefix(member)}{key}": value.contiguous()
        for member, network in enumerate(method.networks_)
        for key, value in network.state_dict().items()
    }
    if method.laplacian_ is not None:
        coo = sparse.coo_matrix(method.laplacian_)
        tensors["graph.indices"] = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        tensors["graph.values"] = torch.from_numpy(coo.data.astype(np.float64))
    atomic_write_bytes(directory / WEIGHTS_FILE, save_tensors(tensors))


def _prefix(member: int) -> str:
    """Weight names of ensemble ``member`` (the first keeps the single network's names)."""
    return "network." if member == 0 else f"network{member + 1}."


def load_method(make: Callable[[FGLabConfig], Method], directory: Path) -> Method:
    """The method saved in ``directory``, built by ``make(config)`` and given its state."""
    for name in (CONFIG_FILE, STATE_FILE, WEIGHTS_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"fglab model in {directory}: {name} is missing")
    method = make(FGLabConfig.load(directory / CONFIG_FILE))
    state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    method.vocabulary_, method.language_ = state["vocabulary"], state["language"]
    method.n_sentence_ = state.get("n_sentence", 0)
    method.siamese_map_ = state["siamese_map"]
    method.timings_ = state.get("timings", {})
    with safe_open(directory / WEIGHTS_FILE, framework="pt") as handle:
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    n = len(method.vocabulary_)
    method.laplacian_ = None
    if "graph.indices" in tensors:
        rows, cols = tensors["graph.indices"].numpy()
        method.laplacian_ = sparse.csr_matrix(
            (tensors["graph.values"].numpy(), (rows, cols)), shape=(n, n)
        )
    method.networks_ = []
    for member in range(state.get("n_networks", 1)):
        network = CrossModalNetwork(
            n,
            state["n_image_features"],
            method.config.model,
            method.laplacian_,
            state["n_classes"],
            state.get("n_image_landmarks", 0),
            state.get("n_sentence", 0),
        )
        prefix = _prefix(member)
        network.load_state_dict(
            {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
        )
        network.eval()
        method.networks_.append(network)
    method.stages_ = {}
    return method
