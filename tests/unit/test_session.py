"""The engine's ``WorkerSession`` paired in memory with a worker modelled on the
iii SDK (tests/protocol_client.py): every frame one way is read by the other
side's parser, as h11's tests pair a client and a server connection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from api.protocol import (
    LOG_CLIP,
    AuthFailed,
    CallDelivery,
    CallResult,
    DropReason,
    InvocationResult,
    InvokeFunction,
    Outgoing,
    Ping,
    PongReply,
    Reattach,
    RegisterFunction,
    RegisterService,
    RegisterTrigger,
    RegisterTriggerType,
    RegistrationRejected,
    SessionClosed,
    TriggerForward,
    TriggerRefused,
    TriggerRegistrationResult,
    TriggerWithdraw,
    UnregisterFunction,
    UnregisterTrigger,
    UnregisterTriggerType,
    WorkerRegistered,
    clip,
)
from api.session import Event, FrameDropped, Telemetry, WorkerSession
from tests.protocol_client import (
    AuthRefused,
    Called,
    ClientEvent,
    Ponged,
    Rejected,
    Returned,
    TriggerAsked,
    TriggerFailed,
    TriggerWithdrawn,
    Welcomed,
    WorkerClient,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Pair:
    """An engine-side session and an SDK-like worker, connected in memory."""

    def __init__(self) -> None:
        self.server = WorkerSession("worker-1", "token-1")
        self.client = WorkerClient()
        self.welcome = self.client.receive(self.server.welcome())

    def to_server(self, frame: str | bytes) -> Event:
        events = self.server.receive(frame)
        assert len(events) == 1, events
        return events[0]

    def to_client(self, message: Outgoing) -> ClientEvent:
        return self.client.receive(self.server.send(message))


def wire(message: Outgoing) -> dict[str, Any]:
    decoded: dict[str, Any] = json.loads(WorkerSession("w", "t").send(message))
    return decoded


# -- connection ------------------------------------------------------------------


def test_welcome_carries_the_id_and_the_reattach_secret() -> None:
    pair = Pair()
    assert pair.welcome == Welcomed("worker-1", "token-1")
    assert wire(WorkerRegistered("w", "t")) == {
        "type": "workerregistered",
        "worker_id": "w",
        "reattach_token": "t",
    }


def test_reattach_needs_the_token_of_the_old_connection() -> None:
    old, new = Pair(), Pair()
    assert isinstance(old.welcome, Welcomed)
    event = new.to_server(new.client.reattach(old.welcome))
    assert event == Reattach(
        type="reattach", previous_worker_id="worker-1", reattach_token="token-1"
    )
    assert old.server.accepts_reattach(event.reattach_token)
    assert not old.server.accepts_reattach("token-2")
    assert not old.server.accepts_reattach(None)


def test_ping_is_answered_with_pong() -> None:
    pair = Pair()
    assert pair.to_server(pair.client.ping()) == Ping(type="ping")
    assert pair.to_client(PongReply()) == Ponged()


def test_a_closed_session_reads_nothing_and_sends_nothing() -> None:
    pair = Pair()
    pair.server.close()
    assert pair.server.closed
    assert pair.server.receive(pair.client.ping()) == []
    with pytest.raises(SessionClosed):
        pair.server.send(PongReply())


def test_auth_failure_frame() -> None:
    pair = Pair()
    assert pair.to_client(AuthFailed("authentication failed")) == AuthRefused(
        "authentication failed"
    )
    assert wire(AuthFailed("no")) == {
        "type": "error",
        "error": {"code": "AUTH_ERROR", "message": "no"},
    }


# -- registrations -----------------------------------------------------------------


def test_registration_messages() -> None:
    pair = Pair()
    client = pair.client
    fn = pair.to_server(
        client.register_function(
            "orders::create",
            description="Create an order",
            metadata={"team": "orders"},
            response_format={"type": "object"},
        )
    )
    assert isinstance(fn, RegisterFunction)
    assert (fn.id, fn.description, fn.metadata, fn.response_format) == (
        "orders::create",
        "Create an order",
        {"team": "orders"},
        {"type": "object"},
    )
    assert fn.invocation is None and fn.request_format is None
    assert pair.to_server(client.unregister_function("orders::create")) == (
        UnregisterFunction(type="unregisterfunction", id="orders::create")
    )
    kind = pair.to_server(client.register_trigger_type("webhook", "Webhook"))
    assert isinstance(kind, RegisterTriggerType)
    assert (kind.id, kind.description) == ("webhook", "Webhook")
    binding = pair.to_server(
        client.register_trigger("t-1", "webhook", "orders::create", {"path": "/o"})
    )
    assert isinstance(binding, RegisterTrigger)
    assert (binding.id, binding.trigger_type, binding.config) == (
        "t-1",
        "webhook",
        {"path": "/o"},
    )
    assert binding.metadata is None and binding.namespace is None
    no_config = pair.to_server(client.register_trigger("t-2", "cron", "f"))
    assert isinstance(no_config, RegisterTrigger) and no_config.config is None
    assert pair.to_server(client.unregister_trigger("t-1", "webhook")) == (
        UnregisterTrigger(type="unregistertrigger", id="t-1", trigger_type="webhook")
    )
    assert pair.to_server('{"type":"unregistertriggertype","id":"webhook"}') == (
        UnregisterTriggerType(type="unregistertriggertype", id="webhook")
    )
    service = pair.to_server('{"type":"registerservice","id":"todos","name":"todos"}')
    assert isinstance(service, RegisterService)


def test_worker_metadata_is_a_void_call_with_nulls_as_absent() -> None:
    pair = Pair()
    event = pair.to_server(pair.client.register_worker("w", isolation=None))
    assert isinstance(event, InvokeFunction)
    assert event.function_id == "engine::workers::register"
    assert event.invocation_id is None and event.action_type == "void"
    assert event.data["isolation"] is None and event.data["name"] == "w"


def test_node_fields_are_ignored() -> None:
    pair = Pair()
    event = pair.to_server(
        '{"type":"triggerregistrationresult","id":"t-1","message_type":'
        '"triggerregistrationresult","function_id":"f","trigger_type":"webhook"}'
    )
    assert event == TriggerRegistrationResult(
        type="triggerregistrationresult",
        id="t-1",
        trigger_type="webhook",
        function_id="f",
    )


def test_provider_is_handed_bindings() -> None:
    pair = Pair()
    assert pair.to_client(
        TriggerForward("t-1", "webhook", "f", {"path": "/x"}, {"m": 1})
    ) == TriggerAsked("t-1", "webhook", "f", {"path": "/x"}, {"m": 1})
    assert wire(TriggerForward("t-1", "webhook", "f")) == {
        "type": "registertrigger",
        "id": "t-1",
        "trigger_type": "webhook",
        "function_id": "f",
    }
    assert pair.to_client(TriggerWithdraw("t-1", "webhook", "f", {"path": "/x"})) == (
        TriggerWithdrawn("t-1", "webhook")
    )
    assert "config" not in wire(TriggerWithdraw("t-1", "webhook", "f"))


def test_refusals() -> None:
    pair = Pair()
    error = {"code": "trigger_type_not_found", "message": "Trigger type not found"}
    assert pair.to_client(TriggerRefused("t-1", "nope", "f", error)) == (
        TriggerFailed("t-1", error)
    )
    conflict = RegistrationRejected(
        "FUNCTION_NAMESPACE_CONFLICT", "default", "other", function_id="a::b"
    )
    assert pair.to_client(conflict) == Rejected("FUNCTION_NAMESPACE_CONFLICT", False)
    assert not pair.client.failed
    taken = RegistrationRejected(
        "WORKER_NAMESPACE_CONFLICT", "default", "other", worker_name="w"
    )
    assert wire(taken) == {
        "type": "registrationrejected",
        "code": "WORKER_NAMESPACE_CONFLICT",
        "namespace": "default",
        "owner_worker_id": "other",
        "worker_name": "w",
    }
    assert pair.to_client(taken) == Rejected("WORKER_NAMESPACE_CONFLICT", True)
    assert pair.client.failed


# -- invocations -----------------------------------------------------------------


def test_worker_calls_and_gets_its_result() -> None:
    pair = Pair()
    invocation_id, frame = pair.client.trigger(
        "state::get", {"scope": "s", "key": "k"}, metadata={"m": 1}
    )
    call = pair.to_server(frame)
    assert isinstance(call, InvokeFunction)
    assert (call.invocation_id, call.function_id, call.data, call.metadata) == (
        invocation_id,
        "state::get",
        {"scope": "s", "key": "k"},
        {"m": 1},
    )
    assert call.action is None and call.namespace is None
    assert invocation_id is not None
    assert pair.to_client(CallResult(invocation_id, "state::get", {"v": 1})) == (
        Returned(invocation_id, {"v": 1}, None)
    )
    assert pair.client.pending == {}


def test_enqueue_and_absent_data() -> None:
    pair = Pair()
    _, frame = pair.client.trigger(
        "jobs::run", action={"type": "enqueue", "queue": "q"}
    )
    call = pair.to_server(frame)
    assert isinstance(call, InvokeFunction)
    assert call.data is None and call.action == {"type": "enqueue", "queue": "q"}
    assert call.action_type == "enqueue"


def test_a_none_result_leaves_the_key_out() -> None:
    pair = Pair()
    frame = pair.server.send(CallResult("i-1", "state::get", None))
    assert json.loads(frame) == {
        "type": "invocationresult",
        "invocation_id": "i-1",
        "function_id": "state::get",
    }
    assert pair.client.receive(frame) == Returned("i-1", None, None)


@pytest.mark.parametrize("value", [0, 0.0, "", False, {}, []])
def test_a_falsy_result_keeps_the_key(value: Any) -> None:
    pair = Pair()
    sent = wire(CallResult("i-1", "f", value))
    assert "result" in sent and sent["result"] == value
    assert type(sent["result"]) is type(value)
    returned = pair.to_client(CallResult("i-1", "f", value))
    assert isinstance(returned, Returned) and returned.result == value


def test_an_error_result_has_no_result_key() -> None:
    error = {"code": "function_not_found", "message": "Function x not found"}
    assert wire(CallResult("i-1", "x", None, error)) == {
        "type": "invocationresult",
        "invocation_id": "i-1",
        "function_id": "x",
        "error": error,
    }


def test_engine_calls_the_worker_and_reads_its_answers() -> None:
    pair = Pair()
    called = pair.to_client(
        CallDelivery(
            "i-1", "orders::create", {"sku": "A"}, {"m": 1}, TRACEPARENT, "k=v"
        )
    )
    assert called == Called(
        "i-1", "orders::create", {"sku": "A"}, {"m": 1}, TRACEPARENT, "k=v"
    )
    assert isinstance(called, Called)
    result = pair.to_server(pair.client.result(called, {"ok": True}))
    assert result == InvocationResult(
        type="invocationresult",
        invocation_id="i-1",
        function_id="orders::create",
        result={"ok": True},
    )
    nothing = pair.to_server(pair.client.result(called, None))  # "result": null
    assert isinstance(nothing, InvocationResult)
    assert nothing.result is None and nothing.error is None
    failed = pair.to_server(pair.client.failure(called, "invocation_failed", "boom"))
    assert isinstance(failed, InvocationResult)
    assert failed.error == {"code": "invocation_failed", "message": "boom"}


def test_a_delivered_call_leaves_empty_optionals_out() -> None:
    assert wire(CallDelivery("i-1", "f", None)) == {
        "type": "invokefunction",
        "invocation_id": "i-1",
        "function_id": "f",
        "data": None,
    }


def test_non_ascii_is_sent_as_utf8() -> None:
    frame = WorkerSession("w", "t").send(CallResult("i", "f", "é🌍"))
    assert "é🌍".encode() in frame and b"\\u" not in frame


# -- what is not a message ---------------------------------------------------------


@pytest.mark.parametrize("kind", [b"OTLP", b"LOGS", b"MTRC"])
def test_telemetry_on_the_main_socket(kind: bytes) -> None:
    pair = Pair()
    frame = kind + b'{"resourceLogs":[]}'
    assert pair.to_server(frame) == Telemetry(frame)
    assert Telemetry(frame).kind == kind.decode()


def test_a_binary_frame_of_json_is_a_message() -> None:
    assert Pair().to_server(b'{"type":"ping"}') == Ping(type="ping")


DEEP = 10_000


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("", DropReason.MALFORMED_JSON),
        ("   ", DropReason.MALFORMED_JSON),
        ("{not json", DropReason.MALFORMED_JSON),
        ('LOGS{"resourceLogs":[]}', DropReason.MALFORMED_JSON),  # text: not telemetry
        (b"\xff\xfe", DropReason.MALFORMED_JSON),
        ("[1, 2]", DropReason.NOT_AN_OBJECT),
        ('"just a string"', DropReason.NOT_AN_OBJECT),
        ("null", DropReason.NOT_AN_OBJECT),
        ('{"no_type": 1}', DropReason.NO_TYPE),
        ('{"type": 42}', DropReason.NO_TYPE),
        ('{"type": "frobnicate"}', DropReason.UNKNOWN_TYPE),
        ('{"type": "observetrace", "id": "x"}', DropReason.UNKNOWN_TYPE),
        ('{"type": "invokefunction"}', DropReason.INVALID),
        ('{"type": "registerfunction", "id": 7}', DropReason.INVALID),
        ('{"type": "registerfunction", "id": ""}', DropReason.INVALID),
        ('{"type": "registertrigger", "id": "t"}', DropReason.INVALID),
        ("[" * DEEP + "]" * DEEP, DropReason.TOO_DEEP),
        ('{"a":' * DEEP + "1" + "}" * DEEP, DropReason.TOO_DEEP),
        (
            '{"type":"invokefunction","function_id":"f","data":'
            + "[" * DEEP
            + "]" * DEEP
            + "}",
            DropReason.TOO_DEEP,
        ),
    ],
)
def test_dropped_frames_say_why_and_the_session_goes_on(
    frame: str | bytes, reason: DropReason
) -> None:
    pair = Pair()
    dropped = pair.to_server(frame)
    assert isinstance(dropped, FrameDropped) and dropped.reason is reason
    assert str(dropped).startswith(str(reason))
    assert pair.to_server(pair.client.ping()) == Ping(type="ping")


def test_huge_strings_are_cut_for_the_log() -> None:
    huge = "x" * (4 * 1024 * 1024)
    pair = Pair()
    for frame in (
        json.dumps({"type": huge}),
        json.dumps({"type": "registerfunction", huge: 1}),  # no id: invalid
        json.dumps({"type": "registertrigger", "id": "t", "trigger_type": huge}),
        "{" + huge,
    ):
        dropped = pair.to_server(frame)
        assert isinstance(dropped, FrameDropped)
        assert len(str(dropped)) < LOG_CLIP + 100, dropped.reason
    unknown = pair.to_server(json.dumps({"type": huge}))
    assert isinstance(unknown, FrameDropped)
    assert (
        unknown.detail.startswith("'xxx") and f"({len(huge)} chars)" in unknown.detail
    )


def test_clip() -> None:
    assert clip("short") == "short"
    assert clip("x" * LOG_CLIP) == "x" * LOG_CLIP
    assert clip("x" * (LOG_CLIP + 1)) == "x" * LOG_CLIP + f"… ({LOG_CLIP + 1} chars)"
