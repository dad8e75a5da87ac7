"""AWS's own endpoints, as far as Tollgate's signed Lambda calls need them, for tests.

One HTTP server on 127.0.0.1 plays two services:

- the Lambda Invoke API (`POST /2015-03-31/functions/{function}/invocations`): it checks each
  call's SigV4 signature with botocore's signer (the AWS SDK for Python, an implementation
  independent of Tollgate's), against the credentials it knows, as AWS would; a call that
  verifies is passed to the Runtime Interface Emulator at --invoke and its answer returned, one
  that does not gets AWS's 403 `InvalidSignatureException`;
- STS (`POST /` with `Action=AssumeRoleWithWebIdentity`): it checks the web identity token
  against the file --web-identity-token-file and the role against --role-arn, and issues new
  temporary credentials valid for --lifetime seconds, which the Invoke API then accepts;
- the container credentials endpoint of EKS Pod Identity (`GET /v1/credentials`): it checks
  the `Authorization` header against the same token file and issues credentials the same way.

`GET /_calls` answers what it saw, as JSON: every Invoke call (the key it was signed with,
whether it verified, the function's path segment) and every STS call.

    python aws_double.py --port P --invoke http://127.0.0.1:R \\
        [--access-key-id AKID --secret-access-key SECRET] \\
        [--web-identity-token-file F --role-arn ARN --lifetime 900]
"""

import argparse
import datetime
import json
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

LOCK = threading.Lock()
# access key id -> (secret access key, session token or None)
KNOWN = {}
CALLS = []
STS_CALLS = []


def verify(handler, body):
    """Whether the request's SigV4 signature is right for a known key, and the key id."""
    authorization = handler.headers.get("Authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return False, None, "no SigV4 Authorization header"
    fields = dict(
        part.strip().split("=", 1) for part in authorization[len("AWS4-HMAC-SHA256 "):].split(",")
    )
    access_key, date, region, service, _ = fields["Credential"].split("/")
    with LOCK:
        known = KNOWN.get(access_key)
    if known is None:
        return False, access_key, "unknown access key"
    secret, token = known
    if token is not None and handler.headers.get("X-Amz-Security-Token") != token:
        return False, access_key, "wrong or missing session token"
    signed = fields["SignedHeaders"].split(";")
    # The request as received, with exactly the headers it says it signed.
    url = "http://%s%s" % (handler.headers["Host"], handler.path)
    request = AWSRequest(
        method=handler.command,
        url=url,
        data=body,
        headers={name: handler.headers[name] for name in signed},
    )
    request.context["timestamp"] = handler.headers["X-Amz-Date"]
    auth = SigV4Auth(Credentials(access_key, secret, token), service, region)
    # botocore signs what it is given: the headers it would add itself are already there.
    canonical = auth.canonical_request(request)
    expected = auth.signature(auth.string_to_sign(request, canonical), request)
    age = abs(
        datetime.datetime.now(datetime.timezone.utc)
        - datetime.datetime.strptime(handler.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc
        )
    )
    if age > datetime.timedelta(minutes=5):
        return False, access_key, "signed too long ago"
    if service != "lambda" or date != handler.headers["X-Amz-Date"][:8]:
        return False, access_key, "wrong scope"
    if expected != fields["Signature"]:
        return False, access_key, "signature mismatch"
    return True, access_key, ""


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/json", headers=()):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/_calls":
            with LOCK:
                self.answer(200, json.dumps({"invoke": CALLS, "sts": STS_CALLS}))
        elif self.path == "/v1/credentials":
            self.container_credentials()
        else:
            self.answer(404, "{}")

    def container_credentials(self):
        with open(ARGS.web_identity_token_file) as f:
            expected_token = f.read().strip()
        presented = self.headers.get("Authorization", "")
        with LOCK:
            STS_CALLS.append({"action": "PodIdentity", "roleArn": ARGS.role_arn, "tokenMatches": presented == expected_token})
        if presented != expected_token:
            self.answer(401, json.dumps({"Code": "AccessDeniedException", "Message": "bad token"}))
            return
        key, secret, session, expiry = self.issue()
        self.answer(
            200,
            json.dumps(
                {
                    "AccessKeyId": key,
                    "SecretAccessKey": secret,
                    "Token": session,
                    "AccountId": "123456789012",
                    "Expiration": expiry,
                }
            ),
        )

    def issue(self):
        """New temporary credentials the Invoke API accepts: key, secret, token, expiry."""
        with LOCK:
            n = len(STS_CALLS)
            key, secret, session = "ASIATEST%08d" % n, "temporary-secret-%d" % n, "session-token-%d" % n
            KNOWN[key] = (secret, session)
        expiry = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=ARGS.lifetime)
        return key, secret, session, expiry.strftime("%Y-%m-%dT%H:%M:%SZ")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path.startswith("/2015-03-31/functions/"):
            self.invoke(body)
        elif self.path == "/":
            self.sts(body)
        else:
            self.answer(404, "{}")

    def invoke(self, body):
        ok, key, why = verify(self, body)
        function = self.path.split("/")[3]
        with LOCK:
            CALLS.append({"accessKeyId": key, "verified": ok, "why": why, "function": function})
        if not ok:
            self.answer(
                403,
                json.dumps({"message": "The request signature we calculated does not match: " + why}),
                headers=[("x-amzn-ErrorType", "InvalidSignatureException")],
            )
            return
        request = urllib.request.Request(
            ARGS.invoke + "/2015-03-31/functions/function/invocations", data=body, method="POST"
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            self.answer(reply.status, reply.read())

    def sts(self, body):
        form = urllib.parse.parse_qs(body.decode())
        action = form.get("Action", [""])[0]
        token = form.get("WebIdentityToken", [""])[0]
        role = form.get("RoleArn", [""])[0]
        with open(ARGS.web_identity_token_file) as f:
            expected_token = f.read().strip()
        with LOCK:
            STS_CALLS.append({"action": action, "roleArn": role, "tokenMatches": token == expected_token})
        if action != "AssumeRoleWithWebIdentity" or token != expected_token or role != ARGS.role_arn:
            self.answer(
                403,
                "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                "<Message>Not authorized</Message></Error></ErrorResponse>",
                "text/xml",
            )
            return
        key, secret, session, expiry = self.issue()
        self.answer(
            200,
            """<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>%s</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:tollgate:proxy</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/tollgate/web-identity</Arn>
      <AssumedRoleId>AROATEST:web-identity</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>%d</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>"""
            % (key, secret, session, expiry, len(STS_CALLS)),
            "text/xml",
        )


def main():
    global ARGS
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--invoke", required=True)
    parser.add_argument("--access-key-id")
    parser.add_argument("--secret-access-key")
    parser.add_argument("--web-identity-token-file")
    parser.add_argument("--role-arn")
    parser.add_argument("--lifetime", type=int, default=3600)
    ARGS = parser.parse_args()
    if ARGS.access_key_id:
        KNOWN[ARGS.access_key_id] = (ARGS.secret_access_key, None)
    server = ThreadingHTTPServer(("127.0.0.1", ARGS.port), Handler)
    server.serve_forever()


if __name__ == "__main__":
    main()
