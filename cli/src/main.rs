//! `tollgate`: tools for Tollgate's users, beside the controller and the proxy.
//!
//!   tollgate import FILE   an Amazon API Gateway export (OpenAPI 3.x or Swagger 2.0, YAML or
//!                          JSON) as ApiGateway and Route YAML on standard output, for
//!                          `kubectl apply -f -` or a standalone proxy's folder; what it cannot
//!                          carry over is listed on standard error, with JSON pointers.
//!   tollgate export PATH…  the resources in YAML files (or folders of them) as the OpenAPI
//!                          3.0 document Amazon exports, on standard output; what it cannot
//!                          say is listed on standard error.
//!   tollgate export --cluster [--namespace NS]
//!                          the same, from the resources in the current kubeconfig's cluster.
//!   tollgate usage NS/PLAN --start-date D --end-date D [--key-id K]
//!                          a usage plan's requests per key and day (Amazon's GetUsage) from
//!                          the controller, with the kubeconfig's credentials.

mod cluster;
mod export;
mod import;
mod usage;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "tollgate",
    about = "Tools for Tollgate: Amazon API Gateway on Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Writes the resources an Amazon API Gateway export (OpenAPI 3.x, Swagger 2.0) describes.
    Import {
        /// The exported definition, YAML or JSON.
        file: PathBuf,
        /// The ApiGateway's name (default: the document's title).
        #[arg(long)]
        name: Option<String>,
        /// The namespace of every resource.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// An Invoke API endpoint (such as the Lambda Runtime Interface Emulator's) to run the
        /// functions on under their names; without it, each function is AWS Lambda's, named by
        /// its ARN and called with signed requests.
        #[arg(long)]
        lambda_endpoint: Option<String>,
        /// A VPC link's replacement: `ID=SERVICE:PORT` sends integrations through VPC link ID to
        /// that Service in the namespace (repeatable).
        #[arg(long = "vpc-link", value_parser = parse_vpc_link)]
        vpc_links: Vec<(String, (String, u16))>,
        /// A stage variable's value, `NAME=VALUE`, for integrations that read it (an export
        /// carries none; repeatable).
        #[arg(long = "stage-variable", value_parser = parse_stage_variable)]
        stage_variables: Vec<(String, String)>,
        /// Fail (exit 1) when anything cannot be carried over, instead of only listing it.
        #[arg(long)]
        strict: bool,
    },
    /// Writes one gateway's stage as the OpenAPI 3.0 document Amazon API Gateway exports.
    Export {
        /// YAML files, or folders of them, as standalone mode reads them.
        #[arg(required_unless_present = "cluster", conflicts_with = "cluster")]
        paths: Vec<PathBuf>,
        /// Read the resources from the cluster of the current kubeconfig context instead.
        #[arg(long)]
        cluster: bool,
        /// With --cluster: the namespace to read (default: every namespace).
        #[arg(long, requires = "cluster")]
        namespace: Option<String>,
        /// `namespace/name` of the gateway (needed when the files hold several).
        #[arg(long)]
        gateway: Option<String>,
        /// The stage (default: the gateway's first).
        #[arg(long)]
        stage: Option<String>,
        /// The AWS region exported Lambda ARNs name.
        #[arg(long, default_value = "us-east-1")]
        region: String,
        /// The AWS account exported Lambda ARNs name.
        #[arg(long, default_value = "000000000000")]
        account: String,
    },
    /// Prints a usage plan's requests per API key and UTC day, as Amazon's GetUsage, from
    /// the controller's usage API, asked with the kubeconfig's credentials (RBAC: get on the
    /// UsagePlan).
    Usage {
        /// `namespace/name` of the UsagePlan.
        plan: String,
        /// The first day, YYYY-MM-DD (UTC).
        #[arg(long)]
        start_date: String,
        /// The last day, YYYY-MM-DD (UTC), at most 90 days after the first.
        #[arg(long)]
        end_date: String,
        /// Only this API key (its Secret's name).
        #[arg(long)]
        key_id: Option<String>,
        /// The controller's snapshot service (for instance through `kubectl -n
        /// tollgate-system port-forward svc/tollgate-controller 9443`).
        #[arg(long, default_value = "https://localhost:9443")]
        controller: String,
        /// The snapshot CA (PEM); default: read from the Secret tollgate-snapshot-ca.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// The controller's namespace, where that Secret is.
        #[arg(long, default_value = "tollgate-system")]
        controller_namespace: String,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Import {
            file,
            name,
            namespace,
            lambda_endpoint,
            vpc_links,
            stage_variables,
            strict,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            // YAML is a superset of JSON: one parser reads both.
            let doc: serde_json::Value = serde_yaml::from_str(&text)
                .with_context(|| format!("{} is not YAML or JSON", file.display()))?;
            let options = import::Options {
                name,
                namespace,
                lambda_endpoint,
                vpc_links: vpc_links.into_iter().collect(),
                stage_variables: stage_variables.into_iter().collect(),
            };
            let imported = import::import(&doc, &options)
                .with_context(|| format!("importing {}", file.display()))?;
            let mut out = String::new();
            for resource in &imported.resources {
                out.push_str("---\n");
                out.push_str(&serde_yaml::to_string(resource)?);
            }
            print!("{out}");
            for left in &imported.report {
                eprintln!("not carried over: {}: {}", left.pointer, left.why);
            }
            if strict && !imported.report.is_empty() {
                anyhow::bail!(
                    "{} construct(s) not carried over (--strict)",
                    imported.report.len()
                );
            }
            Ok(())
        }
        Command::Usage {
            plan,
            start_date,
            end_date,
            key_id,
            controller,
            ca_file,
            controller_namespace,
        } => {
            let request = usage::Request {
                plan: &plan,
                start_date: &start_date,
                end_date: &end_date,
                key_id: key_id.as_deref(),
                controller: &controller,
                ca_file: ca_file.as_deref(),
                controller_namespace: &controller_namespace,
            };
            let answer = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(usage::usage(&request))?;
            println!("{answer}");
            Ok(())
        }
        Command::Export {
            paths,
            cluster,
            namespace,
            gateway,
            stage,
            region,
            account,
        } => {
            let resources = if cluster {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(cluster::resources(namespace.as_deref()))?
            } else {
                let mut resources = tollgate_crds::compile::Resources::default();
                for file in yaml_files(&paths)? {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    tollgate_crds::load::load_str(
                        &text,
                        &file.display().to_string(),
                        &mut resources,
                    )?;
                }
                resources
            };
            let compiled = tollgate_crds::compile::compile(&resources);
            let table = match &gateway {
                Some(key) => compiled
                    .tables
                    .iter()
                    .find(|(k, _)| k.to_string() == *key)
                    .map(|(_, t)| t)
                    .with_context(|| format!("no servable ApiGateway {key} in the files"))?,
                None => match compiled.tables.values().collect::<Vec<_>>().as_slice() {
                    [one] => *one,
                    [] => anyhow::bail!("no servable ApiGateway in the files"),
                    _ => anyhow::bail!("the files hold several gateways: name one with --gateway"),
                },
            };
            let options = export::Options { region, account };
            let exported = export::export(&resources, &compiled, table, stage.as_deref(), &options)
                .map_err(anyhow::Error::msg)?;
            print!("{}", serde_yaml::to_string(&exported.document)?);
            for left in &exported.report {
                eprintln!("not exported: {left}");
            }
            Ok(())
        }
    }
}

/// The `.yaml` and `.yml` files of `paths` (folders read recursively), sorted.
fn yaml_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending: Vec<PathBuf> = paths.to_vec();
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in
                std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))?
            {
                pending.push(entry?.path());
            }
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml")
            || paths.contains(&path)
        {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// `ID=SERVICE:PORT`.
fn parse_vpc_link(text: &str) -> Result<(String, (String, u16)), String> {
    let (id, target) = text
        .split_once('=')
        .ok_or("write ID=SERVICE:PORT, such as abc123=orders:8080")?;
    let (service, port) = target
        .rsplit_once(':')
        .ok_or("write ID=SERVICE:PORT, such as abc123=orders:8080")?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{port:?} is not a port"))?;
    if id.is_empty() || service.is_empty() {
        return Err("write ID=SERVICE:PORT, such as abc123=orders:8080".into());
    }
    Ok((id.to_string(), (service.to_string(), port)))
}

/// `NAME=VALUE`.
fn parse_stage_variable(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((name, value))
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') =>
        {
            Ok((name.to_string(), value.to_string()))
        }
        _ => Err("write NAME=VALUE, such as host=orders.shop.svc:8080".into()),
    }
}
