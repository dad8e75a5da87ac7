use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use clap::{CommandFactory, Parser};
use tokio::net::TcpListener;
use tollgate_proxy::access_log::{AccessLog, FileSettings};
use tollgate_proxy::admin::{self, ConfigReport};
use tollgate_proxy::args::{AccessLogTarget, Args, LogFormat, Mode};
use tollgate_proxy::auth::AuthState;
use tollgate_proxy::connections;
use tollgate_proxy::dispatch::Dispatch;
use tollgate_proxy::fleet::Fleet;
use tollgate_proxy::metrics::Metrics;
use tollgate_proxy::request_body::{BodyBudget, BodyLimits};
use tollgate_proxy::request_trace::Tracers;
use tollgate_proxy::server::{self, Listeners, ServerOptions, TlsListener};
use tollgate_proxy::standalone::Standalone;
use tollgate_proxy::state::Shared;
use tollgate_proxy::throttle::Limiter;
use tollgate_proxy::tls::DefaultCertificate;
use tollgate_proxy::upstream::Upstream;

fn main() -> ExitCode {
    let args = Args::parse();
    let mode = args.mode().unwrap_or_else(|e| {
        Args::command()
            .error(clap::error::ErrorKind::ArgumentConflict, e)
            .exit()
    });
    if let Err(e) = init_logs(&args) {
        eprintln!("tollgate-proxy: {e:#}");
        return ExitCode::FAILURE;
    }
    match start(args, mode) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, in the log's format: the causes joined, no backtrace.
            tracing::error!(error = %format!("{e:#}"), "tollgate-proxy cannot start");
            ExitCode::FAILURE
        }
    }
}

fn start(args: Args, mode: Mode) -> anyhow::Result<()> {
    // One worker: a current-thread runtime, which never hands tasks between threads.
    let mut runtime = match args.worker_threads {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n.max(1));
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    runtime
        .enable_all()
        .build()
        .context("starting the runtime")?
        .block_on(run(args, mode))
}

async fn run(args: Args, mode: Mode) -> anyhow::Result<()> {
    let fd_limit = connections::raise_fd_limit();
    let max_connections = match args.max_connections {
        Some(n) => usize::try_from(n).unwrap_or(usize::MAX),
        None => connections::default_max_connections(fd_limit),
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let admin_listener = TcpListener::bind(args.admin_listen)
        .await
        .with_context(|| format!("listening on {}", args.admin_listen))?;
    let metrics = Metrics::new();
    let tls = match args.tls_listen {
        None => None,
        Some(addr) => Some(TlsListener {
            listener: TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr}"))?,
            default_certificate: default_certificate(&args, &metrics)?,
        }),
    };

    let access_log = match args.access_log {
        AccessLogTarget::Stdout => AccessLog::stdout(metrics.access_log_dropped.clone()),
        AccessLogTarget::File => {
            let path = args
                .access_log_file
                .clone()
                .context("--access-log file needs --access-log-file PATH")?;
            let settings = FileSettings {
                path,
                max_bytes: args.access_log_max_bytes,
                max_files: args.access_log_max_files,
            };
            AccessLog::file(settings.clone(), metrics.access_log_dropped.clone())
                .with_context(|| format!("opening the access log {}", settings.path.display()))?
        }
        AccessLogTarget::Off => AccessLog::off(metrics.access_log_dropped.clone()),
    };
    let tracers =
        Tracers::new(args.otlp_endpoint(), metrics.trace_counters()).context("--otlp-endpoint")?;
    let body_limits = BodyLimits {
        read_timeout: Duration::from_secs(args.body_read_timeout_seconds),
        budget: BodyBudget::new(
            args.max_buffered_body_bytes,
            metrics.buffered_body_bytes.clone(),
            metrics.body_budget_refusals.clone(),
        ),
    };
    let shared = Arc::new(Shared {
        dispatch: ArcSwap::from_pointee(Dispatch::default()),
        client: Upstream::build(args.upstream_ca_file.as_deref(), metrics.upstream())?,
        metrics,
        access_log,
        fleet_size: AtomicU32::new(args.fleet_size),
        auth: AuthState::default(),
        limiter: Limiter::default(),
        https_port: tls.as_ref().map(|_| args.https_port),
        body_limits,
        websocket_idle_timeout: Duration::from_secs(args.websocket_idle_timeout_seconds),
        managed: Default::default(),
        tracers,
    });
    let report = Arc::new(ArcSwap::from_pointee(ConfigReport::default()));

    let mut usage_reporter = None;
    let source = match mode {
        Mode::Standalone { config } => {
            let source = config.display().to_string();
            // The first load must succeed: with nothing loaded there is nothing to keep serving.
            let standalone = Standalone::new(
                config,
                args.base_domain.clone(),
                shared.clone(),
                report.clone(),
            )
            .start()
            .await?;
            tokio::spawn(async move {
                if let Err(e) = standalone.run().await {
                    tracing::error!(error = %format!("{e:#}"), "standalone mode stopped watching its files");
                }
            });
            source
        }
        Mode::Fleet(fleet) => {
            let source = fleet.controller.clone();
            let gateway = fleet.gateway.to_string();
            let fleet = Fleet::new(
                fleet,
                args.base_domain.clone(),
                shared.clone(),
                report.clone(),
            )?;
            tracing::info!(gateway = %gateway, proxy_id = %fleet.proxy_id(), "fleet mode");
            let reporter = Arc::new(fleet.usage_reporter());
            let running = reporter.clone();
            tokio::spawn(async move { running.run().await });
            usage_reporter = Some(reporter);
            tokio::spawn(fleet.run());
            source
        }
    };
    tokio::spawn(admin::serve(admin_listener, shared.clone(), report));

    tracing::info!(
        listen = %args.listen,
        tls_listen = ?args.tls_listen,
        admin = %args.admin_listen,
        source = %source,
        max_connections,
        open_files_limit = ?fd_limit,
        "tollgate-proxy serving"
    );
    let options = ServerOptions {
        header_read_timeout: Duration::from_secs(args.header_read_timeout_seconds),
        drain: Duration::from_secs(args.drain_seconds),
        max_connections,
        shutdown_delay: Duration::from_secs(args.shutdown_delay_seconds),
    };
    let listeners = Listeners {
        plain: listener,
        tls,
    };
    server::serve(listeners, shared.clone(), options, shutdown_signal()).await;
    // The counts of the last seconds, before the process goes.
    let _ = tokio::time::timeout(Duration::from_secs(5), shared.limiter.flush()).await;
    if let Some(reporter) = usage_reporter {
        let _ = tokio::time::timeout(Duration::from_secs(5), reporter.report()).await;
    }
    // Requests answered during the drain are logged before the process exits.
    let _ = tokio::time::timeout(Duration::from_secs(5), shared.access_log.flush()).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), shared.tracers.flush()).await;
    Ok(())
}

/// The default certificate, loaded now (a bad file stops the start) and watched for changes.
fn default_certificate(
    args: &Args,
    metrics: &Metrics,
) -> anyhow::Result<Option<Arc<DefaultCertificate>>> {
    let (Some(certificate), Some(key)) = (&args.tls_default_certificate, &args.tls_default_key)
    else {
        return Ok(None);
    };
    let loaded =
        DefaultCertificate::load(certificate, key, metrics.default_certificate_expiry.clone())?;
    tokio::spawn(loaded.clone().watch());
    Ok(Some(loaded))
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("interrupt received"),
    }
}

fn init_logs(args: &Args) -> anyhow::Result<()> {
    // rustls and h2 warn about what clients send (an IP address as SNI, a stray PING ack),
    // once per connection: a client could flood the log. Quiet unless the filter names them.
    let mut directives = args.log_level.clone();
    for noisy in ["rustls", "h2"] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}=error"));
        }
    }
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .with_context(|| format!("log level {:?}", args.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Request and phase spans (debug, trace) say when they close and how long they took.
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match args.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}
