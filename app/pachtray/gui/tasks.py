"""Run blocking work (HTTP to the daemon, disk, subprocesses) off the GUI thread.

`Tasks.run(fn, on_result, on_error)` executes `fn` in a thread pool; the callbacks run on the
GUI thread. All results travel through one queued signal of a QObject that lives on the GUI
thread, so callbacks never touch widgets from a worker thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot


log = logging.getLogger(__name__)


class _Job(QRunnable):
    def __init__(self, tasks: "Tasks", token: int, fn: Callable[[], Any]):
        super().__init__()
        self.setAutoDelete(True)
        self._tasks = tasks
        self._token = token
        self._fn = fn

    def run(self) -> None:
        try:
            result, error = self._fn(), None
        except Exception as e:  # noqa: BLE001 - every failure is handed to on_error
            result, error = None, e
        try:
            self._tasks._finished.emit(self._token, result, error)
        except RuntimeError:
            pass  # the app closed while this ran: nobody is left to tell


class Tasks(QObject):
    """A small thread pool with GUI-thread callbacks and a count of outstanding work."""

    _finished = Signal(int, object, object)
    busy_changed = Signal(bool)

    def __init__(self, parent: QObject | None = None, threads: int = 4):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(threads)
        self._callbacks: dict[int, tuple[Callable | None, Callable | None, bool]] = {}
        self._tokens = itertools.count(1)
        self._busy = 0
        self._closed = False
        self._finished.connect(self._dispatch)

    @property
    def pending(self) -> int:
        return len(self._callbacks)

    @property
    def busy(self) -> bool:
        return self._busy > 0

    def run(self, fn: Callable[[], Any], on_result: Callable[[Any], None] | None = None,
            on_error: Callable[[Exception], None] | None = None, *, busy: bool = False) -> int:
        """Start `fn` on a worker; `busy=True` marks user-visible work (tray shows busy)."""
        token = next(self._tokens)
        if self._closed:
            return token
        self._callbacks[token] = (on_result, on_error, busy)
        if busy:
            self._busy += 1
            if self._busy == 1:
                self.busy_changed.emit(True)
        self._pool.start(_Job(self, token, fn))
        return token

    @Slot(int, object, object)
    def _dispatch(self, token: int, result: Any, error: Exception | None) -> None:
        on_result, on_error, busy = self._callbacks.pop(token, (None, None, False))
        if busy:
            self._busy -= 1
            if self._busy == 0:
                self.busy_changed.emit(False)
        if error is not None:
            if on_error is not None:
                on_error(error)
            else:
                log.warning("background task failed: %s", error)
        elif on_result is not None:
            on_result(result)

    def close(self, msecs: int = 5000) -> bool:
        """Take no new work and wait for the running jobs (at exit and in tests)."""
        self._closed = True
        return self._pool.waitForDone(msecs)


class Poller(QObject):
    """A daemon thread that repeats a blocking call and reports each new answer as a signal.

    Used for the change feed: `call(last)` is a long poll that returns when the answer differs
    from `last`, so this thread spends its life waiting on the daemon instead of occupying a
    pool thread. Failures (daemon not running) are retried after `retry_delay` seconds.
    """

    answered = Signal(object)

    def __init__(self, call: Callable[[Any], Any], initial: Any, parent: QObject | None = None,
                 retry_delay: float = 2.0, idle_delay: float = 0.25):
        super().__init__(parent)
        self._call = call
        self.last = initial
        self._retry_delay = retry_delay
        self._idle_delay = idle_delay
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pachtray-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                answer = self._call(self.last)
            except Exception:  # noqa: BLE001 - the daemon is away: try again shortly
                self._stop.wait(self._retry_delay)
                continue
            if self._stop.is_set():
                return
            if answer == self.last:
                self._stop.wait(self._idle_delay)  # a long poll that timed out (or a server that does not wait)
                continue
            self.last = answer
            try:
                self.answered.emit(answer)
            except RuntimeError:
                return  # the receiver was deleted (app exit)
