//! Running the real `kestrel` binary: a server child process per test, an HTTP client for its
//! API, and the command line.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

/// The binary under test, built by cargo for this test.
pub const KESTREL: &str = env!("CARGO_BIN_EXE_kestrel");

/// Bound on anything a test waits for; a healthy run needs a small fraction of it.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// Polls `probe` until it gives a value; panics with `what` after [`DEADLINE`].
pub async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A `kestrel up` child process on an ephemeral port (without the demo scenario unless asked),
/// killed when dropped.
pub struct TestServer {
    /// The data directory (`--data-dir`).
    pub data_dir: PathBuf,
    /// The server's stderr, appended across restarts (beside the data directory, not in it).
    pub log: PathBuf,
    config: Option<PathBuf>,
    listen: String,
    demo: bool,
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of the running process.
    pub url: String,
    /// The admin token from `<data-dir>/admin.token`.
    pub admin: String,
}

impl TestServer {
    /// Starts a server on `data_dir` (created if needed) with the embedded defaults.
    pub async fn start(data_dir: &Path) -> TestServer {
        TestServer::start_with_config(data_dir, None).await
    }

    /// Starts a server on `data_dir` listening on a fixed address (kept across restarts).
    pub async fn start_on(data_dir: &Path, listen: &str) -> TestServer {
        TestServer::launch_new(data_dir, None, listen).await
    }

    /// Starts a server on `data_dir` with `--config FILE`.
    pub async fn start_with_config(data_dir: &Path, config: Option<&Path>) -> TestServer {
        TestServer::launch_new(data_dir, config, "127.0.0.1:0").await
    }

    async fn launch_new(data_dir: &Path, config: Option<&Path>, listen: &str) -> TestServer {
        let mut server = TestServer {
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension("log"),
            config: config.map(Path::to_path_buf),
            listen: listen.to_string(),
            demo: false,
            child: None,
            url: String::new(),
            admin: String::new(),
        };
        server.launch().await;
        server
    }

    /// Starts a server on `data_dir` that replays the demo scenario, and waits until it has.
    #[allow(dead_code)] // used by the console tests, not by e2e
    pub async fn start_with_demo(data_dir: &Path) -> TestServer {
        let mut server = TestServer {
            data_dir: data_dir.to_path_buf(),
            log: data_dir.with_extension("log"),
            config: None,
            listen: "127.0.0.1:0".to_string(),
            demo: true,
            child: None,
            url: String::new(),
            admin: String::new(),
        };
        server.launch().await;
        let marker = data_dir.join("demo.loaded");
        wait_for("the demo scenario to be replayed", async || {
            marker.exists().then_some(())
        })
        .await;
        server
    }

    /// The server's log so far, for failure messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn launch(&mut self) {
        assert!(self.child.is_none(), "server already running");
        // A previous run's file names a dead port; the new one appears once the listener is bound.
        let url_file = self.data_dir.join("server.url");
        let _ = std::fs::remove_file(&url_file);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open server log");
        let mut cmd = Command::new(KESTREL);
        cmd.arg("up");
        if !self.demo {
            cmd.arg("--no-demo");
        }
        cmd.arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--no-agent")
            .args(["--listen", &self.listen]);
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        let child = clean_env(&mut cmd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn kestrel up");
        self.child = Some(child);

        let http = reqwest::Client::new();
        let log_path = self.log.clone();
        let child = self.child.as_mut().expect("just spawned");
        let url = wait_for("the server to answer /healthz", async || {
            if let Some(status) = child.try_wait().expect("try_wait") {
                panic!(
                    "kestrel up exited early with {status}; log:\n{}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            let url = std::fs::read_to_string(&url_file).ok()?.trim().to_string();
            let resp = http.get(format!("{url}/healthz")).send().await.ok()?;
            (resp.status() == 200).then_some(url)
        })
        .await;
        self.url = url;
        self.admin = std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("admin.token written by kestrel up")
            .trim()
            .to_string();
    }

    /// A client for this server's API (a new one after each restart: the port changes).
    pub fn api(&self) -> Api {
        Api::new(&self.url)
    }

    /// Sends SIGKILL (a crash: nothing is flushed or closed) and reaps the process.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server running");
        child.kill().expect("SIGKILL the server"); // SIGKILL on Unix
        child.wait().expect("reap the server");
    }

    /// Sends SIGTERM (a graceful stop) and waits for the process to exit.
    pub async fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("server running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        wait_for("the server to exit after SIGTERM", async || {
            child.try_wait().expect("try_wait")
        })
        .await
    }

    /// Starts the server again on the same data directory and configuration.
    pub async fn restart(&mut self) {
        self.launch().await;
    }

    /// Runs a query with the admin token and returns its rows; panics unless it answers 200
    /// with a complete result.
    pub async fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        let r = self.api().query(&self.admin, sql).await;
        assert_eq!(r.status, 200, "query {sql:?} failed: {}", r.text);
        let v = r.json();
        assert_eq!(v["truncated"], false, "query {sql:?} was truncated");
        serde_json::from_value(v["rows"].clone()).expect("rows are arrays")
    }

    /// The single number a `SELECT count(*) ...` returns.
    pub async fn count(&self, sql: &str) -> u64 {
        let rows = self.query(sql).await;
        rows[0][0]
            .as_u64()
            .unwrap_or_else(|| panic!("{sql:?} did not return a count: {rows:?}"))
    }

    /// Creates a token with `kestrel token create` and returns its value.
    pub fn create_token(&self, role: &str, name: &str) -> String {
        let out = kestrel_cli(
            &[
                "token",
                "create",
                "--role",
                role,
                "--name",
                name,
                "--data-dir",
                self.data_dir.to_str().unwrap(),
            ],
            &[],
        );
        assert!(out.status.success(), "token create failed: {}", out.stderr);
        let token = out.stdout.trim().to_string();
        assert!(
            token.starts_with("kst_"),
            "unexpected token output {token:?}"
        );
        token
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes the environment variables the CLI reads, so the caller's environment does not leak
/// into a test.
fn clean_env(cmd: &mut Command) -> &mut Command {
    cmd.env_remove("KESTREL_SERVER")
        .env_remove("KESTREL_TOKEN")
        .env_remove("KESTREL_DATA_DIR")
        .env_remove("KESTREL_LOG")
}

/// What a CLI invocation printed and how it exited.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `kestrel ARGS` with `env` set (and no other `KESTREL_*` variable) and waits for it.
pub fn kestrel_cli(args: &[&str], env: &[(&str, &str)]) -> CliOutput {
    let mut cmd = Command::new(KESTREL);
    clean_env(&mut cmd).args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kestrel");
    CliOutput {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An HTTP answer: status and body text.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub text: String,
}

impl Reply {
    /// The body as JSON; panics with the body if it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("answer {} is not JSON ({e}): {}", self.status, self.text))
    }

    /// The `error` message of a JSON error answer; panics if there is none.
    pub fn error(&self) -> String {
        let v = self.json();
        let msg = v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"error\" in answer {}: {}", self.status, self.text));
        assert!(!msg.is_empty(), "empty error message");
        msg.to_string()
    }

    /// A field of the JSON body as an unsigned number.
    pub fn num(&self, field: &str) -> u64 {
        self.json()[field]
            .as_u64()
            .unwrap_or_else(|| panic!("no number {field:?} in {}", self.text))
    }
}

/// The server's HTTP API.
#[derive(Debug, Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: &str) -> Api {
        Api {
            base: base.trim_end_matches('/').to_string(),
            http: reqwest::Client::builder()
                .timeout(DEADLINE)
                .build()
                .expect("http client"),
        }
    }

    /// Sends a request; `Err` when no answer came (connection refused or reset).
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json_body: Option<Vec<u8>>,
    ) -> Result<Reply, reqwest::Error> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = json_body {
            req = req.header("content-type", "application/json").body(b);
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let text = resp.text().await?;
        Ok(Reply { status, text })
    }

    /// Sends a request that must be answered.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        json_body: Option<Vec<u8>>,
    ) -> Reply {
        self.try_send(method.clone(), path, token, json_body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Reply {
        self.send(
            Method::POST,
            path,
            token,
            Some(body.to_string().into_bytes()),
        )
        .await
    }

    /// Posts a webhook body (raw bytes: it may be deliberately broken).
    pub async fn post_audit(&self, token: Option<&str>, body: impl Into<Vec<u8>>) -> Reply {
        self.send(Method::POST, "/v1/audit/webhook", token, Some(body.into()))
            .await
    }

    /// `POST /v1/query`.
    pub async fn query(&self, token: &str, sql: &str) -> Reply {
        self.post("/v1/query", Some(token), &json!({ "sql": sql }))
            .await
    }
}
