//! `tollgate`: tools for Tollgate's users, beside the controller and the proxy.
//!
//!   tollgate import FILE   an Amazon API Gateway export (OpenAPI 3.x or Swagger 2.0, YAML or
//!                          JSON) as ApiGateway and Route YAML on standard output, for
//!                          `kubectl apply -f -` or a standalone proxy's folder; what it cannot
//!                          carry over is listed on standard error, with JSON pointers.

mod import;

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
        /// The Lambda Invoke API endpoint for aws_proxy integrations.
        #[arg(long, default_value = "http://127.0.0.1:9001")]
        lambda_endpoint: String,
        /// Fail (exit 1) when anything cannot be carried over, instead of only listing it.
        #[arg(long)]
        strict: bool,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Import {
            file,
            name,
            namespace,
            lambda_endpoint,
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
    }
}
