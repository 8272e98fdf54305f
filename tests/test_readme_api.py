"""The README's "Python API" section runs as written (every ``python`` block in it, in order, in one namespace)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def api_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_python_api_example_runs(tmp_path, monkeypatch, capsys):
    blocks = api_blocks()
    assert len(blocks) == 3
    monkeypatch.chdir(tmp_path)  # the example writes runs/api/ relative to where it runs
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own README
    printed = capsys.readouterr().out
    assert re.search(r"F1 0\.\d{3}, ROC-AUC 0\.\d{3}, removed \d+", printed)
    assert namespace["scores"]["f1"] > 0.5 and namespace["X"].shape == (1438, 64)
    assert namespace["result"].flagged.shape == (1438,)
    assert (tmp_path / "runs" / "api" / "results.json").is_file() and (tmp_path / "runs" / "api" / "report.html").is_file()
