from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from fglab.data.splits import validation_split
from fglab.evaluation.protocol import evaluate_method
from fglab.losses import dscmr_loss
from fglab.training.dscmr import DSCMRConfig, DSCMRMethod


def test_dscmr_loss_matches_the_papers_sums_written_out():
    torch.manual_seed(0)
    u, v = torch.randn(4, 3), torch.randn(4, 3)
    pu, pv = torch.randn(4, 2), torch.randn(4, 2)
    y = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    alpha, beta = 0.3, 0.7

    def cos(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    label = sum(float((pu[i] - y[i]).norm()) + float((pv[i] - y[i]).norm()) for i in range(4)) / 4
    common = 0.0
    for a, b in ((u, u), (u, v), (v, v)):
        total = 0.0
        for i in range(4):
            for j in range(4):
                theta = cos(a[i], b[j]) / 2
                same = float(y[i] @ y[j])
                total += math.log(1 + math.exp(theta)) - same * theta
        common += total / 16
    invariance = sum(float((u[i] - v[i]).norm()) for i in range(4)) / 4
    expected = label + alpha * common + beta * invariance
    assert float(dscmr_loss(u, v, pu, pv, y, alpha, beta)) == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_dscmr_chooses_on_validation_beats_chance_and_round_trips(eng_wiki_features, tmp_path):
    train, test = eng_wiki_features
    small = train.subset(np.arange(0, len(train), 2))
    fit_rows, val_rows = validation_split(small.labels, 0)
    config = DSCMRConfig.from_dict(
        {"hidden_dim": 64, "common_dim": 32, "alphas": [0.1], "betas": [0.1, 1.0],
         "training": {"epochs": 6, "lr": 1e-3, "patience": 6}}
    )
    method = DSCMRMethod(config).fit(small.subset(fit_rows), small.subset(val_rows))
    assert [(row["alpha"], row["beta"]) for row in method.selection_] == [(0.1, 0.1), (0.1, 1.0)]
    assert method.chosen_["validation_map"] == max(r["validation_map"] for r in method.selection_)
    assert evaluate_method(method, test).map_all["avg"] > 0.15  # chance is about 0.12
    method.save(tmp_path / "dscmr")
    loaded = DSCMRMethod.load(tmp_path / "dscmr")
    np.testing.assert_array_equal(loaded.encode_texts(test.texts), method.encode_texts(test.texts))
    np.testing.assert_array_equal(
        loaded.encode_images(test.images), method.encode_images(test.images)
    )


def test_dscmr_config_refuses_unknown_keys():
    with pytest.raises(ValueError, match="dscmr has no config option 'gamma'"):
        DSCMRConfig.from_dict({"gamma": 1})


def test_dscmr_options_go_over_the_published_settings_and_round_trip():
    config = DSCMRConfig.from_dict({"alphas": [1, 0.5], "training": {"epochs": 3}})
    assert config.alphas == (1.0, 0.5) and config.training.epochs == 3
    assert config.training.lr == 1e-4 and config.training.batch_size == 100  # published
    assert DSCMRConfig.from_dict(asdict(config)) == config
