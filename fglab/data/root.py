"""Where data sets live: ``--data-root``, else ``$FGLAB_DATA``, else ``../shared/data``,
else ``~/.cache/fglab/data``."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "FGLAB_DATA"


def candidate_roots(explicit: str | os.PathLike[str] | None = None) -> list[Path]:
    """The data roots to try, in order of precedence."""
    if explicit is not None:
        return [Path(explicit).expanduser()]
    roots: list[Path] = []
    if os.environ.get(ENV_VAR):
        roots.append(Path(os.environ[ENV_VAR]).expanduser())
    roots.append(Path.cwd().parent / "shared" / "data")
    # A checkout installed in place sits beside ../shared as well, wherever the command runs.
    repo_root = Path(__file__).resolve().parents[2]
    if (repo_root / "pyproject.toml").exists():
        roots.append(repo_root.parent / "shared" / "data")
    roots.append(Path.home() / ".cache" / "fglab" / "data")
    return list(dict.fromkeys(roots))


def resolve_data_root(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The first candidate root that exists; the explicit one is never second-guessed."""
    roots = candidate_roots(explicit)
    for root in roots:
        if root.is_dir():
            return root
    tried = ", ".join(str(r) for r in roots)
    raise FileNotFoundError(
        f"no data root found (tried {tried}); pass --data-root or set ${ENV_VAR}"
    )


def resolve_dataset_dir(name: str, data_root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of data set ``name``: a path to a folder, or a name under the data root."""
    as_path = Path(name).expanduser()
    if as_path.is_dir() and (as_path / "trainset_txt_img_cat.list").exists():
        return as_path
    root = resolve_data_root(data_root)
    folder = root / name
    if not folder.is_dir():
        available = sorted(p.name for p in root.iterdir() if p.is_dir())
        raise FileNotFoundError(
            f"data set {name!r} not found under {root}; available: {', '.join(available) or 'none'}"
        )
    return folder
