"""One function for tests/tests/binary_media.rs: binary media types on a REST API (payload 1.0).

The case is the last segment of the path:
- `echo` answers the request's body as it reached the function, with the same
  `isBase64Encoded`, the request's `Content-Type`, and `X-Event-Base64` saying what the event's
  flag was: an upload comes back byte for byte when it went in and out as base64;
- `image` answers 10,240 bytes holding every byte value, base64-encoded, as `image/png`;
- `image-string-flag` the same with `isBase64Encoded` as the string "true";
- anything else answers the event it got as a JSON body.
"""

import base64
import json

IMAGE = bytes(range(256)) * 40


def handler(event, context):
    case = (event.get("path") or "").rstrip("/").rsplit("/", 1)[-1]
    if case == "echo":
        headers = event.get("headers") or {}
        return {
            "statusCode": 200,
            "headers": {
                "Content-Type": headers.get("content-type", "application/octet-stream"),
                "X-Event-Base64": json.dumps(event["isBase64Encoded"]),
            },
            "body": event.get("body") or "",
            "isBase64Encoded": event["isBase64Encoded"],
        }
    if case in ("image", "image-string-flag"):
        return {
            "statusCode": 200,
            "headers": {"Content-Type": "image/png"},
            "body": base64.b64encode(IMAGE).decode(),
            "isBase64Encoded": True if case == "image" else "true",
        }
    return {"statusCode": 200, "body": json.dumps(event)}
