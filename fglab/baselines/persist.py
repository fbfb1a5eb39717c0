"""Saving fitted baselines without pickle: every attribute as JSON or a NumPy array.

A method folder holds ``state.json`` (the method's attributes as a tree: plain values inline,
arrays by name, nested estimators by class name) and ``arrays.safetensors``. Loading rebuilds
only classes from a fixed list (the baselines and the scikit-learn estimators inside them) and
sets the saved attributes on them, as unpickling would, but nothing in the files can name code
to run. What libsvm's C code trusts (an SVC's array shapes) is checked before use.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Self

import numpy as np
import sklearn
from safetensors import SafetensorError
from safetensors.numpy import load as load_arrays
from safetensors.numpy import save as save_arrays

from fglab.io import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

STATE_FILE, ARRAYS_FILE = "state.json", "arrays.safetensors"
FORMAT, FORMAT_VERSION = "fglab-baseline", 1
NUMERIC_KINDS = "biuf"  # bool, int, unsigned, float: what an array or scalar may hold
#: What a damaged or forged state can raise while it is read (all become one ValueError).
UNREADABLE = (SafetensorError, ValueError, TypeError, KeyError, AttributeError, RecursionError)


#: The baseline classes a saved state may name, filled as they are defined (a state is read by
#: its class's ``load``, so the class and what it holds are imported by then).
SAVED_METHODS: dict[str, type] = {}


def _classes() -> dict[str, type]:
    """The classes a saved baseline may contain, by a name stable across versions."""
    from sklearn import calibration
    from sklearn.cross_decomposition import CCA, PLSCanonical
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    kinds = [
        StandardScaler, PCA, CCA, PLSCanonical, LogisticRegression, SVC, Pipeline,
        calibration.CalibratedClassifierCV, *SAVED_METHODS.values(),
    ]
    # the parts of a calibrated SVC (the fallback of sm-svm), private to scikit-learn
    private = ("_CalibratedClassifier", "_SigmoidCalibration")
    kinds += [getattr(calibration, name, None) for name in private]
    return {kind.__qualname__: kind for kind in kinds if kind is not None}


class SavedAsArrays:
    """``save(directory)`` / ``load(directory)`` for a method made of arrays and estimators.
    Every public subclass may appear in a saved state (:data:`SAVED_METHODS`)."""

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            SAVED_METHODS[cls.__qualname__] = cls

    def save(self, directory: Path) -> None:
        save_state(self, directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        return load_state(cls, directory)


def save_state(method: object, directory: Path) -> None:
    """``directory``/state.json and arrays.safetensors of a fitted method."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    encoder = _Encoder({kind: name for name, kind in _classes().items()})
    tree = encoder.encode(method, type(method).__name__)
    atomic_write_bytes(directory / ARRAYS_FILE, save_arrays(encoder.arrays))
    state = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "scikit_learn": sklearn.__version__, "method": tree,
    }
    atomic_write_text(directory / STATE_FILE, json.dumps(state, indent=1))


def load_state(cls: type, directory: Path) -> Any:
    """The ``cls`` saved in ``directory``; a ValueError names what is wrong with it."""
    directory = Path(directory)
    for name in (STATE_FILE, ARRAYS_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"{cls.__name__} in {directory}: {name} is missing")
    try:
        state = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
        if state.get("format") != FORMAT or state.get("format_version") != FORMAT_VERSION:
            raise ValueError("not a baseline of this format version")
        if state["scikit_learn"] != sklearn.__version__:
            logger.warning("%s was saved with scikit-learn %s, this is %s",
                           directory, state["scikit_learn"], sklearn.__version__)
        arrays = load_arrays((directory / ARRAYS_FILE).read_bytes())
        method = _Decoder(arrays, _classes()).decode(state["method"])
    except UNREADABLE as error:
        raise ValueError(f"{directory}: unreadable {cls.__name__} ({error})") from error
    if type(method) is not cls:
        raise ValueError(f"{directory} holds a {type(method).__name__}, not a {cls.__name__}")
    return method


class _Encoder:
    def __init__(self, names: dict[type, str]) -> None:
        self.names = names
        self.arrays: dict[str, np.ndarray] = {}

    def encode(self, value: Any, path: str) -> Any:
        plain = isinstance(value, (bool, int, float, str)) and not isinstance(value, np.generic)
        if value is None or plain:
            return value
        if isinstance(value, np.generic):
            _check_kind(value.dtype, path)
            return {"scalar": value.dtype.str, "value": value.item()}
        if isinstance(value, np.ndarray):
            _check_kind(value.dtype, path)
            name = str(len(self.arrays))
            self.arrays[name] = np.ascontiguousarray(value)
            fortran = value.ndim > 1 and value.flags.f_contiguous and not value.flags.c_contiguous
            return {"array": name, "order": "F" if fortran else "C"}
        if isinstance(value, list):
            return [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"tuple": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, dict) and all(isinstance(k, str) for k in value):
            return {"dict": {k: self.encode(v, f"{path}[{k!r}]") for k, v in value.items()}}
        if isinstance(value, np.random.Generator) and isinstance(
            value.bit_generator, np.random.PCG64
        ):
            return {"generator": value.bit_generator.state}
        name = self.names.get(type(value))
        if name is None:
            raise TypeError(f"{path}: cannot save a {type(value).__qualname__} without pickle")
        attributes = {k: self.encode(v, f"{path}.{k}") for k, v in vars(value).items()}
        return {"object": name, "attributes": attributes}


def _check_kind(dtype: np.dtype, path: str) -> None:
    if dtype.kind not in NUMERIC_KINDS:
        raise TypeError(f"{path}: arrays of {dtype} cannot be saved without pickle")


class _Decoder:
    def __init__(self, arrays: dict[str, np.ndarray], classes: dict[str, type]) -> None:
        self.arrays = arrays
        self.classes = classes

    def decode(self, node: Any) -> Any:
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict):
            raise ValueError(f"unexpected {type(node).__name__} in the state")
        if "array" in node:  # a writable copy, in the saved memory order
            array = self.arrays[node["array"]]
            return np.asfortranarray(array) if node["order"] == "F" else np.array(array)
        if "scalar" in node:
            dtype = np.dtype(node["scalar"])
            if dtype.kind not in NUMERIC_KINDS:
                raise ValueError(f"scalar of type {dtype}")
            return dtype.type(node["value"])
        if "tuple" in node:
            return tuple(self.decode(v) for v in node["tuple"])
        if "dict" in node:
            return {str(k): self.decode(v) for k, v in node["dict"].items()}
        if "generator" in node:
            generator = np.random.Generator(np.random.PCG64())
            generator.bit_generator.state = node["generator"]
            return generator
        if "object" in node:
            kind = self.classes.get(node["object"])
            if kind is None:
                raise ValueError(f"{node['object']!r} is not a class a baseline may hold")
            attributes = {k: self.decode(v) for k, v in node["attributes"].items()}
            for name in attributes:
                if name.startswith("__") or callable(getattr(kind, name, None)) or isinstance(
                    getattr(kind, name, None), property
                ):
                    raise ValueError(f"{node['object']} attribute {name!r} would hide its class's")
            value = kind.__new__(kind)
            value.__dict__.update(attributes)
            _check_svc(value)
            return value
        raise ValueError(f"unexpected node with keys {sorted(node)} in the state")


def _check_svc(value: object) -> None:
    """An SVC's arrays go to libsvm's C code unchecked: their shapes must agree."""
    from sklearn.svm import SVC

    fitted = ("support_vectors_", "_n_support", "_dual_coef_", "_intercept_", "_probA", "_probB")
    if not isinstance(value, SVC) or not any(name in vars(value) for name in fitted):
        return  # an unfitted SVC (a calibrated one's template) never reaches libsvm
    classes = len(value.classes_)
    pairs = classes * (classes - 1) // 2
    vectors, counts = value.support_vectors_, value._n_support
    agree = (
        value.kernel in ("linear", "poly", "rbf", "sigmoid")
        and vectors.ndim == 2 and vectors.shape[1] == value.n_features_in_
        and counts.shape == (classes,) and counts.min(initial=0) >= 0
        and int(counts.sum()) == len(vectors) == len(value.support_)
        and value._dual_coef_.shape == (classes - 1, len(vectors))
        and value._intercept_.shape == (pairs,)
        and all(getattr(value, p).shape in ((pairs,), (0,)) for p in ("_probA", "_probB"))
    )
    if not agree:
        raise ValueError("an SVC whose support vector arrays do not agree in shape")
