"""The user documentation: its links resolve, and the BL-JUST page covers every bilevel key."""
import os
import re

import pytest

from bljust.train.config import defaults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md", "docs/bljust.md", "docs/laser.md", "docs/recipes.md"]


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    path = os.path.join(ROOT, page)
    text = open(path, encoding="utf-8").read()
    links = [t for t in re.findall(r"\]\(([^)#]+)\)", text) if "://" not in t]
    for target in links:
        assert os.path.exists(os.path.join(os.path.dirname(path), target)), f"{page}: broken link {target}"


def test_readme_points_to_every_page():
    text = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    for page in PAGES[1:]:
        assert f"]({page})" in text, page


def test_bljust_page_documents_every_bilevel_key():
    text = open(os.path.join(ROOT, "docs", "bljust.md"), encoding="utf-8").read()
    missing = [k for k in defaults("train")["bilevel"] if k not in text]
    assert not missing, f"docs/bljust.md does not mention bilevel.{missing}"
