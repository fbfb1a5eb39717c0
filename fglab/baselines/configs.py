"""Typed options of the baselines, as ``fglab train --method M --config X.json`` gives them.
Every option left out (or null) keeps the method's own choice, which is selected on
validation where the method selects anything. :func:`fglab.config.parse_options` parses them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CorrelationConfig:
    """CCA and PLS: ``n_components`` of the shared space (null: as many as the views allow,
    10 after a PCA reduction of a wide view)."""

    n_components: int | None = None
    max_iter: int = 1000

    def __post_init__(self) -> None:
        if self.n_components is not None and self.n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {self.n_components}")


@dataclass(frozen=True)
class SemanticConfig:
    """SM, SCM and sm-svm: the inverse regularization ``c`` of both classifiers (null: chosen
    on validation from the method's grid)."""

    c: float | None = None

    def __post_init__(self) -> None:
        if self.c is not None and self.c <= 0:
            raise ValueError(f"c must be > 0, got {self.c}")


@dataclass(frozen=True)
class NoOptions:
    """A method without options (random ranking)."""

