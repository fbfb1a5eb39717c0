"""DSCMR (Zhen, Hu, Wang, Peng: "Deep Supervised Cross-modal Retrieval", CVPR 2019) as a
fglab method: the network of :mod:`fglab.models.dscmr` trained with
:func:`fglab.losses.dscmr_loss`. The loss weights (alpha, beta) and the epoch are chosen on
the validation part like every other method's settings; then the network is trained again
on all training pairs with them. Retrieval ranks by the cosine of common representations."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from fglab.config import TrainingConfig, parse_options
from fglab.features.featureset import FeatureSet
from fglab.io import atomic_write, atomic_write_text
from fglab.losses import dscmr_loss
from fglab.method import RetrievalMethod
from fglab.metrics import mean_average_precision
from fglab.models.dscmr import DSCMRNetwork
from fglab.training.loop import train_stage
from fglab.training.tensors import batched, dense_tensor

CONFIG_FILE, WEIGHTS_FILE = "config.json", "weights.safetensors"


def _dscmr_training() -> TrainingConfig:
    # the published code's optimizer settings: Adam at 1e-4, batches of 100, no decay
    return TrainingConfig(epochs=100, lr=1e-4, lr_decay=1.0, weight_decay=0.0, batch_size=100,
                          patience=10)


@dataclass
class DSCMRConfig:
    """Widths, the (alpha, beta) grid searched on validation, and the optimizer."""

    hidden_dim: int = 1024
    common_dim: int = 512
    alphas: tuple[float, ...] = (1e-3, 1e-1)
    betas: tuple[float, ...] = (1e-1, 1.0)
    training: TrainingConfig = field(default_factory=_dscmr_training)
    seed: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DSCMRConfig:
        """``data`` as saved (or given to ``fglab train --config``); ``training`` over the
        published optimizer settings, unknown keys refused."""
        return parse_options(cls, data, "dscmr")


class DSCMRMethod(RetrievalMethod):
    text_input = "bag_of_words"  # tf-idf, the same text features as fglab
    selects_on_validation = True
    needs_categories = True

    def __init__(self, config: DSCMRConfig | None = None) -> None:
        self.config = config or DSCMRConfig()

    def fit(self, train: FeatureSet, validation: FeatureSet | None = None) -> DSCMRMethod:
        if validation is None:
            raise ValueError("dscmr chooses its loss weights and epochs on a validation part")
        start = time.perf_counter()
        self.classes_ = np.unique(np.concatenate([train.labels, validation.labels]))
        self.selection_ = []
        fitting = (train.images, dense_tensor(train.texts), train.labels)
        for alpha in self.config.alphas:
            for beta in self.config.betas:
                _, stage = self._train(fitting, alpha, beta, validation)
                self.selection_.append({"alpha": alpha, "beta": beta,
                                        "epochs": stage.best_epoch + 1,
                                        "validation_map": stage.best_score})
        self.chosen_ = max(self.selection_, key=lambda row: row["validation_map"])
        both = (  # refit on all training pairs, as the other methods do
            np.vstack([train.images, validation.images]),
            torch.cat([fitting[1], dense_tensor(validation.texts)]),
            np.concatenate([train.labels, validation.labels]),
        )
        self.network_, _ = self._train(
            both, self.chosen_["alpha"], self.chosen_["beta"], None, self.chosen_["epochs"]
        )
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _train(self, data: tuple, alpha: float, beta: float,
               validation: FeatureSet | None, epochs: int | None = None):
        """One network on (images, dense texts, labels); with ``validation`` the epoch is
        chosen on it, otherwise exactly ``epochs`` are trained."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        images = torch.from_numpy(np.asarray(data[0], dtype=np.float32))
        texts, labels = data[1], np.asarray(data[2])
        onehot = torch.from_numpy((labels[:, None] == self.classes_[None, :]).astype(np.float32))
        network = DSCMRNetwork(images.shape[1], texts.shape[1], cfg.hidden_dim, cfg.common_dim,
                               len(self.classes_))
        network.fit_standardization(images.numpy())

        def step(rows: np.ndarray) -> torch.Tensor:
            u, v = network.encode_images(images[rows]), network.encode_texts(texts[rows])
            return dscmr_loss(u.float(), v.float(), network.classifier(u).float(),
                              network.classifier(v).float(), onehot[rows], alpha, beta)

        def validate() -> float:
            scores = _similarity(network, validation.images, validation.texts)
            y = validation.labels
            return (mean_average_precision(scores, y, y)
                    + mean_average_precision(scores.T, y, y)) / 2

        stage = train_stage(f"dscmr a={alpha:g} b={beta:g}", network, step,
                            validate if validation is not None else None, len(images),
                            epochs or cfg.training.epochs, cfg.training, cfg.seed)
        return network, stage

    def encode_images(self, images: np.ndarray) -> np.ndarray:
        return _unit_images(self.network_, images).numpy()

    def encode_texts(self, texts) -> np.ndarray:
        return _unit_texts(self.network_, texts).numpy()

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        state = {"config": asdict(self.config), "classes": self.classes_.tolist(),
                 "chosen": self.chosen_, "selection": self.selection_,
                 "image_dim": int(self.network_.image_mean.shape[0]),
                 "text_dim": int(self.network_.text[0].in_features)}
        weights = {k: v.contiguous() for k, v in self.network_.state_dict().items()}
        atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(weights, str(tmp)))
        atomic_write_text(directory / CONFIG_FILE, json.dumps(state, indent=1))

    @classmethod
    def load(cls, directory: Path) -> DSCMRMethod:
        directory = Path(directory)
        state = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
        method = cls(DSCMRConfig.from_dict(state["config"]))
        method.classes_ = np.asarray(state["classes"])
        method.chosen_, method.selection_ = state["chosen"], state["selection"]
        cfg = method.config
        method.network_ = DSCMRNetwork(state["image_dim"], state["text_dim"], cfg.hidden_dim,
                                       cfg.common_dim, len(method.classes_))
        method.network_.load_state_dict(load_file(str(directory / WEIGHTS_FILE)))
        method.network_.eval()
        return method


def _unit_images(network: DSCMRNetwork, images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    return F.normalize(batched(network.encode_images, x), dim=1)


def _unit_texts(network: DSCMRNetwork, texts) -> torch.Tensor:
    return F.normalize(batched(network.encode_texts, dense_tensor(texts)), dim=1)


def _similarity(network: DSCMRNetwork, images: np.ndarray, texts) -> np.ndarray:
    """Cosines of the common representations, (n_images, n_texts)."""
    return (_unit_images(network, images) @ _unit_texts(network, texts).T).float().numpy()
