"""The teachers behind fglab's fine-grained labels: scaled text-text similarities h in [0, 1]
over the training texts, from a siamese text network trained on the categories (the paper)
or from pretrained sentence embeddings (no training; the choice at pair level, where there
are no categories to learn from)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from sklearn.model_selection import StratifiedKFold

from fglab.config import FGLabConfig
from fglab.features.featureset import FeatureSet
from fglab.labels import scale_similarities
from fglab.losses import weighted_pairwise_similarity_loss
from fglab.metrics import mean_average_precision
from fglab.models.siamese import SiameseTextNetwork
from fglab.training.checkpoint import CheckpointStore
from fglab.training.loop import EpochHook, StageResult, train_stage
from fglab.training.tensors import batched, dense_tensor


def sentence_similarities(
    train: FeatureSet, validation: FeatureSet, with_validation: bool, pair_level: bool
) -> tuple[np.ndarray, float | None]:
    """Scaled cosines of pretrained sentence embeddings (MiniLM for English, multilingual e5
    otherwise) of the raw training texts, then the validation texts ``with_validation``; and
    the teacher's text->text MAP of the validation texts against the training texts (None at
    pair level, where no other text is relevant)."""
    from fglab.features.sentence import embed_texts

    if train.documents is None or validation.documents is None:
        raise ValueError("the sentence teacher needs the raw texts (FeatureSet.documents)")
    view = "text:minilm" if train.language == "en" else "text:e5"
    embedded = embed_texts(train.documents, view, progress=True)
    queries = embed_texts(validation.documents, view, progress=True)
    text_map = (
        None
        if pair_level
        else mean_average_precision(queries @ embedded.T, validation.labels, train.labels)
    )
    if with_validation:
        embedded = np.vstack([embedded, queries])
    return scale_similarities(embedded @ embedded.T), text_map


@dataclass
class SiameseTeacher:
    """Trains siamese text network(s) on the categories and grades text pairs with them.
    Its stages are recorded in ``stages`` (the method's, so they are checkpointed, reported
    and resumed with the rest)."""

    config: FGLabConfig
    n_words: int
    laplacian: sparse.csr_matrix | None
    stages: dict[str, StageResult]
    store: CheckpointStore | None = None
    on_epoch_end: EpochHook | None = None

    def similarities(
        self, texts: torch.Tensor, labels: np.ndarray, validation: FeatureSet,
        extra: torch.Tensor,
    ) -> tuple[np.ndarray, float]:
        """Scaled text-text similarities h over ``texts`` followed by the ``extra`` texts,
        which no network sees, and the teacher's validation text->text MAP.

        With ``teacher_folds`` = 1 one network is trained on all training texts and grades
        them (as in the paper). With K > 1 the texts are split into K folds and network k is
        trained without fold k; a pair (i, j) is graded by the networks that did not see i
        and did not see j (the mean of their scaled similarities), so the grade of a text
        reflects how a network that never saw it places it.
        """
        folds = self.config.labels.teacher_folds
        all_texts = torch.cat([texts, extra])
        if folds <= 1:
            net = self._train(texts, labels, np.arange(len(labels)), validation, "siamese")
            return scale_similarities(_scores(net, all_texts)), self.stages["siamese"].best_score
        fold_of = np.full(len(all_texts), -1)  # -1: the extra texts, which no network sees
        splitter = StratifiedKFold(folds, shuffle=True, random_state=self.config.seed)
        for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            fold_of[held_out] = k
        total = np.zeros((len(all_texts), len(all_texts)))
        count = np.zeros((len(all_texts), 1))
        scores = []
        for k in range(folds):
            stage = f"siamese-{k + 1}of{folds}"
            seen = np.flatnonzero(fold_of[: len(labels)] != k)
            net = self._train(texts, labels, seen, validation, stage)
            scores.append(self.stages[stage].best_score)
            unseen = (fold_of == k) | (fold_of == -1)
            total[unseen] += scale_similarities(_scores(net, all_texts))[unseen]
            count[unseen] += 1
        by_first = total / count  # (i, j) graded by the networks that did not see i
        return (by_first + by_first.T) / 2, float(np.mean(scores))  # ... and not j

    def _train(
        self, texts, labels, rows: np.ndarray, validation: FeatureSet, stage: str
    ) -> SiameseTextNetwork:
        """One siamese network trained on the training texts ``rows``, its epoch chosen by
        text->text MAP of the validation texts against those texts."""
        cfg = self.config
        torch.manual_seed(cfg.seed)
        net = SiameseTextNetwork(self.n_words, cfg.model, self.laplacian)
        texts, labels = texts[rows], labels[rows]
        same = torch.from_numpy(labels[:, None] == labels[None, :])
        val_texts = dense_tensor(validation.texts)

        def step(batch: np.ndarray) -> torch.Tensor | None:
            scores = net.all_pairs(texts[batch]).float()
            off = ~torch.eye(len(batch), dtype=torch.bool)
            pos = same[batch][:, batch]
            if not (pos & off).any() or (pos & off).sum() == off.sum():
                return None
            return weighted_pairwise_similarity_loss(
                scores[off], pos[off], margin=cfg.training.margin, lam=cfg.training.lam
            )

        def validate() -> float:
            query = batched(lambda x: net.scorer.fold(net.embed(x)), val_texts).numpy()
            gallery = batched(net.embed, texts).numpy()
            return mean_average_precision(query @ gallery.T, validation.labels, labels)

        self.stages[stage] = train_stage(
            stage, net, step, validate, len(labels), cfg.training.siamese_epochs, cfg.training,
            cfg.seed, self.store, self.on_epoch_end, warmup=cfg.training.siamese_warmup,
        )
        return net


def _scores(net: SiameseTextNetwork, texts: torch.Tensor) -> np.ndarray:
    embedded = batched(net.embed, texts)
    return (net.scorer.fold(embedded) @ embedded.T).detach().numpy()
