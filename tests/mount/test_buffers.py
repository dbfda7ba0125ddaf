"""Chunks as views of GetFile messages (pfs.client.get_file, mount/reader.py `_piece`) and their
address for read replies (mount/replies.py `address`): equal to the SDK's own decoding, no copy,
and no message kept alive for a small part of it."""

from __future__ import annotations

import ctypes

import pytest
from betterproto.lib.google.protobuf import BytesValue
from hypothesis import given, settings
from hypothesis import strategies as st

from pachtray.mount.reader import _piece
from pachtray.mount.replies import address
from pachtray.pfs.client import _bytes_value_view

pytestmark = pytest.mark.fast


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=70_000))
def test_a_get_file_message_parsed_as_a_view_equals_the_sdk_decoding(value):
    raw = bytes(BytesValue(value=value))
    got = _bytes_value_view(raw)
    assert bytes(got.value) == BytesValue.FromString(raw).value == value
    if value:
        assert isinstance(got.value, memoryview) and got.value.obj is raw  # no copy of the content


def test_a_piece_is_the_view_itself_only_when_it_is_most_of_its_message():
    message = bytes(range(256)) * 64
    whole = memoryview(message)[3:]
    assert _piece([whole]) is whole
    small = memoryview(message)[:100]
    copied = _piece([small])
    assert type(copied) is bytes and copied == message[:100]  # the 16 KiB message is not kept for 100 bytes
    joined = _piece([memoryview(message)[:10], b"tail"])
    assert joined == message[:10] + b"tail" and type(joined) is bytes
    assert _piece([b"plain"]) == b"plain"


def test_address_of_bytes_and_of_views_of_them():
    data = b"0123456789" * 1000
    assert ctypes.string_at(address(data), 5) == b"01234"
    view = memoryview(data)[4567:]
    assert ctypes.string_at(address(view), 6) == data[4567:4573]
    assert address(view) == address(data) + 4567
    with pytest.raises(BufferError):
        address(memoryview(data)[::2])
