//! The error that stops the controller, said in one line with what to do: the causes joined,
//! each said once (the Kubernetes client's errors repeat their cause in their own text), and
//! no backtrace.

use std::error::Error;

/// What the controller logs when it stops on `error`: a headline and the causes.
#[derive(Debug, PartialEq, Eq)]
pub struct Fatal {
    /// What went wrong and what to do about it.
    pub headline: String,
    /// The error and its causes, in one line.
    pub causes: String,
}

/// Says `error` for a person: `api_server` is the URL the client was configured with, if it
/// got that far.
pub fn describe(error: &anyhow::Error, api_server: Option<&str>) -> Fatal {
    let unreachable = error.chain().any(|e| {
        matches!(
            e.downcast_ref::<kube::Error>(),
            Some(kube::Error::Service(_) | kube::Error::HyperError(_))
        )
    });
    let headline = match (unreachable, api_server) {
        (true, Some(url)) => format!(
            "cannot reach the Kubernetes API server at {url}: check that it runs and that \
             KUBECONFIG (outside a cluster) or the pod's network (inside one) leads to it"
        ),
        (true, None) => "cannot reach the Kubernetes API server: check that it runs and that \
                         KUBECONFIG (outside a cluster) or the pod's network (inside one) \
                         leads to it"
            .to_string(),
        (false, _) => "tollgate-controller cannot go on".to_string(),
    };
    Fatal {
        headline,
        causes: one_line(error.chain()),
    }
}

/// The messages of an error chain joined with ": ", leaving out a cause whose text the line
/// already holds.
fn one_line<'a>(chain: impl Iterator<Item = &'a (dyn Error + 'static)>) -> String {
    let mut line = String::new();
    for e in chain {
        let text = e.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error whose text repeats its cause's, as the Kubernetes client's do.
    #[derive(Debug, thiserror::Error)]
    #[error("ServiceError: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = anyhow::Error::new(Repeats(io))
            .context("reading Secret tollgate-system/tollgate-snapshot-ca")
            .context("setting up the snapshot service's TLS");
        assert_eq!(
            describe(&error, None).causes,
            "setting up the snapshot service's TLS: reading Secret \
             tollgate-system/tollgate-snapshot-ca: ServiceError: connection refused"
        );
    }

    #[test]
    fn an_unreachable_api_server_is_named_with_what_to_do() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let error = anyhow::Error::new(kube::Error::Service(Box::new(io))).context("reading");
        let fatal = describe(&error, Some("https://127.0.0.1:6443/"));
        assert!(
            fatal.headline.starts_with(
                "cannot reach the Kubernetes API server at https://127.0.0.1:6443/: check"
            ),
            "{}",
            fatal.headline
        );
        assert!(fatal.headline.contains("KUBECONFIG"), "{}", fatal.headline);
        assert_eq!(fatal.causes, "reading: ServiceError: connection refused");
    }

    #[test]
    fn another_error_is_said_as_it_is() {
        let error = anyhow::anyhow!("listening on 0.0.0.0:9443: address in use");
        let fatal = describe(&error, None);
        assert_eq!(fatal.headline, "tollgate-controller cannot go on");
        assert_eq!(fatal.causes, "listening on 0.0.0.0:9443: address in use");
    }
}
