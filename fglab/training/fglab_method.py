"""The fglab retrieval method: siamese text network -> fine-grained labels -> cross-modal
network trained with the label-weighted pairwise similarity loss."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import sparse

from fglab.config import SEMANTIC_WEIGHTS, FGLabConfig
from fglab.data.graph import knn_graph, scaled_laplacian
from fglab.data.splits import (
    VALIDATION_BOUND,
    bounded_sample,
    is_pair_level,
    validation_split,
)
from fglab.features.featureset import FeatureSet
from fglab.features.word_vectors import word_vectors
from fglab.hardware import fast_bfloat16
from fglab.labels import TextGrades
from fglab.losses import (
    hardest_negative_loss,
    soft_target_contrastive_loss,
    weighted_contrastive_loss,
    weighted_pairwise_similarity_loss,
)
from fglab.method import ReportContext, RetrievalMethod, unit_rows
from fglab.metrics import blocked_average_precisions
from fglab.models.siamese import CrossModalNetwork
from fglab.training.checkpoint import CheckpointStore
from fglab.training.loop import EpochHook, StageResult, train_stage
from fglab.training.teachers import (
    SiameseTeacher,
    pretrained_grades,
    sentence_grades,
    tfidf_grades,
)
from fglab.training.tensors import FeatureRows, batched, sentence_columns
from fglab.training.zero_shot import check_towers, weight_scores, with_zero_shot, zero_shot_texts

logger = logging.getLogger(__name__)
MEMBER_SEED_STEP = 1000  # ensemble member k initializes from seed + 1 + k * this


def _stage(name: str, member: int) -> str:
    """The checkpoint stage of ensemble ``member`` (the first keeps the plain name)."""
    return name if member == 0 else f"{name}-{member + 1}"


def _encode_images(networks: list[CrossModalNetwork], images: np.ndarray) -> np.ndarray:
    x = torch.from_numpy(np.asarray(images, dtype=np.float32))
    for network in networks:
        network.eval()
    return np.hstack([batched(network.encode_images, x).numpy() for network in networks])


def _encode_texts(networks: list[CrossModalNetwork], texts) -> np.ndarray:
    x = FeatureRows(texts)
    for network in networks:
        network.eval()
    encoded = [batched(network.encode_texts, x).numpy() for network in networks]
    return np.hstack(encoded) / len(networks)


def _validation_map(
    images: np.ndarray, texts: np.ndarray, labels: np.ndarray,
    semantic: tuple[np.ndarray, np.ndarray] | None = None, weight: float = 0.0,
) -> float:
    """Average MAP@all of both directions of the scores images @ texts.T (plus ``weight``
    times the inner products of the ``semantic`` codes of images and texts), ranked in
    blocks of queries: memory O(block x validation pairs)."""

    def scores(queries, gallery, query_codes, gallery_codes):
        def of(rows: np.ndarray) -> np.ndarray:
            block = queries[rows] @ gallery.T
            if weight:
                block = block + weight * (query_codes[rows] @ gallery_codes.T)
            return block

        return of

    codes = semantic or (None, None)
    img2txt = blocked_average_precisions(scores(images, texts, *codes), labels, labels)
    txt2img = blocked_average_precisions(scores(texts, images, *codes[::-1]), labels, labels)
    return float((img2txt.mean() + txt2img.mean()) / 2)


def semantic_weight_scores(
    network: CrossModalNetwork, validation: FeatureSet
) -> dict[float, float]:
    """Validation average MAP@all of the score plus each weight in SEMANTIC_WEIGHTS times the
    correlation of the class posteriors (the network needs its classifier)."""
    network.eval()
    with torch.inference_mode():
        texts = batched(lambda x: network.embed(network.text(x)), FeatureRows(validation.texts))
        images = batched(
            lambda x: network.embed(network.image(x)),
            torch.from_numpy(np.asarray(validation.images, dtype=np.float32)),
        )
        folded = network.scorer.fold(texts).float().numpy()  # bf16 under autocast
        codes = (network.semantic_codes(images).numpy(), network.semantic_codes(texts).numpy())
    images, y = images.numpy(), validation.labels
    return {w: _validation_map(images, folded, y, codes, w) for w in SEMANTIC_WEIGHTS}


class FGLabMethod(RetrievalMethod):
    """Graph-convolution text branch + MLP image branch scored by w^T(t ⊙ v) + b, trained
    with the pairwise similarity loss whose pairs are weighted by fine-grained labels; with
    ``training.ensemble`` several such networks, scored by the mean of their scores."""

    text_input = "bag_of_words"
    selects_on_validation = True

    def __init__(
        self,
        config: FGLabConfig | None = None,
        checkpoint_dir: Path | None = None,
        on_epoch_end: EpochHook | None = None,
    ) -> None:
        self.config = config or FGLabConfig()
        self.checkpoint_dir = checkpoint_dir
        self.on_epoch_end = on_epoch_end

    # -- fitting -------------------------------------------------------------------------
    def fit(self, train: FeatureSet, validation: FeatureSet | None = None) -> FGLabMethod:
        # torch's thread count is the caller's (fglab train / reproduce: --threads)
        if train.vocabulary is None:
            raise ValueError("fglab needs a bag-of-words text view (text:tfidf) with a vocabulary")
        if validation is None:
            train, validation = self._split(train)
        start = time.perf_counter()
        pair_level = is_pair_level(np.concatenate([train.labels, validation.labels]))
        self.config = self.config.resolved(
            train.images.shape[1], pair_level, fast_bfloat16(), len(train) + len(validation)
        )
        self.vocabulary_ = list(train.vocabulary)
        # columns after the vocabulary: a sentence embedding per text (text:tfidf+e5)
        self.n_sentence_ = train.texts.shape[1] - len(self.vocabulary_)
        check_towers(self.config.model.pretrained_weight, train.images.shape[1],
                     self.n_sentence_)
        self.language_ = train.language
        self.laplacian_ = self._graph(train) if self.config.model.text_branch == "gcn" else None
        store = CheckpointStore(self.checkpoint_dir) if self.checkpoint_dir else None
        refit = self.config.training.refit
        texts, images = FeatureRows(train.texts), torch.from_numpy(train.images.astype(np.float32))
        labels = np.asarray(train.labels)
        # Model selection scores a bounded, seeded sample of the validation part: its time
        # and memory do not grow with the collection (all of it up to VALIDATION_BOUND).
        scored = validation.subset(
            bounded_sample(validation.labels, VALIDATION_BOUND, self.config.seed)
        )
        # With refit the teacher also grades the validation texts, which the final model
        # trains on; it still learns from the fitting part only.
        extra = FeatureRows(validation.texts) if refit else texts.subset(np.arange(0))
        self.stages_: dict[str, StageResult] = {}
        self.timings_: dict[str, float] = {}
        started = time.perf_counter()
        self.grades_, self.siamese_map_ = self._teacher(
            train, validation, scored, texts, labels, extra, pair_level, store
        )
        self.timings_["teacher"] = time.perf_counter() - started
        first = self._fit_model(texts, images, labels, scored, store)
        self._choose_semantic_weight(first, scored)
        self._choose_pretrained_weight(first, scored)
        epochs = self.stages_["model"].best_epoch + 1
        members = self.config.training.ensemble
        tokens = train.tokens
        if refit:  # the epoch count is chosen; train again on all training pairs
            texts = texts.concat(extra)
            images = torch.cat([images, torch.from_numpy(validation.images.astype(np.float32))])
            labels = np.concatenate([labels, validation.labels])
            self.networks_ = [
                self._fit_model(texts, images, labels, None, store, epochs, _stage("refit", k), k)
                for k in range(members)
            ]
            tokens = (train.tokens or []) + (validation.tokens or [])
        else:
            self.networks_ = [first] + [
                self._fit_model(texts, images, labels, None, store, epochs, _stage("model", k), k)
                for k in range(1, members)
            ]
        self.report_data_ = {"labels": labels, "tokens": tokens}
        self.fit_seconds_ = time.perf_counter() - start
        self.timings_.update(self._stage_timings())
        return self

    def _choose_semantic_weight(self, first, scored: FeatureSet) -> None:
        """Unless set, the classifier's weight in the score, chosen on validation for the
        kept epoch's weights (scored again in one pass: a resumed stage has no record of what
        its epochs' validation computed)."""
        started = time.perf_counter()
        if self.config.model.semantic_weight is None:
            scores = semantic_weight_scores(first, scored)
            self.semantic_weight_scores_ = scores
            chosen = max(scores, key=scores.get)
            self.config = replace(self.config,
                                  model=replace(self.config.model, semantic_weight=chosen))
            first.semantic_weight = chosen
        self.timings_["semantic_weight"] = time.perf_counter() - started

    def _choose_pretrained_weight(self, first: CrossModalNetwork, scored: FeatureSet) -> None:
        """Unless set, the weight of the pretrained model's own (zero-shot) cosine in the
        score, chosen on validation for the kept epoch's weights: fglab's score alone (0),
        the zero-shot score alone (ZERO_SHOT_ONLY) or a sum between."""
        if self.config.model.pretrained_weight is not None:
            return
        encoded = (_encode_images([first], scored.images), _encode_texts([first], scored.texts))
        zero = (unit_rows(scored.images), zero_shot_texts(scored.texts, self._n_words()))
        scores = weight_scores(encoded, zero, scored.labels, _validation_map)
        self.pretrained_weight_scores_ = scores
        chosen = max(scores, key=scores.get)
        self.config = replace(self.config,
                              model=replace(self.config.model, pretrained_weight=chosen))

    def _stage_timings(self) -> dict[str, float]:
        """Seconds per part of the fit, from the stages' records: the first model (its
        validation apart), the refit or further members, and the model's validation scoring
        (the siamese teacher's counts as the teacher's)."""
        stages = self.stages_
        model = stages["model"]
        validation = model.validation_seconds
        further = [s for name, s in stages.items() if name.startswith(("refit", "model-"))]
        return {
            "model": model.seconds - model.validation_seconds,
            "refit": sum(stage.seconds for stage in further),
            "validation": validation + self.timings_.get("semantic_weight", 0.0),
            "total": self.fit_seconds_,
        }

    def _teacher(
        self, train: FeatureSet, validation: FeatureSet, scored: FeatureSet,
        texts: FeatureRows, labels: np.ndarray, extra: FeatureRows, pair_level: bool,
        store: CheckpointStore | None,
    ) -> tuple[TextGrades | None, float | None]:
        """The grades of the training texts (then the ``extra`` ones) by the configured
        teacher, and its validation text->text MAP (None for uniform labels: no grades)."""
        labels_config, seed = self.config.labels, self.config.seed
        graded_too = validation if len(extra) else None
        if labels_config.mode == "uniform":
            return None, None
        if labels_config.teacher == "sentence":
            return sentence_grades(train, scored, graded_too, pair_level, seed)
        if labels_config.teacher == "tfidf":
            return tfidf_grades(train, scored, graded_too, pair_level, seed)
        if labels_config.teacher == "pretrained":
            return pretrained_grades(train, scored, graded_too, pair_level, seed)
        teacher = SiameseTeacher(
            self.config, self._n_words(), self.laplacian_, self.stages_, store, self.on_epoch_end,
            self.n_sentence_,
        )
        return teacher.grades(texts, labels, scored, extra)

    def _split(self, train: FeatureSet) -> tuple[FeatureSet, FeatureSet]:
        fit_rows, val_rows = validation_split(train.labels, self.config.seed)
        return train.subset(fit_rows), train.subset(val_rows)

    def _graph(self, train: FeatureSet) -> sparse.csr_matrix:
        vectors = word_vectors(self.vocabulary_, train.language, train.tokens, self.config.seed)
        return scaled_laplacian(knn_graph(vectors, self.config.model.graph_k))

    def _n_words(self) -> int:
        return len(self.vocabulary_)

    def _fit_model(
        self,
        texts: FeatureRows,
        images: torch.Tensor,
        labels: np.ndarray,
        validation: FeatureSet | None,
        store,
        epochs: int | None = None,
        stage: str = "model",
        member: int = 0,
    ) -> CrossModalNetwork:
        """Train one cross-modal network (ensemble ``member`` k starts from its own
        initialization) on the first ``len(labels)`` graded texts; without ``validation``
        for exactly ``epochs``. Positives and loss weights come per batch, from its labels
        and the teacher's grades of its b x b pairs."""
        cfg = self.config
        torch.manual_seed(cfg.seed + 1 + MEMBER_SEED_STEP * member)
        n_classes = int(labels.max()) + 1 if cfg.training.class_weight else 0
        landmarks = cfg.model.image_landmarks(images.shape[1], len(images))
        network = CrossModalNetwork(
            self._n_words(), images.shape[1], cfg.model, self.laplacian_, n_classes, landmarks,
            self.n_sentence_,
        )
        if self.n_sentence_:
            network.text.fit_sentence_map(sentence_columns(texts, self._n_words()))
        targets = torch.from_numpy(labels).long()
        network.image.fit_input_map(images.numpy(), cfg.seed)
        with torch.no_grad():
            image_inputs = network.image.fixed_input(images)
        grades, label_config = self.grades_, cfg.labels

        def step(rows: np.ndarray) -> torch.Tensor | None:
            pos = torch.from_numpy(labels[rows][:, None] == labels[rows][None, :])
            if pos.all():
                return None
            t, v, scores = network.from_image_inputs(texts[rows], image_inputs[rows])
            scores = scores.float()
            w = None
            training = cfg.training
            if training.loss == "soft-contrastive":
                similarity = (torch.from_numpy(grades.block(rows, rows).astype(np.float32))
                              if grades is not None else pos.float())
                loss = soft_target_contrastive_loss(
                    scores, pos, similarity, training.temperature, training.soft_temperature,
                    training.soft_mix if grades is not None else 0.0,
                )
                return loss + self._class_loss(network, t, v, targets, rows)
            if grades is not None:
                w = torch.from_numpy(
                    grades.batch_weights(rows, labels, label_config).astype(np.float32)
                )
            if training.loss == "contrastive":
                loss = weighted_contrastive_loss(scores, pos, w, training.temperature)
            elif training.loss == "hardest":
                loss = hardest_negative_loss(scores, pos, w, training.margin)
            else:
                loss = weighted_pairwise_similarity_loss(
                    scores, pos, w, margin=cfg.training.margin, lam=cfg.training.lam
                )
            return loss + self._class_loss(network, t, v, targets, rows)

        def validate() -> float:
            if network.classifier is not None and cfg.model.semantic_weight is None:
                return max(semantic_weight_scores(network, validation).values())
            return _validation_map(
                _encode_images([network], validation.images),
                _encode_texts([network], validation.texts),
                validation.labels,
            )

        self.stages_[stage] = train_stage(
            stage,
            network,
            step,
            validate if validation is not None else None,
            len(labels),
            epochs or cfg.training.epochs,
            cfg.training,
            cfg.seed,
            store,
            self.on_epoch_end,
        )
        return network

    def _class_loss(
        self, network: CrossModalNetwork, t: torch.Tensor, v: torch.Tensor,
        targets: torch.Tensor, rows: np.ndarray,
    ) -> torch.Tensor | float:
        """The shared classifier's cross-entropy on both branches for the batch ``rows``,
        weighted (0 without a classifier)."""
        if network.classifier is None:
            return 0.0
        y = targets[rows]
        semantic = F.cross_entropy(network.class_logits(t), y) + F.cross_entropy(
            network.class_logits(v), y
        )
        return self.config.training.class_weight * semantic / 2

    # -- encoding ------------------------------------------------------------------------
    # An ensemble's score is the mean of its networks' scores: the embeddings of the
    # networks side by side, the text side divided by their number.
    # With a pretrained weight w > 0, each side's unit zero-shot embedding times sqrt(w)
    # follows: the score becomes fglab's plus w times the pretrained model's cosine.
    def encode_images(self, images: np.ndarray) -> np.ndarray:
        encoded = _encode_images(self.networks_, images)
        return with_zero_shot(encoded, self.config.model.pretrained_weight,
                              lambda: unit_rows(images))

    def encode_texts(self, texts) -> np.ndarray:
        encoded = _encode_texts(self.networks_, texts)
        return with_zero_shot(encoded, self.config.model.pretrained_weight,
                              lambda: zero_shot_texts(texts, self._n_words()))

    # -- report and persistence ----------------------------------------------------------
    def write_report(self, out_dir: Path, context: ReportContext) -> None:
        from fglab.training.report import write_hardness_report

        write_hardness_report(self, Path(out_dir), context)

    def save(self, directory: Path) -> None:
        from fglab.training.persist import save_method

        save_method(self, Path(directory))

    @classmethod
    def load(cls, directory: Path) -> FGLabMethod:
        from fglab.training.persist import load_method

        return load_method(cls, Path(directory))
