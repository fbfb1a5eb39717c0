"""A pretrained image-text model in a local folder (the Hugging Face layout), checked before
anything is loaded, and the one folder this process's ``image:clip`` / ``text:clip`` views use.

A folder holds ``config.json`` (a CLIP, Chinese-CLIP or SigLIP config), ``model.safetensors``,
``preprocessor_config.json`` and the tokenizer's files. Every problem with it is one
ValueError line naming the path, what it lacks and the layout expected. A run records the
folder and the SHA-256 of its weights; loading the run checks the weights against it.

Nothing here imports transformers: checking a folder is cheap.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from fglab.integrity import sha256_file

CONFIG, WEIGHTS, PREPROCESSOR = "config.json", "model.safetensors", "preprocessor_config.json"
#: config.json's ``model_type`` -> the transformers class that loads it.
ARCHITECTURES = {"clip": "CLIPModel", "chinese_clip": "ChineseCLIPModel", "siglip": "SiglipModel"}
#: Each architecture's tokenizer files: any one of these sets will do.
TOKENIZER_FILES = {
    "clip": (("tokenizer.json",), ("vocab.json", "merges.txt")),
    "chinese_clip": (("tokenizer.json",), ("vocab.txt",)),
    "siglip": (("tokenizer.json",), ("spiece.model",)),
}
LAYOUT = (
    "expected a Hugging Face model folder of a CLIP, Chinese-CLIP or SigLIP model: "
    f"{CONFIG}, {WEIGHTS}, {PREPROCESSOR} and the tokenizer's files"
)
#: Files beside the weights up to this size count as settings (tokenizer.json is a few MB).
SETTINGS_MAX_BYTES = 64 << 20
#: The views a model folder provides.
MODEL_VIEWS = ("image:clip", "text:clip")


@dataclass(frozen=True)
class ModelFolder:
    """A checked model folder: where it is, its architecture and its weights' SHA-256."""

    path: Path
    model_type: str
    sha256: str
    settings_sha256: str = ""  # of config.json, the preprocessor's and tokenizer's files

    @property
    def key(self) -> str:
        """A short name for the weights and their settings, part of the feature store's
        names: other weights, or the same weights read otherwise, never hit."""
        return hashlib.sha256(f"{self.sha256}:{self.settings_sha256}".encode()).hexdigest()[:16]

    def record(self) -> dict[str, str]:
        """What a run keeps: the folder and the weights' checksum."""
        return {"path": str(self.path), "sha256": self.sha256, "model_type": self.model_type}


def go_offline() -> None:
    """Switch the Hugging Face hub and transformers offline for this process: with these set
    (and ``local_files_only``) no code path can reach the network."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:  # the hub reads the variable at import: set its constant too if already imported
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = True


def read_model_type(path: Path) -> str:
    """config.json's ``model_type``, one of ARCHITECTURES; a ValueError line otherwise."""
    config_file = path / CONFIG
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ValueError(f"{config_file}: unreadable ({error}); {LAYOUT}") from error
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in ARCHITECTURES:
        raise ValueError(
            f"{config_file}: model_type {model_type!r} is not one of "
            f"{', '.join(ARCHITECTURES)}; {LAYOUT}"
        )
    return str(model_type)


def missing_files(path: Path, model_type: str) -> list[str]:
    """The files of the layout that ``path`` lacks (the tokenizer's first set, if none)."""
    missing = [name for name in (WEIGHTS, PREPROCESSOR) if not (path / name).is_file()]
    sets = TOKENIZER_FILES[model_type]
    if not any(all((path / name).is_file() for name in names) for names in sets):
        missing.append(" + ".join(sets[-1]) + f" (or {sets[0][0]})")
    return missing


def check_folder(path: str | Path) -> ModelFolder:
    """The folder at ``path`` checked (files present, a supported config) and its weights'
    checksum; a ValueError naming the path and what it lacks otherwise."""
    path = Path(path).expanduser().resolve()
    if not path.is_dir():
        what = "not a folder" if path.exists() else "no such folder"
        raise ValueError(f"{path}: {what}; {LAYOUT}")
    if not (path / CONFIG).is_file():
        raise ValueError(f"{path}: no {CONFIG}; {LAYOUT}")
    model_type = read_model_type(path)
    missing = missing_files(path, model_type)
    if missing:
        raise ValueError(f"{path}: missing {', '.join(missing)}; {LAYOUT}")
    return ModelFolder(path, model_type, weights_checksum(path / WEIGHTS),
                       settings_checksum(path))


def settings_checksum(path: Path) -> str:
    """The SHA-256 of every small file beside the weights (config, preprocessor, tokenizer),
    by name: what else decides the vectors."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.iterdir() if p.is_file() and p.name != WEIGHTS):
        if file.stat().st_size <= SETTINGS_MAX_BYTES:
            digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def weights_checksum(weights: Path) -> str:
    """The SHA-256 of the weights file (hex)."""
    try:
        return sha256_file(weights)
    except OSError as error:
        raise ValueError(f"{weights}: unreadable ({error}); {LAYOUT}") from error


_current: ModelFolder | None = None


def use_model_folder(path: str | Path, sha256: str | None = None) -> ModelFolder:
    """Check the folder and make it the one ``image:clip`` and ``text:clip`` read in this
    process. ``sha256``: what a run recorded; weights that differ are a ValueError line."""
    global _current
    go_offline()  # before anything of the folder is read
    folder = check_folder(path)
    if sha256 is not None and folder.sha256 != sha256:
        raise ValueError(
            f"{folder.path / WEIGHTS} changed since the run was made (SHA-256 "
            f"{folder.sha256[:12]}..., the run recorded {sha256[:12]}...): restore that file "
            "or train the run again with --model-path"
        )
    _current = folder
    return folder


def use_recorded_folder(record: dict | None) -> ModelFolder | None:
    """The folder a run recorded (:meth:`ModelFolder.record`), checked and made current."""
    if not record:
        return None
    if not isinstance(record, dict) or not {"path", "sha256"} <= set(record):
        raise ValueError(f"the run's model folder record {record!r} lacks a path or sha256")
    return use_model_folder(record["path"], str(record["sha256"]))


def current_folder(view: str = "image:clip") -> ModelFolder:
    """The folder made current by :func:`use_model_folder`; a ValueError saying how to give
    one if there is none."""
    if _current is None:
        raise ValueError(
            f"view {view} reads a pretrained model: give its folder with --model-path DIR "
            "(a CLIP, Chinese-CLIP or SigLIP model in the Hugging Face layout)"
        )
    return _current


def uses_model_folder(*views: str | None) -> bool:
    """Whether any of ``views`` (``text:tfidf+clip`` and other joined ones included) reads the
    model folder."""
    return any("clip" in view.partition(":")[2].split("+") for view in views if view)
