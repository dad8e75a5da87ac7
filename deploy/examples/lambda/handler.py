"""The "hello" API of Amazon API Gateway's hands-on tutorials, as one Lambda function.

Routes (the path without the stage):
  GET /        -> {"message": "Hello from Lambda!"}
  GET /states  -> a JSON list of a few US states
  anything else -> 200 with {"echo": <the event as received>}, so tests can check every
                   field of the proxy event Tollgate sent.

Works with both proxy event formats: 1.0 (REST API: `path`, `httpMethod`) and 2.0 (HTTP API:
`rawPath`, `requestContext.http.method`, where rawPath still carries the stage).

`fail` is a second handler that always raises, to see what a function error looks like
(run the emulator with `handler.fail` instead of `handler.handler`).

`authorizer` is a TOKEN authorizer, after Amazon's blueprint: the token `allow` gets a policy
allowing the method ARN, `deny` one denying it, `unauthorized` raises "Unauthorized" (401),
anything else raises another error (500).
"""

import json

STATES = [
    {"code": "CA", "name": "California"},
    {"code": "NY", "name": "New York"},
    {"code": "TX", "name": "Texas"},
    {"code": "WA", "name": "Washington"},
]


def route(event):
    """(method, path without the stage) of a 1.0 or 2.0 proxy event."""
    if event.get("version") == "2.0":
        context = event.get("requestContext") or {}
        method = (context.get("http") or {}).get("method", "")
        path = event.get("rawPath") or "/"
        stage = context.get("stage")
        if stage and stage != "$default":
            segments = path.split("/", 2)  # "", first segment, rest
            if len(segments) > 1 and segments[1] == stage:
                path = "/" + (segments[2] if len(segments) > 2 else "")
        return method, path
    return event.get("httpMethod", ""), event.get("path") or "/"


def respond(body, status=200):
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def handler(event, context):
    method, path = route(event)
    if method == "GET" and path == "/":
        return respond({"message": "Hello from Lambda!"})
    if method == "GET" and path == "/states":
        return respond(STATES)
    return respond({"echo": event})


def fail(event, context):
    raise RuntimeError("this function always fails")


def authorizer(event, context):
    token = event.get("authorizationToken", "")
    if token == "unauthorized":
        raise Exception("Unauthorized")
    if token not in ("allow", "deny"):
        raise ValueError("invalid token")
    return {
        "principalId": "user-" + token,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{
                "Action": "execute-api:Invoke",
                "Effect": "Allow" if token == "allow" else "Deny",
                "Resource": event["methodArn"],
            }],
        },
        "context": {"tier": "gold", "credits": 42, "admin": False},
    }
