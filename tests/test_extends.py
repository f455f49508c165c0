"""``extends``: a variant takes another scenario's top-level keys and replaces what it gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SCENARIOS

from robocell.errors import ScenarioError
from robocell.scenario.loader import load_scenario

BASE = """\
name: base
seed: 4
duration: 5
robots:
  - {name: r1, model: ur5e}
objects:
  - {name: block, shape: box, size: [0.1, 0.1, 0.1], pose: {xyz: [0.5, 0, 0.05]}}
"""


def test_variant_takes_the_base_and_replaces_whole_keys(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "v.yaml").write_text("extends: base.yaml\nname: variant\nduration: 9\n")
    s = load_scenario(tmp_path / "v.yaml").scenario
    assert (s.name, s.duration, s.seed) == ("variant", 9.0, 4)
    assert [o.name for o in s.objects] == ["block"]


def test_shipped_variants_differ_from_the_default_only_in_the_controller() -> None:
    base = load_scenario(SCENARIOS / "pick_and_place.yaml").scenario
    for name in ("pick_and_place_tracking.yaml", "pick_and_place_payload_aware.yaml"):
        v = load_scenario(SCENARIOS / name).scenario
        assert v.stations == base.stations and v.parts == base.parts and v.robots == base.robots
        assert v.controller != base.controller


def test_error_in_an_inherited_key_names_the_base_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE.replace("size: [0.1, 0.1, 0.1]", "size: [0.1, 0.1]"))
    (tmp_path / "v.yaml").write_text("extends: base.yaml\nname: variant\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "v.yaml")
    e = info.value
    assert e.file == str(tmp_path / "base.yaml") and e.line == 7
    assert e.field is not None and e.field.startswith("objects[0].size")


def test_error_in_the_variant_names_the_variant(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(BASE)
    (tmp_path / "v.yaml").write_text("extends: base.yaml\nname: variant\nduraton: 3\n")
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "v.yaml")
    e = info.value
    assert (e.file, e.line, e.field) == (str(tmp_path / "v.yaml"), 3, "duraton")
    assert "did you mean 'duration'" in e.message


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"v.yaml": "extends: v.yaml\nname: x\n"}, "extends itself"),
        ({"v.yaml": "extends: w.yaml\nname: x\n", "w.yaml": "extends: v.yaml\n"}, "loop"),
        ({"v.yaml": "extends: nowhere.yaml\nname: x\n"}, "file not found"),
        ({"v.yaml": "extends: 3\nname: x\n"}, "names a scenario file"),
    ],
)
def test_bad_extends_is_a_located_error(tmp_path: Path, files: dict, message: str) -> None:
    for n, text in files.items():
        (tmp_path / n).write_text(text)
    with pytest.raises(ScenarioError) as info:
        load_scenario(tmp_path / "v.yaml")
    assert message in info.value.message
    assert info.value.field == "extends" and info.value.line is not None
