"""Guard against PySide6 builds whose Signal.emit() drops a reference to True/False.

PySide6-Essentials 6.12.0 does that: on Python < 3.12 a long-running tray aborts with
"bool_dealloc" after a few hundred emits. constraints.txt pins a release without the bug; this
test fails if a pin ever brings it back.
"""

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    plain = Signal()
    with_arg = Signal(object)


def test_emit_keeps_bool_refcounts(qapp):
    e = _Emitter()
    before = sys.getrefcount(True), sys.getrefcount(False)
    for _ in range(100):
        e.plain.emit()
        e.with_arg.emit(1)
    after = sys.getrefcount(True), sys.getrefcount(False)
    # The bug loses one reference per emit (200 here); other threads may move a few either way.
    lost = before[0] - after[0] + before[1] - after[1]
    assert lost < 100, f"Signal.emit() lost {lost} references to True/False"
