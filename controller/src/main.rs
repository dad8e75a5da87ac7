//! `tollgate-controller`: watches ApiGateway, Route and UsagePlan resources with the Secrets
//! and Services they name, compiles them on every change, and reports each resource's status.
//!
//! Modules: [`args`] (command line), [`index`] (watchers and the objects they hold),
//! [`status`] (desired status, pure), [`publish`] (status writes and events), [`run`] (the
//! debounced watch -> compile -> publish loop), [`snapshot`] (each gateway's table and fleet,
//! the proxies' HTTPS endpoints, token reviews), [`tls`] (the snapshot service's certificate),
//! [`leader`] (the Lease: only the leader writes, every replica serves snapshots), [`metrics`]
//! (Prometheus metrics, `/healthz`, `/readyz`), [`replicas`] (fleet counts across replicas),
//! [`fatal`] (the error that stops it, in one line), [`usage`] (usage reports: proxies'
//! counts, Redis's, the `GetUsage` API and `status.usage`).

mod args;
mod fatal;
mod fleet;
mod index;
mod leader;
mod metrics;
mod publish;
mod replicas;
mod run;
mod snapshot;
mod status;
mod tls;
mod trace;
mod usage;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;

use crate::args::{Args, LogFormat};

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = init_logs(&args) {
        eprintln!("tollgate-controller: {e:#}");
        return ExitCode::FAILURE;
    }
    let config = match kube::Config::infer().await {
        Ok(config) => config,
        Err(e) => {
            tracing::error!(
                error = %e,
                "no Kubernetes client configuration: set KUBECONFIG, or run in a pod"
            );
            return ExitCode::FAILURE;
        }
    };
    let api_server = config.cluster_url.to_string();
    match run(args, config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let fatal = fatal::describe(&e, Some(&api_server));
            tracing::error!(error = %fatal.causes, "{}", fatal.headline);
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args, config: kube::Config) -> anyhow::Result<()> {
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    tracing::info!(base_domain = %args.base_domain, "tollgate-controller starting");

    let (tls, renewal) = tls::server_config(
        &client,
        args.tls_cert_file.as_deref(),
        args.tls_key_file.as_deref(),
        &args.namespace,
        &args.snapshot_dns_names(),
    )
    .await
    .context("setting up the snapshot service's TLS")?;
    tokio::spawn(renewal.run());
    let listener = tokio::net::TcpListener::bind(args.snapshot_listen)
        .await
        .with_context(|| format!("listening on {} (--snapshot-listen)", args.snapshot_listen))?;
    tracing::info!(listen = %args.snapshot_listen, "snapshot service listening");

    let metrics = Arc::new(metrics::Metrics::new());
    let metrics_listener = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .with_context(|| format!("listening on {} (--metrics-listen)", args.metrics_listen))?;
    tracing::info!(listen = %args.metrics_listen, "metrics endpoint listening");

    let (index, watchers) = index::Index::start(&client);
    let identity = leader::identity();
    let (elector, leadership) = leader::Elector::new(
        client.clone(),
        &args.namespace,
        identity.clone(),
        leader::Timing::new(args.lease_duration_seconds),
        metrics.clone(),
    );
    let ready = index.clone();
    let metrics_server = metrics::serve(
        metrics_listener,
        metrics.clone(),
        Arc::new(move || ready.is_ready()),
    );
    let poke = index.clone();
    let on_leading = poke_on_leading(leadership.clone(), index.clone());
    let fleet_changed = Arc::new(tokio::sync::Notify::new());
    let local_change = fleet_changed.clone();
    let snapshots = snapshot::Snapshots::with_metrics(metrics.clone(), move || {
        poke.poke();
        local_change.notify_one();
    });
    let lease_duration = leader::Timing::new(args.lease_duration_seconds).duration;
    let reporter = replicas::Reporter::new(
        client.clone(),
        &args.namespace,
        &identity,
        snapshots.clone(),
        fleet_changed,
        lease_duration,
    );
    let others = replicas::Others::new(&identity, lease_duration);
    let others_poke = index.clone();
    let others_watch = others
        .clone()
        .watch(client.clone(), &args.namespace, move || others_poke.poke());
    let usage = usage::Usage::new();
    let service = Arc::new(snapshot::server::Service {
        snapshots: snapshots.clone(),
        auth: snapshot::auth::Authenticator::new(client.clone()),
        usage: usage.clone(),
        index: index.clone(),
    });
    let usage_status = usage::status::StatusWriter {
        client: client.clone(),
        usage,
        index: index.clone(),
        snapshots: snapshots.clone(),
        leadership: leadership.clone(),
        every: std::time::Duration::from_secs(args.usage_status_interval_seconds),
    };
    if args.tls_cert_file.is_some() && args.tls_ca_file.is_none() {
        tracing::warn!(
            "--tls-cert-file without --tls-ca-file: proxies trust the certificate itself and \
             stop reconnecting when it is renewed"
        );
    }
    let trusted = args
        .tls_ca_file
        .as_deref()
        .or(args.tls_cert_file.as_deref());
    let proxy_ca = tls::proxy_ca_pem(&client, trusted, &args.namespace)
        .await
        .context("reading the CA proxies trust")?;
    let fleet = fleet::Fleet::new(
        client.clone(),
        fleet::desired::Settings {
            proxy_image: args.proxy_image.clone(),
            controller_namespace: args.namespace.clone(),
            ca_pem: proxy_ca,
            otlp: args.otlp_endpoint(),
        },
        index.clone(),
    );
    let tracer = trace::Tracer::start(args.otlp_endpoint(), metrics.trace_counters())
        .context("--otlp-endpoint")?;
    let publisher = publish::Publisher::new(
        client.clone(),
        args.base_domain.clone(),
        leadership.clone(),
        metrics.clone(),
    );
    let control = run::ControlLoop {
        index,
        publisher,
        snapshots,
        leadership,
        metrics,
        fleet,
        others,
        tracer,
    };
    tokio::select! {
        () = watchers => anyhow::bail!("the watchers stopped"),
        () = run::run(control) => anyhow::bail!("the control loop stopped"),
        () = reporter.run() => anyhow::bail!("the fleet counts writer stopped"),
        () = others_watch => anyhow::bail!("the fleet counts watch stopped"),
        () = elector.run() => anyhow::bail!("leader election stopped"),
        () = on_leading => anyhow::bail!("the leadership watch stopped"),
        () = usage_status.run() => anyhow::bail!("the usage status writer stopped"),
        () = metrics_server => anyhow::bail!("the metrics endpoint stopped"),
        () = snapshot::server::serve(listener, tls, service) => anyhow::bail!("the snapshot service stopped"),
        signal = shutdown() => {
            signal?;
            tracing::info!("shutting down");
            // Writes stopped with the control loop: hand the Lease over at once.
            leader::release(client.clone(), &args.namespace, &identity).await;
            replicas::delete(client, &args.namespace, &identity).await;
            Ok(())
        }
    }
}

/// Asks for a full pass each time this replica becomes leader, so statuses catch up with
/// what changed while another replica (or none) was writing.
async fn poke_on_leading(leadership: leader::Leadership, index: Arc<index::Index>) {
    let mut rx = leadership.watch();
    while rx.changed().await.is_ok() {
        if *rx.borrow_and_update() {
            index.poke();
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
    // The client logs every failed request at error level, and the controller logs each
    // failure itself, with what it was doing: quiet unless the filter names it.
    let mut directives = args.log_level.clone();
    if !directives.contains("kube_client") {
        directives.push_str(",kube_client::client::builder=off");
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
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
