//! Amazon API Gateway's WebSocket event, as a Lambda proxy integration receives it: one per
//! `$connect` (`CONNECT`, with the handshake's headers and query string), per message
//! (`MESSAGE`, with its body and a `messageId`) and per `$disconnect` (`DISCONNECT`, with the
//! close code and reason).

use base64::Engine;
use serde_json::{Map, Value, json};

use super::Peer;
use crate::lambda::event::{ACCOUNT_ID, headers_v1, query_v1, request_time};

/// What happened on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Connect,
    Message,
    Disconnect,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Message => "MESSAGE",
            Self::Disconnect => "DISCONNECT",
        }
    }
}

/// What each kind of event carries besides the connection's context.
pub enum Detail<'a> {
    /// The handshake request's head.
    Connect {
        headers: &'a hyper::HeaderMap,
        raw_query: &'a str,
    },
    Message {
        message_id: &'a str,
        body: &'a [u8],
        /// A binary frame: the body goes base64-encoded.
        binary: bool,
    },
    Disconnect {
        status_code: u16,
        reason: &'a str,
    },
}

/// One event.
pub struct Event<'a> {
    pub peer: &'a Peer,
    pub route_key: &'a str,
    pub request_id: &'a str,
    pub received_at: jiff::Timestamp,
    pub detail: Detail<'a>,
}

impl Event<'_> {
    pub fn event_type(&self) -> EventType {
        match self.detail {
            Detail::Connect { .. } => EventType::Connect,
            Detail::Message { .. } => EventType::Message,
            Detail::Disconnect { .. } => EventType::Disconnect,
        }
    }

    /// The event as JSON.
    pub fn to_json(&self) -> Value {
        let peer = self.peer;
        let mut context = json!({
            "routeKey": self.route_key,
            "eventType": self.event_type().as_str(),
            "extendedRequestId": self.request_id,
            "requestTime": request_time(self.received_at),
            "messageDirection": "IN",
            "stage": &*peer.stage,
            "connectedAt": peer.connected_at.as_millisecond(),
            "requestTimeEpoch": self.received_at.as_millisecond(),
            "identity": identity(peer),
            "requestId": self.request_id,
            "domainName": peer.domain_name,
            "connectionId": peer.connection_id,
            "apiId": peer.gateway.name,
            "accountId": ACCOUNT_ID,
        });
        let mut event = Map::new();
        match &self.detail {
            Detail::Connect { headers, raw_query } => {
                let (single, multi) = headers_v1(headers);
                let (query, multi_query) = query_v1(raw_query);
                event.insert("headers".into(), Value::Object(single));
                event.insert("multiValueHeaders".into(), Value::Object(multi));
                event.insert("queryStringParameters".into(), query);
                event.insert("multiValueQueryStringParameters".into(), multi_query);
            }
            Detail::Message {
                message_id,
                body,
                binary,
            } => {
                context["messageId"] = json!(message_id);
                let text = if *binary {
                    base64::engine::general_purpose::STANDARD.encode(body)
                } else {
                    String::from_utf8_lossy(body).into_owned()
                };
                event.insert("body".into(), Value::String(text));
            }
            Detail::Disconnect {
                status_code,
                reason,
            } => {
                context["disconnectStatusCode"] = json!(status_code);
                context["disconnectReason"] = json!(reason);
            }
        }
        if let Some(authorizer) = peer.identity.lambda_v1() {
            context["authorizer"] = authorizer;
        }
        let binary = matches!(self.detail, Detail::Message { binary: true, .. });
        event.insert("requestContext".into(), context);
        event.insert("isBase64Encoded".into(), Value::Bool(binary));
        Value::Object(event)
    }
}

fn identity(peer: &Peer) -> Value {
    let mut identity = json!({ "sourceIp": peer.source_ip.to_string() });
    if let Some(agent) = &peer.user_agent {
        identity["userAgent"] = json!(agent);
    }
    identity
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::managed::tests::peer;

    fn at(ms: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(ms).unwrap()
    }

    #[test]
    fn a_message_event_has_amazons_fields() {
        let peer = peer();
        let event = Event {
            peer: &peer,
            route_key: "sendmessage",
            request_id: "req-1",
            received_at: at(1_586_455_428_603),
            detail: Detail::Message {
                message_id: "msg-1",
                body: br#"{"action":"sendmessage","data":"hi"}"#,
                binary: false,
            },
        }
        .to_json();
        let ctx = &event["requestContext"];
        assert_eq!(ctx["routeKey"], "sendmessage");
        assert_eq!(ctx["eventType"], "MESSAGE");
        assert_eq!(ctx["messageId"], "msg-1");
        assert_eq!(ctx["connectionId"], "Zm9vYmFyYmF6cXV4");
        assert_eq!(ctx["connectedAt"], 1_586_455_428_587_i64);
        assert_eq!(ctx["requestTimeEpoch"], 1_586_455_428_603_i64);
        assert_eq!(ctx["requestTime"], "09/Apr/2020:18:03:48 +0000");
        assert_eq!(ctx["stage"], "production");
        assert_eq!(ctx["domainName"], "chat.example.com");
        assert_eq!(ctx["apiId"], "chat");
        assert_eq!(ctx["messageDirection"], "IN");
        assert_eq!(ctx["identity"]["sourceIp"], "192.0.2.7");
        assert_eq!(ctx["identity"]["userAgent"], "wscat");
        assert_eq!(event["body"], r#"{"action":"sendmessage","data":"hi"}"#);
        assert_eq!(event["isBase64Encoded"], false);
        assert!(event.get("headers").is_none());
    }

    #[test]
    fn a_binary_message_is_base64_and_a_disconnect_says_why() {
        let peer = peer();
        let binary = Event {
            peer: &peer,
            route_key: "$default",
            request_id: "req-2",
            received_at: at(1_586_455_500_000),
            detail: Detail::Message {
                message_id: "msg-2",
                body: &[0, 159, 146, 150],
                binary: true,
            },
        }
        .to_json();
        assert_eq!(binary["body"], "AJ+Slg==");
        assert_eq!(binary["isBase64Encoded"], true);

        let gone = Event {
            peer: &peer,
            route_key: "$disconnect",
            request_id: "req-3",
            received_at: at(1_586_455_600_000),
            detail: Detail::Disconnect {
                status_code: 1001,
                reason: "Going away",
            },
        }
        .to_json();
        assert_eq!(gone["requestContext"]["eventType"], "DISCONNECT");
        assert_eq!(gone["requestContext"]["disconnectStatusCode"], 1001);
        assert_eq!(gone["requestContext"]["disconnectReason"], "Going away");
        assert!(gone.get("body").is_none());
    }

    #[test]
    fn a_connect_event_has_the_handshake_head() {
        let peer = peer();
        let mut headers = hyper::HeaderMap::new();
        headers.insert("sec-websocket-version", "13".parse().unwrap());
        let event = Event {
            peer: &peer,
            route_key: "$connect",
            request_id: "req-0",
            received_at: at(1_586_455_428_587),
            detail: Detail::Connect {
                headers: &headers,
                raw_query: "token=abc&room=1",
            },
        }
        .to_json();
        assert_eq!(event["requestContext"]["eventType"], "CONNECT");
        assert_eq!(event["headers"]["sec-websocket-version"], "13");
        assert_eq!(event["queryStringParameters"]["token"], "abc");
        assert_eq!(event["multiValueQueryStringParameters"]["room"][0], "1");
    }
}
