"""The fglab config: typed, checked, and saved with every "auto" resolved."""

from __future__ import annotations

import pytest

from fglab.config import CATEGORY_LR, LARGE_COLLECTION, LARGE_MIN_DELTA, PAIR_LR, FGLabConfig


@pytest.mark.parametrize(
    ("features", "pair_level", "bf16", "expected"),
    [
        (128, False, False, {"image_branch": "kernel", "embedding": "bounded", "ensemble": 1,
                             "precision": "float32", "teacher": "siamese", "lr": CATEGORY_LR}),
        (1280, True, True, {"image_branch": "mlp", "embedding": "unit", "ensemble": 3,
                            "precision": "bfloat16", "teacher": "tfidf", "lr": PAIR_LR}),
    ],
)
def test_resolved_replaces_every_auto(features, pair_level, bf16, expected):
    config = FGLabConfig().resolved(features, pair_level, bf16)
    got = {
        "image_branch": config.model.image_branch, "embedding": config.model.embedding,
        "ensemble": config.training.ensemble, "precision": config.training.precision,
        "teacher": config.labels.teacher, "lr": config.training.lr,
    }
    assert got == expected
    assert "auto" not in str(config.to_dict())
    assert FGLabConfig.from_dict(config.to_dict()) == config  # a saved run loads as trained


def test_auto_trains_one_network_without_refit_on_a_large_collection():
    small = FGLabConfig().resolved(1280, True, False, n_pairs=LARGE_COLLECTION)
    assert small.training.ensemble == 3 and small.training.refit is True
    large = FGLabConfig().resolved(1280, True, False, n_pairs=LARGE_COLLECTION + 1)
    assert large.training.ensemble == 1 and large.training.refit is False
    chosen = FGLabConfig.from_dict({"training": {"ensemble": 2, "refit": True}})
    kept = chosen.resolved(1280, True, False, n_pairs=10 * LARGE_COLLECTION)
    assert kept.training.ensemble == 2 and kept.training.refit is True
    with pytest.raises(ValueError, match="refit must be true, false or null"):
        FGLabConfig.from_dict({"training": {"refit": "yes"}})


def test_what_the_user_set_is_kept():
    config = FGLabConfig.from_dict(
        {"training": {"lr": 1e-3, "precision": "float32"}, "labels": {"teacher": "siamese"}}
    ).resolved(128, False, True)
    assert config.training.lr == 1e-3 and config.training.precision == "float32"


def test_the_siamese_teacher_is_refused_at_pair_level():
    config = FGLabConfig.from_dict({"labels": {"teacher": "siamese"}})
    with pytest.raises(ValueError, match="the siamese teacher learns from categories"):
        config.resolved(128, True, False)
    uniform = FGLabConfig.from_dict({"labels": {"teacher": "siamese", "mode": "uniform"}})
    assert uniform.resolved(128, True, False).labels.mode == "uniform"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"training": {"lr": 0}}, "lr must be > 0"),
        ({"training": {"loss": "hinge"}}, "loss must be one of"),
        ({"training": {"siamese_warmup": -1}}, "siamese_warmup must be >= 0"),
        ({"labels": {"teacher": "oracle"}}, "teacher must be one of"),
        ({"model": {"colour": 1}}, "fglab config section 'model' has no config option 'colour'"),
    ],
)
def test_bad_options_are_named(data, message):
    with pytest.raises(ValueError, match=message):
        FGLabConfig.from_dict(data)


def test_auto_min_delta_counts_every_gain_up_to_a_large_collection():
    small = FGLabConfig().resolved(1280, True, False, n_pairs=LARGE_COLLECTION)
    assert small.training.min_delta == 0.0
    large = FGLabConfig().resolved(1280, True, False, n_pairs=LARGE_COLLECTION + 1)
    assert large.training.min_delta == LARGE_MIN_DELTA
    chosen = FGLabConfig.from_dict({"training": {"min_delta": 0.01}})
    assert chosen.resolved(1280, True, False, n_pairs=10).training.min_delta == 0.01
    with pytest.raises(ValueError, match="min_delta must be >= 0"):
        FGLabConfig.from_dict({"training": {"min_delta": -1}})


def test_a_section_must_be_an_object_of_typed_values_and_lists_become_tuples():
    with pytest.raises(ValueError, match="fglab config section 'model': options must be a JSON"):
        FGLabConfig.from_dict({"model": 3})
    with pytest.raises(ValueError, match="fglab has no config option 'modle'"):
        FGLabConfig.from_dict({"modle": {}})
    with pytest.raises(ValueError, match="labels.: levels must be an integer, got True"):
        FGLabConfig.from_dict({"labels": {"levels": True}})
    assert FGLabConfig.from_dict({"model": {"gcn_filters": [2, 1]}}).model.gcn_filters == (2, 1)
