"""The G-code interpreter against the LinuxCNC definitions: arcs, units, modes, cycles, errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from robocell.cli import main
from robocell.errors import ScenarioError
from robocell.machining.gcode import GCodeError, Move, parse, parse_file
from robocell.machining.gcode_report import format_summary, summarize

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "gcode"
CORPUS_FILES = sorted(p for p in CORPUS.glob("*") if p.suffix in (".nc", ".ngc", ".gcode"))
MM = 1e-3
NORMAL = {"XY": np.array([0, 0, 1.0]), "ZX": np.array([0, 1.0, 0]), "YZ": np.array([1.0, 0, 0])}


def mm(*xyz: float) -> np.ndarray:
    return np.array(xyz) * MM


def ends(program_text: str, **kw: object) -> list[tuple[str, list[float]]]:
    """(kind, end in mm rounded to µm) of every move."""
    prog = parse(program_text, **kw)  # type: ignore[arg-type]
    return [(m.kind, [round(v / MM, 3) + 0.0 for v in m.end]) for m in prog.moves]


def only_arc(text: str, **kw: object) -> Move:
    arcs = [m for m in parse(text, **kw).moves if m.kind == "arc"]  # type: ignore[arg-type]
    assert len(arcs) == 1
    return arcs[0]


def assert_on_circle(m: Move, radius: float, center: np.ndarray, tol: float = 1e-9) -> None:
    a = {"XY": [0, 1], "ZX": [2, 0], "YZ": [1, 2]}[m.plane]
    pts = m.points(1e-6)
    r = np.linalg.norm(pts[:, a] - center[a], axis=1)
    np.testing.assert_allclose(r, radius, atol=tol)


# --- arcs -----------------------------------------------------------------------------------


def test_center_format_quarter_arcs_both_directions() -> None:
    cw = only_arc("G0 X10 Y0\nG2 X0 Y-10 I-10 J0 F100\nM2")
    ccw = only_arc("G0 X10 Y0\nG3 X0 Y10 I-10 J0 F100\nM2")
    for m, mid in ((cw, mm(7.0711, -7.0711, 0)), (ccw, mm(7.0711, 7.0711, 0))):
        np.testing.assert_allclose(m.center, mm(0, 0, 0), atol=1e-12)
        assert_on_circle(m, 10 * MM, m.center)
        assert m.length == pytest.approx(math.pi / 2 * 10 * MM, rel=1e-12)
        pts = m.points(1e-6)
        np.testing.assert_allclose(pts[0], m.start)
        np.testing.assert_allclose(pts[-1], m.end)
        k = len(pts) // 2
        np.testing.assert_allclose(pts[k], mid, atol=0.5 * MM)  # the middle of the arc
    assert cw.sweep == pytest.approx(-math.pi / 2)
    assert ccw.sweep == pytest.approx(math.pi / 2)


def test_radius_format_short_and_long_arc() -> None:
    # chord 10 mm, R 10 mm: 60 degrees; G2 with R > 0 puts the centre right of the chord
    short = only_arc("G0 X0 Y0\nG2 X10 Y0 R10 F100\nM2")
    long = only_arc("G0 X0 Y0\nG2 X10 Y0 R-10 F100\nM2")
    np.testing.assert_allclose(short.center, mm(5, -math.sqrt(75), 0), atol=1e-12)
    np.testing.assert_allclose(long.center, mm(5, math.sqrt(75), 0), atol=1e-12)
    assert short.length == pytest.approx(10 * MM * math.pi / 3)
    assert long.length == pytest.approx(10 * MM * 5 * math.pi / 3)
    assert_on_circle(short, 10 * MM, short.center)
    assert_on_circle(long, 10 * MM, long.center)
    assert short.points(1e-6)[:, 1].max() > 1.3 * MM  # clockwise over the top


def test_full_circles_center_format_and_turns() -> None:
    full = only_arc("G0 X10 Y0\nG2 X10 Y0 I-10 J0 F100\nM2")
    np.testing.assert_allclose(full.start, full.end)
    assert full.length == pytest.approx(2 * math.pi * 10 * MM)
    assert full.sweep == pytest.approx(-2 * math.pi)
    no_axes = only_arc("G0 X10 Y0\nG3 I-10 F100\nM2")  # offsets only: a full circle
    assert no_axes.sweep == pytest.approx(2 * math.pi)
    two = only_arc("G0 X10 Y0\nG3 I-10 P2 F100\nM2")
    assert two.length == pytest.approx(4 * math.pi * 10 * MM)
    assert_on_circle(two, 10 * MM, two.center)


def test_radius_format_cannot_make_a_full_circle() -> None:
    with pytest.raises(GCodeError, match="full circle") as e:
        parse("G0 X10 Y0\nG2 X10 Y0 R10 F100\nM2")
    assert e.value.line == 2


@pytest.mark.parametrize(
    ("plane", "text"),
    [
        ("XY", "G17 G0 X10 Y0 Z0\n{g} X0 Y10 I-10 J0 F100"),
        ("ZX", "G18 G0 X0 Y0 Z10\n{g} X10 Z0 I0 K-10 F100"),
        ("YZ", "G19 G0 X0 Y10 Z0\n{g} Y0 Z10 J-10 K0 F100"),
    ],
)
@pytest.mark.parametrize("g", ["G2", "G3"])
def test_arc_direction_in_each_plane(plane: str, text: str, g: str) -> None:
    """G2 is clockwise seen from the positive end of the plane's normal axis (LinuxCNC)."""
    m = only_arc(text.format(g=g) + "\nM2")
    assert m.plane == plane
    np.testing.assert_allclose(m.center, mm(0, 0, 0), atol=1e-12)
    pts = m.points(1e-6)
    turn = np.cross(pts[:-1] - m.center, pts[1:] - m.center) @ NORMAL[plane]
    assert np.all(turn < 0) if g == "G2" else np.all(turn > 0)
    assert_on_circle(m, 10 * MM, m.center)
    # the normal axis does not move: the arc is in the plane
    assert np.ptp(pts @ NORMAL[plane]) == 0.0
    # G3 is the quarter turn, G2 the three-quarter one between the same points
    assert m.length == pytest.approx((0.5 if g == "G3" else 1.5) * math.pi * 10 * MM)


def test_helical_arc_moves_the_normal_axis_linearly_with_angle() -> None:
    m = only_arc("G0 X10 Y0 Z0\nG3 X10 Y0 Z-5 I-10 J0 P2 F100\nM2")
    assert m.length == pytest.approx(math.hypot(2 * 2 * math.pi * 10, 5) * MM)
    pts = m.points(1e-6)
    angle = np.unwrap(np.arctan2(pts[:, 1], pts[:, 0]))
    np.testing.assert_allclose(pts[:, 2], -5 * MM * angle / (4 * math.pi), atol=1e-12)
    assert_on_circle(m, 10 * MM, m.center)


def test_arc_chord_error_is_within_tolerance() -> None:
    m = only_arc("G0 X50 Y0\nG3 X-50 Y0 I-50 J0 F100\nM2")
    for tol in (1e-4, 1e-5, 1e-6):
        pts = m.points(tol)
        mids = 0.5 * (pts[1:] + pts[:-1])
        sag = 50 * MM - np.linalg.norm(mids[:, :2], axis=1)
        assert sag.max() <= tol * (1 + 1e-9)
        assert sag.max() > tol / 4  # not wastefully fine either


def test_absolute_arc_centres_g90_1() -> None:
    m = only_arc("G90.1 G0 X15 Y5\nG3 X5 Y15 I5 J5 F100\nM2")
    np.testing.assert_allclose(m.center, mm(5, 5, 0), atol=1e-12)


def test_arc_radius_mismatch_beyond_linuxcnc_tolerance_is_rejected() -> None:
    # start radius 5, end radius hypot(5, 1) = 5.099: 0.099 mm > 0.0283 mm and > 0.1 %
    with pytest.raises(GCodeError, match="differs from the radius") as e:
        parse("G0 X0 Y0\nG2 X10 Y1 I5 J0 F100\nM2")
    assert e.value.line == 2
    # LinuxCNC's limits: 0.05 mm off a 100 mm radius is 0.05 % (accepted), 0.05 mm off 10 mm is
    # 0.5 % (rejected), 0.02 mm off 10 mm is under 0.0283 mm (accepted), 3 mm is always too much
    only_arc("G0 X100 Y0\nG3 X0 Y100.05 I-100 J0 F100\nM2")
    with pytest.raises(GCodeError, match="differs from the radius"):
        parse("G0 X10 Y0\nG3 X0 Y10.05 I-10 J0 F100\nM2")
    only_arc("G0 X10 Y0\nG3 X0 Y10.02 I-10 J0 F100\nM2")
    with pytest.raises(GCodeError, match="differs from the radius"):
        parse("G0 X5000 Y0\nG3 X0 Y5003 I-5000 J0 F100\nM2")
    # R form: 4 µm short of the end point is too far (LinuxCNC allows 1.27 µm)
    with pytest.raises(GCodeError, match="too small"):
        parse("G0 X0 Y0\nG2 X10 Y0 R4.996 F100\nM2")
    # 3 µm off (CAM rounding) is accepted, and the path still ends on the end point
    m = only_arc("G0 X0 Y0\nG2 X10 Y0.003 I5 J0 F100\nM2")
    np.testing.assert_allclose(m.points()[-1], mm(10, 0.003, 0))


# --- units, modes -----------------------------------------------------------------------------


def test_incremental_mode() -> None:
    got = ends("G91 G0 X1 Y1\nX1\nG1 Z-1 F60\nG90 X0\nM2", start=(0.0, 0.0, 0.0))
    assert got == [
        ("rapid", [1.0, 1.0, 0.0]),
        ("rapid", [2.0, 1.0, 0.0]),
        ("feed", [2.0, 1.0, -1.0]),
        ("feed", [0.0, 1.0, -1.0]),
    ]


def test_inch_units_convert_lengths_and_feeds_exactly() -> None:
    prog = parse("G20 G0 X1 Y2\nG1 X3 F10\nG21\nG1 X10 F600\nM2")
    rapid, inch_feed, mm_feed = prog.moves
    assert rapid.end.tolist() == [0.0254, 2 * 0.0254, 0.0]
    assert inch_feed.end[0] == 3 * 0.0254
    assert inch_feed.feed == pytest.approx(10 * 0.0254 / 60, rel=1e-15)
    assert mm_feed.end[0] == pytest.approx(0.010, abs=1e-15)
    assert mm_feed.feed == pytest.approx(0.01, rel=1e-15)


def test_an_f_beside_a_unit_change_is_in_the_units_before_it() -> None:
    """LinuxCNC sets F before G20/G21 within a line, and a unit change keeps the feed's speed."""
    (to_inch,) = parse("G21 G0 X0 Y0 Z0\nG20 F10\nG1 X1\nM2").moves[1:]
    assert to_inch.feed == pytest.approx(10e-3 / 60, rel=1e-15)  # 10 mm/min
    assert to_inch.end[0] == pytest.approx(0.0254, abs=1e-15)  # X in inch
    (to_mm,) = parse("G20 G0 X0\nG21 F254\nG1 X1\nM2").moves[1:]
    assert to_mm.feed == pytest.approx(254 * 0.0254 / 60, rel=1e-15)  # 254 inch/min


def test_modal_motion_on_continuation_lines_and_state_per_move() -> None:
    prog = parse("T3 M6\nS8000 M4\nG55 G0 X1\nY2\nG1 Z-1 F120\nX3\nM5\nX4\nM30")
    kinds = [m.kind for m in prog.moves]
    assert kinds == ["rapid", "rapid", "feed", "feed", "feed"]
    assert {m.offset for m in prog.moves} == {"G55"}
    assert {m.tool for m in prog.moves} == {3}
    assert [m.spindle_dir for m in prog.moves] == [-1, -1, -1, -1, 0]
    assert prog.moves[0].start.tolist() == prog.moves[0].end.tolist()  # unknown start
    assert prog.moves[-1].feed == pytest.approx(0.002)
    assert prog.tools[3].loaded and prog.tools[3].spindle_rpm == (8000.0,)


def test_given_start_position_and_g4_dwell() -> None:
    prog = parse("G0 X1\nG4 P0.25\nM2", start=(0.0, 0.0, 0.005))
    assert prog.moves[0].start.tolist() == [0.0, 0.0, 0.005]
    assert prog.moves[1].kind == "dwell" and prog.moves[1].dwell == 0.25


def test_polyline_lines_and_kinds() -> None:
    prog = parse("G0 X10 Y0\nG3 X-10 Y0 I-10 F100\nG1 Y5\nM2")
    pts, lines, kinds = prog.polyline(1e-5)
    arc_pts = len(prog.moves[1].points(1e-5))
    assert len(pts) == 2 + (arc_pts - 1) + 1  # the first move gives both of its points
    assert lines.tolist() == [1, 1] + [2] * (arc_pts - 1) + [3]
    assert kinds[:2].tolist() == ["rapid"] * 2 and set(kinds[2:-1]) == {"arc"}
    assert kinds[-1] == "feed"
    np.testing.assert_allclose(pts[-1], mm(-10, 5, 0))


# --- drilling cycles ----------------------------------------------------------------------------


def test_g81_absolute_g98_and_g99() -> None:
    start = tuple(mm(1, 2, 3))
    g98 = ends("G90 G98 G81 X4 Y5 Z1.5 R2.8 F100\nG80\nM2", start=start)
    assert g98 == [
        ("rapid", [4.0, 5.0, 3.0]),
        ("rapid", [4.0, 5.0, 2.8]),
        ("feed", [4.0, 5.0, 1.5]),
        ("rapid", [4.0, 5.0, 3.0]),
    ]
    g99 = ends("G90 G99 G81 X4 Y5 Z1.5 R2.8 F100\nX6\nG80\nM2", start=start)
    assert g99 == [
        ("rapid", [4.0, 5.0, 3.0]),
        ("rapid", [4.0, 5.0, 2.8]),
        ("feed", [4.0, 5.0, 1.5]),
        ("rapid", [4.0, 5.0, 2.8]),
        ("rapid", [6.0, 5.0, 2.8]),  # modal cycle on the next line, at the R plane
        ("feed", [6.0, 5.0, 1.5]),
        ("rapid", [6.0, 5.0, 2.8]),
    ]


def test_g81_incremental_with_l_repeats_as_in_the_linuxcnc_manual() -> None:
    got = ends("G91 G98 G81 X4 Y5 Z-0.6 R1.8 L3 F100\nG80\nM2", start=tuple(mm(1, 2, 3)))
    assert got == [
        ("rapid", [1.0, 2.0, 4.8]),  # preliminary: up to R = 3 + 1.8, once
        ("rapid", [5.0, 7.0, 4.8]),
        ("feed", [5.0, 7.0, 4.2]),
        ("rapid", [5.0, 7.0, 4.8]),
        ("rapid", [9.0, 12.0, 4.8]),
        ("feed", [9.0, 12.0, 4.2]),
        ("rapid", [9.0, 12.0, 4.8]),
        ("rapid", [13.0, 17.0, 4.8]),
        ("feed", [13.0, 17.0, 4.2]),
        ("rapid", [13.0, 17.0, 4.8]),
    ]


def test_g91_cycle_series_measures_r_from_where_the_series_started() -> None:
    """LinuxCNC's cycle_il: in G91 every block of a series of cycles puts R above the level
    where the series began (not above the previous retract), so all holes are alike."""
    got = ends("G0 X0 Y0 Z0\nG91 G99 G81 X10 Z-5 R2 F100\nX10\nX10\nG80\nM2")
    holes = [e for k, e in got if k == "feed"]
    assert holes == [[10.0, 0.0, -3.0], [20.0, 0.0, -3.0], [30.0, 0.0, -3.0]]
    assert {e[2] for k, e in got[1:] if k == "rapid"} == {2.0}  # R plane, every hole


def test_g98_returns_to_the_level_the_series_started_from() -> None:
    got = ends("G0 X0 Y0 Z10\nG99 G81 X0 Y0 Z-5 R2 F100\nG98 X10\nG80\nG0 X20\nG81 X30 Z-1 R3\nM2")
    assert got[1:] == [
        ("rapid", [0.0, 0.0, 2.0]),
        ("feed", [0.0, 0.0, -5.0]),
        ("rapid", [0.0, 0.0, 2.0]),  # G99: to R
        ("rapid", [10.0, 0.0, 2.0]),
        ("feed", [10.0, 0.0, -5.0]),
        ("rapid", [10.0, 0.0, 10.0]),  # G98: to Z10, where the series began
        ("rapid", [20.0, 0.0, 10.0]),
        ("rapid", [30.0, 0.0, 10.0]),  # a new series (after G0) starts at Z10 again
        ("rapid", [30.0, 0.0, 3.0]),
        ("feed", [30.0, 0.0, -1.0]),
        ("rapid", [30.0, 0.0, 10.0]),
    ]


def test_g81_absolute_l_repeats_drill_the_same_hole() -> None:
    got = ends("G99 G81 X1 Y1 Z-1 R1 L2 F100\nM2", start=(0.0, 0.0, 0.005))
    assert got == [
        ("rapid", [1.0, 1.0, 5.0]),
        ("rapid", [1.0, 1.0, 1.0]),
        ("feed", [1.0, 1.0, -1.0]),
        ("rapid", [1.0, 1.0, 1.0]),
        ("feed", [1.0, 1.0, -1.0]),
        ("rapid", [1.0, 1.0, 1.0]),
    ]


def test_g82_dwells_at_the_bottom() -> None:
    prog = parse("G98 G82 X0 Y0 Z-2 R1 P0.5 F100\nM2", start=(0.0, 0.0, 0.01))
    assert [m.kind for m in prog.moves] == ["rapid", "feed", "dwell", "rapid"]
    assert prog.moves[2].dwell == 0.5
    assert prog.moves[2].end[2] == pytest.approx(-0.002)
    assert prog.moves[3].end[2] == pytest.approx(0.01)  # G98: back to the old Z


def test_g83_pecks_with_linuxcnc_clearance() -> None:
    got = ends("G99 G83 X0 Y0 Z-5 R1 Q2 F100\nM2", start=(0.0, 0.0, 0.01))
    assert got == [
        ("rapid", [0.0, 0.0, 1.0]),
        ("feed", [0.0, 0.0, -1.0]),
        ("rapid", [0.0, 0.0, 1.0]),
        ("rapid", [0.0, 0.0, -0.746]),  # 0.254 mm above the previous depth
        ("feed", [0.0, 0.0, -3.0]),
        ("rapid", [0.0, 0.0, 1.0]),
        ("rapid", [0.0, 0.0, -2.746]),
        ("feed", [0.0, 0.0, -5.0]),
        ("rapid", [0.0, 0.0, 1.0]),
    ]


def test_g80_cancels_the_cycle() -> None:
    with pytest.raises(GCodeError, match="motion mode") as e:
        parse("G81 X1 Y1 Z-1 R1 F100\nG80\nX2\nM2")
    assert e.value.line == 3 and e.value.word == "X2"
    prog = parse("G81 X1 Y1 Z-1 R1 F100\nG80\nG0 X2\nM2")
    assert prog.moves[-1].kind == "rapid" and prog.moves[-1].end[0] == pytest.approx(0.002)


# --- real programs and CAM habits ---------------------------------------------------------------


def test_corpus_is_where_ci_expects_it() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"no G-code corpus at {CORPUS}")
    assert len(CORPUS_FILES) >= 4


@pytest.mark.parametrize("path", CORPUS_FILES, ids=[p.name for p in CORPUS_FILES])
def test_corpus_programs(path: Path) -> None:
    if path.name == "linuxcnc_hole_circle.ngc":
        with pytest.raises(GCodeError) as e:
            parse_file(path)
        assert e.value.line == 10 and e.value.word == "^60"
        assert f"{path}:10: word '^60' (polar coordinates) is not supported" in str(e.value)
        prog = parse_file(path, lenient=True)
        assert any("'^60'" in w for w in prog.warnings)
        # G91 G81 R.1 Z-.5 L6 without the polar step: six holes in one place, inch units
        feeds = [m for m in prog.moves if m.kind == "feed"]
        assert len(feeds) == 6
        assert feeds[0].end.tolist() == pytest.approx([1.5 * 0.0254, 0.0, -0.4 * 0.0254])
        return
    prog = parse_file(path)
    assert prog.moves and all(m.length >= 0 for m in prog.moves)
    assert all(m.feed > 0 for m in prog.moves if m.kind in ("feed", "arc"))


def test_fusion_face_full_circles() -> None:
    path = CORPUS / "fusion360_face.nc"
    if not path.exists():
        pytest.skip("no corpus")
    arcs = [m for m in parse_file(path).moves if m.kind == "arc"]
    assert len(arcs) == 10
    assert arcs[0].length == pytest.approx(math.pi * MM)  # half circle, radius 1 mm


CAM = """%
O1001 (FACE PLATE)
N10 G40 G49 G80
N20 G17 G21 G90 G94
N30 T2 M6
N40 G0 G54 X0 Y0
N50 G43 H2 Z50.
N60 S12000 M3 M8
N70 G1 Z-1 F600
N80 G64 P0.01
N90 G61
N100 G4 P0.5
N110 M9
N120 M5
N130 G28 G91 Z0
N140 G90
N150 M30
G41 (after the end: not read)
%
"""


def test_cam_habits_are_accepted() -> None:
    prog = parse(CAM, g28_home=(0.0, 0.0, 0.1))
    assert prog.number == "O1001" and prog.warnings == []
    assert prog.tools[2].loaded and prog.tools[2].length_offset_lines == (7,)
    codes = [e.code for e in prog.events]
    assert codes == ["G49", "T2 M6", "G43 H2", "M8", "G64 P0.01", "G61", "M9"]
    assert [m.kind for m in prog.moves] == ["rapid", "rapid", "feed", "dwell", "rapid", "rapid"]
    assert prog.moves[2].spindle_rpm == 12000 and prog.moves[2].tool == 2
    assert prog.moves[-1].end.tolist() == pytest.approx([0.0, 0.0, 0.1])  # G28 Z: home Z only


def test_g28_without_a_home_is_rejected_clearly() -> None:
    with pytest.raises(GCodeError, match="g28_home") as e:
        parse(CAM)
    assert e.value.line == 15 and e.value.word == "G28"  # line 1 is the %


def test_line_numbers_may_have_a_fraction() -> None:
    assert ends("N10.5 G0 X1\nN20 X2\nN30. X3\nM2") == [
        ("rapid", [1.0, 0.0, 0.0]),
        ("rapid", [2.0, 0.0, 0.0]),
        ("rapid", [3.0, 0.0, 0.0]),
    ]


def test_block_delete_switch() -> None:
    text = "G0 X1\n/G0 X5\nM2"
    assert parse(text).moves[-1].end[0] == pytest.approx(0.005)
    assert parse(text, block_delete=True).moves[-1].end[0] == pytest.approx(0.001)


@pytest.mark.parametrize(
    ("text", "line", "word", "message"),
    [
        ("G0 X0\nG41 D1 X5", 2, "G41", "cutter radius compensation"),
        ("G0 X0\nG42 X5", 2, "G42", "cutter radius compensation"),
        ("G0 X0\nG0 @5 ^30", 2, "@5", "polar coordinates"),
        ("G0 X0\nO100 sub", 2, "O100 sub", "O-word"),
        ("G0 X0\n\no100 call [1]", 3, "o100 call [1]", "O-word"),
        ("O101 while [#1 LT 3]", 1, "O101 while [#1 LT 3]", "O-word"),
        ("#1=5\nG0 X#1", 1, "#1=5", "parameters"),
        ("G0 X#<depth>", 1, "X#<DEPTH>", "parameters"),
        ("G0 X[1+2]", 1, "X[1+2]", "expressions"),
        ("G5.1 X1 I1 J1", 1, "G5.1", "quadratic spline"),
        ("G0 X0\nG33 Z-1 K1", 2, "G33", "spindle-synchronised"),
        ("G7.5 X1", 1, "G7.5", "not a G-code"),
        ("M66 P1", 1, "M66", "input wait"),
        ("M123", 1, "M123", "not an M-code"),
        ("G1 X F100", 1, "X", "has no number"),
        ("G0 G1 X1 F100", 1, "G1", "both in the motion group"),
        ("G0 X1\nG1 X2", 2, "F", "no feed rate"),
        ("G0 X1\nG1", 2, "G1", "no feed rate"),
        ("G0 Z5\nG82 X1 Y1 Z-2 R1 F100", 2, "G82", "needs a P word"),
        ("G0 X1 I2", 1, "I2", "not used"),
        ("G0 A90", 1, "A90", "rotary"),
        ("G17 G2 X1 Y1 K1 F100", 1, "K1", "not an offset of the XY plane"),
        ("G2 X30 Y0 R10 F100", 1, "R10", "too small"),
        ("G93 G1 X1 F1", 1, "G93", "inverse time"),
        ("G53 G0 X1", 1, "G53", "machine coordinates"),
        ("G0 X1 (open comment", 1, "(", "not closed"),
    ],
)
def test_rejections_name_line_and_word(text: str, line: int, word: str, message: str) -> None:
    with pytest.raises(GCodeError) as e:
        parse(text + "\nM2", file="part.nc")
    err = e.value
    assert isinstance(err, ScenarioError) and err.exit_code == 2
    assert (err.line, err.word) == (line, word)
    assert message in str(err)
    assert str(err).startswith(f"part.nc:{line}: ")


def test_lenient_skips_with_warnings() -> None:
    prog = parse("G0 X0\nG41 D1\nG1 X5 ^30 F100\n#1=5\nM2", lenient=True, file="p.nc")
    assert [m.end[0] for m in prog.moves] == pytest.approx([0.0, 0.005])
    assert len(prog.warnings) == 4  # G41, its D word, ^30, the parameter line
    assert all(w.startswith("p.nc:") for w in prog.warnings)


# --- summary and CLI ----------------------------------------------------------------------------


def test_summary_numbers() -> None:
    prog = parse("G0 X10 Y0 Z5\nG1 Z0 F300\nG2 X10 Y0 I-10 F600\nG4 P2\nG0 Z5\nM2")
    s = summarize(prog, rapid_speed=0.1)
    assert s["moves"] == {"rapid": 2, "feed": 1, "arc": 1, "dwell": 1}
    circle = 2 * math.pi * 10 * MM
    assert s["cutting_length_m"] == pytest.approx(5 * MM + circle)
    assert s["rapid_length_m"] == pytest.approx(5 * MM)
    assert s["time_s"]["total"] == pytest.approx(5 * MM / 0.005 + circle / 0.01 + 2 + 0.05)
    # arc bulges count, to within the 10 µm chord error of the sampled arc
    assert s["cutting_bounds"]["min_m"] == pytest.approx([-10 * MM, -10 * MM, 0.0], abs=1e-5)
    assert s["cutting_bounds"]["max_m"] == pytest.approx([10 * MM, 10 * MM, 5 * MM], abs=1e-5)
    text = format_summary(s)
    assert "estimated time" in text and "300..600" in text


def test_cli_rejects_with_file_and_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "part.nc"
    bad.write_text("G21 G90\nG0 X0 Y0\nG41 D1\nG1 X5 F100\nM2\n")
    assert main(["gcode", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: word 'G41'" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert main(["gcode", "--lenient", str(bad)]) == 0
    assert "warnings (2)" in capsys.readouterr().out


def test_cli_summarises_a_corpus_file(capsys) -> None:
    path = CORPUS / "fusion360_face.nc"
    if not path.exists():
        pytest.skip("no corpus")
    assert main(["gcode", str(path), "--rapid-mm-min", "6000"]) == 0
    out = capsys.readouterr().out
    assert "cutting length" in out and "(at 6000 mm/min)" in out
    assert main(["gcode", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["moves"]["arc"] == 10 and data["offsets"] == ["G54"]


def test_file_habits_bom_control_bytes_f0_and_an_empty_program(tmp_path: Path) -> None:
    bom = tmp_path / "bom.ngc"
    bom.write_bytes("\ufeffG21 G0 X1\nM2\n".encode())
    assert parse_file(bom).moves[0].end[0] == pytest.approx(0.001)  # the BOM is skipped
    with pytest.raises(GCodeError, match=r"unexpected character 'U\+007F'"):
        parse("G0 X1\x7f\nM2")
    with pytest.raises(GCodeError, match=r"feed rate is 0 \(F0\)"):
        parse("G0 X0\nG1 X1 F0\nM2")
    assert any("no motion" in w for w in parse("(nothing here)\nM2").warnings)


def test_an_unknown_start_is_not_travelled_axis_by_axis() -> None:
    prog = parse("G21 G90\nG0 X5 Y5\nZ10\nG1 Z2 F100\nM2")
    lengths = [float(np.linalg.norm(m.end - m.start)) for m in prog.moves]
    assert lengths == pytest.approx([0.0, 0.0, 0.008])
    feed_first = parse("G21 G90\nG1 Z4 F100\nG1 X-1 Y-40\nG1 X10\nM2")
    lengths = [float(np.linalg.norm(m.end - m.start)) for m in feed_first.moves]
    assert lengths == pytest.approx([0.0, 0.0, 0.011])
    assert any("unknown position" in w for w in feed_first.warnings)
    known = parse("G1 Z4 F100\nM2", start=(0.0, 0.0, 0.0))
    assert float(np.linalg.norm(known.moves[0].end - known.moves[0].start)) == pytest.approx(0.004)
