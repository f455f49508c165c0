"""CurveZMQ for the bridge: key files, the loopback rule, CURVE sockets, ``robocell keys``.

A server binds to loopback unless it is told otherwise; a non-loopback bind needs CurveZMQ (a
server key pair and an allow list of client public keys) or an explicit ``--insecure``
(:func:`check_bind`). :class:`ServerSecurity` makes sockets CURVE servers and runs the ZAP
authenticator that checks each client's public key against the allow list;
:func:`client_security` makes a socket a CURVE client.

Key files are ZeroMQ certificates as written by :func:`zmq.auth.create_certificates`: ``NAME.key``
holds the public key (share it), ``NAME.key_secret`` holds both keys (keep it private). Keys are
Z85 text, 40 characters for 32 bytes.

This module imports nothing from the simulator, so ``robocell keys`` starts quickly.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Union

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85
from zmq.utils.monitor import recv_monitor_message

from robocell.errors import BridgeError

__all__ = [
    "DEFAULT_KEY_DIR",
    "ZAP_DOMAIN",
    "ServerSecurity",
    "add_keys_parser",
    "check_bind",
    "client_security",
    "generate_keys",
    "is_loopback",
    "keys_main",
    "load_public",
    "load_secret",
]

#: where ``robocell keys generate`` writes unless told ``--dir``
DEFAULT_KEY_DIR = "keys"
#: the ZAP domain of robocell's CURVE server sockets
ZAP_DOMAIN = "robocell"

#: a file or folder name
PathLike = Union[str, "os.PathLike[str]"]

_log = logging.getLogger(__name__)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_Z85_KEY_LEN = 40  # a 32-byte Curve25519 key in Z85
_LOG_INTERVAL_S = 10.0  # at most one refusal warning per reason this often [s]
_MAX_REFUSED_KEYS = 32


# -- key files ---------------------------------------------------------------------------------
def generate_keys(directory: PathLike, name: str, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Create a CurveZMQ key pair ``DIRECTORY/NAME.key`` (public) and ``NAME.key_secret``.

    The directory is created if needed. The secret file gets mode 0600; both files are written in
    a private (0700) temporary folder next to their destination and moved into place, so the
    secret key is never readable by others, not even for a moment.

    Args:
        directory: folder for the two files.
        name: the pair's name (letters, digits, ``.``, ``_``, ``-``; e.g. ``server``, ``alice``).
        overwrite: replace an existing pair. Clients or servers holding the old public key are
            refused afterwards.

    Returns:
        (public key file, secret key file).

    Raises:
        BridgeError: (exit code 2) bad name, the directory is a file, or the pair exists and
            ``overwrite`` is false.
    """
    if not _NAME.fullmatch(name):
        raise BridgeError(
            f"bad key name {name!r}: use letters, digits, '.', '_' and '-', starting with a "
            "letter or digit (e.g. server, alice, cell-2)",
            exit_code=2,
        )
    folder = Path(directory)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise BridgeError(f"{folder} is not a directory; pick another --dir", exit_code=2) from None
    except OSError as exc:
        raise BridgeError(f"cannot create {folder}: {exc.strerror}", exit_code=2) from None
    public = folder / f"{name}.key"
    secret = folder / f"{name}.key_secret"
    existing = [str(p) for p in (public, secret) if p.exists()]
    if existing and not overwrite:
        raise BridgeError(
            f"{' and '.join(existing)} already {'exist' if len(existing) > 1 else 'exists'}; "
            "pick another name or pass --overwrite (whoever holds the old public key will then "
            "be refused)",
            exit_code=2,
        )
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=folder))  # mode 0700
    except OSError as exc:
        raise BridgeError(f"cannot write to {folder}: {exc.strerror}", exit_code=2) from None
    try:
        tmp_public, tmp_secret = (Path(p) for p in zmq.auth.create_certificates(staging, name))
        os.chmod(tmp_secret, 0o600)
        os.chmod(tmp_public, 0o644)
        os.replace(tmp_secret, secret)
        os.replace(tmp_public, public)
    except OSError as exc:
        raise BridgeError(f"cannot write keys to {folder}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return public, secret


def _read_key_file(path: PathLike, what: str) -> tuple[bytes, bytes | None]:
    """(public, secret or None) of a key file, as Z85 bytes; BridgeError (exit 2) naming it."""
    p = Path(path)
    hint = "create a key pair with `robocell keys generate NAME`"
    if not p.exists():
        raise BridgeError(f"{what} {p} not found ({hint})", exit_code=2)
    if not p.is_file():
        raise BridgeError(f"{what} {p} is not a file", exit_code=2)
    try:
        public, secret = zmq.auth.load_certificate(p)
    except ValueError:
        raise BridgeError(
            f"{what} {p} is not a CurveZMQ key file (no public-key line; {hint})", exit_code=2
        ) from None
    except OSError as exc:
        raise BridgeError(f"cannot read {what} {p}: {exc.strerror or exc}", exit_code=2) from None
    for key in (public, secret):
        if key is not None and not _valid_z85_key(key):
            raise BridgeError(
                f"{what} {p} holds a malformed key (expected 40 Z85 characters, got "
                f"{len(key)}); regenerate it with `robocell keys generate`",
                exit_code=2,
            )
    return public, secret


def _valid_z85_key(key: bytes) -> bool:
    if len(key) != _Z85_KEY_LEN:
        return False
    try:
        return len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError):
        return False


def load_secret(path: PathLike) -> tuple[bytes, bytes]:
    """The (public, secret) Z85 keys of a ``.key_secret`` file.

    Raises:
        BridgeError: (exit code 2) the file is missing, unreadable, not a key file, or holds only
            a public key.
    """
    public, secret = _read_key_file(path, "secret key file")
    if secret is None:
        raise BridgeError(
            f"{path} holds only a public key; give the matching .key_secret file", exit_code=2
        )
    return public, secret


def load_public(path: PathLike) -> bytes:
    """The public Z85 key of a ``.key`` (or ``.key_secret``) file.

    Raises:
        BridgeError: (exit code 2) the file is missing, unreadable or not a key file.
    """
    return _read_key_file(path, "key file")[0]


# -- the loopback rule -------------------------------------------------------------------------
def is_loopback(endpoint: str) -> bool:
    """True if a bind to ``endpoint`` is reachable from this machine only.

    True for ``tcp://127.x.x.x:PORT``, ``tcp://localhost:PORT``, ``tcp://[::1]:PORT``,
    ``ipc://...`` and ``inproc://...``. False for wildcards (``tcp://*:PORT``,
    ``tcp://0.0.0.0:PORT``), any other address, interface names (which may name any interface)
    and other transports.
    """
    scheme, sep, rest = endpoint.strip().partition("://")
    scheme = scheme.lower()
    if not sep:
        return False
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp" or ";" in rest:  # "src;dst" is connect syntax, not a bind
        return False
    host = rest
    if host.startswith("["):  # [IPv6]:port
        host, _, _ = host[1:].partition("]")
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    host = host.split("%", 1)[0].lower()  # an IPv6 zone id names an interface, not a host
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False  # "*", an interface name, a host name
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def check_endpoint(endpoint: str) -> None:
    """Raise BridgeError (exit code 2) unless ``endpoint`` is a ZeroMQ endpoint this product
    uses: ``tcp://HOST:PORT`` (port 0..65535 or ``*``), ``ipc://PATH`` or ``inproc://NAME``."""
    m = re.fullmatch(r"(tcp|ipc|inproc)://(.+)", endpoint)
    if m is None:
        raise BridgeError(
            f"{endpoint!r} is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH or inproc://NAME)",
            exit_code=2,
        )
    if m.group(1) == "tcp":
        host, _, port = m.group(2).rpartition(":")
        if not host or not (port == "*" or (port.isdigit() and int(port) <= 65535)):
            raise BridgeError(
                f"{endpoint}: a tcp endpoint needs a port 0..65535 (or *), as tcp://127.0.0.1:5555",
                exit_code=2,
            )


def check_bind(endpoint: str, secure: bool, insecure: bool) -> None:
    """Refuse a non-loopback bind without CurveZMQ unless ``insecure``.

    Args:
        endpoint: the ZeroMQ endpoint the server will bind.
        secure: the socket will be a CURVE server (keys and an allow list are given).
        insecure: the user explicitly allowed an unencrypted, unauthenticated non-loopback bind.

    Raises:
        BridgeError: (exit code 2) the bind would expose the cell without keys; the message says
            how to fix it.
    """
    check_endpoint(endpoint)
    if secure or insecure or is_loopback(endpoint):
        return
    raise BridgeError(
        f"refusing to bind {endpoint} without CurveZMQ: anyone who can reach it could drive the "
        "robots. Bind to loopback (tcp://127.0.0.1:PORT), or create keys with `robocell keys "
        "generate server` and pass `--keys keys/server.key_secret --allow keys/clients/` (the "
        "clients' public .key files), or pass `--insecure` on a network you trust",
        exit_code=2,
    )


# -- sockets -----------------------------------------------------------------------------------
class ServerSecurity:
    """CurveZMQ for server sockets: a server key pair and the client public keys it allows.

    Usage::

        sec = ServerSecurity("keys/server.key_secret", "keys/clients/")
        sock = ctx.socket(zmq.ROUTER)
        sec.apply(sock)        # before bind; starts the authenticator of ctx if needed
        sock.bind(endpoint)
        ...
        sock.close()
        sec.stop()             # before ctx.term()

    Clients are checked by a :class:`zmq.auth.thread.ThreadAuthenticator` (one per context) whose
    credentials callback looks the client's key up in the allow list. A client that is refused
    gets no reply at all -- ZeroMQ gives neither side a message -- so the server counts refusals
    itself by watching the sockets' handshake events: see :attr:`refused`, :attr:`refusals` and
    :attr:`refused_keys`. Each refusal is also logged (logger ``robocell.bridge.security``).

    The allow list is read once, here; restart the server after changing it.

    Args:
        server_secret: the server's ``.key_secret`` file.
        allow: a directory of allowed client public keys (every ``*.key`` in it) or one ``.key``
            file.
        zap_domain: the ZAP domain set on the sockets and configured in the authenticator.

    Raises:
        BridgeError: (exit code 2) a key file is missing or bad, or the allow list is empty.
    """

    def __init__(
        self, server_secret: PathLike, allow: PathLike, *, zap_domain: str = ZAP_DOMAIN
    ) -> None:
        self.public_key, self._secret_key = load_secret(server_secret)
        self.allow_path = Path(allow)
        #: the allowed client public keys (Z85)
        self.allowed: frozenset[bytes] = frozenset(_load_allow_list(self.allow_path))
        self.zap_domain = zap_domain
        self._lock = threading.Lock()
        self._refusals: dict[str, int] = {}
        self._refused_keys: list[str] = []
        self._last_warning: dict[str, float] = {}  # reason -> time.monotonic() [s]
        self._auths: list[ThreadAuthenticator] = []
        self._watcher: _HandshakeWatcher | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, context: zmq.Context[Any]) -> None:
        """Start the ZAP authenticator of ``context`` (once per context; later calls do nothing).

        Only one ZAP handler can run per context; a second one (another ServerSecurity on the same
        context) raises BridgeError.
        """
        with self._lock:
            if any(a.context is context for a in self._auths):
                return
            auth = ThreadAuthenticator(context, log=_log.getChild("zap"))
            # The domain must be the sockets' ZAP domain: pyzmq maps only an empty domain to "*".
            auth.configure_curve_callback(self.zap_domain, credentials_provider=_AllowList(self))
            try:
                auth.start()
            except (zmq.ZMQError, RuntimeError) as exc:
                auth.stop()
                raise BridgeError(
                    f"cannot start the CurveZMQ authenticator: {exc} (one ZAP handler per ZeroMQ "
                    "context)"
                ) from None
            self._auths.append(auth)
            if self._watcher is None:
                self._watcher = _HandshakeWatcher(self._on_refused)

    def apply(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` a CURVE server checked against the allow list. Call before bind.

        Starts the authenticator of the socket's context if :meth:`start` was not called (a CURVE
        server without one would admit every client that knows the server key). Takes the
        socket's monitor slot (ZeroMQ allows one monitor per socket) to count refusals.
        """
        self.start(socket.context)
        socket.curve_secretkey = self._secret_key
        socket.curve_publickey = self.public_key
        socket.curve_server = True
        socket.zap_domain = self.zap_domain.encode()
        with self._lock:
            watcher = self._watcher
        if watcher is not None:  # None only if stop() ran meanwhile in another thread
            watcher.watch(socket)

    def stop(self) -> None:
        """Stop the authenticators and the refusal watcher; call before terminating the contexts.

        The sockets should be closed first. :meth:`start` may be called again afterwards.
        """
        with self._lock:
            auths, self._auths = self._auths, []
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()
        for auth in auths:
            auth.stop()

    # -- refusals --------------------------------------------------------------------------------
    @property
    def refused(self) -> int:
        """Refused client handshakes so far: a key not on the allow list, a client without CurveZMQ,
        a client using a wrong server key. A refused client may retry, so one client can count
        several times (ZeroMQ reconnects after a wrong server key, not after a refused key)."""
        with self._lock:
            return sum(self._refusals.values())

    @property
    def refusals(self) -> dict[str, int]:
        """Refused handshakes by reason (a copy)."""
        with self._lock:
            return dict(self._refusals)

    @property
    def refused_keys(self) -> list[str]:
        """The distinct client public keys (Z85) refused as not on the allow list (the first
        :data:`_MAX_REFUSED_KEYS`)."""
        with self._lock:
            return list(self._refused_keys)

    def _on_refused(self, reason: str, endpoint: str) -> None:
        """The watcher's callback (its thread). Logs at most one warning per reason every
        :data:`_LOG_INTERVAL_S`: a client with a wrong server key reconnects ten times a second."""
        now = time.monotonic()
        with self._lock:
            n = self._refusals[reason] = self._refusals.get(reason, 0) + 1
            last = self._last_warning.get(reason)
            quiet = last is not None and now - last < _LOG_INTERVAL_S
            if not quiet:
                self._last_warning[reason] = now
        if reason == _KEY_NOT_ALLOWED:
            quiet = True  # _check_key has warned with the key itself
        _log.log(
            logging.DEBUG if quiet else logging.WARNING,
            "refused a client on %s: %s (%d so far)",
            endpoint,
            reason,
            n,
        )

    def _check_key(self, domain: str, key: bytes) -> bool:
        """The authenticator's callback (its thread): is this Z85 client key allowed?"""
        if key in self.allowed:
            return True
        text = key.decode("ascii", "replace")
        with self._lock:
            new = text not in self._refused_keys and len(self._refused_keys) < _MAX_REFUSED_KEYS
            if new:
                self._refused_keys.append(text)
        _log.log(
            logging.WARNING if new else logging.DEBUG,
            "refused client key %s (not in %s; add the client's .key file there to allow it)",
            text,
            self.allow_path,
        )
        return False


class _AllowList:
    """The credentials provider pyzmq's authenticator calls as ``callback(domain, z85_key)``."""

    def __init__(self, security: ServerSecurity) -> None:
        self._security = security

    def callback(self, domain: str, key: bytes) -> bool:
        return self._security._check_key(domain, key)


def _load_allow_list(allow: Path) -> list[bytes]:
    if allow.is_dir():
        files = sorted(allow.glob("*.key"))
        if not files:
            raise BridgeError(
                f"no client public keys (*.key) in {allow}: copy each client's NAME.key there",
                exit_code=2,
            )
        if any(allow.glob("*.key_secret")):
            _log.warning(
                "%s holds secret keys (*.key_secret); only *.key files are read, and a client's "
                "secret key belongs on the client",
                allow,
            )
        return [load_public(f) for f in files]
    if not allow.exists():
        raise BridgeError(
            f"allow list {allow} not found (a directory of client .key files, or one .key file)",
            exit_code=2,
        )
    public, secret = _read_key_file(allow, "allow list")
    if secret is not None:
        raise BridgeError(
            f"allow list {allow} is a secret key file: give the client's public key (its .key "
            "file); a client's secret key belongs on the client only",
            exit_code=2,
        )
    return [public]


def client_security(
    socket: zmq.Socket[Any], client_secret: PathLike, server_public: PathLike
) -> None:
    """Make ``socket`` a CURVE client: its own key pair and the server's public key.

    Call before connect. The server must list this client's public key in its allow list.

    Raises:
        BridgeError: (exit code 2) a key file is missing or bad.
    """
    public, secret = load_secret(client_secret)
    server = load_public(server_public)
    socket.curve_secretkey = secret
    socket.curve_publickey = public
    socket.curve_serverkey = server


# -- refusal watcher ---------------------------------------------------------------------------
_HANDSHAKE_FAILED = (
    zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL
    | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
    | zmq.EVENT_HANDSHAKE_FAILED_AUTH
)


_KEY_NOT_ALLOWED = "client key not allowed"


def _refusal_reason(event: int, value: int) -> str:
    if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
        return _KEY_NOT_ALLOWED
    if value == zmq.PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "client does not use CurveZMQ"
    if value == zmq.PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "client uses a wrong server key (or sent a corrupt handshake)"
    return "handshake failed"


class _HandshakeWatcher:
    """One thread that reads the monitor events of the watched sockets and reports every failed
    handshake to ``on_refused(reason, endpoint)``.

    ZeroMQ sockets are not thread-safe but may move between threads: :meth:`watch` creates the
    monitor's PAIR end in the caller's thread and hands it over under a lock; from then on only
    the watcher thread touches it.
    """

    _POLL_MS = 50

    def __init__(self, on_refused: Callable[[str, str], None]) -> None:
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._pending: list[zmq.Socket[Any]] = []
        self._count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="robocell-curve-watcher", daemon=True
        )
        self._thread.start()

    def watch(self, socket: zmq.Socket[Any]) -> None:
        with self._lock:
            self._count += 1
            address = f"inproc://robocell-curve-watch-{id(self):x}-{self._count}"
        socket.monitor(address, _HANDSHAKE_FAILED | zmq.EVENT_MONITOR_STOPPED)
        pair = socket.context.socket(zmq.PAIR)
        pair.linger = 0
        pair.connect(address)
        with self._lock:
            self._pending.append(pair)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)

    def _run(self) -> None:
        poller = zmq.Poller()
        watched: list[zmq.Socket[Any]] = []
        try:
            while not self._stop.is_set():
                with self._lock:
                    new, self._pending = self._pending, []
                for s in new:
                    poller.register(s, zmq.POLLIN)
                    watched.append(s)
                for s, _ in poller.poll(self._POLL_MS):
                    msg = recv_monitor_message(s)
                    event = int(msg["event"])
                    if event == zmq.EVENT_MONITOR_STOPPED:  # the watched socket closed
                        poller.unregister(s)
                        watched.remove(s)
                        s.close(0)
                    elif event & _HANDSHAKE_FAILED:
                        endpoint = msg["endpoint"]
                        if isinstance(endpoint, bytes):
                            endpoint = endpoint.decode("utf-8", "replace")
                        self._on_refused(_refusal_reason(event, int(msg["value"])), endpoint)
        finally:
            with self._lock:
                leftover, self._pending = self._pending, []
            for s in watched + leftover:
                s.close(0)


# -- command line ------------------------------------------------------------------------------
def add_keys_parser(subparsers: argparse._SubParsersAction[Any]) -> argparse.ArgumentParser:
    """Add ``keys generate NAME [--dir DIR] [--overwrite]`` to a command's subparsers.

    The ``keys`` parser sets ``func=keys_main``.
    """
    k = subparsers.add_parser("keys", help="manage CurveZMQ keys for the bridge")
    ks = k.add_subparsers(dest="keys_cmd", required=True, metavar="COMMAND")
    g = ks.add_parser(
        "generate",
        help="create a key pair NAME.key (public) and NAME.key_secret (private)",
        description="Create a CurveZMQ key pair for a bridge server or client.",
    )
    g.add_argument("name", help="the pair's name, e.g. server or alice")
    g.add_argument(
        "--dir",
        default=DEFAULT_KEY_DIR,
        help=f"folder for the two files (default: {DEFAULT_KEY_DIR}/)",
    )
    g.add_argument("--overwrite", action="store_true", help="replace an existing pair")
    k.set_defaults(func=keys_main)
    return k


def keys_main(args: argparse.Namespace) -> int:
    """Run ``robocell keys ...``; returns the exit code. Errors raise BridgeError."""
    if args.keys_cmd != "generate":  # argparse allows only known subcommands
        raise BridgeError(f"unknown keys command {args.keys_cmd!r} (valid: generate)", exit_code=2)
    public, secret = generate_keys(args.dir, args.name, overwrite=args.overwrite)
    print(f"public key: {public}  (share it)")
    print(f"secret key: {secret}  (mode 0600; keep it on this machine, never share it)")
    if args.name.startswith("server"):
        print(
            "use: robocell serve SCENARIO --bind tcp://0.0.0.0:5555 "
            f"--keys {secret} --allow {Path(args.dir) / 'clients'}/  "
            f"(clients need {public.name})"
        )
    else:
        print(
            f"use: robocell drive SCENARIO --connect tcp://HOST:5555 --key {secret} "
            f"--server-key server.key  (copy {public.name} into the server's --allow folder)"
        )
    return 0
