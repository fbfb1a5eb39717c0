"""Methods by explicit name, for ``fglab reproduce --methods`` and the Python API."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from fglab.method import RetrievalMethod


@dataclass(frozen=True)
class MethodSpec:
    """How to build a method for one seed; ``options`` come from a run's config."""

    name: str
    build: Callable[..., RetrievalMethod]  # build(seed=..., **options)
    description: str
    in_default_table: bool = True  # False: run only when named (slow to fit 5 seeds)


def _baseline(factory: Callable[[int], RetrievalMethod]) -> Callable[..., RetrievalMethod]:
    def build(seed: int = 0, config: dict | None = None) -> RetrievalMethod:
        method = factory(seed)
        if config:
            raise ValueError(
                f"{type(method).__name__} takes no config options (got {sorted(config)}); "
                "--config sets the fglab methods' options"
            )
        return method

    return build


def _registry() -> dict[str, MethodSpec]:
    from fglab import baselines as b

    specs = [
        MethodSpec("random", _baseline(lambda s: b.RandomRetrieval(seed=s)), "random ranking"),
        MethodSpec("cca", _baseline(lambda s: b.CCARetrieval()), "canonical correlation analysis"),
        MethodSpec("pls", _baseline(lambda s: b.PLSRetrieval()), "partial least squares"),
        MethodSpec("sm", _baseline(lambda s: b.SemanticMatching()), "semantic matching"),
        MethodSpec(
            "scm", _baseline(lambda s: b.SemanticCorrelationMatching()), "CCA + semantic matching"
        ),
        MethodSpec("sm-svm", _baseline(lambda s: b.SemanticMatching(image_classifier="svm")),
                   "semantic matching, RBF SVM on images"),
    ]
    specs.extend(_model_specs())
    return {spec.name: spec for spec in specs}


def _model_specs() -> list[MethodSpec]:
    """The fglab model's methods (imported here: fglab.training.methods imports this module)."""
    from fglab.training.methods import METHOD_SPECS

    return list(METHOD_SPECS)


def method_names(default_table: bool = False) -> list[str]:
    """Every method's name (``default_table``: those `fglab reproduce` runs unless told)."""
    return [n for n, spec in _registry().items() if spec.in_default_table or not default_table]


def get_method(name: str) -> MethodSpec:
    registry = _registry()
    if name not in registry:
        raise KeyError(f"unknown method {name!r}; available: {', '.join(registry)}")
    return registry[name]
