"""What a benchmark records of the code it measured."""

import json
import subprocess

import pytest

from pixel_dqn.benchmarking import DirtyCheckout, Provenance, code_version, publish


def test_code_version_names_the_commit_and_whether_the_tree_is_clean(tmp_path):
    def git(*args):
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              cwd=tmp_path, capture_output=True, text=True, check=True).stdout

    assert code_version(tmp_path) == "unknown (not a git checkout)"
    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-qm", "one")
    commit = git("rev-parse", "--short=10", "HEAD").strip()
    assert code_version(tmp_path) == f"commit {commit} (clean tree)"
    (tmp_path / "notes.txt").write_text("untracked files do not count\n")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "b.md").write_text("old figures\n")
    git("add", "benchmarks/b.md")
    git("commit", "-qm", "two")
    commit = git("rev-parse", "--short=10", "HEAD").strip()
    (tmp_path / "benchmarks" / "b.md").write_text("new figures: benchmarks write here\n")
    assert code_version(tmp_path) == f"commit {commit} (clean tree)"
    assert Provenance.of_this_run(tmp_path, "scripts/x.py").code == f"commit {commit} (clean tree)"
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_version(tmp_path) == f"commit {commit} with uncommitted changes"
    # a benchmark of uncommitted code is refused in one line, unless told, and then says so
    with pytest.raises(DirtyCheckout, match=r"^error: .* has uncommitted changes .*--allow-dirty"):
        Provenance.of_this_run(tmp_path, "scripts/x.py")
    told = Provenance.of_this_run(tmp_path, "scripts/x.py", allow_dirty=True)
    assert told.code == f"commit {commit} with uncommitted changes"


def test_every_benchmark_file_starts_with_its_provenance(tmp_path, capsys):
    provenance = Provenance(command="python scripts/x.py --n 3", machine="2 CPU cores (cpu)",
                            code="commit abc (clean tree)", date="2026-12-05")
    markdown = "\n".join(["# X", "", *provenance.markdown(), "- figure: 1", ""])
    publish(tmp_path, "x", markdown, {"figure": 1}, provenance)
    record = json.loads((tmp_path / "x.json").read_text())
    assert list(record) == ["command", "machine", "code", "date", "figure"]
    assert record["code"] == "commit abc (clean tree)" and record["figure"] == 1
    text = (tmp_path / "x.md").read_text()
    assert "- code: commit abc (clean tree)" in text and "- machine: 2 CPU cores (cpu)" in text
    assert capsys.readouterr().out.strip() == markdown.strip()
