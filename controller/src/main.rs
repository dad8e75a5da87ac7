//! `tollgate-controller`: watches ApiGateway, Route and UsagePlan resources with the Secrets
//! and Services they name, compiles them on every change, and reports each resource's status.
//!
//! Modules: [`args`] (command line), [`index`] (watchers and the objects they hold),
//! [`status`] (desired status, pure), [`publish`] (status writes and events), [`run`] (the
//! debounced watch -> compile -> publish loop), [`snapshot`] (each gateway's table and fleet,
//! the proxies' HTTPS endpoints, token reviews), [`tls`] (the snapshot service's certificate).

mod args;
mod index;
mod publish;
mod run;
mod snapshot;
mod status;
mod tls;

use std::sync::Arc;

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

    let tls = tls::server_config(
        &client,
        args.tls_cert_file.as_deref(),
        args.tls_key_file.as_deref(),
        &args.namespace,
        &args.snapshot_dns_names(),
    )
    .await
    .context("setting up the snapshot service's TLS")?;
    let listener = tokio::net::TcpListener::bind(args.snapshot_listen)
        .await
        .with_context(|| format!("listening on {} (--snapshot-listen)", args.snapshot_listen))?;
    tracing::info!(listen = %args.snapshot_listen, "snapshot service listening");

    let (index, watchers) = index::Index::start(&client);
    let poke = index.clone();
    let snapshots = snapshot::Snapshots::new(move || poke.poke());
    let service = Arc::new(snapshot::server::Service {
        snapshots: snapshots.clone(),
        auth: snapshot::auth::Authenticator::new(client.clone()),
    });
    let publisher = publish::Publisher::new(client, args.base_domain.clone());
    tokio::select! {
        () = watchers => anyhow::bail!("the watchers stopped"),
        () = run::run(index, publisher, snapshots) => anyhow::bail!("the control loop stopped"),
        () = snapshot::server::serve(listener, tls, service) => anyhow::bail!("the snapshot service stopped"),
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
