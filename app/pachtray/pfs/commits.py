"""Sending changes to a branch as one commit, all or nothing: the one commit path of rw mounts
(mount.staging.RwView.commit) and uploads (pachtray.uploads).

The commit is started on the branch with its description, temporary file sets uploaded before
(mount.upload_ahead; pfs.modify's requests too) are added to it in order, the changes (pfs.modify's
requests: every path replaced, never appended to) go in one ModifyFile stream into that commit,
and it is finished. Anything failing on the way drops the commit, so the branch stays as it was. A caller
that may be killed between the start and the finish is told the started commit (`started`) so it
can drop it later with `drop_if_open` (pachd refuses a new commit on a branch whose head is open).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Callable, Iterable, Sequence

from pachyderm_sdk.api import pfs

from pachtray.pfs import client as pfs_client
from pachtray.pfs import errors
from pachtray.pfs.errors import RPC_ERRORS

log = logging.getLogger(__name__)
DROP_DEADLINE = 3.0  # seconds for each clean-up call after a failed commit


def commit(client, branch: pfs.Branch, changes: Iterable[pfs.ModifyFileRequest | bytes], *,
           description: str = "", started: Callable[[pfs.Commit], None] | None = None,
           check: Callable[[], None] | None = None, file_sets: Sequence[str] = ()) -> pfs.Commit:
    """Start a commit on ``branch``, add the temporary ``file_sets`` to it in order (each layered
    over what it has), send ``changes`` into it, finish it; returns the commit.

    ``started(commit)`` runs before anything is sent; ``check()`` runs after the stream, before the
    finish, and may raise to give up (a cancel). Any exception drops the commit and is re-raised;
    the first error of iterating ``changes`` is raised rather than gRPC's "Exception iterating".
    """
    new = client.pfs.start_commit(branch=branch, description=description)
    failed: list[BaseException] = []

    def requests():
        yield pfs.ModifyFileRequest(set_commit=new)
        try:
            yield from changes
        except BaseException as e:
            failed.append(e)
            raise

    try:
        if started is not None:
            started(new)
        for fid in file_sets:
            client.pfs.add_file_set(commit=new, file_set_id=fid)
        pfs_client.modify_file(client, requests())
        if check is not None:
            check()
        client.pfs.finish_commit(commit=new)
    except BaseException as e:
        drop(client, new, "commit abandoned")
        if failed and failed[0] is not e:
            raise failed[0] from None
        raise
    return new


def drop(client, commit: pfs.Commit, message: str) -> None:
    """Leave the branch as it was: drop the commit (or, where dropping is refused, finish it as
    failed). Best effort, a few seconds at most: the caller's error is what the user sees."""
    with pfs_client.short_deadline(DROP_DEADLINE):
        try:
            client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit.id))
        except RPC_ERRORS:
            try:
                client.pfs.finish_commit(commit=commit, error=message)
            except RPC_ERRORS as e:
                log.warning("could not drop or fail the abandoned commit %s: %s", commit.id, e)


def drop_if_open(client, commit: pfs.Commit) -> None:
    """Drop ``commit`` if it is still open (a crash between its start and its finish); a finished
    or missing one is left alone. gRPC errors other than not found are raised."""
    try:
        info = client.pfs.inspect_commit(commit=commit)
    except RPC_ERRORS as e:
        if errors.is_not_found(e):
            return
        raise
    if not timestamp_set(info.finishing) and not timestamp_set(info.finished):
        log.info("dropping commit %s left open by an interrupted commit", commit.id)
        client.pfs.drop_commit_set(commit_set=pfs.CommitSet(id=commit.id))


def timestamp_set(value) -> bool:
    """Whether a Timestamp field of a message is set (the SDK decodes an unset one as None or as
    the epoch): a commit's `finished`, `started`..."""
    return isinstance(value, dt.datetime) and value.timestamp() > 0
