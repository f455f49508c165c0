"""The ZeroMQ bridge end to end: lockstep sessions, ownership, error replies, profiles, the
watchdog's controlled stop, CurveZMQ, and remote robots backed by a second process.

Servers bind to 127.0.0.1 on free ports and stop by themselves (idle timeouts, durations)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq
from conftest import SCENARIOS, ServerThread, strip_timing

import robocell
from robocell.bridge.client import Client, context_from_scenario, drive, observation
from robocell.bridge.server import SimServer
from robocell.cell.build import cell_from_scenario
from robocell.cell.cell import Cell
from robocell.control.controller import Commands
from robocell.errors import BridgeError
from robocell.record.recorder import column, read_events, read_recording
from robocell.robot.interface import JointCommand
from robocell.scenario.loader import load_scenario

LOCAL = "tcp://127.0.0.1:0"


def _cycle_cell(**kw) -> Cell:
    return cell_from_scenario(load_scenario(SCENARIOS / "cycle_test.yaml"), **kw)


def _spawn(args: list[str], tmp_path: Path, name: str) -> tuple[subprocess.Popen, list[str]]:
    """Start ``robocell ARGS --ready-file F`` and wait until it has bound; its endpoints."""
    ready = tmp_path / f"{name}.ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "robocell", *args, "--ready-file", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not ready.exists() or not ready.read_text().strip():
        if proc.poll() is not None:
            raise AssertionError(f"{name} exited: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{name} did not bind")
        time.sleep(0.05)
    time.sleep(0.05)
    return proc, ready.read_text().split("\n")


# -- lockstep ----------------------------------------------------------------------------------
def test_lockstep_session_matches_in_process_step_by_step():
    """The same commands sent over the bridge give bit-identical states to Cell.step."""
    ref = _cycle_cell()
    obs_ref = ref.start()
    with ServerThread(SimServer(_cycle_cell(), bind=LOCAL, idle_timeout=20)) as srv:
        with Client(srv.endpoint) as c:
            hello = c.hello()
            assert hello["mode"] == "lockstep" and hello["robots"]["r1"]["dof"] == 6
            obs = observation(hello["observation"])
            q0 = obs.robots["r1"].q
            np.testing.assert_array_equal(q0, obs_ref.robots["r1"].q)
            for k in range(200):
                q = q0 + 0.3 * np.sin(np.arange(6) + k * 0.01) * min(1.0, k / 50)
                cmd = Commands({"r1": JointCommand.position(q)})
                obs = c.step(cmd)
                obs_ref = ref.step(Commands({"r1": JointCommand.position(q)}))
                np.testing.assert_array_equal(obs.robots["r1"].q, obs_ref.robots["r1"].q)
                np.testing.assert_array_equal(obs.robots["r1"].tau, obs_ref.robots["r1"].tau)
            assert obs.t == pytest.approx(200 * 0.002)
            # several ticks in one request hold the last command
            obs = c.step(ticks=10)
            assert obs.t == pytest.approx(210 * 0.002)
    ref.close()


def test_a_held_position_command_comes_to_rest_where_it_led():
    """Ticks without a new command hold the setpoint the last command reached (its velocity
    feed-forward is not replayed every tick)."""
    with ServerThread(SimServer(_cycle_cell(), bind=LOCAL, idle_timeout=20)) as srv:
        with Client(srv.endpoint) as c:
            q0 = observation(c.hello()["observation"]).robots["r1"].q
            v = np.zeros(6)
            v[0] = 0.5
            obs = c.step(Commands({"r1": JointCommand.position(q0, v)}), ticks=200)
            assert obs.robots["r1"].q[0] == pytest.approx(q0[0] + 0.5 * 0.002, abs=1e-4)
            assert abs(obs.robots["r1"].dq[0]) < 1e-3


def test_lockstep_from_another_process_gives_the_in_process_kpis(tmp_path):
    """A pick-and-place controller in this process drives a server in another process: the
    KPIs equal those of `robocell run` on the same scenario and seed."""
    scn = SCENARIOS / "pick_and_place.yaml"
    duration = 14.0
    ref = robocell.run(scn, duration=duration, write=False).kpis
    proc, eps = _spawn(
        [
            "serve",
            str(scn),
            "--bind",
            LOCAL,
            "--idle-timeout",
            "30",
            "--out",
            str(tmp_path / "srv"),
        ],
        tmp_path,
        "server",
    )
    try:
        with Client(eps[0], timeout=30) as c:
            hello = c.hello()
            spec = context_from_scenario(scn, hello=hello)
            out = drive(c, spec.controller, spec.ctx, duration, spec.end_when_done)
        proc.wait(30)
    finally:
        proc.kill()
    got = strip_timing(out["kpis"])
    assert got == json.loads(json.dumps(strip_timing(ref)))
    assert got["pick_and_place"]["parts_placed"] >= 1
    assert (tmp_path / "srv" / "kpis.json").exists()
    assert (tmp_path / "srv" / "bridge_commands.arrows").exists()
    # the session recording has one command row per tick, with sim time and wall receive time
    cmds = read_recording(tmp_path / "srv" / "bridge_commands.arrows")
    assert cmds.num_rows == round(duration / 0.002)
    wall = column(cmds, "wall_rx")
    assert np.all(np.diff(wall) >= 0) and abs(wall[0] - time.time()) < 600


def test_drive_command_line(tmp_path):
    """`robocell serve` and `robocell drive` in two processes, as a user runs them."""
    scn = SCENARIOS / "cycle_test.yaml"
    proc, eps = _spawn(
        ["serve", str(scn), "--bind", LOCAL, "--idle-timeout", "20"], tmp_path, "srv"
    )
    try:
        r = subprocess.run(
            [sys.executable, "-m", "robocell", "drive", str(scn), "--connect", eps[0], "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        proc.wait(30)
    finally:
        proc.kill()
    assert r.returncode == 0, r.stderr
    kpis = json.loads(r.stdout)
    ref = robocell.run(scn, write=False).kpis
    assert strip_timing(kpis) == json.loads(json.dumps(strip_timing(ref)))
    assert kpis["cycles"] == 5


def test_errors_are_replied_and_the_session_goes_on():
    cell = _cycle_cell()
    cell.signals["lamp"] = False  # a PLC output the client may switch
    with ServerThread(SimServer(cell, bind=LOCAL, idle_timeout=20)) as srv:
        ctx = zmq.Context()
        s = ctx.socket(zmq.REQ)
        s.setsockopt(zmq.RCVTIMEO, 5000)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(srv.endpoint)

        def ask(payload: bytes) -> dict:
            s.send(payload)
            return msgpack.unpackb(s.recv(), raw=False)

        pack = msgpack.packb
        cases = [
            (b"\xc1garbage", "E_DECODE"),
            (pack([1, 2, 3]), "E_NOT_A_MAP"),
            (pack({"type": "ping"}), "E_VERSION"),
            (pack({"v": 99, "type": "ping"}), "E_VERSION"),
            (pack({"v": 1, "type": "fly"}), "E_UNKNOWN_TYPE"),
            (pack({"v": 1, "type": "step", "ticks": "3"}), "E_BAD_TYPE"),
            (pack({"v": 1, "type": "step", "ticks": 0}), "E_BAD_VALUE"),
            (pack({"v": 1, "type": "step", "commands": {"r9": {}}}), "E_UNKNOWN_ROBOT"),
            (
                pack({"v": 1, "type": "step", "commands": {"r1": {"values": [0] * 6}}}),
                "E_MISSING_FIELD",
            ),
            (
                pack(
                    {
                        "v": 1,
                        "type": "step",
                        "commands": {"r1": {"mode": "position", "values": [0] * 5}},
                    }
                ),
                "E_JOINT_COUNT",
            ),
            (
                pack(
                    {
                        "v": 1,
                        "type": "step",
                        "commands": {"r1": {"mode": "position", "values": [float("nan")] * 6}},
                    }
                ),
                "E_BAD_VALUE",
            ),
            (pack({"v": 1, "type": "step", "signals": {"nope": 1}}), "E_UNKNOWN_SIGNAL"),
            (pack({"v": 1, "type": "step", "signals": {"lamp": "banana"}}), "E_BAD_TYPE"),
            (pack({"v": 1, "type": "step", "signals": {"r1.fault": True}}), "E_MODE"),
            (pack({"v": 1, "type": 5}), "E_BAD_TYPE"),
            (pack({"type": "hello"}), "E_VERSION"),
            (pack({"v": 1, "type": "command"}), "E_MODE"),
            (b"\x00" * (2 << 20), "E_TOO_LARGE"),
            (pack({"v": 1, "type": "hello", "versions": [7, 8]}), "E_VERSION"),
        ]
        for payload, code in cases:
            rep = ask(payload)
            assert rep["ok"] is False and rep["code"] == code, (payload[:60], rep)
            assert rep["message"]
        # nothing advanced; a well-formed request still works
        rep = ask(pack({"v": 1, "type": "step", "id": 7, "signals": {"lamp": True}}))
        assert rep["ok"] and rep["id"] == 7 and rep["t"] == pytest.approx(0.002)
        assert rep["signals"]["lamp"] is True
        rep = ask(pack({"v": 1, "type": "kpis"}))
        assert rep["ok"] and rep["kpis"]["duration_s"] == pytest.approx(0.002)
        s.close()
        ctx.term()
        assert srv.errors["E_DECODE"] == 1 and sum(srv.errors.values()) == len(cases)


def test_one_client_commands_a_robot_at_a_time():
    with ServerThread(SimServer(_cycle_cell(), bind=LOCAL, idle_timeout=20)) as srv:
        with Client(srv.endpoint, name="a") as a, Client(srv.endpoint, name="b") as b:
            a.hello()
            b.hello()
            q = observation(a.info["observation"]).robots["r1"].q
            a.step(Commands({"r1": JointCommand.position(q)}))
            with pytest.raises(BridgeError) as e:
                b.step(Commands({"r1": JointCommand.position(q)}))
            assert e.value.code == "E_NOT_OWNER" and "a" in str(e.value)
            with pytest.raises(BridgeError) as e:
                b.step()  # an observer does not advance the clock
            assert e.value.code == "E_NOT_OWNER"
            assert b.state().t == pytest.approx(0.002)  # but it reads the state
            a.close()
            b.step(Commands({"r1": JointCommand.position(q)}))  # a said bye: b may command


# -- profiles ----------------------------------------------------------------------------------
def _panda_cell() -> Cell:
    cell = Cell(seed=1)
    cell.add_robot("panda", control_period=0.001)
    return cell


def test_franka_profile_faults_after_20_consecutive_misses_not_19():
    with ServerThread(
        SimServer(_panda_cell(), bind=LOCAL, profile="franka_fci", idle_timeout=20)
    ) as srv:
        with Client(srv.endpoint) as c:
            hello = c.hello()
            assert hello["profile"]["name"] == "franka_fci"
            assert hello["control_period"] == pytest.approx(0.001)
            q = observation(hello["observation"]).robots["r1"].q
            cmd = Commands({"r1": JointCommand.position(q)})
            # one fresh command, then 19 periods without one: no fault
            obs = c.step(cmd, ticks=20)
            assert obs.signals["r1.fault"] is False
            obs = c.step(cmd)  # a fresh command resets the count
            # one fresh command, then 20 periods without one: the 20th miss faults
            obs = c.step(cmd, ticks=21)
            assert obs.signals["r1.fault"] is True
            faults = [e for e in obs.events if e["kind"] == "fault"]
            assert len(faults) == 1 and faults[0]["fault"] == srv.profile.fault
            assert faults[0]["t"] == pytest.approx(obs.t - 0.001)  # judged before the 21st tick
            with pytest.raises(BridgeError) as e:
                c.step(cmd)
            assert e.value.code == "E_FAULT"
            c.step(ticks=50)  # the controlled stop runs; then the fault can be cleared
            assert c.clear_fault() == ["r1"]
            obs = c.step(cmd)
            assert obs.signals["r1.fault"] is False


def test_unknown_profile_is_a_clear_error():
    with pytest.raises(BridgeError) as e:
        SimServer(_panda_cell(), bind=LOCAL, profile="franka_fic")
    assert "franka_fci" in str(e.value) and e.value.exit_code == 2


# -- real time and the watchdog ----------------------------------------------------------------
def test_watchdog_brings_the_robot_to_a_controlled_stop(tmp_path):
    """A client drives joint 1 at speed in real time and goes silent: the watchdog faults the
    robot and brakes it to rest within its deceleration limit."""
    cell = _cycle_cell()
    srv = SimServer(
        cell,
        bind=LOCAL,
        mode="realtime",
        watchdog_s=0.1,
        duration=1.5,
        out_dir=tmp_path,
        plots=False,
    )
    lim = cell.robots["r1"].limits
    with ServerThread(srv):
        with Client(srv.endpoint) as c:
            hello = c.hello()
            assert hello["watchdog_s"] == 0.1
            t0 = time.perf_counter()
            speed = 1.5  # rad/s on joint 1, commanded as a velocity (it holds until replaced)
            dq = np.zeros(6)
            dq[0] = speed
            while time.perf_counter() - t0 < 0.5:
                c.command(Commands({"r1": JointCommand.velocity_cmd(dq)}))
                time.sleep(0.002)
            # the client stops commanding here: the robot would go on at 1.5 rad/s
        srv_thread_wait(srv)
    rec = read_recording(tmp_path / "recording.arrows")
    t = column(rec, "t")
    dq = column(rec, "r1.dq")[:, 0]
    events = read_events(tmp_path / "events.jsonl")
    faults = [e for e in events if e["kind"] == "fault"]
    assert len(faults) == 1 and faults[0]["fault"] == "watchdog"
    tf = faults[0]["t"]
    before = dq[(t > tf - 0.05) & (t <= tf)]
    assert np.mean(before) > 0.8 * speed  # it was moving when the watchdog tripped
    after = (t >= tf) & (t <= tf + 1.0)
    ddq = np.diff(dq[after]) / np.diff(t[after])
    assert np.max(np.abs(ddq)) <= lim.acceleration[0] * 1.05
    stop_time = speed / (0.8 * lim.acceleration[0])
    assert np.all(np.abs(dq[t > tf + stop_time + 0.1]) < 0.01)
    assert column(rec, "sig.r1.fault")[-1, 0] == 1.0
    rep = json.loads((tmp_path / "bridge.json").read_text())
    assert rep["timing"]["ticks"] > 500


def test_realtime_publishes_every_tick_to_every_subscriber():
    cell = _cycle_cell()
    srv = SimServer(cell, bind=LOCAL, mode="realtime", duration=1.0)
    with ServerThread(srv):
        subs = [Client(srv.endpoint, role="observer") for _ in range(2)]
        got: list[list[int]] = [[], []]

        def listen(i: int) -> None:
            for msg in subs[i].subscribe(timeout=1.0):
                got[i].append(msg["tick"])

        for c in subs:
            c.hello()
        threads = [threading.Thread(target=listen, args=(i,)) for i in range(2)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(15)
        for c in subs:
            c.close()
    for ticks in got:
        # (a subscription misses the ticks before it connected; after that, none)
        assert len(ticks) > 300
        assert np.all(np.diff(ticks) == 1)
    rep = srv.report()
    assert rep["ticks"] == 500 and rep["timing"]["ticks"] == 500


def test_lockstep_serves_with_and_without_the_busy_wait():
    """The busy-wait after a message only changes how the server waits, not what it answers;
    a spin outside 0..1 s is refused."""
    states = []
    for spin in (0.0, 0.002):
        with ServerThread(
            SimServer(_cycle_cell(), bind=LOCAL, idle_timeout=20, lockstep_spin=spin)
        ) as srv:
            with Client(srv.endpoint) as c:
                c.hello()
                time.sleep(0.01)  # longer than the spin: the server is asleep in poll again
                states.append([c.step().robots["r1"].q for _ in range(20)])
    np.testing.assert_array_equal(states[0], states[1])
    cell = _cycle_cell()
    try:
        for bad in (-0.001, 2.0, float("nan")):
            with pytest.raises(BridgeError, match="lockstep_spin"):
                SimServer(cell, bind=LOCAL, lockstep_spin=bad)
    finally:
        cell.close()


def test_wait_for_message_returns_when_a_message_waits_or_time_is_up():
    from robocell.bridge.server import wait_for_message

    ctx = zmq.Context()
    try:
        a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
        port = a.bind_to_random_port("tcp://127.0.0.1")
        b.connect(f"tcp://127.0.0.1:{port}")
        t0 = time.perf_counter()
        assert wait_for_message(a, t0 + 0.02) is False
        assert time.perf_counter() - t0 >= 0.02
        b.send(b"x")
        assert wait_for_message(a, time.perf_counter() + 5.0) is True
        assert a.recv() == b"x"
        a.close(0)
        b.close(0)
    finally:
        ctx.term()


def test_realtime_counts_the_periods_a_stall_skips():
    """A 50 ms stall at a 2 ms period: the periods whose deadlines passed are reported as
    skipped (and as missed deadlines), not silently dropped from the report."""
    srv = SimServer(_cycle_cell(), bind=LOCAL, mode="realtime", duration=0.3)
    tick = srv._tick_realtime

    def stalling_tick() -> None:
        tick()
        if srv.tick == 50:
            time.sleep(0.05)

    srv._tick_realtime = stalling_tick  # type: ignore[method-assign]
    with ServerThread(srv):
        srv_thread_wait(srv)
    tm = srv.report()["timing"]
    assert tm["ticks"] == 150
    assert tm["schedule_restarts"] >= 1
    # 50 ms late by the end of tick 50: 24 deadlines passed (at least; a loaded machine adds)
    assert tm["skipped_periods"] >= 24
    missed = tm["deadline_misses"] + tm["skipped_periods"]
    assert tm["deadline_miss_share"] == pytest.approx(missed / (150 + tm["skipped_periods"]))
    assert tm["deadline_miss_share"] > 24 / 174


def srv_thread_wait(srv: SimServer, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not srv.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.finished


# -- CurveZMQ ----------------------------------------------------------------------------------
def test_curve_refuses_a_client_without_an_allowed_key(tmp_path):
    from robocell.bridge.security import ServerSecurity, generate_keys

    generate_keys(tmp_path / "keys", "server")
    generate_keys(tmp_path / "keys" / "clients", "good")
    generate_keys(tmp_path / "other", "bad")
    sec = ServerSecurity(tmp_path / "keys" / "server.key_secret", tmp_path / "keys" / "clients")
    with ServerThread(SimServer(_cycle_cell(), bind=LOCAL, security=sec, idle_timeout=20)) as srv:
        server_pub = tmp_path / "keys" / "server.key"
        with Client(
            srv.endpoint,
            timeout=1.0,
            secret_key=tmp_path / "other" / "bad.key_secret",
            server_key=server_pub,
        ) as bad:
            with pytest.raises(BridgeError, match="no reply"):
                bad.hello()
        with Client(srv.endpoint, timeout=1.0) as plain_client:
            with pytest.raises(BridgeError, match="no reply"):
                plain_client.hello()
        with Client(
            srv.endpoint,
            timeout=5.0,
            secret_key=tmp_path / "keys" / "clients" / "good.key_secret",
            server_key=server_pub,
        ) as good:
            assert good.hello()["mode"] == "lockstep"
            assert good.step().t == pytest.approx(0.002)


def test_non_loopback_bind_needs_keys_or_insecure():
    with pytest.raises(BridgeError) as e:
        SimServer(_cycle_cell(), bind="tcp://0.0.0.0:0")
    assert e.value.exit_code == 2 and "--insecure" in str(e.value)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "robocell",
            "serve",
            str(SCENARIOS / "cycle_test.yaml"),
            "--bind",
            "tcp://*:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and "insecure" in r.stderr


# -- remote robots -----------------------------------------------------------------------------
def _twin_scenario(scn: Path, endpoint: str, tmp_path: Path) -> Path:
    """``scn`` with its first robot backed by the robot server at ``endpoint`` (its robots
    section copied with one ``backend`` line added; the rest extends the original)."""
    text = scn.read_text()
    robots = re.search(r"^robots:\n(?:[ #].*\n)+", text, flags=re.M)
    assert robots is not None
    block = re.sub(
        r"^(    control_period: .*)$",
        lambda m: m.group(1) + f'\n    backend: {{remote: "{endpoint}"}}',
        robots.group(0),
        count=1,
        flags=re.M,
    )
    twin = tmp_path / "twin.yaml"
    twin.write_text(f"extends: {scn.resolve()}\n{block}outputs: {{dir: {tmp_path / 'run'}}}\n")
    return twin


def test_remote_robot_cell_completes_pick_and_place(tmp_path):
    """The default pick-and-place cell with its UR5e backed by a second process (a simulated
    stand-in behind a RobotServer): the strategy runs unchanged and places parts."""
    scn = SCENARIOS / "pick_and_place.yaml"
    proc, eps = _spawn(
        ["serve-robot", str(scn), "--bind", LOCAL, "--idle-timeout", "30"], tmp_path, "robot"
    )
    try:
        twin = _twin_scenario(scn, eps[0], tmp_path)
        res = robocell.run(twin, duration=30)
    finally:
        proc.terminate()
        proc.wait(30)
    pnp = res.kpis["pick_and_place"]
    assert pnp["parts_placed"] >= 4
    assert pnp["pick_success_rate"] == 1.0
    assert res.kpis["collisions_environment"] == 0
    ref = robocell.run(scn, duration=30, write=False).kpis["pick_and_place"]
    assert abs(pnp["parts_placed"] - ref["parts_placed"]) <= 1


def test_remote_backend_errors_name_the_scenario_line(tmp_path):
    f = _twin_scenario(SCENARIOS / "cycle_test.yaml", "tcp://127.0.0.1:9", tmp_path)
    f.write_text(f.read_text().replace('"}', '", timeout: 0.3}'))
    r = subprocess.run(
        [sys.executable, "-m", "robocell", "run", str(f)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "backend" in r.stderr and "no reply" in r.stderr and str(f) in r.stderr


def test_client_times_out_then_skips_the_late_reply_to_the_timed_out_request() -> None:
    # a ROUTER that answers by hand stands in for a server that is slow once
    ctx = zmq.Context.instance()
    router = ctx.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    client = Client(f"tcp://127.0.0.1:{port}", timeout=0.2)
    try:

        def answer(frames: list[bytes]) -> None:
            req = msgpack.unpackb(frames[-1])
            reply = {"v": 1, "ok": True, "type": req["type"], "id": req["id"]}
            router.send_multipart([frames[0], msgpack.packb(reply)])

        t0 = time.monotonic()
        with pytest.raises(BridgeError, match="no reply"):
            client.ping()
        assert 0.15 < time.monotonic() - t0 < 2.0
        late = router.recv_multipart()  # request 1, answered only now
        answer(late)
        client.timeout = 5.0  # a changed timeout applies to the next request
        done: list[dict] = []
        thread = threading.Thread(target=lambda: done.append(client.ping()))
        thread.start()
        answer(router.recv_multipart())  # request 2
        thread.join(10)
        assert done and done[0]["id"] == 2  # not the late reply to request 1
    finally:
        client.close(bye=False)
        router.close()
