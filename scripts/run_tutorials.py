"""Runs the tutorial pages in docs/tutorials/ as the test suite does, but in that folder,
so the plots they save are refreshed next to the pages; prints each page's run time.

    .venv/bin/python scripts/run_tutorials.py               # every page
    .venv/bin/python scripts/run_tutorials.py ragged.md     # one
"""

import argparse
import os
import pathlib
import time

# One BLAS thread, as the test suite runs them (set before a page first imports numpy).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from mktestdocs import check_md_file

TUTORIALS = pathlib.Path(__file__).resolve().parents[1] / "docs" / "tutorials"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help="page names in docs/tutorials/ (default: all)")
    pages = [TUTORIALS / name for name in parser.parse_args().pages] or sorted(
        TUTORIALS.glob("*.md"))
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.chdir(TUTORIALS)
    for page in pages:
        start = time.perf_counter()
        check_md_file(page, memory=True)
        print(f"{page.name:32s} {time.perf_counter() - start:6.1f} s")


if __name__ == "__main__":
    main()
