"""`fglab train` on a collection too large for the machine: one line, before any work."""

from __future__ import annotations

import pytest

from fglab.cli import main
from fglab.training import fit_check
from tests.data.fixtures import write_manifest_collection


def test_fglab_train_refuses_a_collection_too_large_before_any_feature(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("FGLAB_CACHE", str(tmp_path / "cache"))
    manifest = write_manifest_collection(tmp_path / "photos")
    # this machine, as far as the check can tell, has 100 MB free
    monkeypatch.setattr(fit_check, "available_memory", lambda: 100 * 2**20)

    def no_features(*args, **kwargs):
        raise AssertionError("features were computed before the fit check")

    monkeypatch.setattr("fglab.features.views.build_features", no_features)
    run = tmp_path / "run"
    code = main(["train", f"manifest:{manifest}", "--method", "fglab", "--out", str(run)])
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert last.startswith("fglab: error: this job does not fit: 24 pairs need about")
    assert "--skip-fit-check" in last
    assert not (tmp_path / "cache").exists() and not run.exists()
    # --skip-fit-check goes on to the features (here, the stand-in that stops the test)
    with pytest.raises(AssertionError, match="features were computed"):
        main(["train", f"manifest:{manifest}", "--method", "fglab", "--out", str(run),
              "--skip-fit-check"])
