//! Standalone mode: the resources come from YAML files instead of a cluster. The files are
//! compiled with the same compiler as the controller's, served, and watched: a change is
//! recompiled and swapped in atomically. A change that is refused keeps the last good table
//! of each gateway serving, and the reasons are logged as the controller would write them
//! into status conditions, each problem once. The first load must succeed
//! ([`Standalone::start`]): with nothing loaded there are no last good tables to keep, so the
//! process stops. Every load warns about what the files hold that nothing reads (a misspelt
//! field, a kind passed over), as `kubectl apply`'s field validation would.
//!
//! Reload safety:
//! - A file caught mid-write is never served: the folder must be quiet for [`SETTLE`] before a
//!   reload; YAML that does not parse is refused as a whole; and a file that turns blank
//!   (empty, whitespace or comments) while the last load read objects from it is taken as a
//!   rewrite in progress (editors truncate, then write) and re-read for up to
//!   [`BLANK_GRACE`] before its emptiness is believed.
//! - Reading, compiling and building run on a blocking thread, off the async workers, so
//!   requests are served from the current tables while a big reload compiles.
//! - Files have no `creationTimestamp`, so each route and usage plan is ranked by the load that
//!   first read it ([`FirstSeen`]): a route added later never takes a method and path from a
//!   route that was there first. Objects read by the same load fall back to name order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tollgate_crds::compile::{
    Diagnostic, Effect, FirstSeen, Problem, Reason, Resources, RouteConflict, compile,
};
use tollgate_crds::load::{Loaded, Unread, load_str};
use tollgate_crds::table::{GatewayTable, ObjectKey};

use crate::admin::ConfigReport;
use crate::dispatch::ServedGateway;
use crate::install::install;
use crate::state::Shared;

/// How long the files must be quiet before a reload: editors write in several steps.
const SETTLE: Duration = Duration::from_millis(150);
/// A folder that never goes quiet is reloaded after this long anyway.
const SETTLE_AT_MOST: Duration = Duration::from_secs(2);
/// How long a file that turned blank is given to get its content back before the reload
/// believes it was emptied on purpose.
const BLANK_GRACE: Duration = Duration::from_millis(1500);
/// Pause between two reads of a file that turned blank.
const BLANK_POLL: Duration = Duration::from_millis(50);

pub struct Standalone {
    path: PathBuf,
    base_domain: String,
    shared: Arc<Shared>,
    report: Arc<ArcSwap<ConfigReport>>,
    /// The table each gateway is served from: kept when a reload rejects the gateway.
    served: BTreeMap<ObjectKey, GatewayTable>,
    /// What each file held at the last load read: a file that held objects and reads blank
    /// now is probably being rewritten.
    files: BTreeMap<PathBuf, Loaded>,
    /// The load that first read each route and usage plan (loads are numbered from 0).
    first_seen: FirstSeen,
    /// Loads read so far.
    loads: u64,
}

/// The files as one load read them.
struct Read {
    resources: Resources,
    files: BTreeMap<PathBuf, Loaded>,
}

impl Standalone {
    pub fn new(
        path: PathBuf,
        base_domain: String,
        shared: Arc<Shared>,
        report: Arc<ArcSwap<ConfigReport>>,
    ) -> Self {
        Self {
            path,
            base_domain,
            shared,
            report,
            served: BTreeMap::new(),
            files: BTreeMap::new(),
            first_seen: FirstSeen::default(),
            loads: 0,
        }
    }

    /// Starts watching the files, then loads them. A first load that fails is an error: there
    /// are no good tables to keep serving, so the caller stops. Then [`Watching::run`]
    /// reloads on every change.
    pub async fn start(self) -> anyhow::Result<Watching> {
        anyhow::ensure!(
            self.path.exists(),
            "--config {}: no such file or folder",
            self.path.display()
        );
        let (tx, rx) = mpsc::channel::<()>(1);
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if event.is_ok_and(|e| !e.kind.is_access()) {
                    let _ = tx.try_send(());
                }
            })
            .context("starting the file watcher")?;
        // Watch the folder (or a file's folder): editors replace files by renaming.
        let watched = if self.path.is_dir() {
            self.path.clone()
        } else {
            self.path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        watcher
            .watch(&watched, RecursiveMode::Recursive)
            .with_context(|| format!("watching {}", watched.display()))?;
        // Load after the watch starts: a change made meanwhile triggers a reload.
        let standalone = self.reload_off_workers().await?;
        Ok(Watching {
            standalone,
            changes: rx,
            _watcher: watcher,
        })
    }

    /// [`Self::reload`] on tokio's blocking pool: reading and compiling 20,000 routes takes
    /// about a second, during which the async workers go on serving the current tables.
    async fn reload_off_workers(mut self) -> anyhow::Result<Self> {
        let (this, loaded) = tokio::task::spawn_blocking(move || {
            let loaded = self.reload();
            (self, loaded)
        })
        .await
        .context("the reload task failed")?;
        loaded?;
        Ok(this)
    }

    /// Reads, compiles and installs the files; on any refusal the last good tables stay.
    /// Fails only when the files cannot be read and nothing was ever loaded: there are no
    /// last good tables then. Blocks (file reads, the compiler, possibly [`BLANK_GRACE`]):
    /// call it off the async workers.
    pub fn reload(&mut self) -> anyhow::Result<()> {
        let source = self.path.display().to_string();
        tracing::info!(source = %source, "reading the configuration");
        let read = match self.read_settled() {
            Ok(read) => read,
            Err(e) if self.loads == 0 => {
                return Err(e.context(format!("loading the configuration {source}")));
            }
            Err(e) => {
                tracing::error!(source = %source, error = %format!("{e:#}"), "configuration refused; the last good tables keep serving");
                self.shared
                    .metrics
                    .reloads
                    .with_label_values(&["error"])
                    .inc();
                let mut report = (**self.report.load()).clone();
                report.last_error = Some(format!("{e:#}"));
                self.report.store(Arc::new(report));
                return Ok(());
            }
        };
        log_unread(&read.files);
        let mut resources = self.remember(read);
        resources.first_seen = self.first_seen.clone();

        let compile_started = Instant::now();
        let compiled = compile(&resources);
        let compile_ms = compile_started.elapsed().as_secs_f64() * 1000.0;
        log_diagnostics(&compiled.diagnostics);
        log_conflicts(&compiled.conflicts);

        let build_started = Instant::now();
        let next = self.tables_to_serve(&resources, &compiled.tables);
        let (gateways, kept) = self.build(next);
        let build_ms = build_started.elapsed().as_secs_f64() * 1000.0;

        let reports = install(&self.shared, gateways, &self.base_domain);
        let routes: usize = reports.iter().map(|r| r.routes).sum();
        self.served = kept;
        self.shared.metrics.reloads.with_label_values(&["ok"]).inc();
        tracing::info!(
            source = %source,
            gateways = self.served.len(),
            routes,
            conflicts = compiled.conflicts.len(),
            compile_ms = format!("{compile_ms:.1}"),
            build_ms = format!("{build_ms:.1}"),
            "tables loaded"
        );
        self.report.store(Arc::new(ConfigReport {
            source,
            loaded_at: Some(jiff::Timestamp::now().to_string()),
            gateways: reports,
            diagnostics: compiled.diagnostics,
            conflicts: compiled.conflicts,
            last_error: None,
        }));
        Ok(())
    }

    /// Reads the files; while one that held objects at the last load reads blank, reads them
    /// again, for up to [`BLANK_GRACE`]: an editor rewriting a file in place truncates it
    /// first, and serving that instant would drop its routes. A file still blank after that
    /// was emptied on purpose, and is logged as such.
    fn read_settled(&self) -> anyhow::Result<Read> {
        let started = Instant::now();
        loop {
            let read = read_files(&self.path)?;
            let emptied = self.emptied(&read);
            if emptied.is_empty() {
                return Ok(read);
            }
            if started.elapsed() >= BLANK_GRACE {
                for (file, objects) in emptied {
                    tracing::warn!(
                        file = %file.display(),
                        objects_before = objects,
                        waited_ms = started.elapsed().as_millis(),
                        "file stayed empty: its resources are no longer served"
                    );
                }
                return Ok(read);
            }
            if started.elapsed() < BLANK_POLL {
                for (file, objects) in &emptied {
                    tracing::info!(
                        file = %file.display(),
                        objects_before = objects,
                        "file reads empty, probably mid-write: reading it again before serving it"
                    );
                }
            }
            std::thread::sleep(BLANK_POLL);
        }
    }

    /// Files that read blank now and held objects at the last load, with how many.
    fn emptied(&self, read: &Read) -> Vec<(PathBuf, usize)> {
        read.files
            .iter()
            .filter(|(_, now)| **now == Loaded::default())
            .filter_map(|(file, _)| {
                let before = self.files.get(file)?.objects;
                (before > 0).then(|| (file.clone(), before))
            })
            .collect()
    }

    /// Keeps what this load read for the next one: each file's contents, and the load that
    /// first read each route and usage plan (forgotten when it is gone from the files).
    fn remember(&mut self, read: Read) -> Resources {
        let load = self.loads;
        self.loads += 1;
        self.files = read.files;
        let resources = read.resources;
        rank(&mut self.first_seen.routes, resources.routes.keys(), load);
        rank(
            &mut self.first_seen.usage_plans,
            resources.usage_plans.keys(),
            load,
        );
        resources
    }

    /// Each gateway in the files with the table to serve: the new one, else (refused now) its
    /// last good one; a gateway never served and refused now has none.
    fn tables_to_serve(
        &self,
        resources: &Resources,
        compiled: &BTreeMap<ObjectKey, GatewayTable>,
    ) -> BTreeMap<ObjectKey, GatewayTable> {
        let mut next = BTreeMap::new();
        for key in resources.gateways.keys() {
            if let Some(table) = compiled.get(key) {
                next.insert(key.clone(), table.clone());
            } else if let Some(previous) = self.served.get(key) {
                tracing::warn!(gateway = %key, version = %previous.version, "gateway refused; its last good table keeps serving");
                next.insert(key.clone(), previous.clone());
            }
        }
        next
    }

    /// Builds each table to serve; one that cannot be served falls back to its last good one.
    /// Returns the built gateways and the tables they were built from.
    fn build(
        &self,
        next: BTreeMap<ObjectKey, GatewayTable>,
    ) -> (Vec<ServedGateway>, BTreeMap<ObjectKey, GatewayTable>) {
        let mut gateways = Vec::new();
        let mut kept = BTreeMap::new();
        for (key, table) in next {
            match ServedGateway::build(table.clone()) {
                Ok(gw) => {
                    gateways.push(gw);
                    kept.insert(key, table);
                }
                Err(e) => {
                    tracing::error!(gateway = %key, error = %e, "table cannot be served");
                    if let Some(previous) = self.served.get(&key)
                        && let Ok(gw) = ServedGateway::build(previous.clone())
                    {
                        gateways.push(gw);
                        kept.insert(key, previous.clone());
                    }
                }
            }
        }
        (gateways, kept)
    }
}

/// Standalone mode once its files have loaded: reloads them on every change.
pub struct Watching {
    standalone: Standalone,
    changes: mpsc::Receiver<()>,
    /// Kept alive: dropping it stops the change notices.
    _watcher: notify::RecommendedWatcher,
}

impl Watching {
    /// Reloads on every change until the process ends.
    pub async fn run(self) -> anyhow::Result<()> {
        let Watching {
            mut standalone,
            mut changes,
            _watcher,
        } = self;
        while changes.recv().await.is_some() {
            settle(&mut changes).await;
            standalone = standalone.reload_off_workers().await?;
        }
        Ok(())
    }
}

/// Waits until the folder has been quiet for [`SETTLE`] (or [`SETTLE_AT_MOST`] passed), taking
/// the change notices that arrive meanwhile.
async fn settle(rx: &mut mpsc::Receiver<()>) {
    let started = Instant::now();
    loop {
        tokio::time::sleep(SETTLE).await;
        let mut changed = false;
        while rx.try_recv().is_ok() {
            changed = true;
        }
        if !changed || started.elapsed() >= SETTLE_AT_MOST {
            return;
        }
    }
}

/// Gives every key in `present` without a rank the rank `load`, and forgets the ranks of keys
/// no longer present.
fn rank<'a>(
    ranks: &mut BTreeMap<ObjectKey, u64>,
    present: impl Iterator<Item = &'a ObjectKey>,
    load: u64,
) {
    let present: BTreeSet<&ObjectKey> = present.collect();
    ranks.retain(|key, _| present.contains(key));
    for key in present {
        ranks.entry(key.clone()).or_insert(load);
    }
}

/// Every `.yaml` / `.yml` file under `path` (or `path` itself), in name order, with what
/// each held.
fn read_files(path: &Path) -> anyhow::Result<Read> {
    let mut paths = Vec::new();
    collect_files(path, &mut paths).with_context(|| format!("reading {}", path.display()))?;
    paths.sort();
    let mut resources = Resources::default();
    let mut files = BTreeMap::new();
    for file in paths {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        let loaded = load_str(&text, &file.display().to_string(), &mut resources)?;
        files.insert(file, loaded);
    }
    Ok(Read { resources, files })
}

fn collect_files(path: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    if path.is_file() {
        files.push(path.to_path_buf());
        return Ok(());
    }
    for entry in std::fs::read_dir(path)? {
        let entry = entry?.path();
        let hidden = entry
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if entry.is_dir() {
            collect_files(&entry, files)?;
        } else if entry.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(entry);
        }
    }
    Ok(())
}

/// Logs each route conflict, naming both routes: a route that is not served because another
/// holds its method and path (or route key) is a mistake the user must hear about.
fn log_conflicts(conflicts: &[RouteConflict]) {
    for c in conflicts {
        tracing::warn!(
            gateway = %c.gateway,
            stage = %c.stage,
            route_key = %c.route_key,
            served = %c.served,
            refused = %c.refused,
            why = c.precedence.because(),
            "route conflict: Route {} is not served on this stage, Route {} keeps {}",
            c.refused,
            c.served,
            c.route_key
        );
    }
}

/// Logs what the files hold that nothing reads (a misspelt field, a kind passed over), as
/// `kubectl apply`'s field validation warns about it.
fn log_unread(files: &BTreeMap<PathBuf, Loaded>) {
    for (file, loaded) in files {
        for unread in &loaded.unread {
            match unread {
                Unread::UnknownField {
                    document,
                    kind,
                    name,
                    field,
                } => tracing::warn!(
                    file = %file.display(),
                    document,
                    kind = %kind,
                    name = %name,
                    field = %field,
                    "unknown field \"{field}\": it is not read (misspelt?)"
                ),
                Unread::OtherKind {
                    document,
                    api_version,
                    kind,
                } => tracing::warn!(
                    file = %file.display(),
                    document,
                    api_version = %api_version,
                    kind = %kind,
                    "{unread}"
                ),
            }
        }
    }
}

/// Logs each problem of each resource once, with the condition the controller would show it
/// in. Route conflicts are left to [`log_conflicts`], which names both routes.
fn log_diagnostics(diagnostics: &[Diagnostic]) {
    for d in diagnostics {
        for p in d
            .problems
            .iter()
            .filter(|p| p.reason != Reason::RouteConflict)
        {
            let (condition, status) = shown_in(p);
            tracing::warn!(
                kind = ?d.resource.kind,
                resource = %d.resource.key,
                condition,
                status,
                reason = ?p.reason,
                message = %format!("{}: {}", p.field, p.message),
                "resource condition"
            );
        }
    }
}

/// The condition a problem turns (`Accepted` False, `ResolvedRefs` False) or, for a part left
/// out of an accepted resource, the `Accepted` True that lists it.
fn shown_in(p: &Problem) -> (&'static str, &'static str) {
    match p.effect {
        Effect::Rejected => ("Accepted", "False"),
        _ if p.reason.is_unresolved_ref() => ("ResolvedRefs", "False"),
        _ => ("Accepted", "True"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problem(reason: Reason, effect: Effect) -> Problem {
        Problem {
            reason,
            effect,
            field: "spec.x".into(),
            message: "m".into(),
        }
    }

    #[test]
    fn each_problem_is_logged_under_one_condition() {
        // A missing Secret skips a domain: once, under ResolvedRefs (not also as a part left
        // out).
        let skipped = problem(Reason::SecretNotFound, Effect::Skipped);
        assert_eq!(shown_in(&skipped), ("ResolvedRefs", "False"));
        let rejected = problem(Reason::ServiceNotFound, Effect::Rejected);
        assert_eq!(shown_in(&rejected), ("Accepted", "False"));
        let warned = problem(Reason::StageVariableNotFound, Effect::Warned);
        assert_eq!(shown_in(&warned), ("ResolvedRefs", "False"));
        let part = problem(Reason::InvalidSecret, Effect::Skipped);
        assert_eq!(shown_in(&part), ("Accepted", "True"));
    }
}
