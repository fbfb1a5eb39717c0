"""Checkpoints carry a SHA-256 of their tensors and metadata: a damaged one is never resumed
from. The stage trains again from its first epoch, with a warning naming the file."""

from __future__ import annotations

import logging
import math

import pytest
import torch
from safetensors.torch import save as save_tensors
from torch import nn

from fglab.config import TrainingConfig
from fglab.training.checkpoint import CheckpointError, CheckpointStore
from fglab.training.loop import train_stage

EPOCHS = 3


class Killed(RuntimeError):
    pass


def _train(store: CheckpointStore | None, kill_after: int | None = None):
    """A tiny regression for EPOCHS epochs (killed after epoch ``kill_after``)."""
    torch.manual_seed(0)
    module = nn.Linear(4, 2)
    x, y = torch.randn(32, 4), torch.randn(32, 2)

    def step(rows):
        return ((module(x[rows]) - y[rows]) ** 2).mean()

    def hook(stage: str, epoch: int) -> None:
        if epoch == kill_after:
            raise Killed(stage)

    config = TrainingConfig(batch_size=8, lr=1e-2, precision="float32")
    result = train_stage("model", module, step, None, 32, EPOCHS, config, 0, store, hook)
    return module, result


def _flip_header(data: bytes) -> bytes:
    return data[:12] + bytes(b ^ 0xFF for b in data[12:20]) + data[20:]


def _garbage_tensors(data: bytes) -> bytes:  # 0xFF bytes are NaN as float32
    return data[:-64] + b"\xff" * 64


def _no_checksum(data: bytes) -> bytes:  # as an fglab before checksums wrote it
    from fglab.training.checkpoint import PARTS

    tensors = {f"{PARTS[0]}.weight": torch.zeros(2, 4)}
    return save_tensors(tensors, metadata={"meta": '{"epoch": 1, "done": false}'})


CORRUPTIONS = {
    "flipped header bytes": _flip_header,
    "flipped length": lambda data: bytes([data[0] ^ 0xFF]) + data[1:],
    "truncated": lambda data: data[: len(data) // 2],
    "empty": lambda data: b"",
    "garbage tensor data": _garbage_tensors,
    "no checksum": _no_checksum,
}


@pytest.fixture()
def killed_run(tmp_path):
    """A checkpoint directory of a run killed after its second epoch."""
    with pytest.raises(Killed):
        _train(CheckpointStore(tmp_path), kill_after=1)
    return tmp_path


def test_a_sound_checkpoint_resumes(killed_run):
    module, result = _train(CheckpointStore(killed_run))
    unbroken, _ = _train(None)
    assert result.resumed_from == 1
    assert torch.equal(module.weight, unbroken.weight)


@pytest.mark.parametrize("damage", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_a_damaged_checkpoint_restarts_the_stage_with_a_warning(killed_run, damage, caplog):
    path = killed_run / "model.safetensors"
    path.write_bytes(CORRUPTIONS[damage](path.read_bytes()))
    with caplog.at_level(logging.WARNING, logger="fglab.training"):
        module, result = _train(CheckpointStore(killed_run))
    unbroken, _ = _train(None)
    assert result.resumed_from is None
    assert [h["epoch"] for h in result.history] == list(range(EPOCHS))
    assert all(math.isfinite(h["loss"]) for h in result.history)
    assert torch.equal(module.weight, unbroken.weight)
    assert str(path) in caplog.text and "trains again from its first epoch" in caplog.text
    assert (killed_run / "model.safetensors.damaged").is_file()


@pytest.mark.parametrize("damage", CORRUPTIONS, ids=list(CORRUPTIONS))
def test_loading_a_damaged_checkpoint_is_a_one_line_error_naming_it(killed_run, damage):
    path = killed_run / "model.safetensors"
    path.write_bytes(CORRUPTIONS[damage](path.read_bytes()))
    with pytest.raises(CheckpointError) as error:
        CheckpointStore(killed_run).load("model")
    message = str(error.value)
    assert str(path) in message and "\n" not in message and "delete it" in message
