"""The docs hang together: the index links every page, and every relative link or image points at a real file."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LINK = re.compile(r"\]\(([^)\s]+)\)")  # [text](target) and ![alt](target)


def relative_targets(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        targets = LINK.findall(f.read())
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


def test_index_links_every_page() -> None:
    pages = {os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))} - {"index.md"}
    linked = set(relative_targets(os.path.join(ROOT, "docs", "index.md")))
    assert pages, "no pages found under docs/"
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


def test_relative_links_resolve() -> None:
    broken = []
    for path in [os.path.join(ROOT, "README.md"), *glob.glob(os.path.join(ROOT, "docs", "*.md"))]:
        for target in relative_targets(path):
            if target and not os.path.exists(os.path.join(os.path.dirname(path), target)):
                broken.append(f"{os.path.relpath(path, ROOT)} -> {target}")
    assert not broken, broken


def test_scripts_stand_alone():
    # A copied script must not send its reader to a file they do not have, and must say what [G] and [S] are.
    for path in glob.glob(os.path.join(ROOT, "sparse_*.py")):
        text = open(path, encoding="utf-8").read()
        assert "SPEC" not in text, f"{os.path.basename(path)} cites SPEC, which its users do not have"
        header = text.split('"""', 2)[1]
        assert "[G] Graesser, Evci, Elsen, Castro" in header and "The State of Sparse Training" in header
        assert "[S] Sokar, Mocanu, Mocanu, Pechenizkiy, Stone" in header and "Map of the file" in header
