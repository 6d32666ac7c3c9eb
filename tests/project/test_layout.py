"""docs/layout.md is the one map of the packages: it names every module, and no package docstring lists them."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("csa_keras", "voting_resnet")


def _modules():
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py") if p.name != "__init__.py")


def test_the_layout_names_every_module():
    text = (ROOT / "docs" / "layout.md").read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in _modules() if p.name not in text]
    assert missing == []


def test_no_package_docstring_repeats_the_map():
    lists = []
    for init in sorted(p for package in PACKAGES for p in (ROOT / package).rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        bullets = [line for line in doc.splitlines() if line.lstrip().startswith(("- :mod:", "* :mod:"))]
        if bullets:
            lists.append(f"{init.relative_to(ROOT)}: {len(bullets)} modules listed")
    assert lists == []
