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
