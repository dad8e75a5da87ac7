//! Shape checks of the PEM values a domain's TLS needs: a certificate chain, a private key, a
//! bundle of client CAs. Pure: PEM decoding (rustls-pki-types) and a look at each block's DER
//! envelope, no crypto provider. They catch what would make every proxy refuse the table (a
//! truncated paste, the key in the certificate's place) before it is sent; whether the key
//! matches the certificate is left to the proxy.
//!
//! Errors describe what is wrong without quoting the value: key material never reaches a
//! message.

use rustls_pki_types::pem::{self, PemObject as _, SectionKind};

/// `tls.crt` or `ca.crt`: at least one CERTIFICATE block, each a DER certificate.
pub(super) fn certificates(text: &str) -> Result<(), String> {
    let mut found = 0;
    for section in sections(text)? {
        if section.0 == SectionKind::Certificate {
            if !is_certificate(&section.1) {
                return Err(format!(
                    "holds a CERTIFICATE block (the {}) that is not a DER certificate",
                    ordinal(found + 1)
                ));
            }
            found += 1;
        }
    }
    if found == 0 {
        return Err(match private_keys(text) {
            Ok(n) if n > 0 => "holds no certificate (it holds a private key instead)".into(),
            _ => "holds no certificate (no -----BEGIN CERTIFICATE----- block)".into(),
        });
    }
    Ok(())
}

/// `tls.key`: exactly one private key, PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`) or
/// SEC1 (`EC PRIVATE KEY`).
pub(super) fn private_key(text: &str) -> Result<(), String> {
    match private_keys(text)? {
        1 => Ok(()),
        0 if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") => Err(
            "holds no private key the proxy can use: an encrypted key must be decrypted first"
                .into(),
        ),
        0 => Err("holds no private key".into()),
        n => Err(format!("holds {n} private keys: keep exactly one")),
    }
}

/// How many well-formed private keys `text` holds; an error for a malformed one.
fn private_keys(text: &str) -> Result<usize, String> {
    let mut found = 0;
    for (kind, der) in sections(text)? {
        if matches!(
            kind,
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
        ) {
            if !is_private_key(&der) {
                return Err("holds a private key block that is not a DER private key".into());
            }
            found += 1;
        }
    }
    Ok(found)
}

/// Every PEM block of a kind rustls-pki-types knows (others are passed over).
fn sections(text: &str) -> Result<Vec<(SectionKind, Vec<u8>)>, String> {
    <(SectionKind, Vec<u8>)>::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("is not valid PEM ({})", describe(&e)))
}

/// What is wrong with the PEM text, without quoting it (a line could be key material).
fn describe(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => "a block has no -----END line",
        pem::Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a block is not valid base64",
        pem::Error::SectionTooLarge => "a block is too large",
        _ => "it cannot be read",
    }
}

fn ordinal(n: usize) -> String {
    match n {
        1 => "first".into(),
        2 => "second".into(),
        3 => "third".into(),
        n => format!("{n}th"),
    }
}

// === DER envelopes ===

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;

/// A certificate is `SEQUENCE { tbsCertificate SEQUENCE, signatureAlgorithm SEQUENCE,
/// signature BIT STRING }`, filling the block exactly.
fn is_certificate(der: &[u8]) -> bool {
    sequence_contents(der).is_some_and(|body| {
        let Some((tag, _, rest)) = tlv(body) else {
            return false;
        };
        tag == SEQUENCE && tlv(rest).is_some_and(|(tag, _, _)| tag == SEQUENCE)
    })
}

/// PKCS#8, PKCS#1 and SEC1 private keys all are a SEQUENCE filling the block whose first
/// element is an INTEGER (the version).
fn is_private_key(der: &[u8]) -> bool {
    sequence_contents(der).is_some_and(|body| tlv(body).is_some_and(|(tag, _, _)| tag == INTEGER))
}

/// The contents of a DER SEQUENCE that spans all of `der`.
fn sequence_contents(der: &[u8]) -> Option<&[u8]> {
    match tlv(der)? {
        (SEQUENCE, body, []) => Some(body),
        _ => None,
    }
}

/// The first tag-length-value of `der`: tag, value, and what follows it. Single-byte tags and
/// definite lengths only, as DER has them.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let (bytes, rest) = rest.split_at(n);
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    if rest.len() < len {
        return None;
    }
    let (value, rest) = rest.split_at(len);
    Some((tag, value, rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test-only material: throwaway self-signed certificates and a key (crds/tests/testdata).
    const CERT: &str = include_str!("../../tests/testdata/test-only.crt");
    const KEY: &str = include_str!("../../tests/testdata/test-only.key");
    const SEC1_KEY: &str = include_str!("../../tests/testdata/test-only-sec1.key");
    const CA: &str = include_str!("../../tests/testdata/test-only-client-ca.crt");

    #[test]
    fn a_real_certificate_and_key_pass() {
        assert_eq!(certificates(CERT), Ok(()));
        assert_eq!(certificates(&format!("{CERT}{CERT}")), Ok(()));
        assert_eq!(certificates(&format!("{CERT}{CA}")), Ok(()));
        assert_eq!(private_key(KEY), Ok(()));
        assert_eq!(private_key(SEC1_KEY), Ok(()));
        // A certificate next to its key is the usual combined file: one key, it passes.
        assert_eq!(private_key(&format!("{CERT}{KEY}")), Ok(()));
    }

    #[test]
    fn each_malformed_value_says_what_is_wrong() {
        let fake = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
        assert!(
            certificates(fake)
                .unwrap_err()
                .contains("not a DER certificate")
        );
        assert!(
            certificates("")
                .unwrap_err()
                .contains("holds no certificate")
        );
        assert!(
            certificates(KEY)
                .unwrap_err()
                .contains("a private key instead")
        );
        let truncated = &CERT[..CERT.len() / 2];
        assert!(
            certificates(truncated)
                .unwrap_err()
                .contains("no -----END line")
        );
        let not_base64 = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(
            certificates(not_base64)
                .unwrap_err()
                .contains("not valid base64")
        );

        assert_eq!(private_key(CERT).unwrap_err(), "holds no private key");
        assert!(
            private_key(&format!("{KEY}{KEY}"))
                .unwrap_err()
                .contains("2 private keys")
        );
        let bad_key = "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n";
        assert!(
            private_key(bad_key)
                .unwrap_err()
                .contains("not a DER private key")
        );
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert!(private_key(encrypted).unwrap_err().contains("decrypted"));
    }

    #[test]
    fn messages_never_quote_the_value() {
        let secret_line = "c2VjcmV0LXNlY3JldC1zZWNyZXQ*";
        for text in [
            format!("-----BEGIN PRIVATE KEY-----\n{secret_line}\n-----END PRIVATE KEY-----\n"),
            format!("-----BEGIN PRIVATE KEY-----\n{secret_line}\n"),
            format!("-----BEGIN PRIVATE KEY {secret_line}\n"),
        ] {
            let e = private_key(&text).unwrap_err();
            assert!(!e.contains("c2Vj"), "{e}");
        }
    }

    #[test]
    fn der_lengths_must_fill_the_block() {
        assert!(tlv(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_some());
        assert!(!is_private_key(&[0x30, 0x03, 0x02, 0x01, 0x00, 0xff]));
        assert!(is_private_key(&[0x30, 0x03, 0x02, 0x01, 0x00]));
        assert!(!is_private_key(&[0x30, 0x82, 0x01]));
        assert!(!is_certificate(&[0x30, 0x00]));
    }
}
