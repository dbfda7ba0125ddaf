"""`emit(signal, *args)`: emit a Qt signal from Python without corrupting True/False refcounts.

PySide6 6.12.0's `SignalInstance.emit()` returns a bool it does not own (one reference too few),
so on Python < 3.12, where True and False are not immortal, every emit drops their refcount by
one until the interpreter aborts with "bool_dealloc: deallocating True or False" (hundreds of
emits are enough). We probe once whether this PySide does that and hand the reference back.
"""

from __future__ import annotations

import ctypes
import sys

from PySide6.QtCore import QObject, Signal

_PROBES = 16


class _Probe(QObject):
    fired = Signal()


def _emit_loses_bool_reference() -> bool:
    """Emit a few times and give back whatever references that took; True if it took any."""
    probe = _Probe()
    true_before, false_before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(_PROBES):
        probe.fired.emit()
    true_lost = true_before - sys.getrefcount(True)
    false_lost = false_before - sys.getrefcount(False)
    for value, lost in ((True, true_lost), (False, false_lost)):
        for _ in range(max(0, lost)):
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(value))
    return true_lost + false_lost >= _PROBES


_LOSES_REFERENCE = _emit_loses_bool_reference()


def emit(signal, *args) -> None:
    result = signal.emit(*args)
    if _LOSES_REFERENCE:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(result))
