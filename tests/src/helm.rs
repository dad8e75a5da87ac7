//! Helm and the chart `charts/tollgate` against a [`ControlPlane`]: the `helm` binary built by
//! `tests/helm/build` (from source on first use, then cached; see `tests/helm/README.md`), run
//! with homes of its own beside it, so no user configuration is read or written; and a
//! kubeconfig holding a ServiceAccount's token ([`service_account_kubeconfig`]), with which
//! [`Controller::start_with_kubeconfig`](crate::controller::Controller::start_with_kubeconfig)
//! runs the controller with exactly the permissions the chart grants.
//!
//! ```no_run
//! use tollgate_tests::control_plane::ControlPlane;
//! use tollgate_tests::helm::Helm;
//!
//! let cp = ControlPlane::shared();
//! let ns = cp.namespace("chart");
//! let helm = Helm::shared();
//! helm.run_ok(cp, &["install", "tollgate", &helm.chart(), "--namespace", ns.name()]);
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use serde_json::json;

use crate::control_plane::{ControlPlane, output_text};

/// The chart's folder in the repository.
pub const CHART: &str = "charts/tollgate";
/// The plain manifest rendered from the chart, for users without Helm.
pub const MANIFEST: &str = "deploy/tollgate.yaml";
/// The release name and namespace `deploy/tollgate.yaml` is rendered for.
pub const MANIFEST_RELEASE: &str = "tollgate";
pub const MANIFEST_NAMESPACE: &str = "tollgate-system";
/// The chart's ServiceAccount, Deployment, Role and snapshot Service.
pub const CONTROLLER_NAME: &str = "tollgate-controller";

/// The `helm` binary with homes of its own.
pub struct Helm {
    binary: PathBuf,
    /// `HELM_CACHE_HOME`, `HELM_CONFIG_HOME` and `HELM_DATA_HOME` live here: `home/` beside the
    /// cached binary. What the tests run (lint, template, install and uninstall of a local
    /// chart) writes nothing there, so runs share it.
    home: PathBuf,
}

impl Helm {
    /// The `helm` shared by every test of this test binary (built on first use).
    pub fn shared() -> &'static Helm {
        static SHARED: OnceLock<Helm> = OnceLock::new();
        SHARED.get_or_init(Helm::build)
    }

    /// Runs `tests/helm/build`.
    pub fn build() -> Helm {
        let binary = crate::built_by("tests/helm/build");
        let home = binary
            .parent()
            .expect("helm lives in a folder of the cache")
            .join("home");
        Helm { binary, home }
    }

    /// The chart's folder (absolute).
    pub fn chart(&self) -> String {
        crate::workspace_root().join(CHART).display().to_string()
    }

    /// `helm` with its homes, no kubeconfig and no `HELM_*` setting from the environment.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("HELM_") {
                cmd.env_remove(name);
            }
        }
        let home = &self.home;
        cmd.env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env_remove("KUBECONFIG")
            .current_dir(crate::workspace_root())
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `helm args...` offline (`template`, `lint`).
    pub fn offline(&self, args: &[&str]) -> Output {
        self.command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running helm: {e}"))
    }

    /// Runs `helm args...` against `cp` (its admin kubeconfig).
    pub fn run(&self, cp: &ControlPlane, args: &[&str]) -> Output {
        self.command()
            .arg("--kubeconfig")
            .arg(cp.kubeconfig_path())
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running helm: {e}"))
    }

    /// [`run`](Self::run), its standard output; panics with both outputs when it fails.
    pub fn run_ok(&self, cp: &ControlPlane, args: &[&str]) -> String {
        succeeded(args, self.run(cp, args))
    }

    /// `helm template {release} charts/tollgate --namespace {namespace} {extra...}`, its
    /// standard output; panics when it fails.
    pub fn template(&self, release: &str, namespace: &str, extra: &[&str]) -> String {
        let chart = self.chart();
        let mut args = vec!["template", release, &chart, "--namespace", namespace];
        args.extend_from_slice(extra);
        let out = self.offline(&args);
        succeeded(&args, out)
    }
}

/// The standard output of `helm {args}`; panics with both outputs when it failed.
fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "helm {} failed:\n{}",
        args.join(" "),
        output_text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What `deploy/tollgate.yaml` must hold: a header, the Namespace, and `helm template` of the
/// chart with default values and its CRDs.
pub fn manifest(helm: &Helm) -> String {
    let rendered = helm.template(MANIFEST_RELEASE, MANIFEST_NAMESPACE, &["--include-crds"]);
    format!(
        "# Tollgate for kubectl users: the chart {CHART} with default values, rendered by\n\
         #   helm template {MANIFEST_RELEASE} {CHART} --namespace {MANIFEST_NAMESPACE} --include-crds\n\
         # after a Namespace for it (restricted Pod Security: the controller needs nothing more).\n\
         # Generated: do not edit. `make chart` rewrites it; tests/tests/helm_chart.rs fails when\n\
         # it is out of date.\n\
         ---\n\
         apiVersion: v1\n\
         kind: Namespace\n\
         metadata:\n  \
           name: {MANIFEST_NAMESPACE}\n  \
           labels:\n    \
             pod-security.kubernetes.io/enforce: restricted\n\
         {rendered}"
    )
}

/// A kubeconfig at `path` that authenticates as ServiceAccount `namespace/account` with a
/// fresh token (`kubectl create token`), on the server and CA of `cp`'s admin kubeconfig.
pub fn service_account_kubeconfig(cp: &ControlPlane, namespace: &str, account: &str, path: &Path) {
    let token = cp
        .kubectl_ok(&["create", "token", account, "-n", namespace, "--duration=2h"])
        .trim()
        .to_owned();
    let admin = fs::read_to_string(cp.kubeconfig_path()).expect("the admin kubeconfig");
    let admin: serde_json::Value = serde_yaml::from_str(&admin).expect("the kubeconfig is YAML");
    let cluster = admin["clusters"][0].clone();
    assert!(
        cluster["cluster"]["server"].is_string(),
        "no server in the admin kubeconfig: {admin:#}"
    );
    let user = format!("system:serviceaccount:{namespace}:{account}");
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": user, "context": {
            "cluster": cluster["name"],
            "user": user,
            "namespace": namespace,
        }}],
        "current-context": user,
    });
    fs::write(
        path,
        serde_yaml::to_string(&config).expect("a kubeconfig serializes"),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

/// The objects of a multi-document YAML text (`helm template`'s output), empty documents left
/// out.
pub fn documents(rendered: &str) -> Vec<serde_json::Value> {
    serde_yaml::Deserializer::from_str(rendered)
        .map(|document| {
            serde::Deserialize::deserialize(document).expect("helm rendered valid YAML")
        })
        .filter(|value: &serde_json::Value| !value.is_null())
        .collect()
}
