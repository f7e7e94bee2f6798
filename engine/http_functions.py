"""HTTP-invoked functions (module ``iii-http-functions``), as iii implements them.

A worker registers a function with an ``invocation`` (url, method, timeout,
headers, auth); from then on the *engine* calls that URL whenever the function
is invoked, and the worker never sees the call. URLs are checked against the
module's security settings at registration and again on every call.
"""

from __future__ import annotations

import asyncio
import base64
import fnmatch
import hashlib
import hmac
import ipaddress
import logging
import os
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict

from eventlog.codec import dumps_bytes, loads

from .core import CallContext, Engine, FunctionEntry
from .errors import EngineError
from .peer import Peer

log = logging.getLogger("iiilog.http-functions")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


class HttpFunctionsSecurity(BaseModel):
    """Which URLs the engine may call for a function: host globs, private
    address targets, plain http."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    url_allowlist: list[str] = ["*"]  # matched against the URL's host only
    block_private_ips: bool = True
    require_https: bool = True


class HttpFunctionsConfig(BaseModel):
    """Module ``iii-http-functions`` (opt-in)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    security: HttpFunctionsSecurity = HttpFunctionsSecurity()


class InvalidInvocation(ValueError):
    """The invocation config or its URL is not acceptable."""


async def _private(host: str) -> str | None:
    """The first private, loopback, link-local, unspecified or reserved
    address ``host`` is or resolves to; None when it has none. Resolved by the
    loop's resolver (a thread), so a slow DNS server holds up only this call."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, None)
    except OSError as e:
        raise InvalidInvocation(f"cannot resolve {host}: {e}") from e
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if (
            address.is_private
            or address.is_loopback
            or address.is_link_local
            or address.is_unspecified
            or address.is_reserved
        ):
            return str(address)
    return None


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def check_url(url: str, config: HttpFunctionsConfig) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInvocation(f"invalid url {url!r}")
    security = config.security
    if security.require_https and parts.scheme != "https":
        raise InvalidInvocation(f"url {url!r} must use https (require_https)")
    host = parts.hostname
    if not any(fnmatch.fnmatch(host, pattern) for pattern in security.url_allowlist):
        raise InvalidInvocation(f"host {host!r} is not in url_allowlist")
    private = await _private(host) if security.block_private_ips else None
    if private is not None:
        where = "is" if _is_literal(host) else f"resolves to {private},"
        raise InvalidInvocation(
            f"host {host!r} {where} a private address (block_private_ips)"
        )


def _auth_headers(auth: Any, timestamp: str, body: bytes) -> dict[str, str]:
    if auth is None:
        return {}
    if not isinstance(auth, dict):
        raise InvalidInvocation("auth must be an object")

    def env(name: Any) -> str:
        value = os.environ.get(str(name)) if isinstance(name, str) else None
        if value is None:
            raise InvalidInvocation(f"environment variable {name!r} is not set")
        return value

    kind = auth.get("type")
    if kind == "bearer":
        return {"Authorization": f"Bearer {env(auth.get('token_key'))}"}
    if kind == "api_key":
        header = auth.get("header")
        if not isinstance(header, str):
            raise InvalidInvocation("api_key auth needs a header")
        return {header: env(auth.get("value_key"))}
    if kind == "hmac":
        secret = env(auth.get("secret_key")).encode()
        message = f"{timestamp}:{base64.b64encode(body).decode()}".encode()
        digest = hmac.new(secret, message, hashlib.sha256).hexdigest()
        return {"x-iii-Signature": f"sha256={digest}"}
    raise InvalidInvocation(f"unknown auth type {kind!r}")


class HttpFunctions:
    def __init__(self, engine: Engine, config: HttpFunctionsConfig) -> None:
        self.engine = engine
        self.config = config
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def register(
        self,
        peer: Peer,
        function_id: str,
        invocation: dict[str, Any],
        description: str | None,
        metadata: Any,
    ) -> bool:
        """Validate and register; False (and a log line) when refused."""
        try:
            url = invocation.get("url")
            if not isinstance(url, str):
                raise InvalidInvocation("invocation.url is required")
            method = str(invocation.get("method") or "POST").upper()
            if method not in METHODS:
                raise InvalidInvocation(f"unsupported method {method}")
            await check_url(url, self.config)
            _auth_headers(invocation.get("auth"), "0", b"")  # env vars present?
        except InvalidInvocation as e:
            log.error("HTTP-invoked function %s not registered: %s", function_id, e)
            return False
        spec = {**invocation, "url": url, "method": method}

        async def handler(data: Any, ctx: CallContext) -> Any:
            return await self._call(function_id, spec, data, ctx)

        self.engine.register_function(
            peer,
            FunctionEntry(
                function_id, handler=handler, description=description, metadata=metadata
            ),
        )
        return True

    async def _call(
        self, function_id: str, spec: dict[str, Any], data: Any, ctx: CallContext
    ) -> Any:
        try:
            await check_url(spec["url"], self.config)
        except InvalidInvocation as e:
            raise EngineError("url_validation_failed", str(e)) from e
        if isinstance(data, dict) and ctx.caller is not None:
            data = {**data, "_caller_worker_id": ctx.caller.id}
        body = dumps_bytes(data)
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "x-iii-Function-Path": function_id,
            "x-iii-Invocation-ID": str(uuid.uuid4()),
            "x-iii-Timestamp": timestamp,
        }
        extra = spec.get("headers")
        if isinstance(extra, dict):
            headers.update({str(k): str(v) for k, v in extra.items()})
        try:
            headers.update(_auth_headers(spec.get("auth"), timestamp, body))
        except InvalidInvocation as e:
            raise EngineError("url_validation_failed", str(e)) from e
        timeout = aiohttp.ClientTimeout(
            total=int(spec.get("timeout_ms") or 30_000) / 1000
        )
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(
                spec["method"],
                spec["url"],
                data=body,
                headers=headers,
                timeout=timeout,
                allow_redirects=False,
            ) as response:
                raw = await response.read()
                status, reason = response.status, response.reason or ""
        except (aiohttp.ClientError, TimeoutError) as e:
            raise EngineError("http_request_failed", str(e) or type(e).__name__) from e
        return _result(status, reason, raw)


def _result(status: int, reason: str, raw: bytes) -> Any:
    """iii's mapping of an HTTP answer to a function result. Pure."""
    text = raw.strip()
    if 200 <= status < 300:
        if not text:
            return None
        try:
            return loads(text)
        except ValueError as e:
            raise EngineError(
                "invalid_response", f"HTTP {status}: the body is not JSON"
            ) from e
    if status < 400:
        try:
            return loads(text) if text else None
        except ValueError:
            return None
    try:
        doc = loads(text) if text else None
    except ValueError:
        doc = None
    error = doc.get("error") if isinstance(doc, dict) else None
    if isinstance(error, dict) and "code" in error:
        raise EngineError(str(error["code"]), str(error.get("message", "")))
    raise EngineError("http_error", f"HTTP {status} {reason}".strip())
