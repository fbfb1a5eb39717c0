"""The fglab model's methods for the registry: ``fglab`` (fine-grained labels),
``fglab-uniform`` (the same network and training with all labels equal), ``fglab-mlp`` (as
fglab-uniform, but the text branch without the graph: the comparison that shows what the
graph adds) and ``dscmr`` (the deep supervised baseline). Each spec names its class as
"module:Class": the registry lists these names without loading torch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fglab.config import FGLabConfig
from fglab.method import MethodSpec, RetrievalMethod

FGLAB_CLASS = "fglab.training.fglab_method:FGLabMethod"
DSCMR_CLASS = "fglab.training.dscmr:DSCMRMethod"


def fglab_builder(
    label_mode: str | None = None, text_branch: str | None = None
) -> Callable[..., RetrievalMethod]:
    """A ``build(seed=..., config=..., **options)`` for the registry; ``config`` (a dict as
    saved in a run's config.json) overrides the defaults, then the fixed label mode / branch."""

    def build(seed: int = 0, config: dict[str, Any] | None = None, **_: object):
        # Imported on use: the registry lists these names without loading torch.
        from fglab.training.fglab_method import FGLabMethod

        settings = FGLabConfig.from_dict(config) if config else FGLabConfig()
        settings.seed = seed
        if label_mode is not None:
            settings.labels.mode = label_mode
        if text_branch is not None:
            settings.model.text_branch = text_branch
        return FGLabMethod(settings)

    return build


def dscmr_builder(seed: int = 0, config: dict[str, Any] | None = None) -> RetrievalMethod:
    from fglab.training.dscmr import DSCMRConfig, DSCMRMethod

    settings = DSCMRConfig.from_dict(config) if config else DSCMRConfig()
    settings.seed = seed
    return DSCMRMethod(settings)


METHOD_SPECS: list[MethodSpec] = [
    MethodSpec(
        "fglab", fglab_builder(), "GCN text branch, siamese fine-grained labels", FGLAB_CLASS
    ),
    MethodSpec(
        "fglab-uniform", fglab_builder(label_mode="uniform"), "fglab with all labels equal",
        FGLAB_CLASS,
    ),
    MethodSpec(
        "fglab-mlp",
        fglab_builder(label_mode="uniform", text_branch="mlp"),
        "fglab-uniform with an MLP text branch (no word graph)",
        FGLAB_CLASS,
    ),
    MethodSpec(
        "dscmr", dscmr_builder, "DSCMR (Zhen et al., CVPR 2019), deep supervised baseline",
        DSCMR_CLASS, in_default_table=False,
    ),
]
