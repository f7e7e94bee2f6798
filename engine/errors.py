"""Errors the engine returns to callers, in iii's shape ``{code, message}``.

EngineError                 carries ``code`` and ``message`` to the caller
├── FunctionNotFound        ``function_not_found``
├── DeserializationError    ``deserialization_error`` (bad input shape)
└── TriggerRegistrationFailed  ``trigger_registration_failed``
"""

from __future__ import annotations

from typing import Any


class EngineError(Exception):
    def __init__(self, code: str, message: str, *, extra: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.extra = extra

    @classmethod
    def from_wire(cls, error: Any) -> EngineError:
        """The ``error`` of an ``invocationresult`` (a worker's, or another
        node's) as the error the caller gets."""
        if not isinstance(error, dict):
            return cls("UNKNOWN", str(error))
        stacktrace = error.get("stacktrace")
        return cls(
            str(error.get("code") or "invocation_failed"),
            str(error.get("message") or ""),
            extra={"stacktrace": stacktrace} if stacktrace else None,
        )

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if isinstance(self.extra, dict):
            body.update(self.extra)
        return body


class FunctionNotFound(EngineError):
    def __init__(
        self,
        function_id: str,
        *,
        namespace: str,
        elsewhere: list[str] | None = None,
    ) -> None:
        message = f"Function {function_id} not found in namespace {namespace}."
        if elsewhere:
            message += f" It is registered in namespace(s): {', '.join(elsewhere)}."
        super().__init__("function_not_found", message)


class DeserializationError(EngineError):
    def __init__(self, function_id: str, reason: str) -> None:
        super().__init__(
            "deserialization_error",
            f"Failed to deserialize input for {function_id}: {reason}",
        )


class TriggerRegistrationFailed(EngineError):
    def __init__(self, message: str) -> None:
        super().__init__("trigger_registration_failed", message)


def trigger_condition(config: dict[str, Any]) -> str | None:
    """A trigger config's ``condition_function_id``; anything but a string
    (or nothing) refuses the registration."""
    condition = config.get("condition_function_id")
    if condition is not None and not isinstance(condition, str):
        raise TriggerRegistrationFailed(
            "Failed to parse trigger config: `condition_function_id` must be a string"
        )
    return condition
