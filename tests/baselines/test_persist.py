"""Every registered method saves as JSON and arrays (no pickle) and loads back to identical
encodings; a baseline's files can only rebuild fglab's own classes."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import sparse

from fglab.baselines import CCARetrieval, SemanticMatching
from fglab.baselines.persist import ARRAYS_FILE, STATE_FILE
from fglab.features.featureset import FeatureSet
from fglab.features.text import TfidfTextFeatures
from fglab.integrity import PICKLE_SUFFIXES
from fglab.registry import get_method, method_names
from tests.training.conftest import TINY_CONFIG

WORDS = [
    "river", "castle", "music", "guitar", "concert", "boat", "harbour", "sea", "king", "queen",
    "army", "battle", "church", "painting", "museum", "football", "team", "goal", "election",
    "vote", "law", "bridge", "train", "station", "mountain", "snow", "forest", "tree", "bird",
    "song", "film",
]


def _features(rng: np.random.Generator, n: int) -> FeatureSet:
    """Three classes; each pair's words and image features lean towards its class."""
    labels = np.arange(n) % 3
    tokens = [
        [WORDS[(10 * c + int(w)) % len(WORDS)] for w in rng.integers(0, 14, 12)] for c in labels
    ]
    images = rng.standard_normal((n, 12)) + 2.0 * np.eye(12)[labels]
    return FeatureSet(images, sparse.csr_matrix((n, 1)), labels, tokens=tokens)


@pytest.fixture(scope="module")
def data() -> tuple[FeatureSet, FeatureSet, FeatureSet]:
    """(fitting part, validation part, test) with tf-idf texts over WORDS."""
    rng = np.random.default_rng(0)
    parts = [_features(rng, n) for n in (60, 30, 20)]
    tfidf = TfidfTextFeatures(lambda words: words, min_df=1).fit(parts[0].tokens)
    for part in parts:
        part.texts, part.vocabulary = tfidf.transform(part.tokens), tfidf.vocabulary_
    return parts[0], parts[1], parts[2]


#: Small networks trained briefly, for the registry's torch methods (others: defaults).
SMALL = {
    "fglab": {**TINY_CONFIG, "training": {**TINY_CONFIG["training"], "epochs": 2}},
    "dscmr": {"hidden_dim": 32, "common_dim": 16, "alphas": [0.1], "betas": [1.0],
              "training": {"epochs": 2}},
}


def _for_method(name: str, data):
    """``data``, with texts in the images' space for a method that compares one model's two
    towers (``fixed_views``)."""
    if get_method(name).method_class.fixed_views is None:
        return data
    return tuple(dataclasses.replace(part, texts=part.images[:, ::-1] + 0.5) for part in data)


def _fitted(name: str, data):
    fit, validation, _ = data
    config = SMALL.get(name.split("-")[0])
    method = get_method(name).build(seed=0, **({"config": config} if config else {}))
    if method.selects_on_validation or config:
        return method.fit(fit, validation)
    return method.fit(fit)


@pytest.mark.parametrize("name", method_names())
def test_every_method_round_trips_without_pickle(name, data, tmp_path):
    data = _for_method(name, data)
    test = data[2]
    method = _fitted(name, data)
    method.save(tmp_path / "method")
    loaded = type(method).load(tmp_path / "method")
    files = [p for p in (tmp_path / "method").rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.suffix in PICKLE_SUFFIXES]
    for path in files:
        assert b"\x80\x04\x95" not in path.read_bytes()[:16], f"{path} looks like a pickle"
    np.testing.assert_array_equal(loaded.encode_images(test.images),
                                  method.encode_images(test.images))
    np.testing.assert_array_equal(loaded.encode_texts(test.texts), method.encode_texts(test.texts))


def test_sm_svm_uses_libsvm_probabilities_after_loading(data, tmp_path):
    method = _fitted("sm-svm", data)
    method.save(tmp_path / "m")
    loaded = SemanticMatching.load(tmp_path / "m")
    svc = loaded.image_model_[-1]
    test = data[2]
    np.testing.assert_array_equal(svc.predict_proba(loaded.image_model_[0].transform(test.images)),
                                  method.image_model_.predict_proba(test.images))


def test_tfidf_round_trips_with_its_vocabulary_and_weights(data, tmp_path):
    fit, _, test = data
    tfidf = TfidfTextFeatures(lambda words: words, min_df=1).fit(fit.tokens)
    tfidf.save(tmp_path / "tfidf")
    loaded = TfidfTextFeatures.load(tmp_path / "tfidf", lambda words: words)
    assert loaded.vocabulary_ == tfidf.vocabulary_
    assert (loaded.transform(test.tokens) != tfidf.transform(test.tokens)).nnz == 0
    assert not list((tmp_path / "tfidf").glob("*.joblib"))


def _state(folder) -> dict:
    return json.loads((folder / STATE_FILE).read_text())


def test_a_state_naming_another_class_is_refused(data, tmp_path):
    CCARetrieval().fit(data[0]).save(tmp_path / "m")
    state = _state(tmp_path / "m")
    state["method"]["attributes"]["model_"]["object"] = "os.system"
    (tmp_path / "m" / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(ValueError, match="'os.system' is not a class a baseline may hold"):
        CCARetrieval.load(tmp_path / "m")


def test_a_state_cannot_hide_a_method_of_its_class(data, tmp_path):
    CCARetrieval().fit(data[0]).save(tmp_path / "m")
    state = _state(tmp_path / "m")
    state["method"]["attributes"]["project_texts"] = None
    (tmp_path / "m" / STATE_FILE).write_text(json.dumps(state))
    with pytest.raises(ValueError, match="attribute 'project_texts' would hide"):
        CCARetrieval.load(tmp_path / "m")


def test_a_state_of_another_method_is_refused(data, tmp_path):
    CCARetrieval().fit(data[0]).save(tmp_path / "m")
    with pytest.raises(ValueError, match="holds a CCARetrieval, not a SemanticMatching"):
        SemanticMatching.load(tmp_path / "m")


def test_an_svc_whose_arrays_disagree_is_refused_before_libsvm_sees_it(data, tmp_path):
    from safetensors.numpy import load, save

    _fitted("sm-svm", data).save(tmp_path / "m")
    state = _state(tmp_path / "m")
    svc = state["method"]["attributes"]["image_model_"]["attributes"]["steps"][1]["tuple"][1]
    name = svc["attributes"]["_n_support"]["array"]
    arrays = load((tmp_path / "m" / ARRAYS_FILE).read_bytes())
    arrays[name] = arrays[name] * 100  # more support vectors than are stored
    (tmp_path / "m" / ARRAYS_FILE).write_bytes(save(arrays))
    with pytest.raises(ValueError, match="support vector arrays do not agree"):
        SemanticMatching.load(tmp_path / "m")


def test_the_calibrated_svm_fallback_round_trips(data, tmp_path):
    """Where libsvm's probabilities are gone, sm-svm calibrates an SVC with sigmoids instead."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    fit, _, test = data
    method = _fitted("sm-svm", data)
    calibrated = CalibratedClassifierCV(SVC(C=1.0), method="sigmoid", ensemble=False)
    method.image_model_ = make_pipeline(StandardScaler(), calibrated).fit(fit.images, fit.labels)
    method.save(tmp_path / "m")
    loaded = SemanticMatching.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.encode_images(test.images),
                                  method.encode_images(test.images))
