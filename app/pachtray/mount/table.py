"""The mount table and its change feed: which mounts exist, and a generation counter bumped on
every visible change so clients can long-poll (`/pachtray/v1/events`) instead of polling RPCs.

The lock guards the table and the mounts' fields; it is never held across an RPC or an upload.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from pachtray.mount.state import Mount

CHANGE_POLL = 0.5  # s between looks at the rw mounts' pending counts while someone waits for a change


class MountTable:
    def __init__(self):
        self.lock = threading.RLock()
        self._changed = threading.Condition(self.lock)
        self._mounts: dict[str, Mount] = {}
        self._generation = 0

    # ---- the table
    def get(self, name: str) -> Mount | None:
        with self.lock:
            return self._mounts.get(name)

    def mounts(self) -> list[Mount]:
        with self.lock:
            return list(self._mounts.values())

    def names(self) -> set[str]:
        with self.lock:
            return set(self._mounts)

    def put(self, m: Mount) -> None:
        with self.lock:
            self._mounts[m.name] = m

    def take(self, m: Mount) -> bool:
        """Remove ``m`` if it is still the mount of its name; False when it was replaced or gone."""
        with self.lock:
            if self._mounts.get(m.name) is not m:
                return False
            del self._mounts[m.name]
            return True

    def clear(self) -> list[Mount]:
        with self.lock:
            mounts, self._mounts = list(self._mounts.values()), {}
            return mounts

    def set(self, m: Mount, **fields) -> bool:
        """Change fields of ``m``; bumps the generation when one changed. True if one did."""
        with self.lock:
            changed = any(getattr(m, k) != v for k, v in fields.items())
            for k, v in fields.items():
                setattr(m, k, v)
            if changed:
                self.bump()
            return changed

    # ---- the change feed
    @property
    def generation(self) -> int:
        return self._generation

    def bump(self) -> None:
        with self.lock:
            self._generation += 1
            self._changed.notify_all()

    def wake(self) -> None:
        """Wake the waiters without a change of the table (another feed moved: see ``until``)."""
        with self.lock:
            self._changed.notify_all()

    def wait_change(self, gen: int, timeout: float, poll: Callable[[], None] | None = None,
                    until: Callable[[], bool] | None = None) -> int:
        """Block until the generation differs from ``gen``, or ``until()`` says another feed moved
        (or ``timeout`` s); return the generation. ``poll`` runs every CHANGE_POLL s while waiting
        (outside the lock): changes nobody reports, such as writes into rw mounts, are found by
        looking."""
        deadline = time.monotonic() + max(0.0, timeout)

        def done() -> bool:
            return self._generation != gen or (until is not None and until())

        while True:
            with self._changed:
                if done():
                    return self._generation
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._generation
                self._changed.wait(min(remaining, CHANGE_POLL))
                if done():
                    return self._generation
            if poll is not None:
                poll()
