//! `tollgate-controller`: watches ApiGateway, Route and UsagePlan resources with the Secrets
//! and Services they name, compiles them on every change, and reports each resource's status.
//!
//! Modules: [`args`] (command line), [`index`] (watchers and the objects they hold),
//! [`status`] (desired status, pure), [`publish`] (status writes and events), [`run`] (the
//! debounced watch -> compile -> publish loop).

mod args;
mod index;
mod publish;
mod run;
mod status;

use anyhow::Context as _;
use clap::Parser as _;

use crate::args::{Args, LogFormat};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_logs(&args)?;
    let client = kube::Client::try_default()
        .await
        .context("connecting to the Kubernetes API server (KUBECONFIG, then in-cluster)")?;
    tracing::info!(base_domain = %args.base_domain, "tollgate-controller starting");

    let (index, watchers) = index::Index::start(&client);
    let publisher = publish::Publisher::new(client, args.base_domain.clone());
    tokio::select! {
        () = watchers => anyhow::bail!("the watchers stopped"),
        () = run::run(index, publisher) => anyhow::bail!("the control loop stopped"),
        signal = shutdown() => {
            signal?;
            tracing::info!("shutting down");
            Ok(())
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("listening for SIGTERM")?;
    tokio::select! {
        _ = term.recv() => {}
        result = tokio::signal::ctrl_c() => result.context("listening for SIGINT")?,
    }
    Ok(())
}

fn init_logs(args: &Args) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("log level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
