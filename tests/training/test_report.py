from __future__ import annotations

import json

import numpy as np

from fglab.config import FGLabConfig
from fglab.data.splits import validation_split
from fglab.method import ReportContext
from fglab.training.fglab_method import FGLabMethod
from tests.training.conftest import TINY_CONFIG


def test_hardness_report_names_pairs_and_the_siamese_map(tmp_path, eng_wiki, eng_wiki_features):
    train, _ = eng_wiki_features
    rows = np.arange(0, len(train), 4)
    small = train.subset(rows)
    fit_rows, val_rows = validation_split(small.labels, 0)
    config = FGLabConfig.from_dict(
        {**TINY_CONFIG, "training": {"epochs": 1, "siamese_epochs": 2}}
    )
    method = FGLabMethod(config).fit(small.subset(fit_rows), small.subset(val_rows))
    split = eng_wiki.train
    context = ReportContext(split.text_ids, split.image_ids, split.texts, eng_wiki.categories)
    method.write_report(tmp_path, context)

    summary = json.loads((tmp_path / "hardness.json").read_text())
    assert 0.0 < summary["siamese_text2text_map_validation"] <= 1.0
    assert summary["positive_pairs"] > 0 and summary["negative_pairs"] > 0
    png = (tmp_path / "label_histograms.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    pairs = (tmp_path / "hardest_pairs.txt").read_text()
    assert "Hardest positives" in pairs and "Hardest negatives" in pairs
    # the final model (refit) trained on the fitting and the validation part: all of rows
    fitted_ids = {split.text_ids[i] for i in rows}
    lines = [line for line in pairs.splitlines() if " / image " in line]
    named = [line.split("text ")[1].split(" /")[0] for line in lines]
    assert len(named) == 20 and set(named) <= fitted_ids  # 5 pairs x 2 texts x 2 kinds


def test_uniform_report_says_no_siamese_network_was_trained(tmp_path, eng_wiki_features):
    train, _ = eng_wiki_features
    rows = np.arange(0, len(train), 6)
    small = train.subset(rows)
    fit_rows, val_rows = validation_split(small.labels, 0)
    config = FGLabConfig.from_dict(
        {**TINY_CONFIG, "labels": {"mode": "uniform"}, "training": {"epochs": 1}}
    )
    method = FGLabMethod(config).fit(small.subset(fit_rows), small.subset(val_rows))
    method.write_report(tmp_path, ReportContext([], [], [], []))
    assert "uniform" in json.loads((tmp_path / "hardness.json").read_text())["note"]
    assert not (tmp_path / "label_histograms.png").exists()


def test_pair_level_report_grades_negatives_only(tmp_path, eng_wiki, eng_wiki_features,
                                                  monkeypatch):
    """At pair level (each pair its own class) there are no positive pairs to grade: the
    report says so with nulls, valid JSON, and lists the hardest negatives only."""
    from fglab.data.collection import pair_labels

    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "cache"))
    train, _ = eng_wiki_features
    rows = np.arange(0, len(train), 8)
    small = train.subset(rows).with_labels(pair_labels(len(rows)))
    fit_rows, val_rows = validation_split(small.labels, 0)
    config = FGLabConfig.from_dict({**TINY_CONFIG, "training": {"epochs": 1}})
    method = FGLabMethod(config).fit(small.subset(fit_rows), small.subset(val_rows))
    assert method.config.labels.teacher == "tfidf"  # auto at pair level
    split = eng_wiki.train
    method.write_report(tmp_path / "report", ReportContext(split.text_ids, split.image_ids,
                                                           split.texts, []))
    summary = json.loads((tmp_path / "report" / "hardness.json").read_text())
    assert summary["positive_pairs"] == 0 and summary["mean_label_positive"] is None
    assert 0.0 <= summary["negative_label_quantiles"]["0.5"] <= 1.0
    pairs = (tmp_path / "report" / "hardest_pairs.txt").read_text()
    assert "Hardest positives" not in pairs and "Hardest negatives (other pairs" in pairs
