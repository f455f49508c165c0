"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int, root: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    """Each example runs from a folder laid out like a checkout (its outputs land there)."""
    for name in ("scenarios", "controllers"):
        (tmp_path / name).symlink_to(root / name)
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})
    out = capsys.readouterr().out
    assert out.strip()
    if "runs/wave" in BLOCKS[index]:
        # the scripted cell wrote its outputs and printed its KPI table
        assert (tmp_path / "runs" / "wave" / "kpis.json").is_file()
        assert "peak joint speed" in out
