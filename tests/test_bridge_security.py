"""CurveZMQ for the bridge: key files, the loopback rule, CURVE server/client sockets, the CLI.

Every socket binds to 127.0.0.1 on a random free port and has short timeouts and linger 0, so a
refused handshake shows as a timeout instead of a hang.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import shutil
import socket
import stat
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zmq
from zmq.utils import z85

from robocell.bridge.security import (
    ServerSecurity,
    add_keys_parser,
    check_bind,
    client_security,
    generate_keys,
    is_loopback,
    load_public,
    load_secret,
)
from robocell.errors import BridgeError

TIMEOUT_MS = 1000  # an allowed round trip on loopback takes a few ms
REFUSED_MS = 300  # how long a refused client waits for the reply that never comes


@dataclass(frozen=True)
class Keys:
    server_secret: Path
    server_public: Path
    allow_dir: Path
    good_secret: Path
    bad_secret: Path


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    """A server pair, a client 'good' whose public key is in the allow folder, a client 'bad'
    whose is not. Client secrets stay in the clients' own folders, as in real use."""
    server_public, server_secret = generate_keys(tmp_path / "server", "server")
    good_public, good_secret = generate_keys(tmp_path / "good", "good")
    _, bad_secret = generate_keys(tmp_path / "bad", "bad")
    allow = tmp_path / "server" / "clients"
    allow.mkdir()
    shutil.copy(good_public, allow)
    return Keys(server_secret, server_public, allow, good_secret, bad_secret)


@pytest.fixture
def ctx() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


def _socket(ctx: zmq.Context, kind: int) -> zmq.Socket:
    s = ctx.socket(kind)
    s.linger = 0
    s.rcvtimeo = TIMEOUT_MS
    s.sndtimeo = TIMEOUT_MS
    return s


class CurveServer:
    """A REP socket on 127.0.0.1, secured by ServerSecurity unless it is None; answers
    b"echo: " + request."""

    def __init__(self, ctx: zmq.Context, security: ServerSecurity | None) -> None:
        self._security = security
        self.sock = _socket(ctx, zmq.REP)
        if security is not None:
            security.apply(self.sock)
        port = self.sock.bind_to_random_port("tcp://127.0.0.1")
        self.endpoint = f"tcp://127.0.0.1:{port}"

    def answer(self, timeout_ms: int = TIMEOUT_MS) -> bool:
        """Answer one request if one arrives in time."""
        if not self.sock.poll(timeout_ms):
            return False
        self.sock.send(b"echo: " + self.sock.recv())
        return True

    @property
    def security(self) -> ServerSecurity:
        assert self._security is not None
        return self._security

    def close(self) -> None:
        self.sock.close(0)
        if self._security is not None:
            self._security.stop()


@pytest.fixture
def server(ctx: zmq.Context, keys: Keys) -> Iterator[CurveServer]:
    srv = CurveServer(ctx, ServerSecurity(keys.server_secret, keys.allow_dir))
    yield srv
    srv.close()


def _client(
    ctx: zmq.Context, endpoint: str, secret: Path | None, server_public: Path | None
) -> zmq.Socket:
    c = _socket(ctx, zmq.REQ)
    if secret is not None and server_public is not None:
        client_security(c, secret, server_public)
    c.connect(endpoint)
    return c


def _round_trip(server: CurveServer, client: zmq.Socket, payload: bytes) -> bytes:
    client.send(payload)
    assert server.answer(), "the server got no request"
    return client.recv()


def _assert_refused(server: CurveServer, client: zmq.Socket) -> None:
    try:
        client.send(b"let me in")
        sent = True
    except zmq.Again:
        sent = False  # the handshake failed before the send: no peer to queue the request for
    assert not server.answer(REFUSED_MS), "a refused client's request reached the application"
    if sent:  # (a REQ socket whose send failed may not receive)
        client.rcvtimeo = 50
        with pytest.raises(zmq.Again):
            client.recv()
    client.close(0)


def _wait_for(condition, timeout_s: float = 2.0) -> bool:
    """The watcher thread counts refusals asynchronously; give it a moment."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- key files ---------------------------------------------------------------------------------
def test_generate_keys_writes_a_loadable_pair(tmp_path: Path) -> None:
    public, secret = generate_keys(tmp_path / "a" / "b", "server")
    assert (public, secret) == (tmp_path / "a/b/server.key", tmp_path / "a/b/server.key_secret")
    pub, sec = load_secret(secret)
    assert load_public(public) == pub == load_public(secret)
    assert len(z85.decode(pub)) == len(z85.decode(sec)) == 32
    assert zmq.curve_public(sec) == pub  # the pair belongs together
    assert b"secret-key" not in public.read_bytes()
    assert sorted(p.name for p in (tmp_path / "a/b").iterdir()) == [
        "server.key",
        "server.key_secret",
    ]  # no staging folder left behind


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_generate_keys_protects_the_secret(tmp_path: Path) -> None:
    public, secret = generate_keys(tmp_path, "alice")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) == 0o644


def test_generate_keys_refuses_to_overwrite(tmp_path: Path) -> None:
    public, secret = generate_keys(tmp_path, "server")
    before = load_secret(secret)
    with pytest.raises(BridgeError, match="--overwrite") as e:
        generate_keys(tmp_path, "server")
    assert e.value.exit_code == 2 and str(public) in str(e.value)
    assert load_secret(secret) == before
    secret.unlink()  # half a pair still counts as a pair
    with pytest.raises(BridgeError, match="already exists"):
        generate_keys(tmp_path, "server")
    generate_keys(tmp_path, "server", overwrite=True)
    assert load_secret(secret)[0] != before[0]
    assert load_public(public) == load_secret(secret)[0]


@pytest.mark.parametrize("name", ["", "../evil", "a/b", ".hidden", "two words"])
def test_generate_keys_rejects_bad_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(BridgeError, match="bad key name") as e:
        generate_keys(tmp_path, name)
    assert e.value.exit_code == 2
    assert not any(tmp_path.iterdir())


def test_generate_keys_needs_a_folder(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(BridgeError, match="not a directory") as e:
        generate_keys(tmp_path / "file", "server")
    assert e.value.exit_code == 2


def _bad_key_files(tmp_path: Path) -> dict[str, Path]:
    public, _ = generate_keys(tmp_path, "pair")
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    short = tmp_path / "short.key"
    short.write_text('curve\n    public-key = "tooshort"\n')
    return {
        "missing": tmp_path / "nope.key_secret",
        "folder": tmp_path,
        "not a key file": text,
        "malformed key": short,
        "public only": public,
    }


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "not found"),
        ("folder", "not a file"),
        ("not a key file", "not a CurveZMQ key file"),
        ("malformed key", "malformed key"),
        ("public only", "only a public key"),
    ],
)
def test_load_secret_names_the_bad_file(tmp_path: Path, case: str, message: str) -> None:
    path = _bad_key_files(tmp_path)[case]
    with pytest.raises(BridgeError, match=message) as e:
        load_secret(path)
    assert e.value.exit_code == 2 and str(path) in str(e.value)


@pytest.mark.parametrize("case", ["missing", "folder", "not a key file", "malformed key"])
def test_load_public_names_the_bad_file(tmp_path: Path, case: str) -> None:
    path = _bad_key_files(tmp_path)[case]
    with pytest.raises(BridgeError) as e:
        load_public(path)
    assert e.value.exit_code == 2 and str(path) in str(e.value)


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file; POSIX modes"
)
def test_unreadable_key_file(tmp_path: Path) -> None:
    _, secret = generate_keys(tmp_path, "server")
    secret.chmod(0)
    with pytest.raises(BridgeError, match="cannot read") as e:
        load_secret(secret)
    assert e.value.exit_code == 2 and str(secret) in str(e.value)


# -- the loopback rule -------------------------------------------------------------------------
LOOPBACK = {
    "tcp://127.0.0.1:5555": True,
    "tcp://127.0.0.1:*": True,
    "tcp://127.1.2.3:5555": True,
    "tcp://localhost:5555": True,
    "tcp://LOCALHOST:5555": True,
    "tcp://[::1]:5555": True,
    "tcp://[::ffff:127.0.0.1]:5555": True,
    "ipc:///tmp/robocell.sock": True,
    "inproc://bridge": True,
    "tcp://*:5555": False,
    "tcp://0.0.0.0:5555": False,
    "tcp://0.0.0.0": False,
    "tcp://[::]:5555": False,
    "tcp://192.168.1.10:5555": False,
    "tcp://10.0.0.1:5555": False,
    "tcp://[fe80::1]:5555": False,
    "tcp://eth0:5555": False,
    "tcp://lo:5555": False,  # an interface name may name any interface
    "tcp://robot-cell.local:5555": False,
    "tcp://127.0.0.1:5555;192.168.1.10:6000": False,
    "ws://127.0.0.1:5555": False,
    "pgm://eth0;239.192.1.1:5555": False,
    "127.0.0.1:5555": False,
    "": False,
}


@pytest.mark.parametrize(("endpoint", "expected"), LOOPBACK.items(), ids=list(LOOPBACK))
def test_is_loopback(endpoint: str, expected: bool) -> None:
    assert is_loopback(endpoint) is expected


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:5555", "ipc:///tmp/x", "inproc://x"])
def test_check_bind_allows_loopback_without_keys(endpoint: str) -> None:
    check_bind(endpoint, secure=False, insecure=False)


def test_check_bind_refuses_exposed_bind_without_keys() -> None:
    with pytest.raises(BridgeError) as e:
        check_bind("tcp://*:5555", secure=False, insecure=False)
    msg = str(e.value)
    assert e.value.exit_code == 2 and "tcp://*:5555" in msg
    for fix in ("robocell keys generate", "--keys", "--allow", "--insecure", "127.0.0.1"):
        assert fix in msg


@pytest.mark.parametrize(("secure", "insecure"), [(True, False), (False, True), (True, True)])
def test_check_bind_allows_exposed_bind_with_keys_or_insecure(secure: bool, insecure: bool) -> None:
    check_bind("tcp://0.0.0.0:5555", secure=secure, insecure=insecure)


# -- ServerSecurity: configuration -----------------------------------------------------------------
def test_allow_list_from_a_folder_or_one_file(keys: Keys) -> None:
    good = load_public(keys.allow_dir / "good.key")
    assert ServerSecurity(keys.server_secret, keys.allow_dir).allowed == {good}
    assert ServerSecurity(keys.server_secret, keys.allow_dir / "good.key").allowed == {good}
    assert ServerSecurity(keys.server_secret, keys.allow_dir).public_key == load_public(
        keys.server_public
    )


def test_allow_list_errors(keys: Keys, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(BridgeError, match=r"no client public keys \(\*\.key\)") as e:
        ServerSecurity(keys.server_secret, empty)
    assert e.value.exit_code == 2
    with pytest.raises(BridgeError, match="not found") as e:
        ServerSecurity(keys.server_secret, tmp_path / "missing")
    assert e.value.exit_code == 2
    with pytest.raises(BridgeError, match="only a public key"):
        ServerSecurity(keys.server_public, keys.allow_dir)  # the public file by mistake
    with pytest.raises(BridgeError, match="is a secret key file") as e:
        ServerSecurity(keys.server_secret, keys.good_secret)  # a client's secret file by mistake
    assert e.value.exit_code == 2


# -- ServerSecurity: handshakes --------------------------------------------------------------------
def test_allowed_client_round_trip(ctx: zmq.Context, keys: Keys, server: CurveServer) -> None:
    c = _client(ctx, server.endpoint, keys.good_secret, keys.server_public)
    for i in range(3):
        assert _round_trip(server, c, b"ping %d" % i) == b"echo: ping %d" % i
    c.close(0)
    assert server.security.refused == 0


def test_client_with_a_key_not_allowed_is_refused(
    ctx: zmq.Context, keys: Keys, server: CurveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="robocell.bridge.security")
    bad = _client(ctx, server.endpoint, keys.bad_secret, keys.server_public)
    _assert_refused(server, bad)
    assert _wait_for(lambda: server.security.refusals.get("client key not allowed", 0) >= 1)
    bad_key = load_public(keys.bad_secret).decode()
    assert server.security.refused_keys == [bad_key]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and bad_key in warnings[0] and str(keys.allow_dir) in warnings[0]
    # the server still serves an allowed client afterwards
    good = _client(ctx, server.endpoint, keys.good_secret, keys.server_public)
    assert _round_trip(server, good, b"after") == b"echo: after"
    good.close(0)


def test_client_without_curve_is_refused(
    ctx: zmq.Context, keys: Keys, server: CurveServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="robocell.bridge.security")
    _assert_refused(server, _client(ctx, server.endpoint, None, None))
    assert _wait_for(lambda: server.security.refusals.get("client does not use CurveZMQ", 0) >= 1)
    assert server.security.refused_keys == []  # refused before any key was exchanged
    assert any("does not use CurveZMQ" in r.getMessage() for r in caplog.records)
    good = _client(ctx, server.endpoint, keys.good_secret, keys.server_public)
    assert _round_trip(server, good, b"after") == b"echo: after"
    good.close(0)


def test_client_with_a_wrong_server_key_is_refused(
    ctx: zmq.Context, keys: Keys, server: CurveServer, tmp_path: Path
) -> None:
    impostor_public, _ = generate_keys(tmp_path / "impostor", "server")
    _assert_refused(server, _client(ctx, server.endpoint, keys.good_secret, impostor_public))
    assert _wait_for(lambda: any("wrong server key" in r for r in server.security.refusals))


def test_apply_starts_the_authenticator_once_per_context(
    ctx: zmq.Context, keys: Keys, server: CurveServer
) -> None:
    """A second socket on the same context (the state publisher) shares the authenticator."""
    server.security.start(ctx)  # again: nothing happens
    pub = _socket(ctx, zmq.PUB)
    server.security.apply(pub)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub = _socket(ctx, zmq.SUB)
    client_security(sub, keys.good_secret, keys.server_public)
    sub.subscribe(b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    deadline = time.monotonic() + 2.0
    got = None
    while got is None and time.monotonic() < deadline:  # a SUB misses what precedes its join
        pub.send(b"state")
        if sub.poll(20):
            got = sub.recv()
    assert got == b"state"
    sub.close(0)
    pub.close(0)


def test_security_can_restart_on_a_new_context(keys: Keys) -> None:
    sec = ServerSecurity(keys.server_secret, keys.allow_dir)
    for _ in range(2):  # a server that is opened, closed and opened again
        context = zmq.Context()
        srv = CurveServer(context, sec)
        c = _client(context, srv.endpoint, keys.good_secret, keys.server_public)
        assert _round_trip(srv, c, b"hi") == b"echo: hi"
        c.close(0)
        srv.close()
        context.term()  # returns: stop() closed every socket the security opened


class Relay:
    """A TCP relay on 127.0.0.1 that records every byte passing through (a wire tap)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(2.0)
        self.port = self.listener.getsockname()[1]
        self.wire = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            a, _ = self.listener.accept()
        except OSError:
            return
        b = socket.create_connection(("127.0.0.1", self.target_port), timeout=2.0)
        peers = {a: b, b: a}
        with a, b:
            while not self._stop.is_set():
                ready, _, _ = select.select(list(peers), [], [], 0.05)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    self.wire += data
                    peers[s].sendall(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2.0)
        self.listener.close()


@pytest.mark.parametrize("secured", [True, False], ids=["curve", "plain-control"])
def test_traffic_is_encrypted(ctx: zmq.Context, keys: Keys, secured: bool) -> None:
    """The payload never crosses the wire in the clear with CURVE; the unsecured control run
    shows that the tap would see it."""
    payload = b"move robot r1 to x=0.350 y=-0.120 (secret plan)"
    srv = CurveServer(ctx, ServerSecurity(keys.server_secret, keys.allow_dir) if secured else None)
    relay = Relay(int(srv.endpoint.rsplit(":", 1)[1]))
    try:
        c = _client(
            ctx,
            f"tcp://127.0.0.1:{relay.port}",
            keys.good_secret if secured else None,
            keys.server_public if secured else None,
        )
        assert _round_trip(srv, c, payload) == b"echo: " + payload
        c.close(0)
    finally:
        relay.close()
        srv.close()
    assert (payload in relay.wire) is not secured
    assert (b"CURVE" in relay.wire[:128]) is secured  # the ZMTP greeting names the mechanism


# -- the keys command --------------------------------------------------------------------------
def _keys_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="robocell")
    add_keys_parser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_keys_generate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "keys"
    assert _keys_cli(["keys", "generate", "server", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert str(folder / "server.key") in out and str(folder / "server.key_secret") in out
    assert f"--keys {folder / 'server.key_secret'} --allow {folder / 'clients'}/" in out
    load_secret(folder / "server.key_secret")

    assert _keys_cli(["keys", "generate", "alice", "--dir", str(folder)]) == 0
    out = capsys.readouterr().out
    assert f"--key {folder / 'alice.key_secret'}" in out and "--server-key" in out

    with pytest.raises(BridgeError, match="--overwrite") as e:
        _keys_cli(["keys", "generate", "alice", "--dir", str(folder)])
    assert e.value.exit_code == 2
    assert _keys_cli(["keys", "generate", "alice", "--dir", str(folder), "--overwrite"]) == 0


def test_keys_generate_defaults_to_keys_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert _keys_cli(["keys", "generate", "server"]) == 0
    assert (tmp_path / "keys" / "server.key_secret").is_file()
    assert "keys/server.key_secret" in capsys.readouterr().out
