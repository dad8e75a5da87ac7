"""One request to an AWS_IAM route, signed by botocore's SigV4 signer (the AWS SDK for Python)
as an AWS client signs a call to API Gateway (service `execute-api`), sent with urllib; prints
the answer as JSON: {"status", "body", "headers"}.

    python iam_call.py --url URL [--method GET] [--body TEXT] --access-key-id AKID \\
        --secret-access-key SECRET [--region eu-west-1] [--send-body OTHER]

--send-body sends another body than the one signed (a tampered request).
"""

import argparse
import json
import urllib.error
import urllib.request

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body")
    parser.add_argument("--send-body")
    parser.add_argument("--access-key-id", required=True)
    parser.add_argument("--secret-access-key", required=True)
    parser.add_argument("--region", default="eu-west-1")
    args = parser.parse_args()

    body = args.body.encode() if args.body is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    request = AWSRequest(method=args.method, url=args.url, data=body, headers=headers)
    SigV4Auth(
        Credentials(args.access_key_id, args.secret_access_key), "execute-api", args.region
    ).add_auth(request)
    sent = args.send_body.encode() if args.send_body is not None else body
    wire = urllib.request.Request(
        args.url, data=sent, method=args.method, headers=dict(request.headers.items())
    )
    try:
        with urllib.request.urlopen(wire, timeout=10) as reply:
            status, text, reply_headers = reply.status, reply.read(), reply.headers
    except urllib.error.HTTPError as e:
        status, text, reply_headers = e.code, e.read(), e.headers
    print(
        json.dumps(
            {
                "status": status,
                "body": text.decode(errors="replace"),
                "headers": {k.lower(): v for k, v in reply_headers.items()},
            }
        )
    )


if __name__ == "__main__":
    main()
