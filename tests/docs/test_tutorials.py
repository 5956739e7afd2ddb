"""Every tutorial page runs as written: its Python blocks execute in order in one namespace
(mktestdocs), in a scratch folder so the plots they save land there, not in the checkout.
`scripts/run_tutorials.py` runs them in docs/tutorials/ instead, to refresh the plots."""

import pathlib

import pytest

from support.helpers import require_cc

mktestdocs = pytest.importorskip("mktestdocs", reason="install it with: pip install mktestdocs")

ROOT = pathlib.Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs" / "tutorials").glob("*.md"))


def test_index_links_every_tutorial():
    index = (ROOT / "docs" / "index.md").read_text()
    assert PAGES, "docs/tutorials/ holds no page"
    for page in PAGES:
        assert f"tutorials/{page.name}" in index, f"docs/index.md does not link {page.name}"


# Each page builds its kernels and some train or emulate: seconds to a minute apiece.
@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_tutorial_runs(page, tmp_path, monkeypatch):
    require_cc()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    mktestdocs.check_md_file(page, memory=True)
