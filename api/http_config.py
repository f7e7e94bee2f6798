"""The HTTP module's settings (module ``iii-http``, alias ``http``): listener,
timeouts, CORS, global middleware and body limits. Validated once at start;
the request path only reads attributes.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

# iii's HTTP worker takes request bodies up to 16 MiB (the SDK's upload tests
# send ~8 MiB of multipart); a larger one is refused with 413.
MAX_BODY_BYTES = 16 * 1024 * 1024


class CorsConfig(BaseModel):
    """Empty lists, or ``*`` among the origins, allow any, as iii."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    allowed_origins: list[str] = []
    allowed_methods: list[str] = []


class MiddlewareConfig(BaseModel):
    """A global middleware function; only the ``preHandler`` phase runs."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    function_id: str
    phase: str = "preHandler"
    priority: int = 0


class HttpConfig(BaseModel):
    """Module ``iii-http`` (alias ``http``). Validated once at start; the
    request path only reads attributes."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    host: str = "0.0.0.0"
    port: int = Field(3111, ge=0, le=65535)
    default_timeout: int = Field(30_000, ge=1)  # ms
    concurrency_request_limit: int = Field(1024, ge=1)
    cors: CorsConfig | None = None  # absent: fully permissive
    # Kept sorted by priority (stable), so requests never sort.
    middleware: list[MiddlewareConfig] = []
    body_fields_at_top_level: bool = True  # iiilog extension (§3.10)
    plain_results: bool = True  # iiilog extension (§3.10)
    max_body_bytes: int = Field(MAX_BODY_BYTES, ge=1)  # larger: 413

    @field_validator("middleware")
    @classmethod
    def _by_priority(cls, value: list[MiddlewareConfig]) -> list[MiddlewareConfig]:
        return sorted(value, key=lambda m: m.priority)
