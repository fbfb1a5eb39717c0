"""What a fitted fglab method holds, as the helpers that save, load and report on it read it:
a structural type, so those helpers need not import the method (which imports them)."""

from __future__ import annotations

from typing import Any, Protocol

from scipy import sparse

from fglab.config import FGLabConfig
from fglab.labels import TextGrades
from fglab.models.siamese import CrossModalNetwork
from fglab.training.loop import StageResult


class FittedFGLab(Protocol):
    """The fitted state of :class:`fglab.training.fglab_method.FGLabMethod`."""

    config: FGLabConfig
    networks_: list[CrossModalNetwork]
    vocabulary_: list[str]
    language_: str
    n_sentence_: int  # sentence-embedding columns after the tf-idf ones
    laplacian_: sparse.csr_matrix | None
    stages_: dict[str, StageResult]
    timings_: dict[str, float]
    siamese_map_: float | None
    grades_: TextGrades | None  # the teacher's grades (fit only; not saved)
    report_data_: dict[str, Any]  # training labels and tokens (fit only; not saved)
