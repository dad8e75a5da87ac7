//! Where a Lambda function is called: its Invoke API URL, and the AWS region its calls are
//! signed for (none for an unsigned endpoint such as the Runtime Interface Emulator).

use super::validate;
use crate::resources::LambdaFunction;

/// A function as the table gives it to the proxy.
#[derive(Debug, PartialEq)]
pub(super) struct LambdaTarget {
    pub invoke_url: String,
    /// Set: calls are signed with SigV4 for this region.
    pub region: Option<String>,
}

/// The function's target, or the sub-field at fault (`.endpoint`, `.functionName`,
/// `.region`) and why.
pub(super) fn target(f: &LambdaFunction) -> Result<LambdaTarget, (&'static str, String)> {
    let arn = parse_arn(&f.function_name);
    if f.function_name.starts_with("arn:") && arn.is_none() {
        return Err((
            ".functionName",
            format!(
                "{:?} is not a Lambda function ARN (arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER])",
                f.function_name
            ),
        ));
    }
    let name = arn.as_ref().map_or(f.function_name.as_str(), |a| a.name);
    validate::name_token("function name", name.split(':').next().unwrap_or(""))
        .map_err(|e| (".functionName", e))?;
    let region = match (&f.region, &arn) {
        (Some(region), Some(arn)) if region != arn.region => {
            return Err((
                ".region",
                format!(
                    "region {region} is not the ARN's ({}): remove region, or correct it",
                    arn.region
                ),
            ));
        }
        (Some(region), _) => Some(region.clone()),
        (None, Some(arn)) => Some(arn.region.to_string()),
        (None, None) => None,
    };
    let endpoint = match (&f.endpoint, &region) {
        (Some(endpoint), _) => {
            validate::http_url(endpoint).map_err(|e| (".endpoint", e))?;
            endpoint.trim_end_matches('/').to_string()
        }
        (None, Some(region)) => aws_endpoint(region, arn.as_ref().map(|a| a.partition)),
        (None, None) => {
            return Err((
                ".endpoint",
                "say where the function runs: endpoint (an Invoke API such as the emulator), region (AWS Lambda), or a function ARN".into(),
            ));
        }
    };
    // AWS takes the function as one path segment, ':' percent-encoded (as the SDKs send it);
    // the emulator, and endpoints written before signing existed, get it as written.
    let segment = if region.is_some() {
        f.function_name.replace(':', "%3A")
    } else {
        f.function_name.clone()
    };
    Ok(LambdaTarget {
        invoke_url: format!("{endpoint}/2015-03-31/functions/{segment}/invocations"),
        region,
    })
}

struct Arn<'a> {
    partition: &'a str,
    region: &'a str,
    /// `name` or `name:qualifier`.
    name: &'a str,
}

/// `arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`.
fn parse_arn(text: &str) -> Option<Arn<'_>> {
    let mut parts = text.splitn(7, ':');
    let (
        Some("arn"),
        Some(partition),
        Some("lambda"),
        Some(region),
        Some(account),
        Some("function"),
        Some(name),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return None;
    };
    let valid = partition.starts_with("aws")
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty();
    valid.then_some(Arn {
        partition,
        region,
        name,
    })
}

/// AWS Lambda's Invoke API in a region (China's partition has its own domain).
fn aws_endpoint(region: &str, partition: Option<&str>) -> String {
    let china = partition == Some("aws-cn") || region.starts_with("cn-");
    let domain = if china {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://lambda.{region}.{domain}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn function(endpoint: Option<&str>, name: &str, region: Option<&str>) -> LambdaFunction {
        LambdaFunction {
            endpoint: endpoint.map(str::to_string),
            function_name: name.into(),
            region: region.map(str::to_string),
        }
    }

    #[test]
    fn the_emulator_is_called_unsigned_as_before() {
        let t = target(&function(
            Some("http://127.0.0.1:9001/"),
            "hello:live",
            None,
        ))
        .unwrap();
        assert_eq!(
            t,
            LambdaTarget {
                invoke_url: "http://127.0.0.1:9001/2015-03-31/functions/hello:live/invocations"
                    .into(),
                region: None,
            }
        );
    }

    #[test]
    fn a_region_or_an_arn_means_aws_lambda_signed() {
        let by_region = target(&function(None, "orders", Some("eu-west-1"))).unwrap();
        assert_eq!(
            by_region.invoke_url,
            "https://lambda.eu-west-1.amazonaws.com/2015-03-31/functions/orders/invocations"
        );
        assert_eq!(by_region.region.as_deref(), Some("eu-west-1"));

        let arn = "arn:aws:lambda:us-east-2:123456789012:function:orders:live";
        let by_arn = target(&function(None, arn, None)).unwrap();
        assert_eq!(
            by_arn.invoke_url,
            "https://lambda.us-east-2.amazonaws.com/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-2%3A123456789012%3Afunction%3Aorders%3Alive/invocations"
        );
        assert_eq!(by_arn.region.as_deref(), Some("us-east-2"));

        // An endpoint override (a local verifier, LocalStack) keeps the signing.
        let local = target(&function(Some("http://127.0.0.1:4566"), arn, None)).unwrap();
        assert!(
            local
                .invoke_url
                .starts_with("http://127.0.0.1:4566/2015-03-31/functions/arn%3A")
        );
        assert_eq!(local.region.as_deref(), Some("us-east-2"));

        let china = target(&function(None, "orders", Some("cn-north-1"))).unwrap();
        assert!(
            china
                .invoke_url
                .starts_with("https://lambda.cn-north-1.amazonaws.com.cn/")
        );
    }

    #[test]
    fn what_is_wrong_is_named() {
        let cases = [
            (function(None, "orders", None), ".endpoint"),
            (
                function(None, "arn:aws:lambda:us-east-1:12:function:x", None),
                ".functionName",
            ),
            (
                function(
                    None,
                    "arn:aws:lambda:us-east-1:123456789012:function:x",
                    Some("eu-west-1"),
                ),
                ".region",
            ),
            (function(Some("ftp://x"), "orders", None), ".endpoint"),
        ];
        for (f, field) in cases {
            assert_eq!(target(&f).unwrap_err().0, field, "{f:?}");
        }
    }
}
