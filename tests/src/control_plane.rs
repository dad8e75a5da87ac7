//! A real Kubernetes control plane for tests, in the spirit of controller-runtime's envtest:
//! etcd, kube-apiserver and kube-controller-manager as child processes on free loopback ports,
//! their data in a temporary folder, Tollgate's CRDs (`crds/yaml/all.yaml`) installed and
//! `Established`. Tests drive it with the `kubectl` built alongside.
//!
//! The binaries come from `tests/control-plane/build` (built from source on first use, then
//! cached; see `tests/control-plane/README.md`, whose command lines are used here as they
//! are). Authentication is a static token of a `system:masters` user; the kubeconfig trusts
//! the API server's self-signed certificate (`certs/apiserver.crt`), no TLS check is skipped.
//! The service-account key is an ECDSA P-256 key made with rcgen.
//!
//! ```no_run
//! use tollgate_tests::control_plane::ControlPlane;
//!
//! let cp = ControlPlane::shared(); // one per test binary, started on first use
//! let ns = cp.namespace("my-test"); // a throwaway namespace, deleted when dropped
//! let out = ns.kubectl(&["get", "apigateways"]);
//! assert!(out.status.success());
//! ```
//!
//! # No process outlives the tests
//!
//! Each server runs under a small bash watchdog ([`WATCHDOG`]) in its own process group. The
//! watchdog's standard input is a pipe whose only writer is the test process, so the watchdog
//! reads end-of-file as soon as the test process lets go of it, whichever way that happens:
//!
//! - the [`ControlPlane`] is dropped (a test owning one ends or panics): `Drop` closes the
//!   pipes and waits for the watchdogs, and kills their process groups if they take too long;
//! - the test process exits, even by SIGKILL: the kernel closes its descriptors. This is what
//!   stops a [`ControlPlane::shared`] control plane, which lives in a `static` and is never
//!   dropped.
//!
//! On end-of-file the watchdog sends SIGTERM to its server, SIGKILL after a grace of
//! [`GRACE_SECONDS`], and etcd's watchdog then removes the temporary folder. The watchdog
//! checks its pipe every 0.5 s, so every server is gone at most about
//! `0.5 + GRACE_SECONDS` seconds after the test process. The pipe needs no `unsafe`
//! (`prctl(PR_SET_PDEATHSIG)` would) and, unlike polling the parent's pid, cannot be fooled by
//! pid reuse or a zombie parent. Standard library pipes are close-on-exec, so no other child
//! (another watchdog, a `kubectl`) keeps a pipe open. The process group keeps a Ctrl-C in the
//! terminal from killing a watchdog before its server (a background job of a non-interactive
//! shell ignores SIGINT, so the server would be left behind); the pipe stops them instead.

use std::fs::{self, File};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::json;

/// How long starting the control plane may take: each server's readiness and the CRDs
/// becoming established (the binaries' build, when not cached, is not counted).
pub const START_DEADLINE: Duration = Duration::from_secs(60);

/// Seconds a server has to exit after SIGTERM before its watchdog sends SIGKILL.
pub const GRACE_SECONDS: u64 = 3;

/// The bash watchdog each server runs under. Arguments: `$0` a name (shown by `ps`), `$1` the
/// grace in seconds, `$2` a folder to remove once the server is gone after a stop (or empty),
/// then the server's command line. Runs the server in the background; if the server exits
/// first, exits with its status; when standard input reaches end-of-file, stops the server
/// (SIGTERM, then SIGKILL after the grace) and removes the folder.
pub const WATCHDOG: &str = r#"
grace=$1 cleanup=$2
shift 2
"$@" &
server=$!
stop=
while kill -0 "$server" 2>/dev/null; do
  read -r -t 0.5 _
  rc=$?
  # 0: a line (ignored); > 128: the timeout; anything else: end-of-file.
  if [ "$rc" -ne 0 ] && [ "$rc" -le 128 ]; then stop=1; break; fi
done
if [ -z "$stop" ]; then
  wait "$server"
  exit $?
fi
kill -TERM "$server" 2>/dev/null
i=0
while [ "$i" -lt "$((grace * 10))" ] && kill -0 "$server" 2>/dev/null; do
  sleep 0.1
  i=$((i + 1))
done
kill -KILL "$server" 2>/dev/null
wait "$server"
if [ -n "$cleanup" ]; then rm -rf -- "$cleanup"; fi
exit 0
"#;

const POLL: Duration = Duration::from_millis(100);

/// A running control plane; every process is stopped and the folder removed when dropped.
pub struct ControlPlane {
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
    api_url: String,
    etcd_url: String,
    token: String,
    /// etcd, kube-apiserver, kube-controller-manager, in start order.
    servers: Vec<Server>,
    /// Declared after `servers`, so it is removed after they are stopped.
    dir: tempfile::TempDir,
}

impl ControlPlane {
    /// Starts a control plane of its own (about 3 s with cached binaries); panics with the
    /// servers' logs when it cannot.
    pub fn start() -> ControlPlane {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The control plane shared by every test of this test binary, started by the first test
    /// that asks. It is never dropped: its processes stop when the test process exits (see the
    /// module documentation). If starting fails, every test asking gets the same error.
    pub fn shared() -> &'static ControlPlane {
        static SHARED: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
        match SHARED.get_or_init(Self::try_start) {
            Ok(cp) => cp,
            Err(e) => panic!("the shared control plane did not start: {e}"),
        }
    }

    /// [`start`](Self::start), returning the error instead of panicking. Retries twice when a
    /// server lost one of its ports to another process between choosing and binding it.
    pub fn try_start() -> Result<ControlPlane, String> {
        let bin_dir = build_binaries()?;
        let mut attempt = 1;
        loop {
            match Self::start_in(&bin_dir) {
                Ok(cp) => return Ok(cp),
                Err(e) if e.port_taken && attempt < 3 => attempt += 1,
                Err(e) => return Err(e.message),
            }
        }
    }

    fn start_in(bin_dir: &Path) -> Result<ControlPlane, StartError> {
        let deadline = Instant::now() + START_DEADLINE;
        let dir = tempfile::Builder::new()
            .prefix("tollgate-control-plane-")
            .tempdir()
            .map_err(|e| StartError::new(format!("creating a temporary folder: {e}")))?;
        let root = dir.path().to_path_buf();
        let t = root.as_path();
        let write = |name: &str, contents: &str| -> Result<PathBuf, StartError> {
            let path = t.join(name);
            fs::write(&path, contents)
                .map_err(|e| StartError::new(format!("writing {}: {e}", path.display())))?;
            Ok(path)
        };

        let token = random_hex(16)?;
        let tokens = write(
            "tokens.csv",
            &format!("{token},admin,admin,system:masters\n"),
        )?;
        let sa_key = rcgen::KeyPair::generate()
            .map_err(|e| StartError::new(format!("generating the service-account key: {e}")))?;
        // `--service-account-key-file` takes no ECDSA key in PKCS#8 (rcgen's format): it gets
        // the public half. The signing flags read PKCS#8.
        let sa_pub = write("sa.pub", &sa_key.public_key_pem())?;
        let sa_key = write("sa.key", &sa_key.serialize_pem())?;
        let certs = t.join("certs");
        let ca = certs.join("apiserver.crt");
        let kubeconfig = t.join("kubeconfig");

        let (etcd_port, peer_port, api_port) = (free_port()?, free_port()?, free_port()?);
        let etcd_url = format!("http://127.0.0.1:{etcd_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let api_url = format!("https://127.0.0.1:{api_port}");
        let s = |p: &Path| p.display().to_string();

        // From here on, dropping `cp` (an error, a panic) stops whatever was started.
        let mut cp = ControlPlane {
            bin_dir: bin_dir.to_path_buf(),
            kubeconfig,
            api_url,
            etcd_url,
            token,
            servers: Vec::new(),
            dir,
        };
        let etcd = Server::spawn(
            "etcd",
            &bin_dir.join("etcd"),
            &[
                "--name".into(),
                "tollgate-test".into(),
                "--data-dir".into(),
                s(&t.join("etcd")),
                "--listen-client-urls".into(),
                cp.etcd_url.clone(),
                "--advertise-client-urls".into(),
                cp.etcd_url.clone(),
                "--listen-peer-urls".into(),
                peer_url.clone(),
                "--initial-advertise-peer-urls".into(),
                peer_url.clone(),
                "--initial-cluster".into(),
                format!("tollgate-test={peer_url}"),
                "--unsafe-no-fsync".into(),
                "--log-level".into(),
                "warn".into(),
            ],
            t,
            Some(t),
        )?;
        cp.servers.push(etcd);
        let etcd_addr = SocketAddr::from(([127, 0, 0, 1], etcd_port));
        wait_for(&cp.servers[0], deadline, "etcd /health", || {
            crate::client::blocking_get(etcd_addr, "/health")
                .is_ok_and(|r| r.status == 200 && r.text().contains(r#""health":"true""#))
        })?;

        let apiserver = Server::spawn(
            "kube-apiserver",
            &bin_dir.join("kube-apiserver"),
            &[
                "--etcd-servers".into(),
                cp.etcd_url.clone(),
                "--bind-address".into(),
                "127.0.0.1".into(),
                "--advertise-address".into(),
                "127.0.0.1".into(),
                "--secure-port".into(),
                api_port.to_string(),
                "--cert-dir".into(),
                s(&certs),
                "--service-account-issuer".into(),
                "https://kubernetes.default.svc".into(),
                "--service-account-key-file".into(),
                s(&sa_pub),
                "--service-account-signing-key-file".into(),
                s(&sa_key),
                "--authorization-mode".into(),
                "RBAC".into(),
                // As hardened clusters run it: owner references that block deletion need
                // `update` on the owner's finalizers (the chart's RBAC is tested against it).
                "--enable-admission-plugins".into(),
                "OwnerReferencesPermissionEnforcement".into(),
                "--token-auth-file".into(),
                s(&tokens),
                "--service-cluster-ip-range".into(),
                "10.0.0.0/24".into(),
                "--endpoint-reconciler-type".into(),
                "none".into(),
            ],
            t,
            None,
        )?;
        cp.servers.push(apiserver);
        // The API server writes its self-signed certificate before it serves.
        wait_for(&cp.servers[1], deadline, "certs/apiserver.crt", || {
            fs::metadata(&ca).is_ok_and(|m| m.len() > 0)
        })?;
        let config = json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "tollgate-test", "cluster": {
                "server": cp.api_url,
                "certificate-authority": s(&ca),
            }}],
            "users": [{"name": "admin", "user": {"token": cp.token}}],
            "contexts": [{"name": "tollgate-test", "context": {
                "cluster": "tollgate-test",
                "user": "admin",
            }}],
            "current-context": "tollgate-test",
        });
        write(
            "kubeconfig",
            &serde_yaml::to_string(&config).expect("a kubeconfig serializes"),
        )?;

        let mut last = String::new();
        let ready = wait_for(&cp.servers[1], deadline, "kube-apiserver /readyz", || {
            let out = cp.kubectl(&["get", "--raw", "/readyz"]);
            last = output_text(&out);
            out.status.success()
        });
        if let Err(mut e) = ready {
            e.message = format!("{}\nlast kubectl get --raw /readyz:\n{last}", e.message);
            return Err(e);
        }

        let kubeconfig = s(&cp.kubeconfig);
        let kcm = Server::spawn(
            "kube-controller-manager",
            &bin_dir.join("kube-controller-manager"),
            &[
                "--kubeconfig".into(),
                kubeconfig.clone(),
                "--authentication-kubeconfig".into(),
                kubeconfig.clone(),
                "--authorization-kubeconfig".into(),
                kubeconfig,
                "--bind-address".into(),
                "127.0.0.1".into(),
                "--secure-port".into(),
                "0".into(),
                "--leader-elect=false".into(),
                "--controllers".into(),
                "*".into(),
                "--service-account-private-key-file".into(),
                s(&sa_key),
                "--root-ca-file".into(),
                s(&ca),
                "--cluster-cidr".into(),
                "10.1.0.0/16".into(),
                "--service-cluster-ip-range".into(),
                "10.0.0.0/24".into(),
            ],
            t,
            None,
        )?;
        cp.servers.push(kcm);

        cp.install_crds(deadline)?;
        // A controller manager that died at start (a bad flag) would show by now.
        if let Some(status) = cp.servers[2].exited() {
            return Err(cp.servers[2].failure(&format!("exited ({status})")));
        }
        Ok(cp)
    }

    /// Applies `crds/yaml/all.yaml`, waits for every CRD in it to be `Established` and for
    /// discovery to list its resource.
    fn install_crds(&mut self, deadline: Instant) -> Result<(), StartError> {
        let path = crate::workspace_root().join("crds/yaml/all.yaml");
        let path = path.display().to_string();
        // One `customresourcedefinition.apiextensions.k8s.io/{plural}.{group}` per CRD.
        let applied =
            self.kubectl_checked(&["apply", "--server-side", "-f", &path, "-o", "name"])?;
        let resources: Vec<String> = applied
            .lines()
            .filter_map(|l| {
                l.trim()
                    .strip_prefix("customresourcedefinition.apiextensions.k8s.io/")
            })
            .map(str::to_owned)
            .collect();
        if resources.is_empty() {
            return Err(StartError::new(format!(
                "kubectl apply -f {path} applied no CustomResourceDefinition:\n{applied}"
            )));
        }
        let timeout = format!(
            "--timeout={}s",
            deadline
                .saturating_duration_since(Instant::now())
                .as_secs()
                .max(1)
        );
        self.kubectl_checked(&[
            "wait",
            "--for",
            "condition=established",
            &timeout,
            "-f",
            &path,
        ])?;

        // Established comes a moment before discovery serves the new resources.
        loop {
            let out = self.kubectl(&["api-resources", "-o", "name"]);
            let listed = String::from_utf8_lossy(&out.stdout);
            if out.status.success()
                && resources
                    .iter()
                    .all(|resource| listed.lines().any(|l| l.trim() == resource))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StartError::new(format!(
                    "the CRDs are established but discovery does not list {resources:?} after \
                     {START_DEADLINE:?}; last kubectl api-resources:\n{}",
                    output_text(&out)
                )));
            }
            std::thread::sleep(POLL);
        }
    }

    /// The folder holding `etcd`, `kube-apiserver`, `kube-controller-manager` and `kubectl`.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// A kubeconfig for the admin user (`system:masters`).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// `https://127.0.0.1:{port}`.
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// `http://127.0.0.1:{port}`.
    pub fn etcd_url(&self) -> &str {
        &self.etcd_url
    }

    /// The admin user's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The temporary folder: etcd's data, the API server's certificates, the kubeconfig and a
    /// `<server>.log` per server.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The built `kubectl` with this control plane's kubeconfig and a discovery cache of its
    /// own; no user configuration (`~/.kube/config`, `~/.kube/kuberc`) is read.
    pub fn kubectl_command(&self) -> Command {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("kubectl-cache"))
            .env_remove("KUBECONFIG")
            .env("KUBERC", "off")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `kubectl args...` to completion.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running kubectl: {e}"))
    }

    /// Runs `kubectl args...` with `input` on its standard input (for `-f -`).
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .kubectl_command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("running kubectl: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let input = input.to_owned();
        // Written from a thread: kubectl may answer before reading everything.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(input.as_bytes());
        });
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for kubectl: {e}"));
        let _ = writer.join();
        out
    }

    /// Runs `kubectl args...` and returns its standard output; panics with both outputs when
    /// it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {} failed:\n{}",
            args.join(" "),
            output_text(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `kubectl get {what} -o json` in `namespace`, or `None` when it does not exist; panics
    /// on any other failure.
    pub fn get(&self, namespace: &str, what: &str) -> Option<serde_json::Value> {
        let out = self.kubectl(&["get", what, "-n", namespace, "-o", "json"]);
        if !out.status.success() {
            let text = output_text(&out);
            assert!(text.contains("NotFound"), "kubectl get {what}: {text}");
            return None;
        }
        Some(serde_json::from_slice(&out.stdout).expect("kubectl printed JSON"))
    }

    fn kubectl_checked(&self, args: &[&str]) -> Result<String, StartError> {
        let out = self.kubectl(args);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(StartError::new(format!(
                "kubectl {} failed:\n{}",
                args.join(" "),
                output_text(&out)
            )))
        }
    }

    /// Lets anyone read the service account issuer's keys (OIDC discovery,
    /// `/openid/v1/jwks`), as Kubernetes documents for OIDC federation: what proxies need to
    /// verify ServiceAccount tokens without credentials of their own.
    pub fn allow_oidc_discovery(&self) {
        let out = self.kubectl_with_input(
            &["apply", "-f", "-"],
            r#"apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: tollgate-test-oidc-discovery
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:service-account-issuer-discovery
subjects:
  - apiGroup: rbac.authorization.k8s.io
    kind: Group
    name: system:unauthenticated
"#,
        );
        assert!(out.status.success(), "{}", output_text(&out));
    }

    /// Creates a namespace named `{hint}-{5 random characters}` (the API server's
    /// `generateName`), deleted when the returned guard is dropped.
    pub fn namespace(&self, hint: &str) -> Namespace<'_> {
        let mut prefix: String = hint
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        prefix = prefix.trim_matches('-').to_owned();
        if prefix.is_empty() {
            prefix = "test".to_owned();
        }
        let manifest = json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"generateName": format!("{prefix}-")},
        });
        let out = self.kubectl_with_input(
            &["create", "-f", "-", "-o", "jsonpath={.metadata.name}"],
            &manifest.to_string(),
        );
        assert!(
            out.status.success(),
            "creating a namespace failed:\n{}",
            output_text(&out)
        );
        let name = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        assert!(!name.is_empty(), "kubectl create printed no namespace name");
        Namespace { cp: self, name }
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        // All at once: the API server and controller manager need not outlive etcd.
        for server in self.servers.iter_mut().rev() {
            server.request_stop();
        }
        while let Some(mut server) = self.servers.pop() {
            server.stop();
        }
    }
}

/// A namespace of its own for one test; deleted (without waiting) when dropped.
pub struct Namespace<'a> {
    cp: &'a ControlPlane,
    name: String,
}

impl Namespace<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The control plane the namespace is in.
    pub fn control_plane(&self) -> &ControlPlane {
        self.cp
    }

    /// `kubectl -n {namespace} args...`.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cp.kubectl(&self.with_namespace(args))
    }

    /// `kubectl -n {namespace} args...` with `input` on standard input.
    pub fn kubectl_with_input(&self, args: &[&str], input: &str) -> Output {
        self.cp
            .kubectl_with_input(&self.with_namespace(args), input)
    }

    /// `kubectl -n {namespace} args...`, its standard output; panics when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.cp.kubectl_ok(&self.with_namespace(args))
    }

    /// `kubectl apply -f -` of `yaml` (or JSON) in this namespace; panics when it fails.
    pub fn apply(&self, yaml: &str) {
        let out = self.kubectl_with_input(&["apply", "-f", "-"], yaml);
        assert!(
            out.status.success(),
            "kubectl apply failed for\n{yaml}\n{}",
            output_text(&out)
        );
    }

    /// `kubectl get {what} -o json`, or `None` when it does not exist.
    pub fn get(&self, what: &str) -> Option<serde_json::Value> {
        self.cp.get(&self.name, what)
    }

    /// `kubectl get {what} -o json`; panics when it does not exist.
    pub fn get_json(&self, what: &str) -> serde_json::Value {
        self.get(what)
            .unwrap_or_else(|| panic!("{what} does not exist in {}", self.name))
    }

    /// `deploy/examples/quickstart/hello.yaml` (gateway `hello`), placed in this namespace.
    pub fn quickstart(&self) -> String {
        let path = crate::workspace_root().join("deploy/examples/quickstart/hello.yaml");
        let text = std::fs::read_to_string(&path).expect("the quickstart example");
        assert!(text.contains("namespace: default"));
        text.replace("namespace: default", &format!("namespace: {}", self.name))
    }

    fn with_namespace<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        all
    }
}

impl Drop for Namespace<'_> {
    fn drop(&mut self) {
        // Errors ignored: this may run while a failed test unwinds.
        let _ = self
            .cp
            .kubectl_command()
            .args(["delete", "namespace", &self.name, "--wait=false"])
            .args(["--ignore-not-found"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Standard output and error of a finished command, for error messages.
pub fn output_text(out: &Output) -> String {
    format!(
        "exit: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// Runs `tests/control-plane/build` and returns the folder it prints.
fn build_binaries() -> Result<PathBuf, String> {
    let script = crate::workspace_root().join("tests/control-plane/build");
    let out = Command::new(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let dir = stdout.trim();
    if !out.status.success() || dir.is_empty() || stdout.lines().count() != 1 {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        return Err(format!(
            "{} failed ({}); stdout: {stdout:?}; last lines of stderr:\n{}",
            script.display(),
            out.status,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ));
    }
    Ok(PathBuf::from(dir))
}

/// A server under its watchdog.
struct Server {
    name: &'static str,
    /// The watchdog (`bash`), leader of the process group it shares with the server. In a
    /// mutex so a start-up wait can check it while the control plane is borrowed.
    watchdog: Mutex<Child>,
    /// The watchdog's standard input; closing it stops the server.
    stdin: Option<ChildStdin>,
    log: PathBuf,
}

impl Server {
    /// Starts `program args...` under a watchdog, both writing to `{dir}/{name}.log`.
    /// `cleanup` is removed by the watchdog once the server is stopped.
    fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        dir: &Path,
        cleanup: Option<&Path>,
    ) -> Result<Server, StartError> {
        let log = dir.join(format!("{name}.log"));
        let file = File::create(&log)
            .map_err(|e| StartError::new(format!("creating {}: {e}", log.display())))?;
        let file2 = file
            .try_clone()
            .map_err(|e| StartError::new(format!("duplicating a descriptor: {e}")))?;
        let mut child = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg(format!("tollgate-watchdog-{name}"))
            .arg(GRACE_SECONDS.to_string())
            .arg(cleanup.map(Path::as_os_str).unwrap_or_default())
            .arg(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(file)
            .stderr(file2)
            .process_group(0)
            .spawn()
            .map_err(|e| StartError::new(format!("starting {name} under bash: {e}")))?;
        let stdin = child.stdin.take();
        Ok(Server {
            name,
            watchdog: Mutex::new(child),
            stdin,
            log,
        })
    }

    /// The watchdog's exit status if it has exited (the server exited on its own).
    fn exited(&self) -> Option<ExitStatus> {
        let mut watchdog = self.watchdog.lock().unwrap_or_else(|e| e.into_inner());
        watchdog.try_wait().ok().flatten()
    }

    /// An error naming the server, with the end of its log.
    fn failure(&self, what: &str) -> StartError {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        StartError {
            port_taken: log.contains("address already in use"),
            message: format!(
                "{} {what}; last lines of {}:\n{tail}",
                self.name,
                self.log.display()
            ),
        }
    }

    /// Closes the watchdog's pipe: it stops the server.
    fn request_stop(&mut self) {
        drop(self.stdin.take());
    }

    /// Stops the server and waits for its watchdog; kills the process group if the watchdog
    /// has not finished well after the grace.
    fn stop(&mut self) {
        self.request_stop();
        let watchdog = self.watchdog.get_mut().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + Duration::from_secs(GRACE_SECONDS + 5);
        while Instant::now() < deadline {
            match watchdog.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => break,
            }
        }
        // Not reaped yet, so the group id cannot have been reused.
        let group = format!("-{}", watchdog.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = watchdog.kill();
        let _ = watchdog.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why a start failed, and whether a retry on other ports may help.
#[derive(Debug)]
struct StartError {
    message: String,
    port_taken: bool,
}

impl StartError {
    fn new(message: String) -> Self {
        StartError {
            message,
            port_taken: false,
        }
    }
}

/// Polls `ready` until it holds; fails when `server` exits or the deadline passes.
fn wait_for(
    server: &Server,
    deadline: Instant,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<(), StartError> {
    loop {
        if ready() {
            return Ok(());
        }
        if let Some(status) = server.exited() {
            return Err(server.failure(&format!("exited ({status}) before {what} was ready")));
        }
        if Instant::now() >= deadline {
            return Err(server.failure(&format!(
                "not ready: {what} did not answer within {START_DEADLINE:?}"
            )));
        }
        std::thread::sleep(POLL);
    }
}

/// A loopback port nothing listens on right now (bound, then released).
fn free_port() -> Result<u16, StartError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StartError::new(format!("binding 127.0.0.1:0: {e}")))
}

/// `bytes` random bytes from the kernel, as hex.
fn random_hex(bytes: usize) -> Result<String, StartError> {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| StartError::new(format!("reading /dev/urandom: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}
