//! The README's quickstart, as a new user follows it: its command's `--config`, then its first
//! URL (`http://127.0.0.1:8080/...`, which any client reaches: no name to resolve), then the
//! named-host form, fetched by a plain HTTP/1.1 exchange on a TCP connection to 127.0.0.1 that
//! sends the URL's host as it is, as wget or Python's urllib would.

use tollgate_tests::client::raw_exchange;
use tollgate_tests::proxy::Proxy;
use tollgate_tests::workspace_root;

/// The README's lines.
fn readme() -> String {
    std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md")
}

/// The `--config` of the README's first `cargo run` command.
fn quickstart_config(readme: &str) -> String {
    let command = readme
        .lines()
        .find(|l| l.starts_with("cargo run "))
        .expect("the README shows a cargo run command");
    let mut words = command.split_whitespace();
    words.find(|w| *w == "--config");
    words
        .next()
        .expect("the cargo run command has --config")
        .to_string()
}

/// The README's first URL starting with `prefix`, split into host and path.
fn url(readme: &str, prefix: &str) -> (String, String) {
    let start = readme
        .find(prefix)
        .unwrap_or_else(|| panic!("the README shows a URL starting with {prefix}"));
    let url: String = readme[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && !"`)<>".contains(*c))
        .collect();
    let rest = url.strip_prefix("http://").expect("an http URL");
    let slash = rest.find('/').expect("a URL with a path");
    (rest[..slash].to_string(), rest[slash..].to_string())
}

/// GET `path` on the proxy with `host` (its port replaced by the proxy's) as Host.
fn get(proxy: &Proxy, host: &str, path: &str) -> (u16, String) {
    let name = host.rsplit_once(':').map_or(host, |(name, _)| name);
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {name}:{}\r\nUser-Agent: plain\r\nConnection: close\r\n\r\n",
        proxy.addr().port()
    );
    let response = raw_exchange(proxy.addr(), request.as_bytes());
    (response.status, response.text())
}

#[test]
fn the_readme_quickstart_answers_on_127_0_0_1_then_on_its_named_host() {
    let readme = readme();
    let config = quickstart_config(&readme);
    let proxy = Proxy::start_standalone(&workspace_root().join(&config), &[]);

    let (host, path) = url(&readme, "http://127.0.0.1:8080/");
    assert_eq!(host, "127.0.0.1:8080");
    let (status, body) = get(&proxy, &host, &path);
    assert_eq!(status, 200, "{path}: {body}");
    assert!(body.contains("Washington"), "{path}: {body}");

    let (named, named_path) = url(&readme, "http://hello.default.localhost:8080/");
    assert_eq!(named_path, path, "the second step names the same resource");
    let (status, body) = get(&proxy, &named, &named_path);
    assert_eq!(status, 200, "{named}{named_path}: {body}");
    assert!(body.contains("Washington"), "{body}");
}
