"""The epoch loop's choice of the epoch: validation, patience and the warm-up without
validation."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from fglab.config import TrainingConfig
from fglab.training.checkpoint import CheckpointStore
from fglab.training.loop import StageResult, train_stage


class Killed(RuntimeError):
    pass


def _train(
    scores: list[float], warmup: int, patience: int = 10, store=None, kill_after=None,
    min_delta: float = 0.0,
) -> tuple[StageResult, list[int]]:
    """A tiny regression for len(``scores``) epochs whose validation returns ``scores`` in
    epoch order; also the epochs that were validated."""
    torch.manual_seed(0)
    module = nn.Linear(4, 2)
    x, y = torch.randn(32, 4), torch.randn(32, 2)
    validated: list[int] = []
    epoch_of = {"next": 0}

    def step(rows):
        return ((module(x[rows]) - y[rows]) ** 2).mean()

    def validate() -> float:
        validated.append(epoch_of["next"])
        return scores[epoch_of["next"]]

    def hook(stage: str, epoch: int) -> None:
        epoch_of["next"] = epoch + 1
        if epoch == kill_after:
            raise Killed(stage)

    if store is not None and store.exists("model"):  # resuming: epochs continue after it
        epoch_of["next"] = json.loads((store.directory / "model.json").read_text())["epoch"] + 1
    config = TrainingConfig(
        batch_size=8, lr=1e-2, precision="float32", patience=patience, min_delta=min_delta
    )
    result = train_stage(
        "model", module, step, validate, 32, len(scores), config, 0, store, hook, warmup=warmup
    )
    return result, validated


def test_warm_up_epochs_are_neither_validated_nor_chosen():
    result, validated = _train([0.9, 0.8, 0.3, 0.5, 0.4], warmup=2)
    assert validated == [2, 3, 4]
    assert [h["validation"] for h in result.history] == [None, None, 0.3, 0.5, 0.4]
    assert result.best_epoch == 3 and result.best_score == 0.5


def test_patience_counts_from_the_end_of_the_warm_up():
    # patience 1: without a warm-up the run stops after epoch 1; with it, after epoch 3
    result, _ = _train([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], warmup=0, patience=1)
    assert (len(result.history), result.best_epoch) == (2, 0)
    result, validated = _train([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], warmup=2, patience=1)
    assert validated == [2, 3] and result.best_epoch == 2


@pytest.mark.parametrize("warmup", [3, 10])
def test_the_last_epoch_is_always_validated(warmup):
    result, validated = _train([0.1, 0.2, 0.3], warmup=warmup)
    assert validated == [2] and result.best_epoch == 2


def test_a_run_killed_in_its_warm_up_resumes_as_the_unbroken_run(tmp_path):
    scores = [0.2, 0.1, 0.3, 0.5, 0.4]
    with pytest.raises(Killed):
        _train(scores, warmup=2, store=CheckpointStore(tmp_path), kill_after=0)
    resumed, validated = _train(scores, warmup=2, store=CheckpointStore(tmp_path))
    unbroken, _ = _train(scores, warmup=2)
    assert resumed.resumed_from == 0 and validated == [2, 3, 4]
    assert resumed.history == unbroken.history
    assert resumed.best_epoch == unbroken.best_epoch == 3


# a curve that has flattened: gains of 1e-4 after epoch 1
CREEPING = [0.90, 0.95, 0.9501, 0.9502, 0.9503, 0.9504, 0.9505, 0.9506]


def test_gains_below_min_delta_do_not_restart_the_patience():
    every_gain, _ = _train(CREEPING, warmup=0, patience=2)
    assert len(every_gain.history) == len(CREEPING)
    flat, _ = _train(CREEPING, warmup=0, patience=2, min_delta=5e-4)
    # progress last at epoch 1: epochs 2 and 3 spend the patience
    assert len(flat.history) == 4
    # the chosen epoch is still the best score seen
    assert flat.best_epoch == 3 and flat.best_score == 0.9502


def test_a_gain_above_min_delta_restarts_the_patience():
    scores = [0.90, 0.95, 0.9501, 0.952, 0.9521, 0.9522, 0.9523]
    result, _ = _train(scores, warmup=0, patience=2, min_delta=5e-4)
    assert len(result.history) == 6 and result.best_epoch == 5


def test_a_run_killed_with_min_delta_stops_where_the_unbroken_run_stops(tmp_path):
    with pytest.raises(Killed):
        _train(CREEPING, warmup=0, patience=2, min_delta=5e-4,
               store=CheckpointStore(tmp_path), kill_after=2)
    resumed, _ = _train(CREEPING, warmup=0, patience=2, min_delta=5e-4,
                        store=CheckpointStore(tmp_path))
    unbroken, _ = _train(CREEPING, warmup=0, patience=2, min_delta=5e-4)
    assert resumed.history == unbroken.history and resumed.best_epoch == unbroken.best_epoch
