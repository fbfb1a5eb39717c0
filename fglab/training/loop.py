"""The epoch loop: Adam with per-epoch lr decay, selection of the epoch by a validation score,
an atomic checkpoint after every epoch, and resumption of a killed run from its checkpoint."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from fglab.config import TrainingConfig
from fglab.hardware import fast_bfloat16
from fglab.training.checkpoint import CheckpointStore, restore_optimizer

logger = logging.getLogger(__name__)

#: Called after each epoch's checkpoint with (stage, epoch); tests raise in it to kill a run.
EpochHook = Callable[[str, int], None]


@dataclass
class StageResult:
    """How one training stage went: per-epoch loss and validation score, the chosen epoch."""

    stage: str
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    resumed_from: int | None = None  # the last finished epoch found in a checkpoint
    seconds: float = 0.0  # wall time of the stage's epochs, validation included
    validation_seconds: float = 0.0  # of which scoring the validation pairs

    def to_json(self) -> dict:
        """The stage as strict JSON: null for a missing best score (no validation) and for the
        loss of an epoch whose batches were all skipped."""
        history = [{k: finite_or_none(v) for k, v in entry.items()} for entry in self.history]
        return {**vars(self), "history": history, "best_score": finite_or_none(self.best_score)}


def patience_spent(epoch: int, best_epoch: int, patience: int, first_validated: int = 0) -> bool:
    """Whether ``patience`` epochs have passed since the best one (or since the warm-up ended,
    before any epoch was validated) after ``epoch``: training stops there."""
    return epoch - max(best_epoch, first_validated - 1) >= patience


def last_progress(history: list[dict], min_delta: float) -> int:
    """The last epoch of ``history`` whose validation score beat every earlier progress by
    more than ``min_delta`` (-1: none validated): the patience counts from it."""
    epoch, best = -1, -math.inf
    for entry in history:
        score = entry["validation"]
        if score is not None and score > best + min_delta:
            epoch, best = entry["epoch"], score
    return epoch


def finite_or_none(value: object) -> object:
    """``value``, or None for a float that strict JSON cannot hold (NaN, infinities)."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _autocast(config: TrainingConfig) -> torch.autocast:
    """bfloat16 autocast where ``config.precision`` says so ("auto": where the CPU has native
    bfloat16): products in bfloat16 with float32 sums; weights, updates and loss stay float32."""
    bfloat16 = config.precision == "bfloat16" or (config.precision == "auto" and fast_bfloat16())
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16)


def _epoch_seed(seed: int, stage: str, epoch: int) -> int:
    return (seed * 1_000_003 + sum(map(ord, stage)) * 1009 + epoch) % (2**31)


def train_stage(
    stage: str,
    module: nn.Module,
    step: Callable[[np.ndarray], torch.Tensor | None],
    validate: Callable[[], float] | None,
    n_rows: int,
    epochs: int,
    config: TrainingConfig,
    seed: int,
    store: CheckpointStore | None = None,
    on_epoch_end: EpochHook | None = None,
    warmup: int = 0,
) -> StageResult:
    """Train ``module`` for up to ``epochs`` epochs of shuffled batches of row indices;
    ``step(rows)`` returns the batch loss (None: skip the batch). Leaves ``module`` holding
    the weights of the epoch with the best ``validate()`` score (``validate=None``: the last
    epoch, after all ``epochs``; the number of epochs was chosen before). Every epoch draws
    its shuffle and dropout from (seed, stage, epoch), so a resumed run continues as the
    unbroken one. The first ``warmup`` epochs (at most all but the last) are not validated,
    so they cannot be chosen and do not count towards the patience (as Keras' EarlyStopping
    ``start_from_epoch``): where validation is costly and the early epochs are never the
    best, it saves their validation passes without changing the choice."""
    # fused: one kernel per step over all parameters; on this CPU a step of the 3.7M-parameter
    # image-MLP network took ~65 ms instead of ~180 ms with the default implementation
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay, fused=True
    )
    result = StageResult(stage)
    best_state = copy.deepcopy(module.state_dict())
    start = 0
    if store is not None and store.exists(stage):
        model_state, best_state, optim_tensors, meta = store.load(stage)
        module.load_state_dict(best_state if meta["done"] else model_state)
        result.history, result.best_epoch = meta["history"], meta["best_epoch"]
        result.seconds = meta.get("seconds", 0.0)
        result.validation_seconds = meta.get("validation_seconds", 0.0)
        if meta["best_score"] is not None:
            result.best_score = meta["best_score"]
        if meta["done"]:
            logger.info("stage %s: finished earlier, loaded from %s", stage, store.directory)
            module.eval()
            return result
        restore_optimizer(optimizer, optim_tensors, meta["optimizer"])
        start = result.resumed_from = meta["epoch"]
        start += 1
        logger.warning(
            "stage %s: resuming after epoch %d from the checkpoint in %s",
            stage,
            meta["epoch"] + 1,
            store.directory,
        )
    # a bar per stage where stderr is a terminal (disable=None), as in `fglab train`
    first_validated = min(warmup, epochs - 1)
    bar = tqdm(range(start, epochs), desc=stage, unit="epoch", leave=False, disable=None)
    for epoch in bar:
        started = time.perf_counter()
        loss = _run_epoch(stage, module, optimizer, step, n_rows, epoch, config, seed)
        module.eval()
        score = None
        if validate is not None and epoch >= first_validated:
            validation_started = time.perf_counter()
            with torch.inference_mode(), _autocast(config):
                score = float(validate())
            result.validation_seconds += time.perf_counter() - validation_started
        result.seconds += time.perf_counter() - started
        result.history.append({"epoch": epoch, "loss": loss, "validation": score})
        if validate is None:  # the number of epochs was chosen before: the last one counts
            result.best_epoch, best_state = epoch, module.state_dict()
        elif score is not None and score > result.best_score:
            result.best_epoch, result.best_score = epoch, score
            best_state = copy.deepcopy(module.state_dict())
        done = epoch + 1 == epochs or (validate is not None and patience_spent(
            epoch, last_progress(result.history, config.min_delta or 0.0), config.patience,
            first_validated,
        ))
        if score is not None:
            shown = f"validation {score:.4f}"
        else:
            shown = "warm-up, no validation" if validate is not None else "no validation"
        bar.set_postfix_str(f"loss {loss:.4f} {shown}")
        logger.info("stage %s epoch %d: loss %.4f %s", stage, epoch, loss, shown)
        if store is not None:
            meta = {
                "stage": stage,
                "epoch": epoch,
                "done": done,
                "history": result.history,
                "best_epoch": result.best_epoch,
                "best_score": finite_or_none(result.best_score),
                "seconds": result.seconds,
                "validation_seconds": result.validation_seconds,
            }
            store.save(stage, module.state_dict(), best_state, optimizer, meta)
        if on_epoch_end is not None:
            on_epoch_end(stage, epoch)
        if done:
            break
    bar.close()
    module.load_state_dict(best_state)
    module.eval()
    return result


def _run_epoch(
    stage: str,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: Callable[[np.ndarray], torch.Tensor | None],
    n_rows: int,
    epoch: int,
    config: TrainingConfig,
    seed: int,
) -> float:
    for group in optimizer.param_groups:
        group["lr"] = config.learning_rate * config.lr_decay**epoch
    epoch_seed = _epoch_seed(seed, stage, epoch)
    torch.manual_seed(epoch_seed)
    order = np.random.default_rng(epoch_seed).permutation(n_rows)
    module.train()
    losses = []
    for start in range(0, n_rows, config.batch_size):
        rows = order[start : start + config.batch_size]
        if len(rows) < 2:
            continue
        with _autocast(config):
            loss = step(rows)
        if loss is None:
            continue
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return float(np.mean(losses)) if losses else math.nan
