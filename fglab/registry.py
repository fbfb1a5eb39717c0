"""Methods by explicit name, for ``fglab reproduce --methods`` and the Python API."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fglab.config import parse_options
from fglab.method import MethodSpec, RetrievalMethod


def _baseline(
    factory: Callable[[int, Any], RetrievalMethod], options: type, name: str
) -> Callable[..., RetrievalMethod]:
    """``build(seed, config)`` of a baseline: ``config`` is parsed as its typed ``options``."""

    def build(seed: int = 0, config: dict | None = None) -> RetrievalMethod:
        return factory(seed, parse_options(options, config, name))

    return build


def _registry() -> dict[str, MethodSpec]:
    from fglab import baselines as b
    from fglab.baselines.configs import CorrelationConfig, NoOptions, SemanticConfig

    def cca(seed: int, o: CorrelationConfig) -> RetrievalMethod:
        return b.CCARetrieval(o.n_components, o.max_iter)

    def pls(seed: int, o: CorrelationConfig) -> RetrievalMethod:
        return b.PLSRetrieval(o.n_components, o.max_iter)

    def sm(seed: int, o: SemanticConfig) -> RetrievalMethod:
        return b.SemanticMatching(o.c)

    def scm(seed: int, o: SemanticConfig) -> RetrievalMethod:
        return b.SemanticCorrelationMatching(o.c)

    def sm_svm(seed: int, o: SemanticConfig) -> RetrievalMethod:
        return b.SemanticMatching(o.c, image_classifier="svm")

    baselines = [  # name, factory, its options, the class it builds, description
        ("random", lambda s, _: b.RandomRetrieval(seed=s), NoOptions, b.RandomRetrieval,
         "random ranking"),
        ("cca", cca, CorrelationConfig, b.CCARetrieval, "canonical correlation analysis"),
        ("pls", pls, CorrelationConfig, b.PLSRetrieval, "partial least squares"),
        ("sm", sm, SemanticConfig, b.SemanticMatching, "semantic matching"),
        ("scm", scm, SemanticConfig, b.SemanticCorrelationMatching, "CCA + semantic matching"),
        ("sm-svm", sm_svm, SemanticConfig, b.SemanticMatching,
         "semantic matching, RBF SVM on images"),
    ]
    specs = [
        MethodSpec(name, _baseline(factory, options, name), about, cls)
        for name, factory, options, cls, about in baselines
    ]
    specs.append(MethodSpec(  # needs a model folder (--model-path): run only when named
        "pretrained", _baseline(lambda s, _: b.ZeroShotRetrieval(), NoOptions, "pretrained"),
        "zero-shot: the pretrained model's own space (--model-path)", b.ZeroShotRetrieval,
        in_default_table=False,
    ))
    specs.extend(_model_specs())
    return {spec.name: spec for spec in specs}


def _model_specs() -> list[MethodSpec]:
    """The fglab model's methods (imported on use: listing names should not load torch)."""
    from fglab.training.specs import METHOD_SPECS

    return list(METHOD_SPECS)


def pretrained_config(method_name: str, config: dict | None) -> dict | None:
    """``config`` for ``method_name`` over a pretrained model's towers: an fglab method gets
    the text tower as its teacher and the zero-shot score's weight chosen on validation,
    unless ``config`` sets them; other methods get ``config`` unchanged."""
    from fglab.training.specs import FGLAB_CLASS

    if get_method(method_name).method != FGLAB_CLASS:
        return config
    merged = copy.deepcopy(config) if config else {}
    merged.setdefault("labels", {}).setdefault("teacher", "pretrained")
    merged.setdefault("model", {}).setdefault("pretrained_weight", None)
    return merged


def method_names(default_table: bool = False) -> list[str]:
    """Every method's name (``default_table``: those `fglab reproduce` runs unless told)."""
    return [n for n, spec in _registry().items() if spec.in_default_table or not default_table]


def get_method(name: str) -> MethodSpec:
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(registry)}")
    return registry[name]
