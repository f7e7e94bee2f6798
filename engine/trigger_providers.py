"""Who provides a trigger type: the words iiilog logs when a trigger is bound
to a type nobody provides yet (it is kept pending, as in iii, and delivered
once a provider arrives). Pure: names only, no engine state.
"""

from __future__ import annotations

# iii's documented trigger types -> the module (iiilog) / worker (iii) that
# provides them.
PROVIDERS = {
    "http": "the iii-http module (worker `http`)",
    "cron": "the iii-cron module (worker `cron`)",
    "state": "the iii-state module (worker `state`)",
    "stream": "the iii-stream module (worker `stream`)",
    "stream:join": "the iii-stream module (worker `stream`)",
    "stream:leave": "the iii-stream module (worker `stream`)",
    "subscribe": "the iii-pubsub module (worker `pubsub`)",
    "durable:subscriber": "the iii-queue module (worker `queue`)",
    "queue": "the iii-queue module (worker `queue`)",
    "configuration": "the configuration registry (always on)",
    "log": "the iii-observability module (always on)",
    "trace": "the iii-observability module (always on)",
}


def provided_by(trigger_type: str) -> str:
    known = PROVIDERS.get(trigger_type)
    if known is not None:
        return f"{known}; add it to config.yaml"
    return "a worker that registers this trigger type (registertriggertype)"


def pending_message(trigger_type: str, function_id: str, trigger_id: str) -> str:
    return (
        f"trigger {trigger_id} ({trigger_type} -> {function_id}) is pending: no"
        f" provider for type '{trigger_type}' yet; it is provided by"
        f" {provided_by(trigger_type)}"
    )
