"""Frame parsing and encoding (sans-IO): typed messages out, ``FrameError``
with its reason for junk, outgoing models as compact UTF-8 JSON."""

from __future__ import annotations

import uuid

import pytest

from api.protocol import (
    CallResult,
    DropReason,
    FrameError,
    InvokeFunction,
    ProtocolError,
    RegisterTrigger,
    encode,
    parse_frame,
    text_frame,
)
from engine.ids import random_bytes, random_uuid


def test_invoke_with_nulls_and_extra_fields() -> None:
    msg = parse_frame(
        '{"type":"invokefunction","function_id":"a::b","data":null,'
        '"invocation_id":null,"namespace":null,"extra":1}'
    )
    assert isinstance(msg, InvokeFunction)
    assert msg.data is None and msg.invocation_id is None and msg.action_type is None


def test_trigger_without_config_and_node_message_type() -> None:
    msg = parse_frame(
        b'{"type":"registertrigger","id":"t","trigger_type":"http",'
        b'"function_id":"f","message_type":"registertrigger"}'
    )
    assert isinstance(msg, RegisterTrigger) and msg.config is None


def test_unknown_type_is_dropped_with_its_name() -> None:
    with pytest.raises(FrameError) as e:
        parse_frame('{"type":"observetrace","id":"x"}')
    assert e.value.reason is DropReason.UNKNOWN_TYPE
    assert e.value.detail == "'observetrace'"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("", DropReason.MALFORMED_JSON),
        ("  ", DropReason.MALFORMED_JSON),
        ("{", DropReason.MALFORMED_JSON),
        ("[]", DropReason.NOT_AN_OBJECT),
        ("1", DropReason.NOT_AN_OBJECT),
        ('{"x":1}', DropReason.NO_TYPE),
        ('{"type":null}', DropReason.NO_TYPE),
        ('{"type":"invokefunction"}', DropReason.INVALID),
        ('{"type":"registerfunction","id":""}', DropReason.INVALID),
        ('{"type":"invocationresult","invocation_id":5}', DropReason.INVALID),
        ("[" * 10_000 + "]" * 10_000, DropReason.TOO_DEEP),
    ],
)
def test_junk(frame: str, reason: DropReason) -> None:
    with pytest.raises(ProtocolError) as e:
        parse_frame(frame)
    assert isinstance(e.value, FrameError) and e.value.reason is reason


def test_nan_is_decoded_leniently() -> None:
    msg = parse_frame('{"type":"invocationresult","invocation_id":"i","result":NaN}')
    assert msg.result is None  # type: ignore[union-attr]


def test_encode_is_compact_utf8() -> None:
    frame = encode(CallResult("i", "f", {"a": "é🌍", "b": [1, 2]}))
    assert frame.decode() == (
        '{"type":"invocationresult","invocation_id":"i","function_id":"f",'
        '"result":{"a":"é🌍","b":[1,2]}}'
    )


@pytest.mark.parametrize(
    ("size", "header"),
    [
        (0, b"\x81\x00"),
        (125, b"\x81\x7d"),
        (126, b"\x81\x7e\x00\x7e"),
        (65535, b"\x81\x7e\xff\xff"),
        (65536, b"\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00"),
    ],
)
def test_text_frame_length_forms(size: int, header: bytes) -> None:
    """RFC 6455 §5.2: FIN + text opcode, no mask, the shortest length form."""
    payload = b"x" * size
    frame = text_frame(payload)
    assert frame == header + payload


def test_pooled_random_ids_are_uuid4_and_distinct() -> None:
    ids = [random_uuid() for _ in range(2000)]  # spans several pool refills
    assert len(set(ids)) == len(ids)
    for text in ids[:50]:
        assert uuid.UUID(text).version == 4
    assert len(random_bytes(10_000)) == 10_000  # larger than a block
