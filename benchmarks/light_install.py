"""A light environment: the package's own dependencies (``pyproject.toml``), and nothing of TensorFlow.

:func:`light_environment` makes a fresh virtual environment whose
``site-packages`` holds only the distributions that the package's
``dependencies`` name, with their own requirements, linked from the
distributions of the running Python: numpy, OpenCV, Pillow, tqdm, filelock,
the LiteRT interpreter and what they need. TensorFlow, Keras, scikit-learn,
SciPy and Matplotlib (the ``train`` extra) are not importable there, as in a
``pip install csa-keras`` without the extra. Linking rather than installing
keeps it fast and offline; what the light install weighs is measured on the
same files (:func:`installed_bytes`).

Used by ``startup.py`` (the light rows) and the test of the light install
(``tests/project/test_light_install.py``).
"""
from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def declared_dependencies(pyproject: Path = ROOT / "pyproject.toml", extra: str | None = None) -> list[str]:
    """The requirement strings of ``[project] dependencies``, and of the optional ``extra`` too."""
    import tomllib

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return list(project["dependencies"]) + (list(project["optional-dependencies"][extra]) if extra else [])


def _applies(requirement: str) -> bool:
    """Whether a requirement's marker holds here (no extra is asked for)."""
    if ";" not in requirement:
        return True
    marker = requirement.split(";", 1)[1]
    if "extra" in marker:
        return False
    try:
        from packaging.markers import Marker
    except ImportError:
        return True
    return Marker(marker).evaluate()


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions(requirements: list[str]) -> dict[str, importlib.metadata.Distribution]:
    """The installed distributions ``requirements`` need, their requirements followed, by name."""
    found: dict[str, importlib.metadata.Distribution] = {}
    todo = [r for r in requirements if _applies(r)]
    while todo:
        name = _NAME.match(todo.pop()).group(1)
        if _key(name) in found:
            continue
        dist = importlib.metadata.distribution(name)
        found[_key(name)] = dist
        todo += [r for r in (dist.requires or []) if _applies(r)]
    return found


def top_level(dist: importlib.metadata.Distribution) -> set[Path]:
    """The top-level files and folders of ``site-packages`` that a distribution installed."""
    site = Path(sysconfig.get_paths()["purelib"]).resolve()
    entries = set()
    for file in dist.files or []:
        parts = Path(file).parts
        if parts and parts[0] not in ("..", "__pycache__"):
            path = site / parts[0]
            if path.exists():
                entries.add(path)
    return entries


def installed_bytes(entries: set[Path]) -> int:
    """What ``entries`` weigh on disk, files under folders included."""
    total = 0
    for entry in entries:
        if entry.is_file():
            total += entry.stat().st_size
        else:
            total += sum(p.stat().st_size for p in entry.rglob("*") if p.is_file() and not p.is_symlink())
    return total


def light_entries(extra: str | None = None) -> set[Path]:
    """The top-level entries of every distribution the light install needs (with ``extra``: that
    install, the ``train`` extra's TensorFlow and Keras for one)."""
    return {entry for dist in distributions(declared_dependencies(extra=extra)).values()
            for entry in top_level(dist)}


def light_environment(folder: Path, package: Path | None = ROOT) -> Path:
    """A fresh venv in ``folder``/venv whose ``site-packages`` links the light distributions only;
    ``package`` (default: this checkout) is put on its path too. Returns its ``python``."""
    folder = Path(folder)
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    for entry in light_entries():
        os.symlink(entry, site / entry.name)
    if package is not None:
        (site / "checkout.pth").write_text(f"{Path(package).resolve()}\n")
    return python
