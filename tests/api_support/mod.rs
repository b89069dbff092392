//! Shared by the API end-to-end tests: runs the real `clientlog` binary on port 0 in a data
//! directory of its own, reads the address it prints, and talks to it over HTTP.

#![allow(dead_code, unused_imports)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use clientlog_readstore::test_support::{Backend, TestStore};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_clientlog");

/// A running `clientlog serve`, killed on drop.
pub struct Server {
    child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `clientlog serve` on 127.0.0.1:0 with `extra` flags; the read store is `store`'s.
pub fn serve(store: &TestStore, extra: &[&str]) -> Server {
    let mut flags = vec!["--reevaluate-every", "0"];
    flags.extend_from_slice(extra);
    start(store, "serve", &flags)
}

/// Starts `clientlog COMMAND --data DIR --listen 127.0.0.1:0 [--database-url …] EXTRA`.
pub fn start(store: &TestStore, command: &str, extra: &[&str]) -> Server {
    let data = store.dir().to_str().expect("utf-8 temp dir").to_string();
    let mut args: Vec<String> = vec![
        command.into(),
        "--data".into(),
        data.clone(),
        "--listen".into(),
        "127.0.0.1:0".into(),
    ];
    if let Some(url) = &store.url {
        args.push("--database-url".into());
        args.push(url.clone());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let stderr = std::fs::File::create(store.dir().join("serve.log")).expect("log file");
    let mut child = Command::new(BIN)
        .args(&args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("start clientlog serve");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(address) = line.split("listening on http://").nth(1) {
                let _ = tx.send(address.trim().to_string());
            }
        }
    });
    let address = match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(address) => address,
        Err(_) => {
            let _ = child.kill();
            let log = std::fs::read_to_string(store.dir().join("serve.log")).unwrap_or_default();
            panic!("clientlog serve did not print its address:\n{log}");
        }
    };
    Server {
        child,
        base: format!("http://{address}"),
        client: reqwest::Client::new(),
    }
}

/// A SQLite-backed store in a temp dir (never skipped).
pub async fn sqlite_store(test: &str) -> TestStore {
    TestStore::new(test, Backend::Sqlite)
        .await
        .expect("a SQLite store is always available")
}

/// A response's status and JSON body (`Value::Null` if not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Server {
    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for clientlog")
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<(&str, Vec<u8>)>,
    ) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        if let Some((content_type, bytes)) = body {
            request = request.header("content-type", content_type).body(bytes);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.call("GET", path, None, &[], None).await
    }

    pub async fn post_json(&self, path: &str, body: &str) -> Answer {
        self.call(
            "POST",
            path,
            None,
            &[],
            Some(("application/json", body.as_bytes().to_vec())),
        )
        .await
    }
}

/// Asserts the one error body and returns its code.
pub fn assert_error_body(answer: &Answer) -> String {
    let b = &answer.body;
    assert!(
        b["error"]["code"].is_string()
            && b["error"]["message"].is_string()
            && b["error"]["details"].is_array()
            && b["request_id"].as_str().is_some_and(|s| !s.is_empty()),
        "status {} without the error body: {}",
        answer.status,
        answer.text
    );
    for d in b["error"]["details"].as_array().into_iter().flatten() {
        assert!(d["path"].is_string() && d["problem"].is_string(), "{d}");
    }
    b["error"]["code"].as_str().unwrap_or_default().to_string()
}

/// A `customer.registered` event.
pub fn registered(customer: &str, name: &str, owner: &str) -> String {
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/test/api","type":"customer.registered","subject":"{customer}","time":"2026-01-05T10:00:00Z","data":{{"name":"{name}","owner":"{owner}","segment":"smb","region":"west-china","channel":"direct"}}}}"#,
        id = uuid::Uuid::new_v4()
    )
}

pub use clientlog_eventlog::test_support::purchase_json;

/// `clientlog token create` → the printed secret.
pub fn create_token(dir: &Path, name: &str, scopes: &str) -> String {
    let out = Command::new(BIN)
        .args(["token", "create", "--data"])
        .arg(dir)
        .args(["--name", name, "--scopes", scopes])
        .output()
        .expect("run clientlog token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}
