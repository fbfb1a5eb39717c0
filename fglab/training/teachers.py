"""The teachers behind fglab's fine-grained labels: grades h in [0, 1] of the pairs of training
texts, from a siamese text network trained on the categories (the paper), from pretrained
sentence embeddings, or from the cosine of the texts' tf-idf rows (no training, no model).

A teacher keeps one vector per text (:class:`fglab.labels.TextGrades`) and grades a block of
pairs when asked, so no n x n array is ever held."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import sparse
from sklearn.model_selection import StratifiedKFold

from fglab.config import FGLabConfig
from fglab.data.splits import GALLERY_BOUND, TEACHER_BOUND, bounded_sample
from fglab.features.featureset import FeatureSet
from fglab.labels import CosineSimilarity, ScaledSimilarity, TextGrades
from fglab.losses import weighted_pairwise_similarity_loss
from fglab.method import unit_rows
from fglab.metrics import blocked_average_precisions
from fglab.models.siamese import SiameseTextNetwork
from fglab.training.checkpoint import CheckpointStore
from fglab.training.loop import EpochHook, StageResult, train_stage
from fglab.training.tensors import FeatureRows, batched, sentence_columns


def text_to_text_map(
    queries: np.ndarray, gallery: np.ndarray, query_labels: np.ndarray,
    gallery_labels: np.ndarray,
) -> float:
    """MAP@all of text->text retrieval by inner products, ranked in blocks of queries."""
    aps = blocked_average_precisions(
        lambda rows: queries[rows] @ gallery.T, query_labels, gallery_labels
    )
    return float(aps.mean())


def sentence_grades(
    train: FeatureSet, scored: FeatureSet, extra: FeatureSet | None, pair_level: bool,
    seed: int = 0,
) -> tuple[TextGrades, float | None]:
    """Scaled cosines of pretrained sentence embeddings (MiniLM for English, multilingual e5
    otherwise) of the raw training texts, then the ``extra`` texts; and the teacher's
    text->text MAP of the ``scored`` validation texts against (at most GALLERY_BOUND of) the
    training texts (None at pair level, where no other text is relevant)."""
    from fglab.features.sentence import embed_texts

    sets = [train, scored] + ([extra] if extra is not None else [])
    if any(part.documents is None for part in sets):
        raise ValueError("the sentence teacher needs the raw texts (FeatureSet.documents)")
    view = "text:minilm" if train.language == "en" else "text:e5"

    def embed(part: FeatureSet) -> np.ndarray:
        return embed_texts(part.documents, view, progress=True)

    return _embedding_grades(train, scored, extra, pair_level, seed, embed)


def pretrained_grades(
    train: FeatureSet, scored: FeatureSet, extra: FeatureSet | None, pair_level: bool,
    seed: int = 0,
) -> tuple[TextGrades, float | None]:
    """As :func:`sentence_grades`, from the text view's own pretrained embedding: the columns
    after the tf-idf ones (``text:tfidf+clip``: a pretrained image-text model's text tower)."""
    words = len(train.vocabulary or [])
    if train.texts.shape[1] <= words:
        raise ValueError(
            "labels.teacher 'pretrained' grades by the text view's pretrained embedding, and "
            "this text view has none: use text:tfidf+clip (with --model-path)"
        )

    def embed(part: FeatureSet) -> np.ndarray:
        return unit_rows(part.texts[:, words:])

    return _embedding_grades(train, scored, extra, pair_level, seed, embed)


def _embedding_grades(
    train: FeatureSet, scored: FeatureSet, extra: FeatureSet | None, pair_level: bool,
    seed: int, embed,
) -> tuple[TextGrades, float | None]:
    """Scaled inner products of ``embed(part)`` (unit rows) of the training texts, then the
    ``extra`` ones, and the text->text MAP of the ``scored`` texts (None at pair level)."""
    embedded = embed(train)
    text_map = None
    if not pair_level:
        gallery = bounded_sample(train.labels, GALLERY_BOUND, seed)
        text_map = text_to_text_map(
            embed(scored), embedded[gallery], scored.labels, train.labels[gallery]
        )
    if extra is not None:
        embedded = np.vstack([embedded, embed(extra)])
    return TextGrades([ScaledSimilarity.fit(embedded, seed=seed)]), text_map


def tfidf_grades(
    train: FeatureSet, scored: FeatureSet, extra: FeatureSet | None, pair_level: bool,
    seed: int = 0,
) -> tuple[TextGrades, float | None]:
    """Cosines of the texts' tf-idf rows (the text view itself: nothing to embed or train),
    and the text->text MAP as :func:`sentence_grades` gives it."""
    words = len(train.vocabulary or [])  # the tf-idf columns (a sentence part may follow)
    rows = sparse.csr_matrix(train.texts, dtype=np.float64)[:, :words]
    text_map = None
    if not pair_level:
        queries = sparse.csr_matrix(scored.texts, dtype=np.float64)[:, :words]
        gallery = rows[bounded_sample(train.labels, GALLERY_BOUND, seed)].T.tocsc()
        gallery_labels = train.labels[bounded_sample(train.labels, GALLERY_BOUND, seed)]
        text_map = float(blocked_average_precisions(
            lambda r: (queries[r] @ gallery).toarray(), scored.labels, gallery_labels
        ).mean())
    if extra is not None:
        extra_rows = sparse.csr_matrix(extra.texts, dtype=np.float64)[:, :words]
        rows = sparse.vstack([rows, extra_rows]).tocsr()
    return TextGrades([CosineSimilarity(rows)]), text_map


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
    n_sentence: int = 0  # sentence-embedding columns after the tf-idf ones

    def grades(
        self, texts: FeatureRows, labels: np.ndarray, validation: FeatureSet,
        extra: FeatureRows,
    ) -> tuple[TextGrades, float]:
        """Grades of the pairs of ``texts`` followed by the ``extra`` texts, which no network
        sees, and the teacher's validation text->text MAP (``validation`` is the scored
        sample of the validation part).

        With ``teacher_folds`` = 1 one network is trained on all training texts and grades
        them (as in the paper). With K > 1 the texts are split into K folds and network k is
        trained without fold k; a pair (i, j) is graded by the networks that did not see i
        and did not see j (the mean of their scaled similarities), so the grade of a text
        reflects how a network that never saw it places it.
        """
        folds = self.config.labels.teacher_folds
        all_texts = texts.concat(extra)
        seed = self.config.seed
        if folds <= 1:
            net = self._train(texts, labels, np.arange(len(labels)), validation, "siamese")
            grades = TextGrades([_similarity(net, all_texts, seed)])
            return grades, self.stages["siamese"].best_score
        fold_of = np.full(len(all_texts), -1)  # -1: the extra texts, which no network sees
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
        for k, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels)):
            fold_of[held_out] = k
        teachers, scores = [], []
        for k in range(folds):
            stage = f"siamese-{k + 1}of{folds}"
            seen = np.flatnonzero(fold_of[: len(labels)] != k)
            net = self._train(texts, labels, seen, validation, stage)
            scores.append(self.stages[stage].best_score)
            teachers.append(_similarity(net, all_texts, seed))
        graded_by = (fold_of[:, None] == np.arange(folds)[None, :]) | (fold_of[:, None] == -1)
        return TextGrades(teachers, graded_by), float(np.mean(scores))

    def _train(
        self, texts: FeatureRows, labels, rows: np.ndarray, validation: FeatureSet, stage: str
    ) -> SiameseTextNetwork:
        """One siamese network trained on the training texts ``rows`` (at most TEACHER_BOUND
        of them, a seeded sample beyond), its epoch chosen by text->text MAP of the
        validation texts against (at most GALLERY_BOUND of) those texts."""
        cfg = self.config
        rows = rows[bounded_sample(labels[rows], TEACHER_BOUND, cfg.seed)]
        torch.manual_seed(cfg.seed)
        net = SiameseTextNetwork(self.n_words, cfg.model, self.laplacian, self.n_sentence)
        texts, labels = texts.subset(rows), labels[rows]
        if self.n_sentence:
            net.text.fit_sentence_map(sentence_columns(texts, self.n_words))
        val_texts = FeatureRows(validation.texts)
        gallery = bounded_sample(labels, GALLERY_BOUND, cfg.seed)
        gallery_texts = texts.subset(gallery)

        def step(batch: np.ndarray) -> torch.Tensor | None:
            scores = net.all_pairs(texts[batch]).float()
            off = ~torch.eye(len(batch), dtype=torch.bool)
            pos = torch.from_numpy(labels[batch][:, None] == labels[batch][None, :])
            if not (pos & off).any() or (pos & off).sum() == off.sum():
                return None
            return weighted_pairwise_similarity_loss(
                scores[off], pos[off], margin=cfg.training.margin, lam=cfg.training.lam
            )

        def validate() -> float:
            query = batched(lambda x: net.scorer.fold(net.embed(x)), val_texts).numpy()
            return text_to_text_map(
                query, batched(net.embed, gallery_texts).numpy(), validation.labels,
                labels[gallery],
            )

        self.stages[stage] = train_stage(
            stage, net, step, validate, len(labels), cfg.training.siamese_epochs, cfg.training,
            cfg.seed, self.store, self.on_epoch_end, warmup=cfg.training.siamese_warmup,
        )
        return net


def _similarity(net: SiameseTextNetwork, texts: FeatureRows, seed: int) -> ScaledSimilarity:
    embedded = batched(net.embed, texts)
    with torch.no_grad():
        queries = net.scorer.fold(embedded).numpy()
    return ScaledSimilarity.fit(queries, embedded.numpy(), seed)
