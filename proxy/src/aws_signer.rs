//! Outbound SigV4: calls to AWS (the Lambda Invoke API) signed with credentials from the AWS
//! SDK's default chain, by the SDK's own signer.
//!
//! The chain is the one every AWS SDK walks, loaded on the first signed call (a proxy that
//! calls no AWS service never looks for credentials): environment variables, the shared
//! config and credentials files, web identity (a token file and a role: EKS IAM Roles for
//! Service Accounts), container credentials (EKS Pod Identity, ECS), instance metadata. Its
//! HTTPS calls (STS, the metadata services) use rustls with ring, as the rest of the proxy.
//!
//! Credentials are kept and reused until five minutes before they expire, then fetched again
//! by the next call; calls waiting meanwhile share one fetch. When the chain finds none, calls
//! fail at once for five seconds before it is walked again. Credentials are never logged: the
//! key id only, at debug level, when a new set arrives.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_config::BehaviorVersion;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use hyper::Request;
use hyper::header::{self, HeaderValue};
use tokio::sync::{Mutex, OnceCell};

use crate::errors::error_chain;

/// Credentials this close to their expiry are fetched again.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// After the chain found no credentials, calls fail at once for this long rather than walk it
/// again (and its providers log again) for every request of a flood.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);

/// Why a call could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("no AWS credentials: {0}")]
    Credentials(String),
    #[error("the request cannot be signed: {0}")]
    Request(String),
}

/// Signs outbound calls; one per proxy, shared by every call.
#[derive(Clone, Default)]
pub struct AwsSigner {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// The default chain, loaded on first use.
    provider: OnceCell<Option<SharedCredentialsProvider>>,
    /// The credentials in use, or the last failure; the lock is held across a fetch, so
    /// calls share it.
    current: Mutex<Current>,
}

#[derive(Default)]
struct Current {
    credentials: Option<Credentials>,
    /// When the chain last failed, and why.
    failed: Option<(Instant, String)>,
}

impl AwsSigner {
    /// A signer whose credentials come from `provider` instead of the default chain (tests).
    pub fn with_provider(provider: SharedCredentialsProvider) -> Self {
        let inner = Inner::default();
        let _ = inner.provider.set(Some(provider));
        Self {
            inner: Arc::new(inner),
        }
    }

    /// Signs `request`, whose body is `body`, for `service` in `region`: `Host`,
    /// `X-Amz-Date`, `Authorization` and, with temporary credentials,
    /// `X-Amz-Security-Token`. Headers added afterwards are not signed.
    pub async fn sign<B>(
        &self,
        request: &mut Request<B>,
        body: &[u8],
        service: &str,
        region: &str,
    ) -> Result<(), SignError> {
        let credentials = self.credentials().await?;
        // The signed Host is the one sent: hyper writes the URI's authority, port included.
        let authority = request
            .uri()
            .authority()
            .ok_or_else(|| SignError::Request("the URL has no host".into()))?
            .as_str()
            .to_string();
        let host =
            HeaderValue::from_str(&authority).map_err(|e| SignError::Request(e.to_string()))?;
        request.headers_mut().insert(header::HOST, host);

        let identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| SignError::Request(e.to_string()))?
            .into();
        let headers = request
            .headers()
            .iter()
            .map(|(name, value)| Ok((name.as_str(), value.to_str()?)))
            .collect::<Result<Vec<_>, header::ToStrError>>()
            .map_err(|e| SignError::Request(e.to_string()))?;
        let uri = request.uri().to_string();
        let signable = SignableRequest::new(
            request.method().as_str(),
            &uri,
            headers.into_iter(),
            SignableBody::Bytes(body),
        )
        .map_err(|e| SignError::Request(e.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| SignError::Request(e.to_string()))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }

    /// The credentials to sign with: the current ones, or new ones when they are about to
    /// expire (or there are none yet).
    async fn credentials(&self) -> Result<Credentials, SignError> {
        let mut current = self.inner.current.lock().await;
        if let Some(credentials) = current.credentials.as_ref()
            && fresh(credentials, SystemTime::now())
        {
            return Ok(credentials.clone());
        }
        if let Some((at, why)) = &current.failed
            && at.elapsed() < RETRY_AFTER_FAILURE
        {
            return Err(SignError::Credentials(why.clone()));
        }
        let provider = self
            .inner
            .provider
            // Boxed: loading the chain is a large future, run once.
            .get_or_init(|| Box::pin(default_chain()))
            .await
            .clone()
            .ok_or_else(|| SignError::Credentials("the AWS credential chain is empty".into()))?;
        let fetched = match provider.provide_credentials().await {
            Ok(fetched) => fetched,
            Err(e) => {
                let why = error_chain(&e);
                current.failed = Some((Instant::now(), why.clone()));
                return Err(SignError::Credentials(why));
            }
        };
        tracing::debug!(
            access_key_id = fetched.access_key_id(),
            expires = ?fetched.expiry(),
            "AWS credentials fetched"
        );
        current.credentials = Some(fetched.clone());
        current.failed = None;
        Ok(fetched)
    }
}

/// Whether credentials can still be used at `now`: they never expire, or not within
/// [`REFRESH_BEFORE_EXPIRY`].
fn fresh(credentials: &Credentials, now: SystemTime) -> bool {
    credentials
        .expiry()
        .is_none_or(|expiry| expiry > now + REFRESH_BEFORE_EXPIRY)
}

/// The SDK's default credential chain, with an HTTPS client on rustls and ring.
async fn default_chain() -> Option<SharedCredentialsProvider> {
    let https = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(https)
        .load()
        .await
        .credentials_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(expiry: Option<SystemTime>) -> Credentials {
        Credentials::new("AKIDEXAMPLE", "secret", None, expiry, "test")
    }

    #[test]
    fn credentials_are_fetched_again_five_minutes_before_they_expire() {
        let now = SystemTime::now();
        assert!(fresh(&credentials(None), now));
        assert!(fresh(
            &credentials(Some(now + Duration::from_secs(3600))),
            now
        ));
        assert!(!fresh(
            &credentials(Some(now + Duration::from_secs(299))),
            now
        ));
        assert!(!fresh(
            &credentials(Some(now - Duration::from_secs(1))),
            now
        ));
    }

    /// A chain that never has credentials, counting how often it is asked.
    #[derive(Debug, Default)]
    struct Empty(Arc<std::sync::atomic::AtomicUsize>);

    impl ProvideCredentials for Empty {
        fn provide_credentials<'a>(
            &'a self,
        ) -> aws_credential_types::provider::future::ProvideCredentials<'a>
        where
            Self: 'a,
        {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            aws_credential_types::provider::future::ProvideCredentials::ready(Err(
                aws_credential_types::provider::error::CredentialsError::not_loaded("no keys"),
            ))
        }
    }

    #[tokio::test]
    async fn a_chain_without_credentials_is_not_walked_again_for_every_call() {
        let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let signer = AwsSigner::with_provider(SharedCredentialsProvider::new(Empty(asked.clone())));
        for _ in 0..3 {
            assert!(matches!(
                signer.credentials().await,
                Err(SignError::Credentials(_))
            ));
        }
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_signed_request_carries_the_signature_and_the_session_token() {
        let signer = AwsSigner::with_provider(SharedCredentialsProvider::new(Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            Some("session-token".into()),
            None,
            "test",
        )));
        let mut request = Request::post(
            "http://127.0.0.1:9001/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A123456789012%3Afunction%3Ahello/invocations",
        )
        .header("content-type", "application/json")
        .body(())
        .unwrap();
        signer
            .sign(&mut request, b"{}", "lambda", "us-east-1")
            .await
            .unwrap();
        let headers = request.headers();
        assert_eq!(headers["host"], "127.0.0.1:9001");
        assert_eq!(headers["x-amz-security-token"], "session-token");
        let authorization = headers["authorization"].to_str().unwrap();
        assert!(
            authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
            "{authorization}"
        );
        assert!(authorization.contains("/us-east-1/lambda/aws4_request"));
        assert!(
            authorization
                .contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token")
        );
        assert!(headers.contains_key("x-amz-date"));
    }
}
