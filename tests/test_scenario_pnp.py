"""Pick-and-place keys of the scenario format: every mistake is one located line, and the
reference (docs/scenario.md) matches what the devices publish.

The broken files are ``tests/broken/pnp_*.yaml`` (also run by ``test_scenario_errors.py``, which
reads their first two lines). Their third line names the field the error must report::

    # expect-line: 19
    # expect: 'outbin' is not a conveyor (conveyors: infeed)
    # expect-field: parts[0].on
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from robocell.cell.build import cell_from_scenario
from robocell.cli import main
from robocell.errors import ScenarioError
from robocell.scenario import load_scenario

ROOT = Path(__file__).resolve().parents[1]
BROKEN = sorted((ROOT / "tests" / "broken").glob("pnp_*.yaml"))
DOC = ROOT / "docs" / "scenario.md"

#: the mistakes a user can make with the pick-and-place keys that must each have a broken file
REQUIRED = [
    "pnp_unknown_station_type",  # unknown station type
    "pnp_conveyor_misspelt_key",  # a typo in a conveyor key: nearest-key suggestion
    "pnp_parts_on_bin",  # parts[].on names a bin
    "pnp_parts_on_missing_conveyor",  # parts[].on names no station
    "pnp_part_box_without_size",  # a part type box without size
    "pnp_fixed_arrivals_without_interval",  # arrivals fixed without interval
    "pnp_beam_beyond_belt",  # a beam at beyond the belt length
    "pnp_camera_without_view",  # camera with neither looks_at nor region
    "pnp_gripper_and_tool_tcp",  # gripper plus tool.tcp
    "pnp_duplicate_station_sensor_name",  # a sensor named like a station
    "pnp_duplicate_station_name",  # two stations with one name
    "pnp_negative_belt_speed",  # negative belt speed
    "pnp_unload_after_negative",  # bad unload_after: < 0
    "pnp_unload_after_text",  # bad unload_after: not a number
    "pnp_unload_after_on_conveyor",  # unload_after where it does not exist
]


def _expectations(path: Path) -> tuple[int, str, str]:
    head = path.read_text().splitlines()[:3]
    keys = [h.split(":", 1)[0] for h in head]
    assert keys == ["# expect-line", "# expect", "# expect-field"], f"{path.name}: header {head}"
    line = int(head[0].split(":", 1)[1])
    text = head[1].split(":", 1)[1].strip()
    fld = head[2].split(":", 1)[1].strip()
    return line, text, fld


def _line_holds(path: Path, line: int, fld: str) -> bool:
    """Whether ``line`` of the file is where ``fld`` is written: the line of its key, or the
    first line of a list entry for a field that ends in an index."""
    text = path.read_text().splitlines()[line - 1]
    if fld.endswith("]"):
        return text.lstrip().startswith("-")
    key = re.split(r"[.\[]", fld.rsplit(".", 1)[-1])[0]
    return re.search(rf"(^|[\s{{,]){re.escape(key)}:", text) is not None


def test_every_required_mistake_has_a_broken_file() -> None:
    stems = {p.stem for p in BROKEN}
    missing = [s for s in REQUIRED if s not in stems]
    assert not missing, missing


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_validate_reports_file_line_field_and_exits_2(path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    line, text, fld = _expectations(path)
    assert _line_holds(path, line, fld), f"{path.name}: line {line} does not hold {fld}"
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    assert code == 2, err
    assert out == ""
    assert err.count("\n") == 1, f"not one line: {err!r}"
    assert "Traceback" not in err
    assert err.startswith(f"robocell: error: {path}:{line}: {fld}: "), err
    assert text in err, err


@pytest.mark.parametrize(
    ("name", "stage"),
    [
        # structure and types: the loader alone finds them (editors, load_scenario users)
        ("pnp_unknown_station_type", "load"),
        ("pnp_duplicate_station_sensor_name", "load"),
        ("pnp_gripper_and_tool_tcp", "load"),
        ("pnp_arrival_times_not_increasing", "load"),
        # checks that need the cell: the builder finds them, located the same way
        ("pnp_parts_on_bin", "build"),
        ("pnp_beam_beyond_belt", "build"),
        ("pnp_camera_period", "build"),
        ("pnp_parallel_gripper_too_light", "build"),
    ],
)
def test_api_raises_located_scenario_error(name: str, stage: str) -> None:
    path = ROOT / "tests" / "broken" / f"{name}.yaml"
    line, text, fld = _expectations(path)
    with pytest.raises(ScenarioError) as info:
        loaded = load_scenario(path)
        assert stage == "build", f"{name}: load_scenario accepted it"
        cell_from_scenario(loaded).close()
    exc = info.value
    assert (exc.file, exc.line, exc.field) == (str(path), line, fld)
    assert text in exc.message


@pytest.mark.parametrize("name", ["pnp_parts_on_bin", "pnp_unknown_station_type"])
def test_cli_process_exits_2_without_traceback(name: str) -> None:
    path = ROOT / "tests" / "broken" / f"{name}.yaml"
    line, _, fld = _expectations(path)
    proc = subprocess.run(
        [sys.executable, "-m", "robocell.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert f"{path}:{line}: {fld}: " in proc.stderr


# -- what the loader does not locate well yet (scenario/loader.py) ---------------------------------
def _error(tmp_path: Path, body: str) -> ScenarioError:
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\nduration: 5\nrobots: [{name: r1, model: ur5e}]\n" + textwrap.dedent(body)
    )
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    return info.value


def test_misspelt_bin_key_lists_the_bin_keys(tmp_path: Path) -> None:
    exc = _error(
        tmp_path,
        """\
        stations:
          - type: bin
            name: outbin
            pose: {xyz: [0.5, 0.2, 0.6]}
            size: [0.4, 0.3, 0.15]
            unload_afer: 4
        """,
    )
    assert exc.field == "stations[0].unload_afer"
    assert "did you mean 'unload_after'?" in exc.message
    assert "valid keys: name, pose, size, type, unload_after, wall" in exc.message


def test_misspelt_required_conveyor_key_is_suggested(tmp_path: Path) -> None:
    exc = _error(
        tmp_path,
        """\
        stations:
          - type: conveyor
            name: infeed
            pose: {xyz: [0, -0.45, 0.75]}
            lenght: 2.0
            width: 0.3
        """,
    )
    assert (exc.line, exc.field) == (8, "stations[0].lenght")
    assert "did you mean 'length'?" in exc.message


# -- the valid example and the schema ------------------------------------------------------------
def test_pick_and_place_example_validates(capsys, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["validate", "scenarios/pick_and_place.yaml"]) == 0
    out, err = capsys.readouterr()
    assert "scenarios/pick_and_place.yaml: valid" in out
    assert err == ""


def test_schema_has_the_pick_and_place_keys(capsys) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    defs = schema["$defs"]
    top = schema["properties"]
    for key in ("stations", "parts", "sensors", "ideal_cycle_time"):
        assert key in top, key

    def tags(prop: dict) -> set[str]:
        return set(prop["items"]["discriminator"]["mapping"])

    assert tags(top["stations"]) == {"conveyor", "bin", "pallet", "fixture", "machining"}
    assert tags(top["sensors"]) == {"beam", "presence", "camera"}
    for spec in ("BinSpec", "PalletSpec", "FixtureSpec"):
        assert "unload_after" in defs[spec]["properties"], spec
    assert "unload_after" not in defs["ConveyorSpec"]["properties"]
    source = defs["PartSourceSpec"]["properties"]
    assert {"on", "at", "arrivals", "jitter", "types", "max_parts"} <= set(source)
    assert {"process", "interval", "rate_per_min", "times", "start"} <= set(
        defs["ArrivalsSpec"]["properties"]
    )
    assert {"y", "yaw_deg"} == set(defs["JitterSpec"]["properties"])
    assert {"looks_at", "region_pose", "region_size"} <= set(defs["CameraSpec"]["properties"])
    assert "gripper" in defs["ToolSpec"]["properties"]
    assert {"cup_diameter", "vacuum_kpa"} <= set(defs["VacuumGripperSpec"]["properties"])
    assert {"max_width", "grip_force"} <= set(defs["ParallelGripperSpec"]["properties"])


# -- the reference matches the devices -----------------------------------------------------------
EVERY_DEVICE = """\
name: every pick-and-place device
duration: 1
robots:
  - name: r1
    model: ur5e
    tool:
      gripper: {type: vacuum}
  - name: r2
    model: ur5e
    base: {xyz: [1.5, 0, 0]}
    tool:
      gripper: {type: parallel}
stations:
  - {type: conveyor, name: infeed, pose: {xyz: [0, -0.45, 0.75]}, length: 2.0, width: 0.3}
  - {type: bin, name: outbin, pose: {xyz: [0.5, 0.2, 0.6]}, size: [0.4, 0.3, 0.15]}
  - {type: pallet, name: pal, pose: {xyz: [0.5, -0.2, 0.6]}, rows: 2, cols: 3, pitch: [0.1, 0.1]}
  - {type: fixture, name: nest, pose: {xyz: [1.0, 0.3, 0.6]}, size: [0.06, 0.06, 0.04]}
parts:
  - name: feeder
    on: infeed
    arrivals: {process: fixed, interval: 1}
    types: [{shape: box, size: [0.06, 0.06, 0.04], mass: 0.15}]
sensors:
  - {type: beam, name: gate, station: infeed, at: 1.2}
  - {type: presence, name: here, pose: {xyz: [0.5, 0.2, 0.7]}, size: [0.4, 0.3, 0.2]}
  - {type: camera, name: cam, looks_at: infeed}
"""

#: the names in EVERY_DEVICE of each device column of the doc's signal table
NAMES = {
    "conveyor": ["infeed"],
    "bin, pallet, fixture": ["outbin", "pal", "nest"],
    "pallet": ["pal"],
    "part source": ["feeder"],
    "beam": ["gate"],
    "presence": ["here"],
    "vacuum gripper": ["r1"],
    "parallel gripper": ["r2"],
    "gripper": ["r1", "r2"],
}


def _doc_section(title: str) -> str:
    text = DOC.read_text()
    start = text.index(f"\n### {title}\n")
    end = text.find("\n## ", start)
    return text[start : end if end > 0 else None]


def _table(section: str, header: str) -> list[list[str]]:
    """Rows of the markdown table whose header row starts with ``| header |``."""
    lines = section.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith(f"| {header} |"))
    rows = []
    for ln in lines[i + 2 :]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return rows


def _documented_signals() -> set[str]:
    out: set[str] = set()
    for row in _table(_doc_section("Signals and events"), "signal"):
        device = row[1]
        assert device in NAMES, f"unknown device column {device!r}"
        for template in re.findall(r"`([^`]+)`", row[0]):
            for name in NAMES[device]:
                out.add(template.replace("<name>", name).replace("<robot>", name))
    return out


def test_documented_signals_are_the_published_ones(tmp_path: Path) -> None:
    path = tmp_path / "every_device.yaml"
    path.write_text(EVERY_DEVICE)
    cell = cell_from_scenario(load_scenario(path))
    try:
        cell.start()
        published = set(cell.signals)
    finally:
        cell.close()
    documented = _documented_signals()
    assert published - documented == set(), "published but not documented"
    assert documented - published == set(), "documented but not published"


def test_documented_events_cover_the_emitted_ones() -> None:
    src = ROOT / "src" / "robocell"
    files = [*(src / "pnp").glob("*.py"), src / "cell" / "devices.py"]
    emitted = set()
    for f in files:
        emitted |= set(re.findall(r"emit\(\s*\"(\w+)\"", f.read_text()))
    # the sensors' edge events are emitted under their kind, and the cell emits collisions
    emitted |= {"beam", "presence", "collision"}
    documented = {row[0].strip("`") for row in _table(_doc_section("Signals and events"), "kind")}
    assert emitted - documented == set()
    assert {
        "spawned",
        "detected",
        "picked",
        "placed",
        "dropped",
        "missed",
        "grip_lost",
        "landed",
        "unloaded",
        "beam",
        "presence",
        "collision",
    } <= documented


def test_documented_keys_are_the_model_keys() -> None:
    """Every key of the pick-and-place models has a row in the reference, and no row names a
    key the model does not have."""
    from robocell.scenario import model as m

    text = DOC.read_text()
    pnp = text[text.index("\n## Pick and place\n") : text.index("\n### Signals and events\n")]
    grip = text[text.index("\n### `robots[].tool.gripper`\n") : text.index("\n## `objects[]`\n")]

    def keys_in(part: str) -> set[str]:
        found = set()
        for row in re.findall(r"^\| (`[^|]+) \|", part, flags=re.M):
            found |= set(re.findall(r"`(\w+)`", row))
        return found

    doc_keys = keys_in(pnp) | keys_in(grip)
    specs = [
        m.ConveyorSpec,
        m.BinSpec,
        m.PalletSpec,
        m.FixtureSpec,
        m.PartSourceSpec,
        m.ArrivalsSpec,
        m.JitterSpec,
        m.PartTypeSpec,
        m.BeamSpec,
        m.PresenceSpec,
        m.CameraSpec,
        m.VacuumGripperSpec,
        m.ParallelGripperSpec,
    ]
    model_keys = {k for s in specs for k in s.model_fields}
    assert model_keys - doc_keys == set(), "model keys without a row in docs/scenario.md"
    assert doc_keys - model_keys == set(), "documented keys the model does not have"
    top = {r[0].strip("`") for r in _table(text[text.index("\n## Top level\n") :], "key")}
    assert {"stations", "parts", "sensors", "ideal_cycle_time"} <= top


def test_a_gripper_tool_takes_the_scenario_name_and_keeps_its_own_tcp(tmp_path: Path) -> None:
    text = (ROOT / "scenarios" / "pick_and_place.yaml").read_text()
    assert "      name: vacuum\n" in text
    f = tmp_path / "named.yaml"
    f.write_text(
        text.replace("      name: vacuum\n", "      name: cup40\n").replace(
            "controllers/", f"{ROOT}/controllers/"
        )
    )
    cell = cell_from_scenario(load_scenario(f))
    try:
        tool = cell.robots["r1"].tool
        assert tool.name == "cup40"
        assert tool.tcp.t.tolist() == [0.0, 0.0, 0.12]  # the gripper's tcp_offset
        assert tool.mass == 0.4 and tool.radius == 0.02  # the cup's own body
    finally:
        cell.close()
