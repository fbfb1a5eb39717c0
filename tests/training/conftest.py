from __future__ import annotations

import pytest

#: A small network (one, no ensemble) and few epochs: enough to learn something on eng-wiki
#: in seconds.
TINY_CONFIG = {
    "model": {"hidden_dim": 64, "embed_dim": 32, "gcn_filters": [4, 1]},
    "training": {"epochs": 3, "siamese_epochs": 2, "patience": 10, "ensemble": 1},
}


@pytest.fixture(scope="session")
def eng_wiki_features(eng_wiki):
    from fglab.features.views import build_features

    return build_features(eng_wiki, "image:sift", "text:tfidf")
