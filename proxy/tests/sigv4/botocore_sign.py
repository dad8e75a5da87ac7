"""Captures requests exactly as botocore's `apigatewaymanagementapi` client sends them, signed
with SigV4 at a fixed time, for the unit tests in proxy/src/sigv4.rs.

Run (botocore 1.44.8 produced the vectors in the tests):

    python3 -m venv /tmp/sigv4-venv && /tmp/sigv4-venv/bin/pip install botocore
    /tmp/sigv4-venv/bin/python proxy/tests/sigv4/botocore_sign.py

Nothing is sent: a `before-send` hook records the prepared request (method, raw path and query,
headers, body) and answers with a fake 200, so no server is needed. The clock is frozen by
replacing `botocore.auth.get_current_datetime`, where SigV4Auth.add_auth reads the time.

The Host header is not among the headers at `before-send`: the HTTP client (urllib3) adds it
from the URL, and botocore signs that same value (`host:127.0.0.1:8080`, see `canonical`).

What it shows: botocore puts `@connections` on the wire with a bare `@` and the connection id's
`=`, `/` and `+` as `%3D`, `%2F`, `%2B`; it signs that wire path encoded again
(`/dev/%40connections/L0SM9cOFvHcCIhw%253D`), after removing dot and empty segments.
"""

import datetime
import json
import urllib.parse

import botocore.auth
import botocore.awsrequest
import botocore.session

FIXED = datetime.datetime(2026, 12, 4, 12, 36, 0)
ACCESS_KEY = "AKIDTOLLGATE"
SECRET_KEY = "tollgate/secret+key/EXAMPLE"
CONNECTION_ID = "L0SM9cOFvHcCIhw="


# SigV4Auth.add_auth takes its time from this name (botocore.compat.get_current_datetime).
botocore.auth.get_current_datetime = lambda remove_tzinfo=True: FIXED

# The canonical request botocore signed, to show how it encodes the path.
canonical = []
_canonical_request = botocore.auth.SigV4Auth.canonical_request


def recording_canonical_request(self, request):
    text = _canonical_request(self, request)
    canonical.append(text)
    return text


botocore.auth.SigV4Auth.canonical_request = recording_canonical_request

captured = []


def capture(request, **_):
    url = urllib.parse.urlsplit(request.url)
    body = request.body or b""
    if isinstance(body, str):
        body = body.encode()
    captured.append(
        {
            "method": request.method,
            "url": request.url,
            "raw_path": url.path,
            "raw_query": url.query,
            "headers": {k: (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()},
            "body": body.decode(),
            "canonical_request": canonical[-1],
        }
    )
    return botocore.awsrequest.AWSResponse(request.url, 200, {}, _Raw(b"{}"))


class _Raw:
    def __init__(self, data):
        self.data = data

    def stream(self, **_):
        yield self.data


session = botocore.session.get_session()
client = session.create_client(
    "apigatewaymanagementapi",
    endpoint_url="http://127.0.0.1:8080/dev",
    region_name="us-east-1",
    aws_access_key_id=ACCESS_KEY,
    aws_secret_access_key=SECRET_KEY,
)
client.meta.events.register("before-send", capture)

client.post_to_connection(ConnectionId=CONNECTION_ID, Data=b'{"hello":"world"}')
client.get_connection(ConnectionId=CONNECTION_ID)
client.delete_connection(ConnectionId=CONNECTION_ID)
# A connection id with every base64 character that is not unreserved in a URI.
client.get_connection(ConnectionId="a/b+c=")

print(json.dumps({"fixed": FIXED.strftime("%Y%m%dT%H%M%SZ"), "requests": captured}, indent=2))
