"""One function for tests/tests/lambda_results.rs: it answers each request with the proxy result
its path names, so one Lambda emulator serves every case of "Lambda proxy results"
(docs/concepts.md).

The case is the first segment of the greedy path parameter (`/dev/<case>/...` on a route
`ANY /{proxy+}`), in payload 1.0 and 2.0 alike. `echo` answers 200 with the event it got as a
JSON body; anything else not listed is a 404 result.
"""

import json

RESULTS = {
    # Rule 1: no content type set; and a content type set to null.
    "no-content-type": {"statusCode": 200, "body": '{"a":1}'},
    "content-type-null": {"statusCode": 200, "headers": {"Content-Type": None}, "body": "x"},
    # Rule 2: statusCode as a string.
    "status-string": {"statusCode": "201", "body": "created"},
    "status-word": {"statusCode": "Created", "body": "created"},
    # Rule 3: no statusCode.
    "no-status": {"headers": {"X-Only": "headers"}, "body": "no status"},
    "no-status-object": {"message": "no status"},
    # Rule 4: a key the format does not have.
    "unknown-key": {"statusCode": 201, "statusDescription": "201 Created", "body": "extra"},
    # Rule 5: one name in headers and multiValueHeaders.
    "both-headers": {
        "statusCode": 200,
        "headers": {"X-Both": "single", "X-Single": "s"},
        "multiValueHeaders": {"x-both": ["m1", "m2"]},
        "body": "both",
    },
    # Rule 8: null and string fields.
    "body-null": {"statusCode": 200, "body": None},
    "body-missing": {"statusCode": 200},
    "base64-string": {"statusCode": 200, "body": "aGk=", "isBase64Encoded": "true"},
    "base64-null": {"statusCode": 200, "body": "aGk=", "isBase64Encoded": None},
    "header-null": {"statusCode": 200, "headers": {"X-Null": None, "X-Kept": "1"}, "body": "h"},
}


def case(event):
    proxy = (event.get("pathParameters") or {}).get("proxy") or ""
    return proxy.split("/", 1)[0]


def handler(event, context):
    name = case(event)
    if name == "echo":
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": json.dumps(event),
        }
    if name in RESULTS:
        return RESULTS[name]
    return {"statusCode": 404, "body": "no case " + name}
