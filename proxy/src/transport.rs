//! What a request's connection must be for its host: the HTTPS redirect, and a custom
//! domain's TLS demands (its own handshake, a verified client certificate).

use std::sync::Arc;

use http::{HeaderValue, Method, Response, StatusCode, header};

use crate::body::{Body, full};
use crate::dispatch::DomainPolicy;
use crate::errors::GatewayError;
use crate::tls::{ClientCert, ClientCertCheck, TlsSession};

/// The redirect of a plain-HTTP request to HTTPS: 301 for GET and HEAD, 308 otherwise (the
/// client repeats the method and body). `host` has no port; `https_port` 443 is left out.
pub fn https_redirect(
    method: &Method,
    host: &str,
    path_and_query: &str,
    https_port: u16,
) -> Response<Body> {
    let status = if method == Method::GET || method == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    let location = if https_port == 443 {
        format!("https://{host}{path_and_query}")
    } else {
        format!("https://{host}:{https_port}{path_and_query}")
    };
    let mut response = Response::new(full(bytes::Bytes::new()));
    *response.status_mut() = status;
    if let Ok(v) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

/// Checks a request against its custom domain's demands; returns the verified client
/// certificate on a mutual-TLS domain.
pub fn check(
    tls: Option<&TlsSession>,
    domain: Option<&DomainPolicy>,
) -> Result<Option<Arc<ClientCert>>, GatewayError> {
    let Some(domain) = domain.filter(|d| d.own_handshake) else {
        return Ok(None);
    };
    let Some(session) = tls else {
        return if domain.mutual_tls {
            Err(GatewayError::ClientCertificate(
                "mutual TLS domain reached over plain HTTP".into(),
            ))
        } else {
            Ok(None)
        };
    };
    if !session.negotiated_for(&domain.hostname) {
        return Err(GatewayError::MisdirectedRequest);
    }
    if !domain.mutual_tls {
        return Ok(None);
    }
    match &session.client_cert {
        Some(ClientCertCheck::Verified(cert)) => Ok(Some(cert.clone())),
        Some(ClientCertCheck::Refused(reason)) => {
            Err(GatewayError::ClientCertificate(reason.clone()))
        }
        None => Err(GatewayError::ClientCertificate(
            "no client certificate".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(mutual_tls: bool, own_handshake: bool) -> DomainPolicy {
        DomainPolicy {
            hostname: "api.example.com".into(),
            mutual_tls,
            own_handshake,
        }
    }

    #[test]
    fn redirects_keep_the_method_where_it_matters() {
        let r = https_redirect(&Method::GET, "api.example.com", "/dev/x?a=1", 443);
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://api.example.com/dev/x?a=1"
        );
        let r = https_redirect(&Method::POST, "api.example.com", "/dev/x", 8443);
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://api.example.com:8443/dev/x"
        );
    }

    #[test]
    fn a_mutual_tls_domain_refuses_plain_http() {
        assert!(matches!(
            check(None, Some(&domain(true, true))),
            Err(GatewayError::ClientCertificate(_))
        ));
        assert_eq!(check(None, Some(&domain(false, true))), Ok(None));
        assert_eq!(check(None, Some(&domain(false, false))), Ok(None));
        assert_eq!(check(None, None), Ok(None));
    }

    #[test]
    fn another_domains_handshake_is_misdirected() {
        let session = TlsSession {
            domain: None,
            client_cert: None,
            h2: false,
        };
        assert_eq!(
            check(Some(&session), Some(&domain(true, true))),
            Err(GatewayError::MisdirectedRequest)
        );
        assert_eq!(check(Some(&session), Some(&domain(false, false))), Ok(None));
    }
}
