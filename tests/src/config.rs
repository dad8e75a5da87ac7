//! Resource YAML in a temporary folder, for the proxy's standalone mode, and builders for the
//! resources the tests use (as JSON values, written out as YAML).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

/// A temporary folder of resource files; removed when dropped.
pub struct ConfigDir {
    dir: tempfile::TempDir,
}

impl Default for ConfigDir {
    fn default() -> Self {
        Self::new()
    }
}

impl ConfigDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("tollgate-e2e-")
                .tempdir()
                .expect("temp dir"),
        }
    }

    /// A folder holding `resources` in one file.
    pub fn with(name: &str, resources: &[Value]) -> Self {
        let dir = Self::new();
        dir.write(name, resources);
        dir
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `resources` as a multi-document YAML file (replacing it atomically).
    pub fn write(&self, name: &str, resources: &[Value]) -> PathBuf {
        self.write_raw(name, &to_yaml(resources))
    }

    /// Writes `text` as the file `name`, atomically: a hidden file (the proxy skips those)
    /// renamed into place, so the proxy never reads half a file.
    pub fn write_raw(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        let staging = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&staging, text).expect("writing a resource file");
        std::fs::rename(&staging, &path).expect("renaming a resource file");
        path
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("removing a resource file");
    }
}

/// Resources as multi-document YAML.
pub fn to_yaml(resources: &[Value]) -> String {
    resources
        .iter()
        .map(|r| serde_yaml::to_string(r).expect("YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

/// An ApiGateway in `default` with the given `spec.stages`.
pub fn gateway(name: &str, stages: Value) -> Value {
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "ApiGateway",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"stages": stages},
    })
}

/// An ApiGateway with one stage `dev` and no variables.
pub fn dev_gateway(name: &str) -> Value {
    gateway(name, json!([{"name": "dev"}]))
}

/// A Route of `gateway` with the given `spec.integration`.
pub fn route(name: &str, gateway: &str, method: &str, path: &str, integration: Value) -> Value {
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "Route",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "gatewayRef": {"name": gateway},
            "method": method,
            "path": path,
            "integration": integration,
        },
    })
}

/// A mock integration answering `status` with `body` as JSON.
pub fn mock(status: u16, body: &str) -> Value {
    json!({"mock": {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": body,
    }})
}

/// An HTTP integration to one URL.
pub fn http(url: &str) -> Value {
    json!({"http": {"url": url}})
}

/// An API key Secret (type `tollgate.dev/api-key`).
pub fn api_key(name: &str, key: &str, enabled: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": "default"},
        "type": "tollgate.dev/api-key",
        "stringData": {"key": key, "enabled": if enabled { "true" } else { "false" }},
    })
}

/// A UsagePlan binding the named key Secrets on one stage of a gateway.
pub fn usage_plan(name: &str, gateway: &str, stage: &str, keys: &[&str]) -> Value {
    json!({
        "apiVersion": "tollgate.dev/v1alpha1",
        "kind": "UsagePlan",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "apiStages": [{"gatewayRef": {"name": gateway}, "stage": stage}],
            "apiKeys": {"names": keys},
        },
    })
}
