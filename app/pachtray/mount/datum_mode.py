"""Datum mode (PUT /datums/_mount, _next, _prev): the mounts show one datum of a pipeline's input
at a time, read-only, with a local `out` folder that each datum gets empty, as a pipeline's datum
does (and as the reference, which also removes it when datum mode ends); the datums themselves come
from mount.datums."""

from __future__ import annotations

import shutil
from dataclasses import dataclass

from pachtray.errors import ApiError
from pachtray.mount import datums as datum_mod
from pachtray.mount.state import Mount
from pachtray.pfs import errors
from pachtray.pfs.errors import RPC_ERRORS


@dataclass
class _Datums:
    input: object  # pps.Input with defaults filled
    datums: list
    idx: int = 0


class DatumMode:
    """Owned by the MountManager, called under its mode lock; uses its mount primitives."""

    def __init__(self, manager):
        self.manager = manager
        self._current: _Datums | None = None

    @property
    def active(self) -> bool:
        return self._current is not None

    def compute(self, spec: dict) -> _Datums:
        """The datums of ``spec['input']`` (RPCs; the caller holds no lock)."""
        try:
            inp = datum_mod.parse_spec(spec)
        except datum_mod.SpecError as e:
            raise ApiError(400, f"error converting datum inputs to mounts: {e}") from None
        client = self.manager.need_client()
        try:
            found = datum_mod.compute_datums(client, inp)
        except datum_mod.SpecError as e:
            raise ApiError(400, f"error listing spec's datums: {e}") from None
        except RPC_ERRORS as e:
            if errors.is_not_found(e):
                raise ApiError(400, f"error converting datum inputs to mounts: {errors.details(e)}") from None
            raise errors.to_api_error(e, "error listing spec's datums", reference=True) from None
        if not found:  # the reference's words and status (its listing fails before its own 400 is reached)
            raise ApiError(500, "error listing spec's datums: no datums to mount")
        return _Datums(inp, found)

    def enter(self, datums: _Datums) -> dict:
        """Unmount everything and show the first of ``datums`` (under the manager's mode lock)."""
        m = self.manager
        m.unmount_all()
        self._current = datums
        try:
            self._show()
        except ApiError:
            self.leave()
            raise
        return self._answer()

    def step(self, delta: int) -> dict:
        d = self._current
        if d is None:
            raise ApiError(400, "no datums mounted")
        if delta < 0 and d.idx == 0:
            raise ApiError(400, "already at first datum")
        if delta > 0 and d.idx == len(d.datums) - 1:
            raise ApiError(400, "already at last datum")
        self._hide()
        d.idx += delta
        self._show()
        return self._answer()

    def state(self) -> dict:
        d = self._current
        if d is None:
            return {"num_datums": 0, "input": None, "idx": 0, "all_datums_received": False}
        return {"num_datums": len(d.datums), "input": datum_mod.input_json(d.input), "idx": d.idx,
                "all_datums_received": True}

    def leave(self) -> None:
        if self._current is None:
            return
        self._hide()
        self._drop_out()
        self._current = None
        self.manager.table.bump()

    def _drop_out(self) -> None:
        m = self.manager
        m.fs.remove_view(datum_mod.OUT_NAME)  # (the kernel forgets what it cached there)
        shutil.rmtree(m.out_dir, ignore_errors=True)

    def _answer(self) -> dict:
        d = self._current
        return {"id": "", "idx": d.idx, "num_datums": len(d.datums), "all_datums_received": True}

    def _show(self) -> None:
        d, m = self._current, self.manager
        self._drop_out()
        m.out_dir.mkdir(parents=True)
        m.fs.add_view(datum_mod.OUT_NAME, m.parts.local_view(m.out_dir))
        for spec in datum_mod.datum_mounts(d.datums[d.idx]):
            mount = Mount(name=spec["name"], project=spec["project"], repo=spec["repo"], branch=spec["branch"],
                          commit=spec["commit"], paths=spec["paths"], mode="ro", view=None, pinned=True, datum=True)
            if m.table.get(mount.name) is not None:
                raise ApiError(500, f"mount at '{mount.name}' already in use (recovered changes): commit or "
                                    "discard them first")
            mount.view = m.parts.ro_view(m.client, mount)
            m.publish(mount)
        m.table.bump()

    def _hide(self) -> None:
        # Read-only and replaced at once: open files keep reading their commit, nothing to protect.
        for mount in [x for x in self.manager.table.mounts() if x.datum]:
            with mount.op:
                self.manager.remove(mount)
