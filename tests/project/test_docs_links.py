"""Every relative link of the README, docs/ and the model cards leads somewhere.

A link names a file of the repository, and an anchor after ``#`` names a
heading of that page (GitHub's slug of it) or an explicit ``<a id>``. Pages
are rewritten as results come in; a section renamed breaks the links to it
without any other sign.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
                *(ROOT / "csa_keras" / "pretrained").glob("*/MODEL_CARD.md")])
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)|!\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*$", text, re.MULTILINE):
        base = slug(heading)
        count = seen.get(base, 0)
        found.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    found.update(re.findall(r"<a (?:id|name)=\"([^\"]+)\"", text))
    return found


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "", text)
    return [a or b for a, b in LINK.findall(text)]


def test_the_slug_follows_github():
    assert slug("CSA on CK+48 (`paper` recipe: 100 + 70 epochs, batch 32, Adam 1e-3)") \
        == "csa-on-ck48-paper-recipe-100--70-epochs-batch-32-adam-1e-3"
    assert slug("Voting ResNet on FER2013: the paper's Table 3 at a CPU budget") \
        == "voting-resnet-on-fer2013-the-papers-table-3-at-a-cpu-budget"


def broken_links(page: Path) -> list[str]:
    """The relative links of ``page`` whose file or heading does not exist."""
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such heading")
    return broken


def test_a_missing_file_or_heading_is_found(tmp_path):
    (tmp_path / "other.md").write_text("# Other\n\n## Same\n\n## Same\n\n<a id=\"kept\"></a>\n")
    page = tmp_path / "page.md"
    page.write_text("# Page: one\n\n[a](other.md#same-1) [b](other.md#kept) [c](#page-one) "
                    "[d](https://example.org/x#y) ![e](missing.png) [f](other.md#same-2) "
                    "`[g](nowhere.md)`\n\n```\n[h](nowhere.md)\n```\n")
    assert broken_links(page) == ["missing.png: no such file", "other.md#same-2: no such heading"]


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_leads_to_a_file_and_heading(page):
    assert broken_links(page) == []
