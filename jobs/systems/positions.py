"""Where a writer without transactions stands (HTTP, messaging, drive), fenced by claim.

A SQL target keeps the writer's position in the same transaction as the rows and refuses a
superseded claim's commit (`_datazen_fence`). HTTP endpoints, brokers and files have no such
transaction: the position is a small JSON file of the gateway (or beside the drive's files).
A worker paused past its lease, then resumed after its run was taken over, must not move that
position (back) over its successor's. So the position is one file per claim, named by the
claim's fence token (jobs/leases.py `fence_token`: a later claim's is larger), and the file
with the largest token is the position:

- a claim writes its own file before it sends anything (`claim`), a copy of the position it
  starts from; from then on nothing an older claim writes is read again;
- each later write (`save`) goes to the claim's own file, after checking that no later claim
  has one (LeaseLost otherwise: the stale worker stops at its next chunk);
- `{stem}.json`, without a token, is the position written unfenced (before this scheme, or
  by a direct call without a claim); it ranks below every claim's.

What a stale worker sent before its check failed has reached the endpoint or broker: the
delivery is at least once (docs/operations.md, "A worker paused past its lease").
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from jobs.systems.base import ApplyHooks, LeaseLost

_TOKEN = re.compile(r"\d{15}\.\d{20}\.\d{10}")


class StateFiles(Protocol):
    """The folder the position files live in."""

    def names(self) -> list[str]: ...

    def read(self, name: str) -> str | None: ...

    def write(self, name: str, text: str) -> None:
        """Replace `name` whole (a reader sees the old content or the new, never half)."""
        ...

    def remove(self, name: str) -> None: ...


class LocalStateFiles:
    """Position files in a folder of the gateway's data directory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def names(self) -> list[str]:
        try:
            return os.listdir(self.folder)
        except FileNotFoundError:
            return []

    def read(self, name: str) -> str | None:
        try:
            return (self.folder / name).read_text()
        except FileNotFoundError:
            return None

    def write(self, name: str, text: str) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / name
        partial = final.with_name(final.name + ".tmp")
        partial.write_text(text)
        os.replace(partial, final)  # a crash leaves the old position or the new one, never half

    def remove(self, name: str) -> None:
        (self.folder / name).unlink(missing_ok=True)


class Positions:
    """The position of writer `stem` in `files` (see the module's docstring)."""

    def __init__(self, files: StateFiles, stem: str) -> None:
        self.files = files
        self.stem = stem

    def _current(self) -> tuple[str, str]:
        """(token, file name) of the position: the largest token's file."""
        best = ("", f"{self.stem}.json")
        prefix, suffix = f"{self.stem}.", ".json"
        for name in self.files.names():
            if name.startswith(prefix) and name.endswith(suffix):
                token = name[len(prefix) : -len(suffix)]
                if _TOKEN.fullmatch(token) and token > best[0]:
                    best = (token, name)
        return best

    def read(self) -> dict[str, Any]:
        text = self.files.read(self._current()[1])
        try:
            data = json.loads(text) if text else {}
        except json.JSONDecodeError:
            return {}
        return data if isinstance(data, dict) else {}

    def check(self, fence: str) -> None:
        """LeaseLost when a later claim than `fence` has written its position."""
        token = self._current()[0]
        if fence and token > fence:
            raise LeaseLost(
                f"A later claim of this writer ({token}) has taken it over; this one "
                f"({fence}) stops without recording anything."
            )

    def claim(self, fence: str) -> dict[str, Any]:
        """Take the position for claim `fence` (unfenced when ""): the state it starts from."""
        self.check(fence)
        state = self.read()
        if fence:
            self._write(fence, state)
            self._drop_older(fence)
        return state

    def save(self, fence: str, state: dict[str, Any]) -> None:
        """Record `state` for claim `fence`, unless a later claim has taken the writer over."""
        self.check(fence)
        self._write(fence, state)

    def _write(self, fence: str, state: dict[str, Any]) -> None:
        name = f"{self.stem}.{fence}.json" if fence else self._current()[1]
        self.files.write(name, json.dumps({**state, "fence": fence}))

    def _drop_older(self, fence: str) -> None:
        prefix, suffix = f"{self.stem}.", ".json"
        for name in self.files.names():
            if name == f"{self.stem}.json" or (
                name.startswith(prefix)
                and name.endswith(suffix)
                and _TOKEN.fullmatch(name[len(prefix) : -len(suffix)])
                and name[len(prefix) : -len(suffix)] < fence
            ):
                # A stale claim still writing one keeps writing a file nobody reads.
                with contextlib.suppress(OSError):
                    self.files.remove(name)


@dataclass(frozen=True)
class ChangeLogPosition:
    """Where a writer that applies change logs row by row stands: the last change log applied
    whole, and the (frame, row) reached in the one being applied."""

    applied: str = ""
    current: str = ""
    frame: int = 0
    row: int = 0

    def covers(self, execution_id: str) -> bool:
        """Whether change log `execution_id` was applied whole (ExecutionIds grow)."""
        return (
            self.applied.isdigit()
            and execution_id.isdigit()
            and int(self.applied) >= int(execution_id)
        )

    def resume_at(self, execution_id: str) -> tuple[int, int]:
        """(frame, row) to start `execution_id` at: where a stopped run left it, else (0, 0)."""
        return (self.frame, self.row) if self.current == execution_id else (0, 0)


class WriterPosition:
    """The change-log position of an HTTP or messaging writer, in `<folder>/<writer guid>…json`
    of the gateway's data directory, fenced by claim as above."""

    def __init__(self, folder: Path, writer_guid: str) -> None:
        self.positions = Positions(LocalStateFiles(folder), writer_guid)
        self.fence = ""

    @staticmethod
    def _of(state: dict[str, Any]) -> ChangeLogPosition:
        return ChangeLogPosition(
            str(state.get("applied", "")),
            str(state.get("current", "")),
            int(state.get("frame", 0)),
            int(state.get("row", 0)),
        )

    def applied(self) -> str:
        return self._of(self.positions.read()).applied

    def claim(self, fence: str) -> ChangeLogPosition:
        """Take the position for claim `fence`; later saves are this claim's."""
        self.fence = fence
        return self._of(self.positions.claim(fence))

    def start(
        self, execution_id: str, hooks: ApplyHooks, *, recreate: bool, target: str, done: str
    ) -> ChangeLogPosition | None:
        """Claim the position for an apply of `execution_id`: None when that change log was
        applied whole; else where to start, said in the run's log when it resumes a stopped
        apply (`done`: what the stopped apply had already got through, e.g. "the rows
        already delivered"). `target` names the kind of target, which cannot be recreated."""
        state = self.claim(hooks.fence)
        if state.covers(execution_id):
            return None
        if recreate:
            hooks.log(f"recreate=1 has no meaning for {target}: ignored.")
        frame, row = state.resume_at(execution_id)
        if (frame, row) != (0, 0):
            hooks.log(
                f"Resuming change log {execution_id} after {done} (frame {frame}, row {row})."
            )
        return state

    def save(self, applied: str, current: str = "", frame: int = 0, row: int = 0) -> None:
        """Only while no later claim has taken the writer over (LeaseLost otherwise)."""
        self.positions.save(
            self.fence, {"applied": applied, "current": current, "frame": frame, "row": row}
        )
