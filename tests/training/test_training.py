from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from fglab.config import CLASS_WEIGHT, SEMANTIC_WEIGHTS, FGLabConfig
from fglab.data.splits import validation_split
from fglab.training.fglab_method import FGLabMethod
from tests.training.conftest import TINY_CONFIG


class Killed(RuntimeError):
    pass


def _small_split(train):
    """Every fourth training pair, split into fitting and validation parts (seed 0)."""
    small = train.subset(np.arange(0, len(train), 4))
    fit_rows, val_rows = validation_split(small.labels, 0)
    return small.subset(fit_rows), small.subset(val_rows)


@pytest.mark.slow
def test_a_few_epochs_on_eng_wiki_lower_the_loss(eng_wiki_features):
    train, _ = eng_wiki_features
    fit_rows, val_rows = validation_split(train.labels, 0)
    config = FGLabConfig.from_dict(
        {**TINY_CONFIG, "labels": {"mode": "uniform"}, "training": {"epochs": 4, "lr": 1e-3}}
    )
    method = FGLabMethod(config).fit(train.subset(fit_rows), train.subset(val_rows))
    losses = [row["loss"] for row in method.stages_["model"].history]
    assert len(losses) == 4
    assert losses[-1] < losses[0] - 0.005
    # better than chance (about 0.12 MAP for 10 balanced-ish classes) on validation
    assert method.stages_["model"].best_score > 0.16


@pytest.mark.slow
def test_killed_run_resumes_from_its_checkpoint_and_ends_as_an_unbroken_run(
    tmp_path, eng_wiki_features
):
    train, _ = eng_wiki_features
    rows = np.arange(0, len(train), 3)  # a third of train keeps this quick
    small = train.subset(rows)
    fit_rows, val_rows = validation_split(small.labels, 0)
    fit, val = small.subset(fit_rows), small.subset(val_rows)
    config = FGLabConfig.from_dict(TINY_CONFIG)

    def kill_after_model_epoch_1(stage: str, epoch: int) -> None:
        if stage == "model" and epoch == 1:
            raise Killed("simulated kill")

    run = tmp_path / "run"
    with pytest.raises(Killed):
        FGLabMethod(config, run, kill_after_model_epoch_1).fit(fit, val)
    meta = json.loads((run / "model.json").read_text())
    assert meta["epoch"] == 1 and not meta["done"]
    assert json.loads((run / "siamese.json").read_text())["done"]

    resumed = FGLabMethod(config, run).fit(fit, val)
    assert resumed.stages_["model"].resumed_from == 1
    assert [h["epoch"] for h in resumed.stages_["model"].history] == [0, 1, 2]
    assert len(resumed.stages_["siamese"].history) == 2  # loaded, not retrained

    unbroken = FGLabMethod(config, tmp_path / "unbroken").fit(fit, val)
    assert resumed.stages_["model"].history == unbroken.stages_["model"].history
    np.testing.assert_allclose(
        resumed.similarity(val.images, val.texts),
        unbroken.similarity(val.images, val.texts),
        atol=1e-6,
    )


def _fit_two_fold_teacher(features, training: dict) -> tuple[FGLabMethod, np.ndarray, np.ndarray]:
    """fglab with a 2-fold cross-fitted teacher on a quarter of eng-wiki's training split."""
    train, _ = features
    small = train.subset(np.arange(0, len(train), 4))
    fit_rows, val_rows = validation_split(small.labels, 0)
    config = FGLabConfig.from_dict(
        {
            **TINY_CONFIG,
            "labels": {"teacher_folds": 2},
            "training": {**TINY_CONFIG["training"], **training},
        }
    )
    method = FGLabMethod(config).fit(small.subset(fit_rows), small.subset(val_rows))
    return method, fit_rows, val_rows


def test_cross_fitted_teacher_trains_a_network_per_fold_and_grades_every_pair(
    eng_wiki_features,
):
    method, fit_rows, _ = _fit_two_fold_teacher(eng_wiki_features, {"epochs": 1, "refit": False})
    assert set(method.stages_) == {"siamese-1of2", "siamese-2of2", "model"}
    folds = [method.stages_[f"siamese-{k}of2"].best_score for k in (1, 2)]
    assert method.siamese_map_ == pytest.approx(np.mean(folds))
    everything = np.arange(len(method.grades_))
    h = method.grades_.block(everything, everything)
    assert h.shape == (len(fit_rows), len(fit_rows))
    assert h.min() >= 0 and h.max() <= 1
    np.testing.assert_allclose(h, h.T, atol=1e-5)


def test_teacher_folds_must_be_positive():
    with pytest.raises(ValueError, match="teacher_folds"):
        FGLabConfig.from_dict({"labels": {"teacher_folds": 0}})


def test_refit_trains_again_on_all_training_pairs_for_the_chosen_number_of_epochs(
    eng_wiki_features,
):
    method, fit_rows, val_rows = _fit_two_fold_teacher(
        eng_wiki_features, {"epochs": 2, "refit": True}
    )
    chosen = method.stages_["model"].best_epoch
    assert [row["epoch"] for row in method.stages_["refit"].history] == list(range(chosen + 1))
    # the teacher graded the validation texts too: the refit trained on every training pair
    n = len(fit_rows) + len(val_rows)
    assert len(method.grades_) == n and len(method.report_data_["labels"]) == n
    h = method.grades_.block(np.arange(n), np.arange(n))
    np.testing.assert_allclose(h, h.T, atol=1e-5)


def test_ensemble_averages_its_networks_scores_and_survives_save_and_load(
    tmp_path, eng_wiki_features
):
    fit, val = _small_split(eng_wiki_features[0])
    config = FGLabConfig.from_dict(
        {
            **TINY_CONFIG,
            "labels": {"mode": "uniform"},
            # no semantic term: the members' scores are then their dual-path scores alone
            "training": {**TINY_CONFIG["training"], "epochs": 2, "ensemble": 2,
                         "class_weight": 0},
        }
    )
    method = FGLabMethod(config).fit(fit, val)
    assert set(method.stages_) == {"model", "refit", "refit-2"}
    chosen = method.stages_["model"].best_epoch + 1
    assert len(method.stages_["refit-2"].history) == chosen
    first, second = method.networks_
    # different initializations: the members disagree, and the method scores their mean
    images = torch.from_numpy(val.images.astype(np.float32))
    texts = torch.from_numpy(val.texts.toarray().astype(np.float32))
    with torch.no_grad():
        scores = [net.all_pairs(texts, images).T - net.scorer.bias for net in (first, second)]
    assert not torch.allclose(scores[0], scores[1], atol=1e-3)
    np.testing.assert_allclose(
        method.similarity(val.images, val.texts), ((scores[0] + scores[1]) / 2).numpy(),
        atol=1e-5,
    )
    method.save(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text(), parse_constant=_refuse)
    assert state["stages"]["refit"]["best_score"] is None  # no validation, no -Infinity
    # where the fit's time went, by part: the parts lie within the whole
    timings, stages = state["timings"], state["stages"]
    assert set(timings) >= {"teacher", "model", "validation", "refit", "total"}
    assert all(value >= 0 for value in timings.values())
    assert timings["refit"] == pytest.approx(
        stages["refit"]["seconds"] + stages["refit-2"]["seconds"]
    )
    assert stages["model"]["validation_seconds"] > 0 and stages["refit"]["validation_seconds"] == 0
    parts = timings["teacher"] + timings["model"] + timings["validation"] + timings["refit"]
    assert parts <= timings["total"] + 1e-6
    method.stages_["refit"].history[0]["loss"] = float("nan")  # an epoch without a batch
    method.save(tmp_path)
    state = json.loads((tmp_path / "state.json").read_text(), parse_constant=_refuse)
    assert state["stages"]["refit"]["history"][0]["loss"] is None
    loaded = FGLabMethod.load(tmp_path)
    assert len(loaded.networks_) == 2
    np.testing.assert_allclose(
        loaded.similarity(val.images, val.texts), method.similarity(val.images, val.texts),
        atol=1e-6,
    )


def _refuse(constant: str):
    raise ValueError(f"not strict JSON: {constant}")


def test_ensemble_must_have_a_network():
    with pytest.raises(ValueError, match="ensemble"):
        FGLabConfig.from_dict({"training": {"ensemble": -1}})


def test_auto_ensemble_is_three_networks_on_cnn_features_and_one_on_sift():
    auto = FGLabConfig().training
    assert auto.ensemble_size(kernel_image_branch=False) == 3
    assert auto.ensemble_size(kernel_image_branch=True) == 1
    fixed = FGLabConfig.from_dict({"training": {"ensemble": 2}}).training
    assert fixed.ensemble_size(kernel_image_branch=True) == 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("precision", "score_dropout"), [("float32", "bernoulli"), ("bfloat16", "gaussian")]
)
def test_both_precisions_and_score_dropouts_learn(eng_wiki_features, precision, score_dropout):
    """The earlier step (Bernoulli mask, float32) and the fast one both lower the loss and
    beat chance; the refit records no validation score (it has none)."""
    train, _ = eng_wiki_features
    small = train.subset(np.arange(0, len(train), 2))
    fit_rows, val_rows = validation_split(small.labels, 0)
    config = FGLabConfig.from_dict(
        {
            "model": {**TINY_CONFIG["model"], "score_dropout": score_dropout},
            "training": {**TINY_CONFIG["training"], "lr": 1e-3, "precision": precision},
            "labels": {"mode": "uniform"},
        }
    )
    method = FGLabMethod(config).fit(small.subset(fit_rows), small.subset(val_rows))
    losses = [row["loss"] for row in method.stages_["model"].history]
    assert losses[-1] < losses[0]
    assert method.stages_["model"].best_score > 0.14
    assert [row["validation"] for row in method.stages_["refit"].history] == [None] * len(
        method.stages_["refit"].history
    )


def test_unknown_precision_and_score_dropout_are_refused():
    with pytest.raises(ValueError, match="precision"):
        FGLabConfig.from_dict({"training": {"precision": "float16"}})
    with pytest.raises(ValueError, match="score_dropout"):
        FGLabConfig.from_dict({"model": {"score_dropout": "none"}})


def test_semantic_term_adds_the_weighted_posterior_correlation_chosen_on_validation(
    tmp_path, eng_wiki_features
):
    fit, val = _small_split(eng_wiki_features[0])
    config = FGLabConfig.from_dict(
        {**TINY_CONFIG, "labels": {"mode": "uniform"},
         "training": {**TINY_CONFIG["training"], "epochs": 2}}
    )
    method = FGLabMethod(config).fit(fit, val)
    # the classifier is on by default with categories, its weight chosen on validation
    assert method.config.training.class_weight == CLASS_WEIGHT
    scores = method.semantic_weight_scores_
    assert set(scores) == set(SEMANTIC_WEIGHTS)
    assert method.config.model.semantic_weight == max(scores, key=scores.get)
    method.config.model.semantic_weight = 1.0  # a weight > 0, to check the score's form
    (network,) = method.networks_
    network.semantic_weight = 1.0
    images = torch.from_numpy(val.images.astype(np.float32))
    texts = torch.from_numpy(val.texts.toarray().astype(np.float32))
    with torch.no_grad():
        dual = (network.all_pairs(texts, images) - network.scorer.bias).T.numpy()
        t, v = network.embed(network.text(texts)), network.embed(network.image(images))
        k = network.classifier.out_features
        pt = torch.softmax(network.classifier(t * 10.0), 1).numpy() - 1 / k
        pv = torch.softmax(network.classifier(v * 10.0), 1).numpy() - 1 / k
    correlation = (pv / np.linalg.norm(pv, axis=1, keepdims=True)) @ (
        pt / np.linalg.norm(pt, axis=1, keepdims=True)
    ).T
    np.testing.assert_allclose(
        method.similarity(val.images, val.texts), dual + correlation, atol=1e-4
    )
    method.save(tmp_path)
    loaded = FGLabMethod.load(tmp_path)
    assert loaded.config.model.semantic_weight == 1.0
    np.testing.assert_allclose(
        loaded.similarity(val.images, val.texts), method.similarity(val.images, val.texts),
        atol=1e-6,
    )


def test_pair_level_has_no_classifier_and_weights_must_not_be_negative():
    resolved = FGLabConfig().resolved(128, pair_level=True, bfloat16=False)
    assert resolved.training.class_weight == 0.0
    assert resolved.model.semantic_weight == 0.0
    by_category = FGLabConfig().resolved(128, pair_level=False, bfloat16=False)
    assert by_category.model.semantic_weight is None  # chosen while fitting
    with pytest.raises(ValueError, match="semantic_weight"):
        FGLabConfig.from_dict({"model": {"semantic_weight": -1}})
    with pytest.raises(ValueError, match="class_weight"):
        FGLabConfig.from_dict({"training": {"class_weight": -0.5}})


@pytest.mark.parametrize("loss", ["hardest", "soft-contrastive"])
def test_sentence_columns_enter_the_text_branch_and_survive_save_and_load(
    tmp_path, eng_wiki_features, loss
):
    from scipy import sparse

    from fglab.data.collection import pair_labels

    fit, val = _small_split(eng_wiki_features[0])
    rng = np.random.default_rng(0)

    def with_sentences(part):  # 16 "sentence embedding" columns after the tf-idf ones
        sentences = rng.normal(0.5, 0.1, size=(len(part), 16)).astype(np.float32)
        texts = sparse.hstack([part.texts, sparse.csr_matrix(sentences)], format="csr")
        return dataclasses.replace(part, texts=texts, labels=pair_labels(len(part)))

    fit, val = with_sentences(fit), with_sentences(val)
    config = FGLabConfig.from_dict({
        **TINY_CONFIG, "labels": {"teacher": "tfidf"},
        "training": {**TINY_CONFIG["training"], "epochs": 2, "loss": loss, "margin": 0.2},
    })
    method = FGLabMethod(config).fit(fit, val)
    branch = method.networks_[0].text
    assert method.n_sentence_ == 16 and branch.sentence is not None
    assert branch.sentence_mean.numpy() == pytest.approx(0.5, abs=0.05)  # standardized input
    # the sentence columns change the text embeddings
    changed = val.texts.tolil(copy=True)
    changed[:, -16:] = 0.0
    assert not np.allclose(method.encode_texts(val.texts), method.encode_texts(changed.tocsr()))
    method.save(tmp_path)
    loaded = FGLabMethod.load(tmp_path)
    np.testing.assert_allclose(
        loaded.similarity(val.images, val.texts), method.similarity(val.images, val.texts),
        atol=1e-5,
    )


def test_fit_leaves_torchs_thread_count_to_its_caller(eng_wiki_features, monkeypatch):
    def refuse(n: int) -> None:
        raise AssertionError(f"fit set torch's threads to {n}: that is the CLI's to set")

    monkeypatch.setattr(torch, "set_num_threads", refuse)
    train, _ = eng_wiki_features
    small = train.subset(np.arange(0, len(train), 8))
    fit_rows, val_rows = validation_split(small.labels, 0)
    config = FGLabConfig.from_dict({
        **TINY_CONFIG, "labels": {"teacher": "tfidf"},
        "training": {**TINY_CONFIG["training"], "epochs": 1, "refit": False},
    })
    method = FGLabMethod(config).fit(small.subset(fit_rows), small.subset(val_rows))
    assert len(method.stages_["model"].history) == 1
