"""The documentation: generated pages equal what the code renders, every config key is in the
reference, and the site builds with ``mkdocs build --strict``."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from pixel_dqn.config_reference import documented_keys, every_key, page_path, render
from pixel_dqn.results_tables import fill_tables, table


def test_the_committed_generated_pages_are_what_the_code_renders():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "render_docs.py"), "--check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_configuration_reference_lists_every_key_of_every_schema():
    committed = page_path(ROOT).read_text()
    assert every_key() <= documented_keys(committed), every_key() - documented_keys(committed)
    assert committed == render()


def test_a_schema_field_missing_from_the_reference_is_found():
    page = render()
    row = next(line for line in page.splitlines() if line.startswith("| `trainer.double_dqn`"))
    assert "trainer.double_dqn" not in documented_keys(page.replace(row + "\n", ""))


def test_a_result_table_is_rendered_from_the_benchmark_json_between_its_markers(tmp_path):
    text = "before\n<!-- results:headline -->\nstale\n<!-- /results -->\nafter\n"
    filled = fill_tables(text, ROOT / "benchmarks")
    assert filled.startswith("before\n<!-- results:headline -->\n| agent |")
    assert filled.endswith("<!-- /results -->\nafter\n") and "stale" not in filled
    assert table("headline", ROOT / "benchmarks") in filled
    with pytest.raises(ValueError, match="no result table named 'nope'"):
        fill_tables("<!-- results:nope -->\n<!-- /results -->", ROOT / "benchmarks")


def test_no_page_refers_to_an_issue_by_number():
    pages = [ROOT / "README.md", *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "benchmarks").rglob("*.md")]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in pages if not p.is_symlink()
             for m in re.finditer(r"issue [0-9]+", p.read_text())]
    assert not found, found


def test_the_site_builds_strict(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.prefix, "bin", "mkdocs"))
    if not Path(mkdocs).exists():
        reason = 'mkdocs is not installed (pip install -e ".[docs]")'
        if os.environ.get("CI"):
            pytest.fail(f"CI must build the docs: {reason}")
        pytest.skip(reason)
    proc = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "configuration" / "index.html").is_file()


CITED = re.compile(r"\]\((benchmarks/[\w./-]+)\)|`(benchmarks/[\w./-]+\.md)`")
COMMIT = re.compile(r"commit [0-9a-f]{7,}|`[0-9a-f]{7,10}`")
CPU = re.compile(r"AMD EPYC|Intel")


def test_every_benchmark_file_the_docs_cite_names_its_commit_and_cpu():
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    cited = {ROOT / (m.group(1) or m.group(2)) for page in pages
             for m in CITED.finditer(page.read_text())}
    files = {path / "README.md" if path.is_dir() else path for path in cited
             if path.is_dir() or path.suffix in (".md", ".json")}
    assert files, "no page cites a benchmark file"
    missing = sorted(str(f.relative_to(ROOT)) for f in files if not f.is_file())
    assert not missing, missing
    unnamed = sorted(str(f.relative_to(ROOT)) for f in files
                     if not (COMMIT.search(f.read_text()) and CPU.search(f.read_text())))
    assert not unnamed, unnamed
