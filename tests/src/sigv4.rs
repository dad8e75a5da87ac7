//! An AWS Signature Version 4 signer for clients of the `@connections` API written in Rust
//! (the benchmark's): the end-to-end tests sign with boto3 itself. Written apart from the
//! proxy's verifier, so each checks the other. Signs `host` and `x-amz-date` only, as
//! botocore does for `apigatewaymanagementapi`.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The `x-amz-date` and `authorization` header values for a request. `path` is as sent (no
/// percent-encoding in it), `host` the `Host` header's value.
pub fn sign(
    method: &str,
    host: &str,
    path: &str,
    payload: &[u8],
    (access_key, secret_key): (&str, &str),
    region: &str,
    now: std::time::SystemTime,
) -> (String, String) {
    let seconds = now
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let stamp = basic(seconds);
    let day = &stamp[..8];
    let service = "execute-api";
    let canonical_uri: String = path.split('/').map(encode).collect::<Vec<_>>().join("/");
    let canonical_request = format!(
        "{method}\n{canonical_uri}\n\nhost:{host}\nx-amz-date:{stamp}\n\nhost;x-amz-date\n{}",
        hex::encode(Sha256::digest(payload))
    );
    let scope = format!("{day}/{region}/{service}/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let mut key = format!("AWS4{secret_key}").into_bytes();
    for part in [day, region, service, "aws4_request"] {
        key = hmac(&key, part.as_bytes());
    }
    let signature = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders=host;x-amz-date, \
         Signature={signature}"
    );
    (stamp, authorization)
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 3986's unreserved characters as they are, every other byte as `%XX`.
fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time.
fn basic(seconds: i64) -> String {
    jiff::Timestamp::from_second(seconds)
        .expect("a time jiff can hold")
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_iso8601_basic() {
        assert_eq!(basic(1_440_938_160), "20150830T123600Z");
        assert_eq!(basic(1_798_761_600), "20270101T000000Z");
    }
}
