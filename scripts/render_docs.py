"""Render the pages generated from the code and the committed benchmarks.

    python scripts/render_docs.py           # writes them
    python scripts/render_docs.py --check   # exit status 1 if a committed page differs

``docs/configuration.md`` comes from the config schemas (pixel_dqn.config_reference); the result
tables between ``<!-- results:NAME -->`` and ``<!-- /results -->`` in README.md and docs/ come
from benchmarks/*.json (pixel_dqn.results_tables). ``tests/test_docs.py`` runs the check.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pixel_dqn.config_reference import page_path, render
from pixel_dqn.results_tables import fill_tables

ROOT = Path(__file__).resolve().parents[1]


def rendered_pages(root: Path) -> dict[Path, str]:
    """Every generated page's path and the text it should have."""
    pages = {page_path(root): render()}
    for page in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        if page not in pages:
            text = page.read_text()
            filled = fill_tables(text, root / "benchmarks")
            if filled != text:
                pages[page] = filled
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming each page that differs")
    args = parser.parse_args()
    stale = []
    for path, text in rendered_pages(ROOT).items():
        if path.exists() and path.read_text() == text:
            continue
        if args.check:
            stale.append(str(path.relative_to(ROOT)))
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    if stale:
        sys.exit(f"error: {', '.join(stale)} differ from what scripts/render_docs.py renders: "
                 "run it and commit the result")


if __name__ == "__main__":
    main()
