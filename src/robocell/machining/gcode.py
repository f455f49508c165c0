"""An RS274/NGC G-code interpreter in the LinuxCNC dialect, for robot machining cells.

:func:`parse` turns program text into a :class:`Program`: a list of :class:`Move` (rapid, feed,
arc, dwell) in SI units — metres, seconds, m/s — in program coordinates, i.e. in the frame of the
active work offset (``G54`` .. ``G59``; which one is recorded per move, mapping it to a workpiece
frame in the cell is done elsewhere). Drilling cycles (G81, G82, G83) are expanded into rapid,
feed and dwell moves carrying the line of the cycle block.

What the interpreter accepts, what it rejects and why is described in ``docs/gcode.md``. Anything
it does not support raises :class:`GCodeError` naming the file, the line and the offending word;
``lenient=True`` skips such words or lines with a warning in :attr:`Program.warnings` instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from robocell.errors import ScenarioError

#: metres per program unit in G21 and G20 (the inch is exactly 25.4 mm)
MM = 1e-3
INCH = 0.0254
#: G83 peck clearance, LinuxCNC's 0.010 inch or 0.254 mm (the same length both ways) [m]
PECK_CLEARANCE = 0.254e-3

#: arc plane -> (first axis, second axis, normal axis); (first x second) = +normal, so G2
#: (clockwise seen from the positive normal axis) is a negative angle in (first, second)
PLANE_AXES = {"XY": (0, 1, 2), "ZX": (2, 0, 1), "YZ": (1, 2, 0)}
_PLANE_OFFSETS = {"XY": ("I", "J"), "ZX": ("K", "I"), "YZ": ("J", "K")}
_AXIS_LETTERS = ("X", "Y", "Z")
_OFFSET_OF_AXIS = {"X": "I", "Y": "J", "Z": "K"}


class GCodeError(ScenarioError):
    """A G-code program uses something the interpreter does not support, or is invalid.

    ``file`` and ``line`` (1-based) locate it; ``word`` is the offending word as written (e.g.
    ``'^60'``, ``'G41'``) or None when the problem is not one word.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        word: str | None = None,
    ) -> None:
        self.word = word
        super().__init__(message, file=file, line=line)


@dataclass(frozen=True, eq=False)  # eq=False: numpy fields make the generated __eq__ ambiguous
class Move:
    """One motion (or dwell) of a program, in SI units and program coordinates.

    ``start``/``end``/``center`` have shape (3,) [m]. ``feed`` is the programmed feed [m/s]
    (0 for rapids and dwells). ``spindle_rpm`` is the programmed S [rev/min] even while the
    spindle is stopped; ``spindle_dir`` is +1 (M3, clockwise), -1 (M4) or 0 (stopped).
    Arcs: ``center`` lies in the arc plane through ``start`` (its normal-axis coordinate is
    ``start``'s), ``clockwise`` is G2 as seen from the positive end of the plane's normal axis,
    ``turns`` is LinuxCNC's P word (1 = up to one revolution).
    """

    line: int
    kind: str
    start: np.ndarray
    end: np.ndarray
    feed: float
    spindle_rpm: float
    spindle_dir: int
    tool: int
    offset: str
    center: np.ndarray | None = None
    plane: str = "XY"
    clockwise: bool = False
    turns: int = 1
    dwell: float = 0.0
    spindle_line: int = 0  #: line of the S word that set ``spindle_rpm`` (0: none)

    @property
    def sweep(self) -> float:
        """Signed angle swept by an arc [rad], positive counterclockwise; 0 for other moves."""
        if self.kind != "arc" or self.center is None:
            return 0.0
        a, b, _ = PLANE_AXES[self.plane]
        s = self.start[[a, b]] - self.center[[a, b]]
        e = self.end[[a, b]] - self.center[[a, b]]
        full = math.hypot(*(e - s)) < 1e-9  # start == end in the plane: a full circle
        a0, a1 = math.atan2(s[1], s[0]), math.atan2(e[1], e[0])
        if self.clockwise:
            ang = 2 * math.pi if full else (a0 - a1) % (2 * math.pi)
            return -(ang + 2 * math.pi * (self.turns - 1))
        ang = 2 * math.pi if full else (a1 - a0) % (2 * math.pi)
        return ang + 2 * math.pi * (self.turns - 1)

    def _radii(self) -> tuple[float, float]:
        assert self.center is not None
        a, b, _ = PLANE_AXES[self.plane]
        r0 = float(np.hypot(*(self.start[[a, b]] - self.center[[a, b]])))
        r1 = float(np.hypot(*(self.end[[a, b]] - self.center[[a, b]])))
        return r0, r1

    @property
    def length(self) -> float:
        """Path length [m]; a helix for helical arcs, 0 for dwells."""
        if self.kind == "arc":
            r0, r1 = self._radii()
            axial = float(
                self.end[PLANE_AXES[self.plane][2]] - self.start[PLANE_AXES[self.plane][2]]
            )
            return math.hypot(0.5 * (r0 + r1) * abs(self.sweep), axial)
        return float(np.linalg.norm(self.end - self.start))

    def points(self, max_chord_error: float = 1e-5) -> np.ndarray:
        """Polyline from ``start`` to ``end`` inclusive, shape (k, 3) [m].

        Arcs are split so that no chord is farther than ``max_chord_error`` [m] from the arc
        (and no segment turns more than 90 degrees); the normal-axis coordinate of a helix and
        the radius (when start and end radii differ within LinuxCNC's tolerance) change
        linearly with the angle. Lines and dwells give their two end points.
        """
        if self.kind != "arc":
            return np.array([self.start, self.end], dtype=float)
        if not max_chord_error > 0:
            raise ValueError(f"max_chord_error must be > 0 m, got {max_chord_error}")
        assert self.center is not None
        a, b, c = PLANE_AXES[self.plane]
        r0, r1 = self._radii()
        sweep = self.sweep
        r_max = max(r0, r1)
        step = 2 * math.acos(max(1.0 - max_chord_error / r_max, -1.0)) if r_max > 0 else math.pi
        n = max(1, math.ceil(abs(sweep) / min(step, math.pi / 2)))
        t = np.linspace(0.0, 1.0, n + 1)
        s = self.start[[a, b]] - self.center[[a, b]]
        ang = math.atan2(s[1], s[0]) + sweep * t
        r = r0 + (r1 - r0) * t
        pts = np.empty((n + 1, 3))
        pts[:, a] = self.center[a] + r * np.cos(ang)
        pts[:, b] = self.center[b] + r * np.sin(ang)
        pts[:, c] = self.start[c] + (self.end[c] - self.start[c]) * t
        pts[0], pts[-1] = self.start, self.end
        return pts


@dataclass
class ToolUse:
    """A tool a program selects with T: where it first appears and how it is used."""

    number: int
    first_line: int
    loaded: bool = False  #: changed into the spindle with M6 at least once
    spindle_rpm: tuple[float, ...] = ()  #: distinct S values of its cutting moves [rev/min]
    length_offset_lines: tuple[int, ...] = ()  #: lines where G43 applied its length offset


@dataclass(frozen=True)
class Event:
    """A recorded state change without motion: ``code`` as normalised text, e.g. ``"G43 H1"``,
    ``"M8"``, ``"G64 P0.01"``, ``"M0"``."""

    line: int
    code: str


@dataclass
class Program:
    """An interpreted G-code program.

    ``moves`` in order; ``file`` is the name used in messages; ``warnings`` are one-line texts
    (``file:line: ...``); ``tools`` maps T numbers to their use; ``events`` records accepted
    codes that do not move (coolant, path mode, tool length offset, pauses); ``number`` is the
    program number of an ``O1001`` line, if any.
    """

    moves: list[Move]
    file: str
    warnings: list[str] = field(default_factory=list)
    tools: dict[int, ToolUse] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    number: str | None = None

    def polyline(self, max_chord_error: float = 1e-5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All moves as one polyline.

        Returns ``(points, lines, kinds)``: points shape (N, 3) [m]; ``lines[i]`` (int) and
        ``kinds[i]`` (str: rapid/feed/arc/dwell) are those of the move that ends at point i,
        i.e. of the segment from point i-1 to point i (point 0 takes the first move's). A dwell
        adds one point (a repeat of the position) so that it is visible in ``kinds``.
        """
        pts: list[np.ndarray] = []
        lines: list[int] = []
        kinds: list[str] = []
        for m in self.moves:
            p = m.points(max_chord_error)
            if pts:
                p = p[1:]  # a move starts where the previous one ended
            pts.append(p)
            lines += [m.line] * len(p)
            kinds += [m.kind] * len(p)
        if not pts:
            return np.zeros((0, 3)), np.zeros(0, dtype=int), np.zeros(0, dtype="<U5")
        return np.concatenate(pts), np.array(lines, dtype=int), np.array(kinds, dtype="<U5")


def parse(
    text: str,
    *,
    file: str = "<string>",
    lenient: bool = False,
    start: Sequence[float] | None = None,
    g28_home: Sequence[float] | None = None,
    g30_home: Sequence[float] | None = None,
    block_delete: bool = False,
) -> Program:
    """Interpret G-code ``text`` (LinuxCNC dialect).

    Args:
        text: the program.
        file: name used in messages and warnings.
        lenient: skip unsupported words (or whole lines, for parameters, expressions and
            O-word control flow) with a warning instead of raising :class:`GCodeError`.
        start: tool position before the program [m], program coordinates, shape (3,). None
            (default): unknown — unprogrammed axes count as 0 and, if the first motion is a
            rapid, it starts at its own end (zero length) instead of inventing a traverse.
        g28_home, g30_home: the G28/G30 predefined positions [m] in program coordinates;
            None rejects G28/G30 (LinuxCNC stores them in machine coordinates, which a cell
            only knows after mapping the work offset).
        block_delete: the operator's block-delete switch: True skips lines starting with ``/``;
            False (default) runs them.

    Raises:
        GCodeError: on the first unsupported or invalid word (unless ``lenient``).
    """
    interp = _Interpreter(
        file=file,
        lenient=lenient,
        start=start,
        g28_home=g28_home,
        g30_home=g30_home,
        block_delete=block_delete,
    )
    return interp.run(text)


def parse_file(path: str | Path, *, lenient: bool = False, **kwargs: object) -> Program:
    """:func:`parse` the file at ``path`` (messages name it as given); keywords as for parse."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig", errors="replace")  # (a BOM is skipped)
    except OSError as exc:
        raise GCodeError(f"cannot read the program: {exc.strerror}", file=str(path)) from None
    return parse(text, file=str(path), lenient=lenient, **kwargs)  # type: ignore[arg-type]


# --- the interpreter -----------------------------------------------------------------------

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)")

# G codes by ten times their number (G90.1 -> 901): modal group
_G_GROUP = {
    0: "motion", 10: "motion", 20: "motion", 30: "motion",
    800: "motion", 810: "motion", 820: "motion", 830: "motion",
    40: "non-modal", 280: "non-modal", 300: "non-modal",
    170: "plane", 180: "plane", 190: "plane",
    200: "units", 210: "units",
    400: "cutter compensation",
    430: "tool length offset", 490: "tool length offset",
    540: "work offset", 550: "work offset", 560: "work offset",
    570: "work offset", 580: "work offset", 590: "work offset",
    610: "path mode", 611: "path mode", 640: "path mode",
    900: "distance mode", 910: "distance mode",
    901: "arc distance mode", 911: "arc distance mode",
    940: "feed mode",
    970: "spindle speed mode",
    980: "retract mode", 990: "retract mode",
}  # fmt: skip
_G_UNSUPPORTED = {
    50: "cubic spline", 51: "quadratic spline", 52: "NURBS", 53: "NURBS",
    70: "lathe diameter mode", 80: "lathe radius mode", 100: "setting offsets or tool table",
    171: "UVW plane", 181: "UVW plane", 191: "UVW plane",
    281: "storing the G28 position", 301: "storing the G30 position",
    330: "spindle-synchronised motion", 331: "rigid tapping",
    382: "probing", 383: "probing", 384: "probing", 385: "probing",
    410: "cutter radius compensation", 420: "cutter radius compensation",
    411: "cutter radius compensation", 421: "cutter radius compensation",
    431: "dynamic tool length offset", 432: "additional tool length offset",
    520: "local coordinate offset", 530: "machine coordinates",
    591: "work offset G59.1", 592: "work offset G59.2", 593: "work offset G59.3",
    700: "lathe cycle", 710: "lathe cycle", 711: "lathe cycle", 712: "lathe cycle",
    720: "lathe cycle", 721: "lathe cycle", 722: "lathe cycle",
    730: "chip-breaking drilling cycle", 740: "tapping cycle", 760: "threading cycle",
    840: "tapping cycle", 850: "boring cycle", 860: "boring cycle", 870: "boring cycle",
    880: "boring cycle", 890: "boring cycle",
    920: "coordinate system offset", 921: "coordinate system offset",
    922: "coordinate system offset", 923: "coordinate system offset",
    930: "inverse time feed", 950: "feed per revolution", 960: "constant surface speed",
}  # fmt: skip
_M_GROUP = {
    0: "stop", 1: "stop", 2: "stop", 30: "stop",
    3: "spindle", 4: "spindle", 5: "spindle",
    6: "tool change",
    7: "coolant", 8: "coolant", 9: "coolant",
}  # fmt: skip
_M_UNSUPPORTED = {
    60: "pallet change", 98: "subprogram call", 99: "subprogram return",
    19: "spindle orientation", 48: "override switches", 49: "override switches",
    50: "override switches", 51: "override switches", 52: "override switches",
    53: "override switches", 61: "tool number setting", 62: "digital output",
    63: "digital output", 64: "digital output", 65: "digital output",
    66: "input wait", 67: "analog output", 68: "analog output", 70: "modal state",
    71: "modal state", 72: "modal state", 73: "modal state",
}  # fmt: skip
_LETTERS_OK = set("DFGHIJKLMNPQRSTXYZ")
_LETTERS_AXES_UNSUPPORTED = set("ABCUVW")
_CYCLES = (810, 820, 830)
_MOTION_NAMES = {0: "rapid", 10: "feed", 20: "arc", 30: "arc"}


def _gname(key: int) -> str:
    return f"G{key // 10}" if key % 10 == 0 else f"G{key // 10}.{key % 10}"


@dataclass
class _Word:
    letter: str
    value: float
    text: str


class _Skip(Exception):
    """Lenient mode: abandon the current line (its warning is already recorded)."""


class _Interpreter:
    def __init__(
        self,
        *,
        file: str,
        lenient: bool,
        start: Sequence[float] | None,
        g28_home: Sequence[float] | None,
        g30_home: Sequence[float] | None,
        block_delete: bool,
    ) -> None:
        self.file = file
        self.lenient = lenient
        self.block_delete = block_delete
        self.homes = {
            280: None if g28_home is None else _vec3(g28_home, "g28_home"),
            300: None if g30_home is None else _vec3(g30_home, "g30_home"),
        }
        # axes whose position is known: all when a start is given, else each from the first
        # move that programs it (until then a move does not travel along it)
        self.known = [start is not None] * 3
        self._warned_start = False
        self.pos = np.zeros(3) if start is None else _vec3(start, "start")
        self.unit = MM  # m per program unit; G21 is the robot cell's default
        self.absolute = True  # G90
        self.arc_absolute = False  # G91.1, LinuxCNC's default
        self.plane = "XY"
        self.motion = 800  # no motion mode until a G0/G1/G2/G3/G8x
        self.feed = 0.0  # m/s, 0 = not set
        self.feed_word: str | None = None  # the F word that set it
        self.rpm = 0.0
        self.rpm_line = 0  # the line of the S word that set it
        self.spindle_dir = 0
        self.tool = 0  # in the spindle
        self.selected = 0  # prepared by T
        self.offset = "G54"
        self.retract_old_z = True  # G98
        self.sticky: dict[str, float] = {}  # canned cycle R, depth, Q, P (raw numbers)
        # the tool-axis level where the current series of back-to-back cycles started [m]
        # (LinuxCNC's cycle_il: G98 returns to it, G91 measures R from it)
        self.cycle_level: float | None = None
        self.moves: list[Move] = []
        self.warnings: list[str] = []
        self.events: list[Event] = []
        self.tools: dict[int, ToolUse] = {}
        self.number: str | None = None
        self.line = 0

    # -- problems --
    def _error(self, message: str, word: str | None = None) -> GCodeError:
        return GCodeError(message, file=self.file, line=self.line, word=word)

    def _problem(self, message: str, word: str | None = None, *, skip_line: bool = False) -> None:
        """Raise, or in lenient mode warn (and abandon the line if ``skip_line``)."""
        if not self.lenient:
            raise self._error(message, word)
        what = "line skipped" if skip_line else "word skipped"
        self.warnings.append(f"{self.file}:{self.line}: {message} ({what})")
        if skip_line:
            raise _Skip

    def _unsupported(self, text: str, reason: str, *, skip_line: bool = False) -> None:
        self._problem(f"word '{text}' ({reason}) is not supported", text, skip_line=skip_line)

    # -- the program --
    def run(self, text: str) -> Program:
        lines = text.splitlines()
        first = next((i for i, s in enumerate(lines) if s.strip()), None)
        ended = False
        for i, raw in enumerate(lines):
            self.line = i + 1
            stripped = raw.strip()
            if stripped.startswith("%"):
                if i == first:
                    continue
                ended = True  # the closing tape mark: the rest of the file is not read
                break
            try:
                if self._line(raw):
                    ended = True
                    break
            except _Skip:
                continue
        if not ended and first is not None:
            self.warnings.append(
                f"{self.file}: the program has no M2/M30 or closing % (truncated file?)"
            )
        if not any(m.kind != "dwell" for m in self.moves):
            self.warnings.append(f"{self.file}: the program has no motion")
        for t in self.tools.values():
            t.spindle_rpm = tuple(
                sorted(
                    {m.spindle_rpm for m in self.moves if m.tool == t.number and m.kind != "rapid"}
                )
            )
            if not t.loaded:
                self.warnings.append(
                    f"{self.file}:{t.first_line}: T{t.number} is selected but never loaded with "
                    "M6; moves report the tool in the spindle (as LinuxCNC does)"
                )
        return Program(
            moves=self.moves,
            file=self.file,
            warnings=self.warnings,
            tools=self.tools,
            events=self.events,
            number=self.number,
        )

    def _line(self, raw: str) -> bool:
        """Interpret one line; True when it ends the program (M2/M30)."""
        code = self._strip_comments(raw).strip()
        if code.startswith("/"):
            if self.block_delete:
                return False
            code = code[1:]
        squeezed = "".join(code.split()).upper()  # spaces mean nothing outside comments
        squeezed = re.sub(r"^N\d+(?:\.\d*)?", "", squeezed)  # (LinuxCNC ignores a fraction)
        if not squeezed:
            return False
        if squeezed.startswith("O"):
            if re.fullmatch(r"O\d+", squeezed):
                self.number = squeezed
                return False
            o_text = " ".join(re.sub(r"^\s*[Nn]\d+(?:\.\d*)?\s*", "", code).split())
            self._problem(
                f"word '{o_text}' (O-word subroutines and control flow) is not supported; "
                "only a program number such as 'O1001' on its own line is accepted",
                o_text,
                skip_line=True,
            )
        if "#" in squeezed or "[" in squeezed:
            self._parameters(squeezed)
        return self._block(self._tokenize(squeezed))

    def _strip_comments(self, raw: str) -> str:
        out: list[str] = []
        i = 0
        while i < len(raw):
            ch = raw[i]
            if ch == ";":
                break
            if ch == "(":
                close = raw.find(")", i + 1)
                nested = raw.find("(", i + 1)
                if close < 0:
                    self._problem("comment '(' is not closed on its line", "(", skip_line=True)
                if 0 <= nested < close:
                    self._problem("nested comments are not allowed", "(", skip_line=True)
                i = close + 1
                out.append(" ")
                continue
            out.append(ch)
            i += 1
        return "".join(out)

    def _parameters(self, s: str) -> None:
        """Reject the first parameter (``#1``, ``#<name>``) or expression (``[...]``) in ``s``."""
        if "#" in s:
            i = s.index("#")
            j = i + 1
            if s[j : j + 1] == "<":
                j = s.find(">", j) + 1 or len(s)
            while j < len(s) and (s[j].isdigit() or s[j] == "."):
                j += 1
            if s[j : j + 1] == "=":  # an assignment: show its value too
                j += 1
                while j < len(s) and not s[j].isalpha():
                    j += 1
            begin = i - 1 if i > 0 and s[i - 1].isalpha() else i
            self._unsupported(s[begin:j], "parameters", skip_line=True)
        i = s.index("[")
        depth, j = 0, i
        while j < len(s):
            depth += {"[": 1, "]": -1}.get(s[j], 0)
            j += 1
            if depth == 0:
                break
        begin = i
        while begin > 0 and s[begin - 1].isalpha():
            begin -= 1
        self._unsupported(s[begin:j], "expressions", skip_line=True)

    def _tokenize(self, s: str) -> list[_Word]:
        words: list[_Word] = []
        i = 0
        while i < len(s):
            ch = s[i]
            m = _NUMBER.match(s, i + 1)
            if ch in "@^":
                end = m.end() if m else i + 1
                self._unsupported(s[i:end], "polar coordinates")
                i = end
                continue
            if not ch.isalpha():
                shown = ch if ch.isprintable() else f"U+{ord(ch):04X}"
                self._problem(f"unexpected character '{shown}'", shown, skip_line=True)
            if m is None:
                self._problem(f"word '{ch}' has no number", ch, skip_line=True)
                raise AssertionError  # unreachable: _problem raised
            text = s[i : m.end()]
            i = m.end()
            if ch in _LETTERS_AXES_UNSUPPORTED:
                self._unsupported(text, "rotary and UVW axes; the cell programs X Y Z")
                continue
            if ch not in _LETTERS_OK:
                self._problem(f"word '{text}' is not an RS274/NGC word", text)
                continue
            if ch not in "GM" and any(w.letter == ch for w in words):
                self._problem(f"two '{ch}' words on one line", text)
                continue
            words.append(_Word(ch, float(m.group()), text))
        return words

    # -- one block --
    def _block(self, words: list[_Word]) -> bool:
        gcodes: dict[str, tuple[int, _Word]] = {}
        mcodes: dict[str, list[tuple[int, _Word]]] = {}
        vals: dict[str, _Word] = {}
        for w in words:
            if w.letter == "G":
                key = round(w.value * 10)
                if abs(w.value * 10 - key) > 1e-6 or key < 0:
                    self._problem(f"word '{w.text}' is not a G-code LinuxCNC knows", w.text)
                    continue
                if key in _G_UNSUPPORTED:
                    self._unsupported(w.text, _G_UNSUPPORTED[key])
                    continue
                if key not in _G_GROUP:
                    self._problem(f"word '{w.text}' is not a G-code LinuxCNC knows", w.text)
                    continue
                group = _G_GROUP[key]
                if group in gcodes:
                    other = gcodes[group][1].text
                    self._problem(
                        f"words '{other}' and '{w.text}' are both in the {group} group; "
                        "a line may have one",
                        w.text,
                    )
                    continue
                gcodes[group] = (key, w)
            elif w.letter == "M":
                key = round(w.value)
                if abs(w.value - key) > 1e-9 or key not in _M_GROUP:
                    reason = _M_UNSUPPORTED.get(key)
                    if reason:
                        self._unsupported(w.text, reason)
                    else:
                        self._problem(f"word '{w.text}' is not an M-code we support", w.text)
                    continue
                group = _M_GROUP[key]
                same = mcodes.setdefault(group, [])
                if same and not (group == "coolant" and {key, same[0][0]} == {7, 8}):
                    self._problem(
                        f"words '{same[0][1].text}' and '{w.text}' are both in the M {group} "
                        "group; a line may have one",
                        w.text,
                    )
                    continue
                same.append((key, w))
            elif w.letter != "N":
                vals[w.letter] = w
        g = {grp: k for grp, (k, _) in gcodes.items()}
        m = {grp: [k for k, _ in ks] for grp, ks in mcodes.items()}

        # which command uses the axis words: G28/G30, else the motion mode
        home = g.get("non-modal") if g.get("non-modal") in (280, 300) else None
        has_axes = any(a in vals for a in _AXIS_LETTERS)
        motion = g.get("motion")
        if home is not None and motion is not None and motion != 800 and has_axes:
            self._problem(
                f"'{_gname(home)}' and '{_gname(motion)}' both use axis words on one line",
                _gname(home),
                skip_line=True,
            )
        if motion is None and has_axes and home is None:
            motion = self.motion
        if motion == 800 and has_axes and home is None:
            first = next(vals[a].text for a in _AXIS_LETTERS if a in vals)
            self._problem(
                f"word '{first}': axis words need a motion mode (G0, G1, G2, G3, G81..G83) "
                "but none is active (G80)",
                first,
                skip_line=True,
            )
        # words no command on this line uses are errors, as in LinuxCNC
        uses = {
            "I": motion in (20, 30), "J": motion in (20, 30), "K": motion in (20, 30),
            "R": motion in (20, 30, *_CYCLES),
            "P": g.get("non-modal") == 40 or g.get("path mode") == 640 or motion in (20, 30, 820),
            "Q": motion == 830 or g.get("path mode") == 640,
            "L": motion in _CYCLES,
            "H": g.get("tool length offset") == 430,
            "D": False,
        }  # fmt: skip
        for letter, used in uses.items():
            if letter in vals and not used:
                self._problem(
                    f"word '{vals[letter].text}' is not used by any command on this line",
                    vals[letter].text,
                )
                del vals[letter]

        # LinuxCNC's order of execution within a line: F is set before G20/G21 (so an F next
        # to a unit change is in the units in force before it; the feed keeps its speed)
        if "F" in vals:
            f = vals["F"].value
            if f < 0:
                self._problem(f"word '{vals['F'].text}': the feed must be >= 0", vals["F"].text)
            else:
                self.feed = f * self.unit / 60.0
                self.feed_word = vals["F"].text
        if "S" in vals:
            s = vals["S"].value
            if s < 0:
                self._problem(
                    f"word '{vals['S'].text}': spindle speed must be >= 0", vals["S"].text
                )
            else:
                self.rpm = s
                self.rpm_line = self.line
        if "T" in vals:
            t = vals["T"]
            if t.value < 0 or t.value != int(t.value):
                self._problem(f"word '{t.text}': a tool number is an integer >= 0", t.text)
            else:
                self.selected = int(t.value)
                if self.selected and self.selected not in self.tools:
                    self.tools[self.selected] = ToolUse(self.selected, self.line)
        if "tool change" in m:
            self.tool = self.selected
            if self.tool in self.tools:
                self.tools[self.tool].loaded = True
            self.events.append(Event(self.line, f"T{self.tool} M6"))
        for k in m.get("spindle", []):
            self.spindle_dir = {3: 1, 4: -1, 5: 0}[k]
        for k in m.get("coolant", []):
            self.events.append(Event(self.line, f"M{k}"))
        if g.get("non-modal") == 40:
            self._dwell(vals)
        if "plane" in g:
            self.plane = {170: "XY", 180: "ZX", 190: "YZ"}[g["plane"]]
        if "units" in g:
            self.unit = INCH if g["units"] == 200 else MM
        if "tool length offset" in g:
            self._tool_length(g["tool length offset"], vals)
        if "work offset" in g:
            self.offset = _gname(g["work offset"])
        if "path mode" in g:
            extra = "".join(f" {vals[k].text}" for k in "PQ" if k in vals and g["path mode"] == 640)
            self.events.append(Event(self.line, _gname(g["path mode"]) + extra))
        if "distance mode" in g:
            self.absolute = g["distance mode"] == 900
        if "arc distance mode" in g:
            self.arc_absolute = g["arc distance mode"] == 901
        if "retract mode" in g:
            self.retract_old_z = g["retract mode"] == 980
        if "motion" in g and g["motion"] != self.motion:
            self.sticky = {}  # a new canned cycle needs its R and depth again
        if "motion" in g:
            self.motion = g["motion"]
        if motion is not None and motion not in _CYCLES:
            self.cycle_level = None  # G0..G3 or G80 ends a series of cycles
        if home is not None:
            self._home(home, vals)
            self.known = [True] * 3
        elif motion is not None:
            if motion in (0, 10):
                self._line_move(motion, vals)
            elif motion in (20, 30):
                self._arc(motion == 20, vals)
            elif motion in _CYCLES:
                self._cycle(motion, vals, explicit="motion" in g)
        for k in m.get("stop", []):
            if k in (2, 30):
                self.spindle_dir = 0
                return True
            self.events.append(Event(self.line, f"M{k}"))
        return False

    # -- helpers --
    def _target(self, vals: dict[str, _Word]) -> np.ndarray:
        end = self.pos.copy()
        for i, a in enumerate(_AXIS_LETTERS):
            if a in vals:
                v = vals[a].value * self.unit
                end[i] = v if self.absolute else self.pos[i] + v
        return end

    def _learn_axes(self, vals: dict[str, _Word]) -> None:
        """Axes programmed absolutely on this line are known from its move on."""
        if self.absolute:
            for i, a in enumerate(_AXIS_LETTERS):
                if a in vals:
                    self.known[i] = True

    def _emit(self, kind: str, end: np.ndarray, **kw: object) -> None:
        start = self.pos.copy()
        if kind in ("rapid", "feed") and not all(self.known):
            # the machine was somewhere: no invented travel from 0 along an unknown axis
            unknown = [i for i in range(3) if not self.known[i] and start[i] != end[i]]
            for i in unknown:
                start[i] = end[i]
            if kind == "feed" and unknown and not self._warned_start:
                self._warned_start = True
                self.warnings.append(
                    f"{self.file}:{self.line}: a feed from an unknown position (axes "
                    f"{''.join(_AXIS_LETTERS[i] for i in unknown)} not programmed yet); it is "
                    "taken to start there (in a cell the robot's approach brings the tool)"
                )
        feed = self.feed if kind in ("feed", "arc") else 0.0
        if kind in ("feed", "arc") and not feed > 0:
            self._problem(
                self._no_feed(),
                "F",
                skip_line=True,
            )
        end = np.array(end, dtype=float)
        start.setflags(write=False)
        end.setflags(write=False)
        center = kw.pop("center", None)
        if isinstance(center, np.ndarray):
            center.setflags(write=False)
        self.moves.append(
            Move(
                line=self.line,
                kind=kind,
                start=start,
                end=end,
                feed=feed,
                spindle_rpm=self.rpm,
                spindle_line=self.rpm_line,
                spindle_dir=self.spindle_dir,
                tool=self.tool,
                offset=self.offset,
                center=center,  # type: ignore[arg-type]
                **kw,  # type: ignore[arg-type]
            )
        )
        self.pos = end.copy()

    def _no_feed(self) -> str:
        if self.feed_word is not None:
            return f"the feed rate is 0 ({self.feed_word}): a G1/G2/G3/cycle needs F > 0"
        return "no feed rate: program an F word before the first G1/G2/G3/cycle"

    def _dwell(self, vals: dict[str, _Word]) -> None:
        p = vals.get("P")
        if p is None or p.value < 0:
            self._problem("G4 needs a P word: the dwell in seconds, >= 0", "G4", skip_line=True)
            return
        self._emit("dwell", self.pos.copy(), dwell=p.value)

    def _tool_length(self, key: int, vals: dict[str, _Word]) -> None:
        if key == 490:
            self.events.append(Event(self.line, "G49"))
            return
        h = vals.get("H")
        if h is not None and (h.value < 0 or h.value != int(h.value)):
            self._problem(f"word '{h.text}': H is a tool number, an integer >= 0", h.text)
            h = None
        n = int(h.value) if h is not None else self.tool
        self.events.append(Event(self.line, f"G43 H{n}"))
        if n in self.tools:
            self.tools[n].length_offset_lines += (self.line,)

    def _home(self, key: int, vals: dict[str, _Word]) -> None:
        home = self.homes[key]
        name = _gname(key)
        if home is None:
            self._problem(
                f"word '{name}' (go to the predefined position) needs that position: pass "
                f"{name.lower()}_home=(x, y, z) [m, program coordinates] to parse()"
                + (" or --g28-mm to robocell gcode" if key == 280 else ""),
                name,
                skip_line=True,
            )
            return
        axes = [i for i, a in enumerate(_AXIS_LETTERS) if a in vals]
        if axes:
            self._emit("rapid", self._target(vals))  # the intermediate point
            end = self.pos.copy()
            end[axes] = home[axes]
        else:
            end = home.copy()
        self._emit("rapid", end)

    def _line_move(self, motion: int, vals: dict[str, _Word]) -> None:
        if not any(a in vals for a in _AXIS_LETTERS):
            if motion == 10 and not self.feed > 0:  # LinuxCNC checks the feed first
                self._problem(
                    self._no_feed(),
                    "G1",
                    skip_line=True,
                )
            return  # "G1" or "G0" alone sets the mode only
        end = self._target(vals)
        self._emit(_MOTION_NAMES[motion], end)
        self._learn_axes(vals)

    def _radius_tolerance(self) -> tuple[float, float]:
        """LinuxCNC's arc tolerances [m] in the units in force: the centre-format "spiral"
        tolerance (CENTER_ARC_RADIUS_TOLERANCE, 2 x 0.01 mm x sqrt 2, or 2 x 0.001 inch x sqrt 2)
        and the R-format reach tolerance (RADIUS_TOLERANCE, 0.00005 inch)."""
        base = 0.001 * INCH if self.unit == INCH else 0.01 * MM
        return 2 * base * math.sqrt(2), 0.00005 * INCH

    def _arc(self, clockwise: bool, vals: dict[str, _Word]) -> None:
        a, b, c = PLANE_AXES[self.plane]
        ou, ov = _PLANE_OFFSETS[self.plane]
        for letter in "IJK":
            if letter in vals and letter not in (ou, ov):
                self._problem(
                    f"word '{vals[letter].text}': {letter} is not an offset of the "
                    f"{self.plane} plane (use {ou} and {ov})",
                    vals[letter].text,
                    skip_line=True,
                )
        turns = 1
        if "P" in vals:
            p = vals["P"]
            if p.value < 1 or p.value != int(p.value):
                self._problem(f"word '{p.text}': P (turns) must be an integer >= 1", p.text)
            else:
                turns = int(p.value)
        start = self.pos.copy()
        end = self._target(vals)
        su, sv, eu, ev = start[a], start[b], end[a], end[b]
        spiral, reach = self._radius_tolerance()
        if "R" in vals:
            rw = vals["R"]
            if ou in vals or ov in vals:
                self._problem(
                    f"word '{rw.text}': an arc takes R or {ou}/{ov} offsets, not both",
                    rw.text,
                    skip_line=True,
                )
            if _AXIS_LETTERS[a] not in vals and _AXIS_LETTERS[b] not in vals:
                self._problem(
                    f"word '{rw.text}': an R-form arc needs an end point in the {self.plane} plane",
                    rw.text,
                    skip_line=True,
                )
            r = rw.value * self.unit
            du, dv = eu - su, ev - sv
            d = math.hypot(du, dv)
            if d < 1e-12:
                self._problem(
                    f"word '{rw.text}': an R-form arc cannot be a full circle (end = start); "
                    f"use {ou}/{ov} offsets",
                    rw.text,
                    skip_line=True,
                )
            half = d / 2
            if abs(r) < half - reach:
                self._problem(
                    f"word '{rw.text}': radius {abs(rw.value):g} is too small to reach the "
                    f"end point ({d / self.unit:g} away)",
                    rw.text,
                    skip_line=True,
                )
            q = math.sqrt(max(r * r - half * half, 0.0))
            right = (dv / d, -du / d)
            side = 1.0 if clockwise == (r > 0) else -1.0  # G2 with R > 0: centre on the right
            cu = su + du / 2 + side * q * right[0]
            cv = sv + dv / 2 + side * q * right[1]
        else:
            if ou not in vals and ov not in vals:
                self._problem(
                    f"an arc in the {self.plane} plane needs {ou}/{ov} offsets or R",
                    _gname(20 if clockwise else 30),
                    skip_line=True,
                )
            if self.arc_absolute:
                missing = [x for x in (ou, ov) if x not in vals]
                if missing:
                    self._problem(
                        f"G90.1 (absolute arc centres) needs both {ou} and {ov}; "
                        f"{missing[0]} is missing",
                        missing[0],
                        skip_line=True,
                    )
                cu = vals[ou].value * self.unit
                cv = vals[ov].value * self.unit
            else:
                cu = su + (vals[ou].value * self.unit if ou in vals else 0.0)
                cv = sv + (vals[ov].value * self.unit if ov in vals else 0.0)
            r0 = math.hypot(su - cu, sv - cv)
            r1 = math.hypot(eu - cu, ev - cv)
            if r0 < 1e-12:
                self._problem("arc radius is zero (the centre is the start point)", ou)
            diff = abs(r1 - r0)  # LinuxCNC: 100 x the tolerance, or both it and 0.1 %
            if diff > 100 * spiral or (diff > spiral and diff > 0.001 * max(r0, r1)):
                u = self.unit
                self._problem(
                    f"radius to the end of the arc ({r1 / u:.4f}) differs from the radius to "
                    f"its start ({r0 / u:.4f}) by {diff / u:.4f}, more than LinuxCNC allows",
                    _gname(20 if clockwise else 30),
                    skip_line=True,
                )
        center = start.copy()
        center[a], center[b] = cu, cv
        self._emit("arc", end, center=center, plane=self.plane, clockwise=clockwise, turns=turns)
        self.known = [True] * 3  # (an arc starts from where the program says the tool is)

    def _cycle(self, code: int, vals: dict[str, _Word], *, explicit: bool) -> None:
        a, b, c = PLANE_AXES[self.plane]
        ca, cb, cc = (_AXIS_LETTERS[i] for i in (a, b, c))
        name = _gname(code)
        if not any(x in vals for x in _AXIS_LETTERS):
            if explicit:
                self._problem(f"'{name}' needs axis words (where to drill)", name, skip_line=True)
            return
        for letter, key in ((cc, "depth"), ("R", "R"), ("Q", "Q"), ("P", "P")):
            if letter in vals:
                self.sticky[key] = vals[letter].value
        need = ["depth", "R"] + (["Q"] if code == 830 else [])
        for key in need:
            if key not in self.sticky:
                word = cc if key == "depth" else key
                self._problem(f"'{name}' needs a {word} word", name, skip_line=True)
        if code == 830 and self.sticky["Q"] <= 0:
            self._problem(f"'{name}': Q (peck depth) must be > 0", "Q", skip_line=True)
        if code == 820 and "P" not in self.sticky:
            self._problem(f"'{name}' needs a P word (the dwell [s])", name, skip_line=True)
        dwell = self.sticky.get("P", 0.0) if code == 820 else 0.0
        if dwell < 0:
            self._problem(f"'{name}': P (dwell) must be >= 0", "P", skip_line=True)
        repeats = 1
        if "L" in vals:
            lw = vals["L"]
            if lw.value < 1 or lw.value != int(lw.value):
                self._problem(f"word '{lw.text}': L (repeats) must be an integer >= 1", lw.text)
            else:
                repeats = int(lw.value)
        u = self.unit
        if self.cycle_level is None:
            self.cycle_level = float(self.pos[c])
        old = self.cycle_level  # where this series of cycles started
        pos_a, pos_b = self.pos[a], self.pos[b]
        if self.absolute:
            r = self.sticky["R"] * u
            bottom = self.sticky["depth"] * u
            inc_a = inc_b = 0.0
            pos_a = vals[ca].value * u if ca in vals else pos_a
            pos_b = vals[cb].value * u if cb in vals else pos_b
        else:  # LinuxCNC: R from the series' start level, the depth from R, X Y step
            r = old + self.sticky["R"] * u
            bottom = r + self.sticky["depth"] * u
            inc_a = vals[ca].value * u if ca in vals else 0.0
            inc_b = vals[cb].value * u if cb in vals else 0.0
        if bottom > r:
            self._problem(
                f"'{name}': the retract plane R ({r / u:g}) is below the hole bottom "
                f"{cc} ({bottom / u:g})",
                "R",
                skip_line=True,
            )
        clear = old if (self.retract_old_z and old > r) else r  # G98: back to the start level

        def go(kind: str, coords: dict[int, float] | None = None) -> None:
            end = self.pos.copy()
            for axis, v in (coords or {}).items():
                end[axis] = v
            if kind == "dwell":
                self._emit("dwell", end, dwell=dwell)
            elif not np.array_equal(end, self.pos):  # cycles skip moves of zero length
                self._emit(kind, end)

        if old < r:  # preliminary motion: from below the R plane straight up to it
            go("rapid", {c: r})
        for _ in range(repeats):
            pos_a, pos_b = pos_a + inc_a, pos_b + inc_b
            go("rapid", {a: pos_a, b: pos_b})
            go("rapid", {c: r})
            self.known = [True] * 3  # over the hole at R: the drilling moves are real
            if code == 830:
                delta = self.sticky["Q"] * u
                depth = r - delta
                while depth > bottom + 1e-12:
                    go("feed", {c: depth})
                    go("rapid", {c: r})
                    go("rapid", {c: depth + PECK_CLEARANCE})
                    depth -= delta
            go("feed", {c: bottom})
            if code == 820:
                go("dwell")
            go("rapid", {c: clear})


def _vec3(v: Sequence[float], name: str) -> np.ndarray:
    arr = np.asarray(v, dtype=float)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be 3 finite numbers [m], got {v!r}")
    return arr.copy()
