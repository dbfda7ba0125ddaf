"""The native codec path gives exactly betterproto's bytes and messages (pachtray.pfs.codec).

Messages are generated from the SDK classes' own metadata (every field, oneofs, repeated fields,
nested messages, times), so the properties cover every field the hot-path RPCs carry.
"""

from __future__ import annotations

import datetime as dt
import functools

import betterproto
import pytest
from betterproto.lib.google.protobuf import BytesValue, Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pachyderm_sdk.api import pfs

from pachtray.pfs import codec

pytestmark = pytest.mark.skipif(not codec.AVAILABLE, reason="betterproto-rust-codec is not installed")

# The three the issue names, and the other messages of the RPCs that use the codec.
REQUIRED = [pfs.FileInfo, pfs.ModifyFileRequest, pfs.ListFileRequest]
OTHERS = [pfs.GlobFileRequest, pfs.InspectFileRequest, pfs.GetFileRequest, pfs.ListRepoRequest, pfs.RepoInfo,
          pfs.ListCommitRequest, pfs.CommitInfo, pfs.WalkFileRequest, BytesValue, pfs.DiffFileRequest,
          pfs.DiffFileResponse]

UTC = dt.timezone.utc
# betterproto b5 encodes datetimes before 1970 with a fraction wrongly (int() of a negative float
# rounds up) and loses precision for far-future ones; PFS times are neither.
TIMES = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(UTC))
DURATIONS = st.timedeltas(min_value=dt.timedelta(0), max_value=dt.timedelta(days=3000))
INTS = {"int32": (-2**31, 2**31 - 1), "sint32": (-2**31, 2**31 - 1), "sfixed32": (-2**31, 2**31 - 1),
        "int64": (-2**63, 2**63 - 1), "sint64": (-2**63, 2**63 - 1), "sfixed64": (-2**63, 2**63 - 1),
        "uint32": (0, 2**32 - 1), "fixed32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1), "fixed64": (0, 2**64 - 1)}
# Mostly small contents, sometimes past the size where the codec hands encoding back to betterproto.
BLOBS = st.one_of(st.binary(max_size=64), st.binary(min_size=codec.NATIVE_BYTES_MAX - 8,
                                                      max_size=codec.NATIVE_BYTES_MAX + 64))


def _meta(cls):
    return cls()._betterproto


def scalar(proto_type: str, field_cls):
    if proto_type in INTS:
        return st.integers(*INTS[proto_type])
    if proto_type == "enum":
        return st.sampled_from(list(field_cls))
    return {"string": st.text(max_size=12), "bytes": BLOBS, "bool": st.booleans()}[proto_type]


def messages(cls, depth: int = 0) -> st.SearchStrategy:
    """Messages of ``cls`` built with keyword arguments, as code builds them: any subset of the
    fields, at most one field of each oneof."""
    meta = _meta(cls)
    strategies = {}
    for name, field in meta.meta_by_field_name.items():
        field_cls = meta.cls_by_field.get(name)
        if field.wraps:
            one = scalar(field.wraps, None)
        elif field.proto_type == betterproto.TYPE_MESSAGE:
            if field_cls is dt.datetime:
                one = TIMES
            elif field_cls is dt.timedelta:
                one = DURATIONS
            elif depth >= 4:
                one = st.builds(field_cls)
            else:
                one = st.deferred(lambda c=field_cls: messages(c, depth + 1))
        else:
            one = scalar(field.proto_type, field_cls)
        if meta.default_gen[name] is list:
            # b5 sends an empty item of a repeated field with the wrong field number (see below)
            one = one.filter(lambda m: bytes(m) if isinstance(m, betterproto.Message) else m not in ("", b""))
            strategies[name] = st.lists(one, max_size=3)
        else:
            strategies[name] = one
    groups = {}
    for name, field in meta.meta_by_field_name.items():
        if field.group:
            groups.setdefault(field.group, []).append(name)
    plain = [n for n in strategies if not meta.meta_by_field_name[n].group]

    @st.composite
    def build(draw):
        kwargs = {}
        for name in plain:
            if draw(st.booleans()):
                kwargs[name] = draw(strategies[name])
        for names in groups.values():
            chosen = draw(st.sampled_from([None, *names]))
            if chosen is not None:
                kwargs[chosen] = draw(strategies[chosen])
        return cls(**kwargs)
    return build()


def read_every_field(msg) -> None:
    """What code reading a message does to it in b5: defaults get stored, oneofs' too."""
    for name in msg._betterproto.meta_by_field_name:
        value = getattr(msg, name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, betterproto.Message):
                read_every_field(item)


PROPERTY = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.parametrize("cls", REQUIRED + OTHERS, ids=lambda c: c.__name__)
@PROPERTY
@given(data=st.data())
def test_equal_messages_give_equal_bytes_and_decode_to_equal_messages(cls, data):
    msg = data.draw(messages(cls))
    fresh = codec.serialize(msg)  # before anything read the fields
    expected = bytes(msg)  # betterproto; this stores every unset field's default
    assert fresh == expected
    assert codec.serialize(msg) == expected  # after reading: unselected oneof fields were stored
    read_every_field(msg)
    assert codec.serialize(msg) == expected

    decoded = codec.deserializer(cls)(expected)
    reference = cls().parse(expected)
    assert_same_types(decoded, reference)
    assert decoded == reference == msg
    assert codec.serialize(decoded) == bytes(reference) == expected  # and back again


def assert_same_types(decoded, reference) -> None:
    """Every message (and time) in ``decoded`` is of the SDK's class, as in betterproto's decoding
    (enum values are the enum's members, equal to the ints b5 gives)."""
    if not isinstance(reference, (betterproto.Message, dt.datetime, dt.timedelta)):
        return
    assert type(decoded) is type(reference)
    if not isinstance(reference, betterproto.Message):
        return
    for name in reference._betterproto.meta_by_field_name:
        mine, theirs = decoded.__dict__[name], reference.__dict__[name]
        if theirs is betterproto.PLACEHOLDER:
            assert mine is betterproto.PLACEHOLDER or mine == getattr(reference, name), name
            continue
        if isinstance(theirs, list):
            assert len(mine) == len(theirs)
            for a, b in zip(mine, theirs):
                assert_same_types(a, b)
        else:
            assert_same_types(mine, theirs)


class _FileInfoNanos(pfs.FileInfo):
    """A FileInfo whose `committed` is given as seconds and nanoseconds (as Go's pachd sends
    them), to make wire bytes with times finer than Python's microseconds."""


_FileInfoNanos.__module__ = pfs.FileInfo.__module__
_nanos_meta = betterproto.ProtoClassMetadata(_FileInfoNanos)
_nanos_meta.cls_by_field["committed"] = Timestamp
_FileInfoNanos._betterproto_meta = _nanos_meta


@PROPERTY
@given(info=messages(pfs.FileInfo), seconds=st.integers(0, 2**33), nanos=st.integers(0, 999_999_999))
def test_times_with_nanoseconds_decode_as_betterproto_decodes_them(info, seconds, nanos):
    wire = bytes(info) + bytes(_FileInfoNanos(committed=Timestamp(seconds=seconds, nanos=nanos)))
    decoded = codec.deserializer(pfs.FileInfo)(wire)
    reference = pfs.FileInfo().parse(wire)
    assert decoded == reference
    assert decoded.committed == reference.committed and decoded.committed.tzinfo == reference.committed.tzinfo


@pytest.mark.parametrize("msg", [
    pfs.ListRepoRequest(type="user", projects=[pfs.Project(name="p"), pfs.Project()]),
    pfs.RepoInfo(auth_info=pfs.AuthInfo(roles=["repoReader", ""])),
], ids=["empty message", "empty string"])
def test_an_empty_item_of_a_repeated_field_is_sent_as_what_it_means(msg):
    """The one place the bytes differ on purpose: betterproto b5 encodes an empty item of a
    repeated field (not packed) as field 1 (b"\\n\\x00", whatever the field's number), which
    decodes to another message; the codec sends the field's own number."""
    assert type(msg)().parse(codec.serialize(msg)) == msg
    assert type(msg)().parse(bytes(msg)) != msg


def test_decoded_messages_do_not_share_the_sdk_defaults():
    """The SDK's Repo() fills in a default project; each decoded Repo without one on the wire
    (a Go pachd may send only the name) gets its own."""
    name_only = bytes(pfs.Project(name="a"))  # Project and Repo both carry their name as field 1
    decode = codec.deserializer(pfs.Repo)
    a, b = decode(name_only), decode(name_only)
    assert a == pfs.Repo().parse(name_only) == pfs.Repo(name="a")
    assert a.project.name == "default" and a.project is not b.project
    a.project.name = "changed"
    assert decode(name_only).project.name == "default" and pfs.Repo().project.name == "default"


def test_what_the_codec_refuses_betterproto_decodes():
    """An enum value this SDK does not know (a newer pachd) decodes as betterproto decodes it."""
    wire = bytes(pfs.FileInfo(file_type=77, size_bytes=5))
    decoded = codec.deserializer(pfs.FileInfo)(wire)
    assert decoded == pfs.FileInfo().parse(wire)
    assert decoded.file_type == 77 and decoded.size_bytes == 5


@PROPERTY
@given(infos=st.lists(messages(pfs.FileInfo), min_size=1, max_size=4), commit=messages(pfs.Commit).filter(betterproto.serialized_on_wire))
def test_a_listing_decoder_shares_equal_commits_and_times_and_decodes_the_same(infos, commit):
    """`deserializer(FileInfo, share=(Commit,))` (listings: every entry repeats its commit):
    the messages equal betterproto's; equal commits and times are one shared object."""
    decode = codec.deserializer(pfs.FileInfo, share=(pfs.Commit,))
    wires = [bytes(info) for info in infos]
    for wire in wires:
        decoded, reference = decode(wire), pfs.FileInfo().parse(wire)
        assert_same_types(decoded, reference)
        assert decoded == reference
    now = dt.datetime.now(UTC)
    same_commit = [bytes(pfs.FileInfo(file=pfs.File(commit=commit, path=f"/f{i}"), committed=now)) for i in range(2)]
    a, b = (decode(w) for w in same_commit)
    assert a.file.commit is b.file.commit and a.file.commit == commit
    assert a.committed is b.committed


@pytest.mark.parametrize("cls", [pfs.FileInfo, pfs.ModifyFileRequest, pfs.ListFileRequest, pfs.CommitInfo],
                         ids=lambda c: c.__name__)
@PROPERTY
@given(data=st.data())
def test_a_twin_with_shared_parts_encoded_once_gives_the_same_bytes(cls, data):
    """`twin_of` (the local server refills one per listing): its commits and times are held
    encoded; the bytes are betterproto's, also after fields are set on it."""
    msg = data.draw(messages(cls))
    twin = codec.twin_of(msg, share=(pfs.Commit,))
    assert codec.serialize(twin) == bytes(msg)
    if cls is pfs.FileInfo:
        twin.size_bytes = msg.size_bytes = data.draw(st.integers(0, 2**40))
        twin.hash = msg.hash = data.draw(st.binary(max_size=32))
        assert codec.serialize(twin) == bytes(msg)


@PROPERTY
@given(files=st.lists(st.tuples(st.text(max_size=40), st.one_of(BLOBS, st.binary(min_size=1, max_size=2048))),
                      min_size=1, max_size=6))
def test_the_modify_file_encoder_gives_betterprotos_bytes(files):
    """A rw commit's requests, encoded from refilled messages: the bytes of the SDK's own
    messages, for every path and content (empty, small, past the codec's bytes limit), in turn."""
    encoder = codec.ModifyFileEncoder()
    for path, raw in files:
        assert encoder.delete_file(path) == bytes(pfs.ModifyFileRequest(delete_file=pfs.DeleteFile(path=path)))
        assert encoder.add_file(path, raw) == bytes(pfs.ModifyFileRequest(add_file=pfs.AddFile(path=path, raw=raw)))
        decoded = pfs.ModifyFileRequest.FromString(encoder.add_file(path, raw))
        assert (decoded.add_file.path, decoded.add_file.raw) == (path, raw)


def test_encoded_requests_pass_through_the_serializer():
    encoded = codec.ModifyFileEncoder().delete_file("/a")
    method = "/" + pfs.ApiBase.__proto_path__ + "/ModifyFile"
    assert codec.serializer_for(method, betterproto.Message.SerializeToString)(encoded) is encoded


LISTED = ("file.path", "file_type", "size_bytes", "committed", "file.commit", "hash", "file.commit.repo.name")


@PROPERTY
@given(infos=st.lists(messages(pfs.FileInfo), min_size=1, max_size=4))
def test_a_field_reader_reads_what_the_decoded_message_holds(infos):
    """`field_reader` (the mount's listings) gives each field as reading it from betterproto's
    decoded message gives it, set or not, for every FileInfo, also repeated times and commits."""
    read = codec.field_reader(pfs.FileInfo, LISTED, share=(pfs.Commit,))
    for info in infos:
        data = bytes(info)
        reference = pfs.FileInfo.FromString(data)
        assert read(data) == tuple(functools.reduce(getattr, f.split("."), reference) for f in LISTED)


@PROPERTY
@given(diffs=st.lists(messages(pfs.DiffFileResponse), min_size=1, max_size=4))
def test_a_field_reader_of_diffs_reads_what_the_decoded_message_holds(diffs):
    """The upstream check's DiffFile answers (pfs.client.diff_files), either side set or not."""
    from pachtray.pfs.client import _DIFF_FIELDS

    read = codec.field_reader(pfs.DiffFileResponse, _DIFF_FIELDS, share=(pfs.Commit,))
    for diff in diffs:
        data = bytes(diff)
        reference = pfs.DiffFileResponse.FromString(data)
        assert read(data) == tuple(functools.reduce(getattr, f.split("."), reference) for f in _DIFF_FIELDS)
