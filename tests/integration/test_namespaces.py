"""Namespaces (protocol §7) with the real SDK: a worker's functions live in its
namespace, calls resolve in the namespace they name, engine built-ins are
visible from every namespace, and a miss says where the id does exist."""

from __future__ import annotations

from typing import Any

import pytest
from iii import InitOptions, InvocationError, register_worker

from tests.harness import EngineProcess, call, wait_until


def worker_in(engine: EngineProcess, name: str, namespace: str) -> Any:
    return register_worker(
        engine.worker_url,
        InitOptions(
            worker_name=name,
            namespace=namespace,
            otel={"enabled": False},
            enable_metrics_reporting=False,
        ),
    )


def test_functions_resolve_in_their_namespace(
    engine: EngineProcess, client: Any
) -> None:
    billing = worker_in(engine, "billing-svc", "billing")
    shipping = worker_in(engine, "shipping-svc", "shipping")
    try:
        billing.register_function("svc::quote", lambda d: {"from": "billing"})
        shipping.register_function("svc::quote", lambda d: {"from": "shipping"})

        def listed() -> set[tuple[str, str]]:
            functions = call(client, "engine::functions::list", {})["functions"]
            return {(f["function_id"], f["namespace"]) for f in functions}

        wait_until(
            lambda: {("svc::quote", "billing"), ("svc::quote", "shipping")} <= listed()
        )
        for ns in ("billing", "shipping"):
            assert client.trigger(
                {"function_id": "svc::quote", "payload": {}, "namespace": ns}
            ) == {"from": ns}
        with pytest.raises(InvocationError) as err:
            call(client, "svc::quote", {})
        assert err.value.code == "function_not_found"
        assert str(err.value).endswith(
            "not found in namespace default. It is registered in namespace(s):"
            " billing, shipping."
        )
        # Engine built-ins answer from any namespace (the SDK sends its own).
        assert (
            call(billing, "state::set", {"scope": "ns", "key": "k", "value": 1})[
                "new_value"
            ]
            == 1
        )
        assert call(billing, "svc::quote", {}) == {"from": "billing"}
    finally:
        billing.shutdown()
        shipping.shutdown()
