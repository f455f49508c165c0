"""Kinematics from the same URDF that pybullet simulates, computed by roboticstoolbox.

roboticstoolbox is imported lazily (it costs about a second), on the first :class:`Kinematics`
built. All poses are spatialmath ``SE3`` in the robot's base frame; joint vectors are numpy
arrays of shape (n,) in [rad].
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
from spatialmath import SE3

from robocell.errors import KinematicsError


@functools.lru_cache(maxsize=32)
def _load_ets(urdf: str, flange: str) -> Any:
    import warnings

    import roboticstoolbox as rtb
    from roboticstoolbox.models.URDF.URDFRobot import URDF_file

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        elinks, name, _ = URDF_file(urdf)
        robot = rtb.Robot(elinks, name=name)
    if flange not in {link.name for link in robot.links}:
        raise KinematicsError(f"{urdf}: no link named '{flange}' for the flange")
    return robot


#: the two columns of a transform that a rotation about each axis mixes
_ROTATED_COLUMNS = {"Rz": (0, 1), "Rx": (1, 2), "Ry": (2, 0)}


class Kinematics:
    """Forward, differential and inverse kinematics of one serial robot.

    Args:
        urdf: path of the robot's URDF (the one pybullet loads).
        flange_link: name of the flange link.
        qlim: (2, n) joint position limits [rad] used by IK.
        tcp: tool centre point relative to the flange (default: the flange itself).
    """

    def __init__(
        self, urdf: str | Path, flange_link: str, qlim: np.ndarray, tcp: SE3 | None = None
    ) -> None:
        self._robot = _load_ets(str(Path(urdf).resolve()), flange_link)
        self._flange = flange_link
        self.n: int = int(self._robot.n)
        self.qlim = np.asarray(qlim, dtype=float)
        if self.qlim.shape != (2, self.n):
            raise KinematicsError(f"qlim must have shape (2, {self.n}), got {self.qlim.shape}")
        self.tcp = tcp if tcp is not None else SE3()
        self._tcp_inv = self.tcp.inv()
        self._tcp_A = np.array(self.tcp.A)
        self._chain_cache: list[tuple[str, Any]] | None = None
        self._restarts = np.random.default_rng(0).uniform(
            self.qlim[0], self.qlim[1], size=(24, self.n)
        )

    def _chain(self) -> list[tuple[str, Any]]:
        """The flange's elementary transforms: ('const', 4x4) or (axis, joint index)."""
        if self._chain_cache is None:
            import warnings

            chain: list[tuple[str, Any]] = []
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for et in self._robot.ets(end=self._flange):
                    if et.isjoint:
                        if et.isflip:
                            raise KinematicsError("flipped joint axes are not supported")
                        chain.append((str(et.axis), int(et.jindex)))
                    else:
                        chain.append(("const", np.asarray(et.A(), float)))
            self._chain_cache = chain
        return self._chain_cache

    def flange_batch(self, Q: np.ndarray) -> np.ndarray:
        """Flange poses for many joint vectors at once: ``Q`` (k, n) -> (k, 4, 4), base frame.

        Vectorised over k (the recorder turns a second of samples into TCP poses at once). The
        running transforms are kept component-major, as (column, row, sample), top three rows
        only: a joint rotation then mixes two contiguous (3, k) blocks, and a constant
        transform is one (4, 4) x (4, 3k) product. That is about half the time of the same
        arithmetic on (k, 4, 4) matrices, with the same results to the bit.
        """
        Q = np.asarray(Q, float)
        k = len(Q)
        QT = Q.T
        C, S = np.cos(QT), np.sin(QT)
        T = np.zeros((4, 3, k))  # T[c, r] = row r of column c, for every sample
        T[0, 0] = T[1, 1] = T[2, 2] = 1.0
        for kind, val in self._chain():
            if kind == "const":
                # (T @ K)[:, j] = sum over m of T[:, m] * K[m, j] (K's last row is 0 0 0 1)
                T = (val.T @ T.reshape(4, 3 * k)).reshape(4, 3, k)
            elif kind in ("Rx", "Ry", "Rz"):
                i, j = _ROTATED_COLUMNS[kind]
                c, s = C[val], S[val]
                ci, cj = T[i], T[j]
                new_i = c * ci + s * cj
                T[j] = c * cj - s * ci
                T[i] = new_i
            else:  # prismatic tx, ty, tz
                T[3] += QT[val] * T["xyz".index(kind[1])]
        out = np.empty((k, 4, 4))
        out[:, :3, :] = T.transpose(2, 1, 0)
        out[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
        return out

    def with_tcp(self, tcp: SE3) -> Kinematics:
        """The same robot with another tool centre point."""
        k = object.__new__(Kinematics)
        k.__dict__.update(self.__dict__)
        k.tcp = tcp
        k._tcp_inv = tcp.inv()
        k._tcp_A = np.array(tcp.A)
        return k

    def flange(self, q: np.ndarray) -> SE3:
        """Flange pose in the base frame."""
        return SE3(self._robot.fkine(np.asarray(q, float), end=self._flange))

    def fkine(self, q: np.ndarray) -> SE3:
        """TCP pose in the base frame."""
        return self.flange(q) * self.tcp

    def jacob0(self, q: np.ndarray) -> np.ndarray:
        """Geometric Jacobian at the TCP in the base frame, shape (6, n), rows [v; omega]."""
        return np.asarray(
            self._robot.jacob0(np.asarray(q, float), end=self._flange, tool=self.tcp.A)
        )

    def _ets(self) -> Any:
        ets = self.__dict__.get("_ets_cache")
        if ets is None:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ets = self._robot.ets(end=self._flange)
            self.__dict__["_ets_cache"] = ets
        return ets

    def fkine_array(self, q: np.ndarray) -> np.ndarray:
        """TCP pose in the base frame as a plain (4, 4) array: the same as :meth:`fkine`
        without the SE3 wrapper, about three times cheaper (for per-tick loops)."""
        return np.asarray(self._ets().eval(np.asarray(q, float), tool=self._tcp_A))

    def manipulability(self, q: np.ndarray) -> float:
        """Yoshikawa manipulability sqrt(det(J J^T)) of the translational+rotational Jacobian."""
        J = self.jacob0(q)
        return float(np.sqrt(max(np.linalg.det(J @ J.T), 0.0)))

    def ik(
        self, T: SE3, q0: np.ndarray, tol: float = 1e-12, search: bool = False
    ) -> np.ndarray | None:
        """Joint solution for TCP pose ``T`` (base frame) within the joint limits.

        With ``search=False`` (tracking a path) the solver starts from ``q0`` and only falls back
        to a fixed, deterministic set of restarts when that fails. With ``search=True`` (a new
        target) every start is tried and the valid solution nearest to ``q0`` is returned, so a
        target does not land on another configuration branch (elbow, wrist or shoulder flip)
        just because the solver wandered. Returns None when nothing is found.
        """
        target = T * self._tcp_inv
        q0 = np.asarray(q0, float)
        first = self._solve(target, q0, tol)
        if first is not None and not search:
            return first
        sols = [first] if first is not None else []
        sols += [
            s for s in (self._solve(target, s0, tol) for s0 in self._restarts) if s is not None
        ]
        if not sols:
            return None
        return min(sols, key=lambda s: float(np.sum((s - q0) ** 2)))

    def _solve(self, target: SE3, q0: np.ndarray, tol: float) -> np.ndarray | None:
        sol = self._robot.ik_LM(
            target, end=self._flange, q0=q0, ilimit=100, slimit=1, tol=tol, joint_limits=True
        )
        q, ok = np.asarray(sol.q, float), bool(sol.success)
        if not ok:
            return None
        # rtb may return angles wrapped by 2*pi; bring them as close to q0 as the limits allow
        for i in range(self.n):
            for shift in (-2 * np.pi, 2 * np.pi):
                cand = q[i] + shift
                if self.qlim[0, i] <= cand <= self.qlim[1, i] and abs(cand - q0[i]) < abs(
                    q[i] - q0[i]
                ):
                    q[i] = cand
        if np.any(q < self.qlim[0] - 1e-9) or np.any(q > self.qlim[1] + 1e-9):
            return None
        return q
