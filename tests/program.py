"""The program's files, for tests that run main.py from a copy with an edited config.py."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("foundation", "live")  # the folders main.py imports from


def copy_program(directory: Path) -> Path:
    """The top-level modules and the packages main.py imports, copied into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for module in ROOT.glob("*.py"):
        shutil.copy(module, directory / module.name)
    for package in PACKAGES:
        shutil.copytree(ROOT / package, directory / package, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return directory
