//! The real `tollgate-proxy` binary as a child process, in standalone or fleet mode, on free
//! loopback ports; its standard output (the access log) and standard error kept line by line.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::client::{Response, blocking_get};
use crate::wait::{DEADLINE, POLL};

type Lines = Arc<Mutex<Vec<String>>>;

/// A running proxy; killed (SIGKILL) when dropped if it is still running.
pub struct Proxy {
    child: Child,
    exited: Option<ExitStatus>,
    addr: SocketAddr,
    admin_addr: SocketAddr,
    /// What `/config` reports as `source`: the configuration path or the controller URL.
    source: String,
    /// When the process was spawned.
    started_at: Instant,
    stdout: Lines,
    stderr: Lines,
    /// The threads reading standard output and error; they end at the process's exit.
    readers: Vec<std::thread::JoinHandle<()>>,
}

/// The `tollgate-proxy` binary next to the test executable (`target/<profile>/`), or under
/// `CARGO_TARGET_DIR`.
pub fn binary() -> PathBuf {
    binary_named("tollgate-proxy")
}

/// A binary of the workspace (`tollgate-proxy`, `tollgate-controller`), looked up as
/// [`binary`] does.
pub fn binary_named(binary: &str) -> PathBuf {
    let name = format!("{binary}{}", std::env::consts::EXE_SUFFIX);
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // target/<profile>/deps/<test binary>
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            candidates.push(profile_dir.join(&name));
        }
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_relative() {
            crate::workspace_root().join(dir)
        } else {
            dir
        };
        candidates.push(dir.join("debug").join(&name));
        candidates.push(dir.join("release").join(&name));
    }
    candidates.push(crate::workspace_root().join("target/debug").join(&name));
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "{binary} binary not found (looked at {candidates:?}); \
                 run `cargo build --workspace --bins` first"
            )
        })
}

/// A port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("binding 127.0.0.1:0")
        .port()
}

impl Proxy {
    /// Starts the proxy on `config` (a YAML file or folder) and waits until it is ready: the
    /// admin `/readyz` answers 200 and `/config` names this configuration. `extra_args` are
    /// added to the command line (`--drain-seconds 10`, ...).
    pub fn start_standalone(config: &Path, extra_args: &[&str]) -> Proxy {
        Self::start(&standalone_mode(config), extra_args, true)
    }

    /// As [`start_standalone`](Self::start_standalone), with `env` added to the environment
    /// the proxy inherits (AWS credentials, say).
    pub fn start_standalone_with_env(
        config: &Path,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Proxy {
        let mut mode = standalone_mode(config);
        mode.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Self::start(&mode, extra_args, true)
    }

    /// Starts the proxy in fleet mode (`--controller`, `--gateway`, `--state-dir`,
    /// `--token-file`) and waits only until its admin port answers: it is ready once a table
    /// is loaded, from the state directory or the controller.
    pub fn start_fleet(
        controller_url: &str,
        gateway: &str,
        state_dir: &Path,
        token_file: &Path,
        extra_args: &[&str],
    ) -> Proxy {
        let mode = Mode {
            args: vec![
                "--controller".into(),
                controller_url.into(),
                "--gateway".into(),
                gateway.into(),
                "--state-dir".into(),
                state_dir.into(),
                "--token-file".into(),
                token_file.into(),
            ],
            source: controller_url.trim_end_matches('/').to_string(),
            env: Vec::new(),
        };
        Self::start(&mode, extra_args, false)
    }

    /// Starts the proxy and waits only until its admin port answers, ready or not (for a
    /// configuration with nothing to serve yet).
    pub fn start_unready(config: &Path, extra_args: &[&str]) -> Proxy {
        Self::start(&standalone_mode(config), extra_args, false)
    }

    fn start(mode: &Mode, extra_args: &[&str], until_ready: bool) -> Proxy {
        let mut last_failure = String::new();
        for _attempt in 0..5 {
            match Self::try_start(mode, extra_args, until_ready) {
                Ok(proxy) => return proxy,
                // Another process took a port between our check and the proxy's bind.
                Err(failure) if failure.contains("Address already in use") => {
                    last_failure = failure;
                }
                Err(failure) => panic!("tollgate-proxy did not start:\n{failure}"),
            }
        }
        panic!("tollgate-proxy found no free port in 5 attempts:\n{last_failure}");
    }

    fn try_start(mode: &Mode, extra_args: &[&str], until_ready: bool) -> Result<Proxy, String> {
        // Hold both listeners while choosing, so the two ports differ.
        let (addr, admin_addr) = {
            let a = TcpListener::bind("127.0.0.1:0").expect("bind");
            let b = TcpListener::bind("127.0.0.1:0").expect("bind");
            (a.local_addr().unwrap(), b.local_addr().unwrap())
        };
        let started_at = Instant::now();
        // `info` unless the test sets its own level.
        let log_level: &[&str] = if extra_args.contains(&"--log-level") {
            &[]
        } else {
            &["--log-level", "info"]
        };
        let mut child = Command::new(binary())
            .args(&mode.args)
            .args(["--listen", &addr.to_string()])
            .args(["--admin-listen", &admin_addr.to_string()])
            .args(log_level)
            .args(extra_args)
            .env_remove("RUST_LOG")
            .envs(mode.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", binary().display()));
        let (stdout, stdout_reader) = collect_lines(child.stdout.take().unwrap());
        let (stderr, stderr_reader) = collect_lines(child.stderr.take().unwrap());
        let mut proxy = Proxy {
            child,
            exited: None,
            addr,
            admin_addr,
            source: mode.source.clone(),
            started_at,
            stdout,
            stderr,
            readers: vec![stdout_reader, stderr_reader],
        };
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = proxy.try_wait() {
                proxy.join_readers();
                return Err(format!(
                    "exited with {status}; stderr:\n{}",
                    proxy.stderr_lines().join("\n")
                ));
            }
            if proxy.admin_is_ours() && (!until_ready || proxy.is_ready()) {
                return Ok(proxy);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "not ready within {DEADLINE:?}; stderr:\n{}",
                    proxy.stderr_lines().join("\n")
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    /// `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        blocking_get(self.admin_addr, "/readyz").is_ok_and(|r| r.status == 200)
    }

    /// The admin port answers and is this process's (its `/config` names our configuration or
    /// controller), not another test's that got the port.
    fn admin_is_ours(&self) -> bool {
        let Ok(config) = blocking_get(self.admin_addr, "/config") else {
            return false;
        };
        serde_json::from_slice::<serde_json::Value>(&config.body)
            .ok()
            .and_then(|c| c["source"].as_str().map(|s| s == self.source))
            .unwrap_or(false)
    }

    /// When the process was spawned.
    pub fn started_at(&self) -> Instant {
        self.started_at
    }

    /// The traffic address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// `http://127.0.0.1:PORT{path}` on the traffic port.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://127.0.0.1:PORT{path}` on the admin port.
    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.admin_addr)
    }

    /// A blocking GET on the admin port; panics when it gets no answer.
    pub fn admin_get(&self, path: &str) -> Response {
        blocking_get(self.admin_addr, path).unwrap_or_else(|e| panic!("admin GET {path}: {e}"))
    }

    /// The admin `/config` document.
    pub fn config_report(&self) -> serde_json::Value {
        self.admin_get("/config").json()
    }

    /// Lines written to standard output so far: the JSON access log.
    pub fn access_log_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// The access log lines parsed as JSON; panics on a line that is not JSON.
    pub fn access_log(&self) -> Vec<serde_json::Value> {
        self.access_log_lines()
            .iter()
            .map(|l| {
                serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("access log line is not JSON ({e}): {l}"))
            })
            .collect()
    }

    /// Waits for the access log line of a request id.
    pub fn access_log_entry(&self, request_id: &str) -> serde_json::Value {
        crate::wait::eventually(&format!("the access log line of {request_id}"), || {
            self.access_log()
                .into_iter()
                .find(|l| l["requestId"] == request_id)
        })
    }

    /// Lines written to standard error so far: the proxy's own log.
    pub fn stderr_lines(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("running kill");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().expect("waiting for the proxy");
        }
        self.exited
    }

    /// Waits for the process to exit, and for its output to be read to the end; panics if it
    /// is still running after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                self.join_readers();
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "tollgate-proxy (pid {}) still running after {timeout:?}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn join_readers(&mut self) {
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        self.join_readers();
        if std::thread::panicking() {
            let stderr = self.stderr_lines();
            let tail = &stderr[stderr.len().saturating_sub(40)..];
            eprintln!(
                "--- tollgate-proxy ({}) stderr, last {} lines ---\n{}",
                self.source,
                tail.len(),
                tail.join("\n")
            );
        }
    }
}

/// The mode arguments of a command line, and the `/config` source they lead to.
struct Mode {
    args: Vec<OsString>,
    source: String,
    /// Added to the environment the proxy inherits.
    env: Vec<(String, String)>,
}

fn standalone_mode(config: &Path) -> Mode {
    let config = config
        .canonicalize()
        .unwrap_or_else(|e| panic!("config {}: {e}", config.display()));
    Mode {
        source: config.display().to_string(),
        args: vec!["--config".into(), config.into()],
        env: Vec::new(),
    }
}

/// Appends each line of `pipe` to a shared list, from a thread of its own.
fn collect_lines(pipe: impl Read + Send + 'static) -> (Lines, std::thread::JoinHandle<()>) {
    let lines: Lines = Arc::default();
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            match line {
                Ok(line) => sink.lock().unwrap().push(line),
                Err(_) => break,
            }
        }
    });
    (lines, reader)
}

/// A standalone proxy serving a temporary folder of resources; both go away when dropped.
pub struct Served {
    pub proxy: Proxy,
    pub config: crate::config::ConfigDir,
}

impl std::ops::Deref for Served {
    type Target = Proxy;
    fn deref(&self) -> &Proxy {
        &self.proxy
    }
}

impl std::ops::DerefMut for Served {
    fn deref_mut(&mut self) -> &mut Proxy {
        &mut self.proxy
    }
}

/// Writes `resources` to `resources.yaml` in a new folder and starts a standalone proxy on it.
pub fn serve(resources: &[serde_json::Value], extra_args: &[&str]) -> Served {
    let config = crate::config::ConfigDir::with("resources.yaml", resources);
    let proxy = Proxy::start_standalone(config.path(), extra_args);
    Served { proxy, config }
}
