//! A real Lambda runtime for tests: the Lambda Runtime Interface Emulator (built and cached by
//! `tests/lambda/build`) running a Python handler from `deploy/examples/lambda` through
//! `awslambdaric`. It serves the Lambda Invoke API on a free loopback port; the function's
//! name in invoke URLs is `function` (the only one the emulator answers).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::proxy::free_port;
use crate::wait::eventually;
use crate::workspace_root;

pub struct LambdaRuntime {
    child: Child,
    port: u16,
}

/// The folder `tests/lambda/build` prints: `aws-lambda-rie` and `venv/`.
fn runtime_dir() -> PathBuf {
    crate::built_by("tests/lambda/build")
}

impl LambdaRuntime {
    /// Starts the emulator running `handler` (`handler.handler`, `handler.fail`) of the example
    /// function, and waits until it listens.
    pub fn start(handler: &str) -> Self {
        Self::start_example("deploy/examples/lambda", handler, free_port(), &[])
    }

    /// Starts the emulator on `port` running `handler` of the example in `folder` (relative
    /// to the workspace), with `env` added to its environment, and waits until it listens.
    pub fn start_example(folder: &str, handler: &str, port: u16, env: &[(&str, &str)]) -> Self {
        let dir = runtime_dir();
        let runtime_api = free_port();
        let child = Command::new(dir.join("aws-lambda-rie"))
            .args([
                "--runtime-interface-emulator-address",
                &format!("127.0.0.1:{port}"),
                "--runtime-api-address",
                &format!("127.0.0.1:{runtime_api}"),
            ])
            .arg(dir.join("venv/bin/python"))
            .args(["-m", "awslambdaric", handler])
            .current_dir(workspace_root().join(folder))
            .env("AWS_LAMBDA_FUNCTION_NAME", "hello")
            .env("AWS_LAMBDA_FUNCTION_TIMEOUT", "30")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting aws-lambda-rie");
        let runtime = Self { child, port };
        eventually("the Lambda emulator listens", || {
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
                .ok()
        });
        runtime
    }

    /// The Invoke API base URL, for `integration.lambda.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LambdaRuntime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Python of the emulator's virtualenv (with boto3), for scripts that call AWS APIs.
pub fn python() -> PathBuf {
    runtime_dir().join("venv/bin/python")
}

/// Several copies of one function behind one Invoke API endpoint, as Lambda runs a function
/// in several execution environments: each invocation goes to a copy that is free (the
/// emulator serves one invocation at a time, and fails when given two), waiting for one when
/// all are busy. For a fleet of proxies that all invoke the function of one table.
pub struct LambdaPool {
    _runtimes: Vec<LambdaRuntime>,
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LambdaPool {
    /// Starts `copies` emulators running `handler` of the example in `folder` (each with
    /// `env`), and the pool's endpoint on `port`.
    pub fn start(
        folder: &str,
        handler: &str,
        copies: usize,
        port: u16,
        env: &[(&str, &str)],
    ) -> Self {
        let runtimes: Vec<LambdaRuntime> = (0..copies)
            .map(|_| LambdaRuntime::start_example(folder, handler, free_port(), env))
            .collect();
        let ports: Vec<u16> = runtimes.iter().map(|r| r.port).collect();
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (ready, listening) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the Lambda pool");
            runtime.block_on(serve_pool(port, ports, ready, stopped));
        });
        listening.recv().expect("the Lambda pool listens");
        Self {
            _runtimes: runtimes,
            port,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The Invoke API base URL, for `integration.lambda.endpoint`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for LambdaPool {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_pool(
    port: u16,
    runtimes: Vec<u16>,
    ready: std::sync::mpsc::Sender<()>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    use http_body_util::{BodyExt, Full};
    use std::sync::{Arc, Mutex};

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the Lambda pool's port");
    let _ = ready.send(());
    let free = Arc::new(Mutex::new(runtimes.clone()));
    let permits = Arc::new(tokio::sync::Semaphore::new(runtimes.len()));
    let client = Arc::new(crate::client::Client::new());
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => continue,
            },
        };
        let (free, permits, client) = (free.clone(), permits.clone(), client.clone());
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let (free, permits, client) = (free.clone(), permits.clone(), client.clone());
                async move {
                    let path = request.uri().path().to_string();
                    let body = request.into_body().collect().await?.to_bytes();
                    let _permit = permits.acquire().await.expect("the pool's permits");
                    let runtime = free
                        .lock()
                        .unwrap()
                        .pop()
                        .expect("a free copy under a permit");
                    let answer = client
                        .send(
                            "POST",
                            &format!("http://127.0.0.1:{runtime}{path}"),
                            &[],
                            body,
                        )
                        .await;
                    free.lock().unwrap().push(runtime);
                    let response = match answer {
                        Ok(answer) => {
                            let mut response = hyper::Response::new(Full::new(answer.body));
                            *response.status_mut() =
                                hyper::StatusCode::from_u16(answer.status).expect("a status");
                            *response.headers_mut() = answer.headers;
                            // The body is whole now: hyper frames it again.
                            response
                                .headers_mut()
                                .remove(hyper::header::TRANSFER_ENCODING);
                            response
                        }
                        Err(e) => {
                            let mut response = hyper::Response::new(Full::new(bytes::Bytes::from(
                                format!("the function copy failed: {e}"),
                            )));
                            *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
                            response
                        }
                    };
                    Ok::<_, hyper::Error>(response)
                }
            });
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// AWS's own endpoints for signed Lambda calls (`tests/lambda/aws_double.py`): an Invoke API
/// that checks each call's SigV4 signature with botocore's signer before passing it to an
/// emulator, and an STS that trades a web identity token for temporary credentials.
pub struct AwsDouble {
    child: Child,
    port: u16,
}

/// How an [`AwsDouble`] is set up.
#[derive(Default)]
pub struct AwsDoubleOptions<'a> {
    /// A long-term key the Invoke API accepts: (access key id, secret access key).
    pub access_key: Option<(&'a str, &'a str)>,
    /// STS: the web identity token file, the role, and how long issued credentials last.
    pub web_identity: Option<(&'a std::path::Path, &'a str, u64)>,
}

impl AwsDouble {
    /// Starts the double in front of the emulator at `invoke` (its base URL).
    pub fn start(invoke: &str, options: AwsDoubleOptions<'_>) -> Self {
        let port = free_port();
        let mut command = Command::new(python());
        command
            .arg(workspace_root().join("tests/lambda/aws_double.py"))
            .args(["--port", &port.to_string(), "--invoke", invoke])
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some((id, secret)) = options.access_key {
            command.args(["--access-key-id", id, "--secret-access-key", secret]);
        }
        if let Some((token_file, role, lifetime)) = options.web_identity {
            command
                .arg("--web-identity-token-file")
                .arg(token_file)
                .args(["--role-arn", role, "--lifetime", &lifetime.to_string()]);
        }
        let child = command.spawn().expect("starting aws_double.py");
        eventually("the AWS double listens", || {
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
                .ok()
        });
        Self { child, port }
    }

    /// Its base URL: the Invoke API's endpoint and STS's.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What it saw: `{"invoke": [{accessKeyId, verified, why, function}], "sts": [...]}`.
    pub fn calls(&self) -> serde_json::Value {
        let reply = crate::client::blocking_get(([127, 0, 0, 1], self.port).into(), "/_calls")
            .expect("the AWS double answers");
        serde_json::from_slice(&reply.body).expect("JSON")
    }
}

impl Drop for AwsDouble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
