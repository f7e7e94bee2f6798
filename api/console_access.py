"""Who may read the console, its JSON API and ``/metrics``. Pure: no I/O.

A request is *local* when it comes from a loopback address, names a loopback
host (so a web page whose DNS name was rebound to 127.0.0.1 is not local), and
carries no proxy header (a reverse proxy on this machine would make every
client look local). Local requests are always served. Any other request needs
the configured token (``Authorization: Bearer``, the ``iiilog_console``
cookie, or ``?token=``), unless ``allow_remote`` opens the console to all.
Requests that change something must also come from the console's own origin.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

COOKIE = "iiilog_console"
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    status: int = 200  # when refused: 401 (a token would do) or 403
    reason: str = ""
    via_token: bool = False


def is_loopback_address(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def host_name(host: str) -> str:
    """The name part of a Host header: ``[::1]:80`` -> ``::1``, ``a:1`` -> ``a``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return True  # no Host header: not a browser, so no rebound DNS name
    name = host_name(host)
    return name in ("localhost", "localhost.") or (
        name.endswith(".localhost") or is_loopback_address(name)
    )


def presented_token(
    headers: Mapping[str, str], cookies: Mapping[str, str], query: Mapping[str, str]
) -> str | None:
    """The token a request carries, from the first place that has one.
    ``headers`` are keyed in lower case."""
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return cookies.get(COOKIE) or query.get("token") or None


def decide(
    *,
    remote: str | None,
    headers: Mapping[str, str],
    token: str | None,
    presented: str | None,
    allow_remote: bool,
) -> Verdict:
    """May this request be served? ``headers`` are keyed in lower case."""
    if (
        presented is not None
        and token is not None
        and hmac.compare_digest(presented.encode(), token.encode())
    ):
        return Verdict(True, via_token=True)
    local = (
        is_loopback_address(remote)
        and is_loopback_host(headers.get("host"))
        and not any(name in headers for name in PROXY_HEADERS)
    )
    if local or allow_remote:
        return Verdict(True)
    if token is None:
        return Verdict(
            False,
            403,
            "the console is served to loopback requests only; configure a"
            " token (module iiilog-console) to reach it from elsewhere",
        )
    return Verdict(False, 401, "a valid console token is required")


def same_origin(origin: str | None, host: str | None) -> bool:
    """A state-changing request's ``Origin`` names the host it was sent to
    (browsers always send it on POST; tools that send none are not pages)."""
    if origin is None:
        return True
    if host is None:
        return False
    return urlsplit(origin).netloc.lower() == host.strip().lower()
