"""Amazon API Gateway's WebSocket chat app (simple-websockets-chat-app), in Python.

One function serves every route, by `requestContext.routeKey`:

- `$connect`: admits a client that says its name (`?name=...`), refuses others (401);
- `$disconnect`: forgets the connection;
- `sendmessage` (`{"action": "sendmessage", "data": "..."}`): sends
  `{"from": <name>, "data": <data>}` to every connection through the `@connections` API,
  forgetting those that are gone (410 GoneException);
- `whoami` (two-way): answers with what `GET @connections/{id}` says of the caller;
- `kick` (`{"action": "kick", "name": "..."}`): closes that user's connections
  (`DELETE @connections/{id}`).

The connections table is a SQLite file (`CONNECTIONS_DB`) where Amazon's sample uses
DynamoDB: every copy of the function shares it. The `@connections` endpoint is
`MANAGEMENT_ENDPOINT` when set (a proxy's URL and the stage), else Amazon's
`https://{domainName}/{stage}`. boto3 signs with the usual AWS credentials variables.
"""

import json
import os
import sqlite3

import boto3

DB = os.environ.get("CONNECTIONS_DB", "/tmp/tollgate-chat.sqlite3")


def connections():
    db = sqlite3.connect(DB, timeout=30)
    db.execute("CREATE TABLE IF NOT EXISTS connections (id TEXT PRIMARY KEY, name TEXT)")
    return db


def management_api(event):
    ctx = event["requestContext"]
    endpoint = os.environ.get("MANAGEMENT_ENDPOINT") or (
        "https://{}/{}".format(ctx["domainName"], ctx["stage"])
    )
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint)


def handler(event, context):
    route = event["requestContext"]["routeKey"]
    if route == "$connect":
        return on_connect(event)
    if route == "$disconnect":
        return on_disconnect(event)
    if route == "sendmessage":
        return send_message(event)
    if route == "whoami":
        return who_am_i(event)
    if route == "kick":
        return kick(event)
    return {"statusCode": 400, "body": "no such route: " + route}


def on_connect(event):
    name = (event.get("queryStringParameters") or {}).get("name")
    if not name:
        return {"statusCode": 401, "body": "say your name: connect with ?name=..."}
    with connections() as db:
        db.execute(
            "INSERT OR REPLACE INTO connections VALUES (?, ?)",
            (event["requestContext"]["connectionId"], name),
        )
    return {"statusCode": 200, "body": "Connected."}


def on_disconnect(event):
    with connections() as db:
        db.execute(
            "DELETE FROM connections WHERE id = ?",
            (event["requestContext"]["connectionId"],),
        )
    return {"statusCode": 200, "body": "Disconnected."}


def send_message(event):
    sender_id = event["requestContext"]["connectionId"]
    data = json.loads(event["body"]).get("data")
    with connections() as db:
        rows = db.execute("SELECT id, name FROM connections").fetchall()
    names = dict(rows)
    message = json.dumps({"from": names.get(sender_id), "data": data}).encode()
    api = management_api(event)
    for connection_id, _ in rows:
        try:
            api.post_to_connection(ConnectionId=connection_id, Data=message)
        except api.exceptions.GoneException:
            with connections() as db:
                db.execute("DELETE FROM connections WHERE id = ?", (connection_id,))
    return {"statusCode": 200, "body": "Data sent."}


def who_am_i(event):
    connection_id = event["requestContext"]["connectionId"]
    info = management_api(event).get_connection(ConnectionId=connection_id)
    return {
        "statusCode": 200,
        "body": json.dumps(
            {
                "connectionId": connection_id,
                "connectedAt": info["ConnectedAt"].isoformat(),
                "lastActiveAt": info["LastActiveAt"].isoformat(),
                "sourceIp": info["Identity"]["SourceIp"],
            }
        ),
    }


def kick(event):
    name = json.loads(event["body"]).get("name")
    with connections() as db:
        rows = db.execute("SELECT id FROM connections WHERE name = ?", (name,)).fetchall()
    api = management_api(event)
    for (connection_id,) in rows:
        try:
            api.delete_connection(ConnectionId=connection_id)
        except api.exceptions.GoneException:
            pass
    return {"statusCode": 200, "body": "kicked"}
