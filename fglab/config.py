"""Typed options of the fglab model, its training and its fine-grained labels, saved as JSON."""

from __future__ import annotations

import functools
import json
import numbers
import types
from collections.abc import Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

from fglab.io import atomic_write_text

TEXT_BRANCHES = ("gcn", "mlp")
EMBEDDINGS = ("auto", "unit", "bounded")
IMAGE_BRANCHES = ("auto", "kernel", "mlp")
#: Widest image features the "auto" image branch maps through the RBF kernel.
KERNEL_MAX_FEATURES = 256
LABEL_MODES = ("uniform", "continuous", "binned")
TEACHERS = ("auto", "siamese", "sentence", "tfidf", "pretrained")
SCORE_DROPOUTS = ("gaussian", "bernoulli")
PRECISIONS = ("auto", "float32", "bfloat16")
LOSSES = ("pairwise", "contrastive", "hardest", "soft-contrastive")
#: Learning rates of ``training.lr`` null: by category (eng-wiki validation) and at pair
#: level (chinese-news validation, benchmarks/fglab_variants.py --pairs).
CATEGORY_LR, PAIR_LR = 3e-4, 6e-4
#: Weight of the shared classifier's loss with categories (``training.class_weight`` null),
#: and the semantic weights validation chooses from (``model.semantic_weight`` null).
CLASS_WEIGHT = 1.0
SEMANTIC_WEIGHTS = (0.0, 0.3, 1.0, 3.0)
#: Weights of a pretrained model's own (zero-shot) cosine in the score that validation
#: chooses from (``model.pretrained_weight`` null): 0 is fglab's score alone, ZERO_SHOT_ONLY
#: the zero-shot score alone in effect (fglab's then only breaks ties).
ZERO_SHOT_ONLY = 1000.0
PRETRAINED_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0, ZERO_SHOT_ONLY)
#: Networks in the "auto" ensemble of the MLP image branch.
AUTO_ENSEMBLE = 3
#: Training pairs (fitting plus validation part) above which "auto" trains one network and no
#: refit: each costs a full training again, and their gains were measured on data sets of
#: about 2,000 pairs, where the variance they remove is largest (the README's scale section).
LARGE_COLLECTION = 20_000
#: The least validation gain that counts as progress for early stopping above
#: LARGE_COLLECTION (``training.min_delta`` null). There an epoch is hundreds of steps and the
#: validation curve creeps up by 1e-4 for twenty epochs after it has flattened (100,000
#: pairs: 26 epochs, the best 0.0006 above epoch 6's); up to it, every gain counts.
LARGE_MIN_DELTA = 5e-4
#: How a value of each annotated type is written in JSON, for error messages.
JSON_NAMES: dict[Any, list[str]] = {
    type(None): ["null"], bool: ["true", "false"], int: ["an integer"], float: ["a number"],
    str: ["a string"],
}
Options = TypeVar("Options")


@dataclass
class ModelConfig:
    """Network shapes. ``text_branch`` "gcn": Chebyshev graph convolutions plus a linear skip
    path on the tf-idf signal; "mlp": the skip path alone (the comparison the README shows)."""

    text_branch: str = "gcn"
    embed_dim: int = 512
    hidden_dim: int = 512
    graph_k: int = 8
    cheb_k: int = 3
    gcn_filters: tuple[int, ...] = (4, 1)  # filters of each Chebyshev layer
    dropout: float = 0.4
    # How the scorer drops out t ⊙ v of every pair while training: "gaussian" draws the
    # score's noise from its exact mean and variance (fast); "bernoulli" masks every pair's
    # every dimension (the paper's dropout; an (n, n, d) tensor per batch).
    score_dropout: str = "gaussian"
    # "kernel": RBF kernel features (Nystroem landmarks) of the standardized image features,
    # then one linear map; "mlp": Linear-BN-ReLU-Dropout-Linear (one linear map when
    # image_hidden_dim is 0); "auto": kernel for features of at most KERNEL_MAX_FEATURES
    # dimensions (hand-made histograms such as 128-d SIFT), mlp for wider (CNN) features.
    image_branch: str = "auto"
    image_hidden_dim: int = 512
    # MLP image branch: dropout on the standardized features while training. Wide CNN
    # features and few training images invite the branch to memorize single dimensions.
    image_input_dropout: float = 0.2
    image_kernel_landmarks: int = 1000
    image_kernel_gamma: float = 1.0  # the RBF gamma is this / n_features
    signal_scale: float = 10.0  # tf-idf rows are unit length: scale them so biases do not win
    # How branch outputs become embeddings: "unit" (L2-normalized, cosine-like scores) or
    # "bounded" (x * tanh(|x| / embedding_scale) / |x|: the direction carries the category,
    # a length below 1 how sure the branch is, which ranking by score then uses); "auto":
    # bounded with the kernel image branch (uncertain weak features), unit with the MLP.
    embedding: str = "auto"
    embedding_scale: float = 10.0
    # Weight of the semantic term of the retrieval score: score + this x the normalized
    # correlation of the two sides' class posteriors from the shared classifier (needs
    # ``training.class_weight`` > 0). null: chosen on validation from SEMANTIC_WEIGHTS.
    semantic_weight: float | None = None
    # Over a pretrained model's towers (image:clip, text:tfidf+clip): weight of the model's
    # own cosine of image and text (the zero-shot score) added to fglab's score. null: chosen
    # on validation from PRETRAINED_WEIGHTS; 0: fglab's score alone (no pretrained model).
    pretrained_weight: float | None = 0.0

    def uses_kernel(self, n_features: int) -> bool:
        """Whether images of ``n_features`` dimensions go through the RBF kernel map."""
        return self.image_branch == "kernel" or (
            self.image_branch == "auto" and n_features <= KERNEL_MAX_FEATURES
        )

    def image_landmarks(self, n_features: int, n_train: int) -> int:
        """How many kernel landmarks the image branch gets (0: no kernel map)."""
        return min(self.image_kernel_landmarks, n_train) if self.uses_kernel(n_features) else 0

    def __post_init__(self) -> None:
        if self.text_branch not in TEXT_BRANCHES:
            raise ValueError(
                f"text_branch must be one of {TEXT_BRANCHES}, got {self.text_branch!r}"
            )
        if self.image_branch not in IMAGE_BRANCHES:
            raise ValueError(
                f"image_branch must be one of {IMAGE_BRANCHES}, got {self.image_branch!r}"
            )
        if self.score_dropout not in SCORE_DROPOUTS:
            raise ValueError(
                f"score_dropout must be one of {SCORE_DROPOUTS}, got {self.score_dropout!r}"
            )
        if self.embedding not in EMBEDDINGS:
            raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {self.embedding!r}")
        if self.semantic_weight is not None and self.semantic_weight < 0:
            raise ValueError(
                f"semantic_weight must be >= 0 (or null: chosen on validation), "
                f"got {self.semantic_weight}"
            )
        if self.pretrained_weight is not None and self.pretrained_weight < 0:
            raise ValueError(
                f"pretrained_weight must be >= 0 (or null: chosen on validation), "
                f"got {self.pretrained_weight}"
            )
        self.gcn_filters = tuple(int(f) for f in self.gcn_filters)


@dataclass
class TrainingConfig:
    """Adam with per-epoch exponential decay; the epoch is chosen by validation MAP."""

    epochs: int = 30
    siamese_epochs: int = 8
    # Siamese epochs trained before the first validation (each validation encodes every
    # training text). Its validation MAP climbs steeply over the first epochs: the earliest
    # epoch chosen was 5 on eng-wiki and 6 on chinese-news (benchmarks/epoch_choice.py, 10
    # seeds each), so skipping 0-3 leaves the choice unchanged.
    siamese_warmup: int = 4
    batch_size: int = 128
    # Adam's learning rate; null: CATEGORY_LR with categories, PAIR_LR at pair level (each
    # chosen on validation; a run saves the one it used).
    lr: float | None = None
    lr_decay: float = 0.95
    weight_decay: float = 1e-3
    # "pairwise": the paper's pairwise similarity loss (variances and the gap of the mean
    # positive and negative scores); "contrastive": symmetric InfoNCE over each batch's
    # score matrix at ``temperature`` (a ranking loss); both weighted by the labels.
    # "hardest": VSE++'s hinge against the hardest negative of each row and column at
    # ``margin`` (labels scale the negatives' scores); "soft-contrastive": InfoNCE whose
    # targets mix the positives with ``soft_mix`` times the softmax of the teacher's
    # text-text similarities at ``soft_temperature`` (the labels as soft targets).
    loss: str = "pairwise"
    temperature: float = 0.1
    soft_mix: float = 0.5
    soft_temperature: float = 0.1
    margin: float = 0.8
    lam: float = 0.35
    patience: int = 4  # stop after this many epochs without a better validation MAP
    # A validation score must beat the best so far by more than this to restart the patience
    # (the chosen epoch is still the one with the best score). null: auto, 0 up to
    # LARGE_COLLECTION training pairs, LARGE_MIN_DELTA above.
    min_delta: float | None = None
    # After choosing the epoch on validation, train again on all training pairs (fitting part
    # plus validation part) for that many epochs, as the baselines refit with their chosen C.
    # null: auto, refit up to LARGE_COLLECTION training pairs (the validation part is then at
    # least a sixth of them), not above.
    refit: bool | None = None
    # Weight of the cross-entropy of a linear classifier shared by both branches, on their
    # embeddings (DSCMR's label-space loss; 0: no classifier). null: CLASS_WEIGHT with
    # categories, 0 at pair level (every pair its own class).
    class_weight: float | None = None
    # Networks from different initializations whose scores are averaged. The first chooses
    # the epoch count on validation; all are then trained for that many epochs (with refit: on
    # all training pairs). 0: auto, AUTO_ENSEMBLE networks with the MLP image branch (wide CNN
    # features; validation gained) and one with the kernel branch (SIFT; validation lost);
    # one above LARGE_COLLECTION training pairs.
    ensemble: int = 0
    # Matrix products of a training step: "float32", "bfloat16" (autocast; weights, their
    # updates and the loss stay float32), or "auto": bfloat16 where the CPU multiplies
    # bfloat16 natively (AVX-512 BF16, AMX), float32 elsewhere.
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.siamese_warmup < 0:
            raise ValueError(f"siamese_warmup must be >= 0 epochs, got {self.siamese_warmup}")
        if self.ensemble < 0:
            raise ValueError(f"ensemble must be >= 1 network (0: auto), got {self.ensemble}")
        if self.refit not in (True, False, None):
            raise ValueError(f"refit must be true, false or null (auto), got {self.refit!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be > 0 (or null: by level), got {self.lr}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.min_delta is not None and self.min_delta < 0:
            raise ValueError(f"min_delta must be >= 0 (or null: auto), got {self.min_delta}")
        if self.class_weight is not None and self.class_weight < 0:
            raise ValueError(
                f"class_weight must be >= 0 (or null: by level), got {self.class_weight}"
            )

    @property
    def learning_rate(self) -> float:
        return CATEGORY_LR if self.lr is None else self.lr

    def ensemble_size(self, kernel_image_branch: bool, n_pairs: int = 0) -> int:
        if self.ensemble > 0:
            return self.ensemble
        return 1 if kernel_image_branch or n_pairs > LARGE_COLLECTION else AUTO_ENSEMBLE


@dataclass
class LabelConfig:
    """Fine-grained labels from the siamese text similarity h in [0, 1].

    Positives get weight ``1 + strength * (1 - h)`` (dissimilar texts: hard), negatives
    ``1 + strength * h`` (similar texts: hard); "binned" rounds h to ``levels`` values first;
    "uniform" gives every pair weight 1 (the plain loss).
    """

    mode: str = "continuous"
    levels: int = 9
    strength: float = 1.0
    # 1: one siamese network grades the texts it was trained on (the paper); K > 1: K
    # cross-fitted networks, each pair graded by networks that did not see its texts.
    teacher_folds: int = 1
    # "siamese": the siamese text network, trained on the categories, grades pairs;
    # "sentence": the cosine of pretrained sentence embeddings (MiniLM for English,
    # multilingual e5 otherwise), no training; "tfidf": the cosine of the texts' tf-idf rows
    # (no model, no training: free at any size); "auto": siamese with categories, tfidf at
    # pair level (no categories: the siamese network has no positive text pairs to learn;
    # the sentence teacher was level with tfidf and uniform labels on validation and costs
    # hours at 100,000 pairs, the tfidf one nothing); "pretrained": the cosine of the text
    # view's pretrained embedding (text:tfidf+clip: a pretrained image-text model's text
    # tower), no training.
    teacher: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in LABEL_MODES:
            raise ValueError(f"label mode must be one of {LABEL_MODES}, got {self.mode!r}")
        if self.teacher not in TEACHERS:
            raise ValueError(f"teacher must be one of {TEACHERS}, got {self.teacher!r}")
        if self.teacher_folds < 1:
            raise ValueError(f"teacher_folds must be >= 1, got {self.teacher_folds}")
        if self.levels < 2:
            raise ValueError(f"label levels must be >= 2, got {self.levels}")


@dataclass
class FGLabConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    labels: LabelConfig = field(default_factory=LabelConfig)
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolved(
        self, n_image_features: int, pair_level: bool, bfloat16: bool, n_pairs: int = 0
    ) -> FGLabConfig:
        """A copy with every "auto" replaced by what it means for these inputs (images of
        ``n_image_features`` dimensions, training ``pair_level`` or by category, a CPU with
        native ``bfloat16``, ``n_pairs`` training pairs): the config a run saves says what was
        trained."""
        kernel = self.model.uses_kernel(n_image_features)
        class_weight = self.training.class_weight
        if class_weight is None:
            class_weight = 0.0 if pair_level else CLASS_WEIGHT
        model = replace(
            self.model,
            image_branch="kernel" if kernel else "mlp",
            embedding=_auto(self.model.embedding, "bounded" if kernel else "unit"),
            # without a classifier there is no semantic term; else null stays: fit chooses
            semantic_weight=0.0 if class_weight == 0 else self.model.semantic_weight,
        )
        training = replace(
            self.training,
            class_weight=class_weight,
            lr=self.training.lr or (PAIR_LR if pair_level else CATEGORY_LR),
            ensemble=self.training.ensemble_size(kernel, n_pairs),
            refit=_auto_bool(self.training.refit, n_pairs <= LARGE_COLLECTION),
            min_delta=_auto_number(
                self.training.min_delta, LARGE_MIN_DELTA if n_pairs > LARGE_COLLECTION else 0.0
            ),
            precision=_auto(self.training.precision, "bfloat16" if bfloat16 else "float32"),
        )
        teacher = _auto(self.labels.teacher, "tfidf" if pair_level else "siamese")
        if pair_level and teacher == "siamese" and self.labels.mode != "uniform":
            raise ValueError(
                "the siamese teacher learns from categories, and pair-level training has "
                "none: use labels.teacher 'tfidf', 'sentence' (or 'auto')"
            )
        labels = replace(self.labels, teacher=teacher)
        return replace(self, model=model, training=training, labels=labels)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FGLabConfig:
        return parse_options(cls, data, "fglab")

    def save(self, path: Path) -> None:
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=2))

    @classmethod
    def load(cls, path: Path) -> FGLabConfig:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def _auto(value: str, meaning: str) -> str:
    return meaning if value == "auto" else value


def _auto_number(value: float | None, auto: float) -> float:
    return auto if value is None else value


def _auto_bool(value: bool | None, auto: bool) -> bool:
    return auto if value is None else value


# -- the one parser of options: fglab's config, the baselines' and dscmr's -------------------
def parse_options(
    kind: type[Options], data: Mapping[str, Any] | None, where: str, base: Options | None = None
) -> Options:
    """``data`` (a JSON object; None: empty) as the dataclass ``kind``, over ``base``'s values
    when given. A nested dataclass field is parsed from its own object over the field's
    default. An unknown key or a value of the wrong JSON type is a one-line ValueError naming
    the key and ``where`` (a method, e.g. "sm"); the dataclass checks the values themselves."""
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: options must be a JSON object, got {data!r}")
    known = {f.name: f for f in fields(kind)}
    unknown = sorted(set(data) - set(known), key=str)
    if unknown:
        options = ", ".join(known) or "none"
        raise ValueError(f"{where} has no config option {unknown[0]!r} (its options: {options})")
    hints = _type_hints(kind)
    values = {key: _option(hints[key], known[key], value, where) for key, value in data.items()}
    return kind(**values) if base is None else replace(base, **values)


@functools.cache
def _type_hints(kind: type) -> dict[str, Any]:
    return get_type_hints(kind)


def _option(hint: Any, spec: Field, value: Any, where: str) -> Any:
    """One option's ``value``, checked against its annotation ``hint``; lists become tuples."""
    if is_dataclass(hint):
        section = f"{where} config section {spec.name!r}"
        return parse_options(hint, value, section, _field_default(spec))
    if not _is_json(hint, value):
        names = _json_names(hint)
        expected = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise ValueError(f"{where}: {spec.name} must be {expected}, got {value!r}")
    if get_origin(hint) is tuple and value is not None:
        element = get_args(hint)[0]
        return tuple(element(v) if element in (int, float) else v for v in value)
    return value


def _field_default(spec: Field) -> Any:
    """A field's default value (a fresh one from its factory); None if it has none."""
    if spec.default_factory is not MISSING:
        return spec.default_factory()
    return None if spec.default is MISSING else spec.default


def _is_json(hint: Any, value: Any) -> bool:
    """Whether ``value`` is what JSON gives for the annotation ``hint`` (anything for an
    annotation other than null, bool, int, float, str, tuples of those and unions)."""
    if get_origin(hint) in (Union, types.UnionType):
        return any(_is_json(arg, value) for arg in get_args(hint))
    if hint in (int, float):
        kind = numbers.Integral if hint is int else numbers.Real
        return isinstance(value, kind) and not isinstance(value, bool)
    if hint in (type(None), bool, str):
        return isinstance(value, hint)
    if get_origin(hint) is tuple:
        element = get_args(hint)[0]
        return isinstance(value, list | tuple) and all(_is_json(element, v) for v in value)
    return True


def _json_names(hint: Any) -> list[str]:
    if get_origin(hint) in (Union, types.UnionType):
        return [name for arg in get_args(hint) for name in _json_names(arg)]
    if get_origin(hint) is tuple:
        return ["a list"]
    return JSON_NAMES.get(hint, [str(hint)])
