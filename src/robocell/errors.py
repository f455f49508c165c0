"""Typed errors. Every error a user can cause derives from :class:`RobocellError`."""

from __future__ import annotations


class RobocellError(Exception):
    """Base of every error robocell raises on purpose (bad input, unreachable target, ...)."""

    exit_code = 1


class ScenarioError(RobocellError):
    """A scenario (file or Python description) is invalid.

    ``file`` and ``line`` locate the problem when it came from YAML; ``field`` is a dotted path
    such as ``robots[0].base.xyz``.
    """

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        fld = f"{self.field}: " if self.field else ""
        return f"{where}{fld}{self.message}"


class KinematicsError(RobocellError):
    """A target is unreachable, a path crosses a singularity or leaves the joint limits.

    ``field`` names the waypoint (e.g. ``waypoints[2]``) so the scenario loader can point at its
    YAML line.
    """

    exit_code = 2

    def __init__(self, message: str, *, field: str | None = None) -> None:
        self.message = message
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class LimitError(RobocellError):
    """A requested motion or command violates a robot limit that cannot be clamped."""

    exit_code = 2


class BridgeError(RobocellError):
    """A bridge problem: a refused bind, a server that does not answer, an error reply.

    ``code`` is the protocol's error name (``E_...``, see docs/bridge-protocol.md) when the error
    came as a reply from the other side, else None.
    """

    def __init__(self, message: str, *, code: str | None = None, exit_code: int = 1) -> None:
        self.message = message
        self.code = code
        self.exit_code = exit_code
        super().__init__(f"{code}: {message}" if code else message)
