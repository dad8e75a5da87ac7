"""A function behind a non-proxy (custom) Lambda integration, for tests/tests/mapping_templates.rs:
it gets what the route's request template made, not the proxy event.

`{"petId": "missing"}` raises, so its `errorMessage` selects an integration response; anything
else is answered with what was received.
"""


def handler(event, context):
    if isinstance(event, dict) and event.get("petId") == "missing":
        raise LookupError("NotFound: no pet " + event["petId"])
    return {"received": event, "kind": type(event).__name__}
