"""A machinist's summary of a G-code :class:`~robocell.machining.gcode.Program`.

:func:`summarize` gives SI numbers in a dict (JSON-ready, keys name their units);
:func:`format_summary` prints them as a plain-text table in mm, mm/min and seconds.
"""

from __future__ import annotations

import numpy as np

from robocell.machining.gcode import Program

_KINDS = ("rapid", "feed", "arc", "dwell")


def _bounds(points: np.ndarray) -> dict[str, list[float]] | None:
    if len(points) == 0:
        return None
    return {"min_m": points.min(axis=0).tolist(), "max_m": points.max(axis=0).tolist()}


def summarize(program: Program, rapid_speed: float) -> dict:
    """Counts, lengths, an estimated time and bounding boxes of ``program``.

    ``rapid_speed`` is the speed of rapid moves [m/s]. The time is path length over the
    programmed feeds plus rapids at ``rapid_speed`` plus dwells — no acceleration, so it is a
    lower bound. Bounding boxes include arc bulges (arcs are subdivided to 10 µm).
    """
    if not rapid_speed > 0:
        raise ValueError(f"rapid_speed must be > 0 m/s, got {rapid_speed}")
    moves = program.moves
    counts = {k: sum(m.kind == k for m in moves) for k in _KINDS}
    cutting = [m for m in moves if m.kind in ("feed", "arc")]
    cutting_length = sum(m.length for m in cutting)
    rapid_length = sum(m.length for m in moves if m.kind == "rapid")
    cut_time = sum(m.length / m.feed for m in cutting)
    dwell_time = sum(m.dwell for m in moves if m.kind == "dwell")
    rapid_time = rapid_length / rapid_speed
    pts, _, kinds = program.polyline(1e-5)
    cutting_pts = [m.points(1e-5) for m in cutting]
    tools = []
    for n in sorted({m.tool for m in moves if m.kind != "dwell"}):
        mine = [m for m in cutting if m.tool == n]
        use = program.tools.get(n)
        feeds = [m.feed for m in mine]
        first = min(m.line for m in moves if m.tool == n)
        tools.append(
            {
                "tool": n,
                "first_line": use.first_line if use else first,
                "spindle_rpm": sorted({m.spindle_rpm for m in mine}),
                "feed_min_m_per_s": min(feeds) if feeds else None,
                "feed_max_m_per_s": max(feeds) if feeds else None,
                "cutting_length_m": sum(m.length for m in mine),
            }
        )
    selected_only = [
        {"tool": t.number, "first_line": t.first_line}
        for t in program.tools.values()
        if t.number not in {d["tool"] for d in tools}
    ]
    return {
        "file": program.file,
        "program_number": program.number,
        "moves": counts,
        "cutting_length_m": cutting_length,
        "rapid_length_m": rapid_length,
        "rapid_speed_m_per_s": rapid_speed,
        "time_s": {
            "cutting": cut_time,
            "rapid": rapid_time,
            "dwell": dwell_time,
            "total": cut_time + rapid_time + dwell_time,
        },
        "bounds": _bounds(pts),
        "cutting_bounds": _bounds(np.concatenate(cutting_pts)) if cutting_pts else None,
        "offsets": sorted({m.offset for m in moves}),
        "tools": tools,
        "tools_selected_not_used": selected_only,
        "warnings": list(program.warnings),
    }


def _mm(v: float) -> str:
    return f"{v * 1e3:.3f}"


def format_summary(summary: dict) -> str:
    """``summary`` (from :func:`summarize`) as plain text: mm, mm/min, seconds."""
    s = summary
    t = s["time_s"]
    c = s["moves"]
    out = [
        f"G-code program {s['file']}" + (f" ({s['program_number']})" if s["program_number"] else "")
    ]
    out.append(
        f"  moves: {c['rapid']} rapid, {c['feed']} feed, {c['arc']} arc, {c['dwell']} dwell"
        f"   work offsets: {', '.join(s['offsets']) or '-'}"
    )
    out.append(
        f"  cutting length {s['cutting_length_m'] * 1e3:.1f} mm, "
        f"rapid length {s['rapid_length_m'] * 1e3:.1f} mm"
    )
    out.append(
        f"  estimated time {t['total']:.1f} s = cutting {t['cutting']:.1f} s + rapid "
        f"{t['rapid']:.1f} s (at {s['rapid_speed_m_per_s'] * 6e4:.0f} mm/min) + dwell "
        f"{t['dwell']:.1f} s; no acceleration, a lower bound"
    )
    rows = [("extent [mm]", "X min", "X max", "Y min", "Y max", "Z min", "Z max")]
    for name, key in (("all moves", "bounds"), ("cutting", "cutting_bounds")):
        b = s[key]
        if b is None:
            rows.append((name, *["-"] * 6))
        else:
            rows.append((name, *(_mm(b[k][i]) for i in range(3) for k in ("min_m", "max_m"))))
    out += ["", *_table(rows)]
    rows = [("tool", "first line", "spindle rpm", "feed mm/min", "cutting mm")]
    for tl in s["tools"]:
        fmin, fmax = tl["feed_min_m_per_s"], tl["feed_max_m_per_s"]
        feeds = "-" if fmin is None else f"{fmin * 6e4:.0f}"
        if fmax is not None and fmax != fmin:
            feeds += f"..{fmax * 6e4:.0f}"
        rows.append(
            (
                f"T{tl['tool']}" if tl["tool"] else "none",
                str(tl["first_line"]),
                ", ".join(f"{r:g}" for r in tl["spindle_rpm"]) or "-",
                feeds,
                f"{tl['cutting_length_m'] * 1e3:.1f}",
            )
        )
    for tl in s["tools_selected_not_used"]:
        rows.append((f"T{tl['tool']}", str(tl["first_line"]), "(selected, no moves)", "", ""))
    out += ["", *_table(rows)]
    if s["warnings"]:
        out += ["", f"warnings ({len(s['warnings'])}):", *(f"  {w}" for w in s["warnings"])]
    return "\n".join(out)


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  "
        + "  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths)))
        for r in rows
    ]
