//! Shared harness for the integration tests: runs the real `patrol sim` binary on a free
//! loopback port and talks to it over real HTTP.
//!
//! [`Sim::start`] spawns `patrol sim --listen 127.0.0.1:0 ARGS…`, reads the base URL from
//! the first stdout line, and keeps collecting stderr (the logs) in the background so the
//! child can never block on a full pipe. Dropping the [`Sim`] kills the process. Helpers
//! cover the control API under `/_sim/`, getting an access token, and raw HTTP exchanges
//! for tests that must see exactly what arrives on the socket (dropped connections, bodies
//! cut off). Nothing here reaches an address other than 127.0.0.1.

#![allow(
    dead_code,
    reason = "each integration test crate uses a different subset of these helpers"
)]

pub mod patrol;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::Duration;

use serde_json::Value;

/// The token list every test may load: 25 tokens with null, absent, microsecond, offset
/// and fraction-less `lastUsed` values.
pub const TOKENS_FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tokens.json");

/// How long [`Sim::start`] waits for the base URL before it gives up.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `patrol sim` process.
pub struct Sim {
    /// Like `http://127.0.0.1:41234`.
    pub base_url: String,
    /// The address the tenant listens on.
    pub addr: SocketAddr,
    child: Child,
    stderr: Arc<Mutex<String>>,
    /// The thread that collects stderr; it ends when the process closes the pipe.
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    http: reqwest::Client,
}

impl Sim {
    /// Starts `patrol sim --listen 127.0.0.1:0` with `args` and waits for its base URL.
    pub fn start(args: &[&str]) -> Self {
        Self::start_with_env(args, &[])
    }

    /// Starts like [`Sim::start`], with extra environment variables (for example `RUST_LOG`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_patrol"));
        command
            .args(["sim", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("failed to start the patrol binary");

        let stderr = Arc::new(Mutex::new(String::new()));
        let mut child_stderr = child.stderr.take().expect("stderr is piped");
        let sink = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(read) = child_stderr.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buffer[..read]);
                sink.lock().unwrap().push_str(&text);
            }
        });

        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = BufReader::new(stdout).read_line(&mut line).map(|_| line);
            let _ = sender.send(result);
        });
        let line = match receiver.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            outcome => {
                let _ = child.kill();
                let status = child.wait().ok();
                panic!(
                    "patrol sim printed no base URL ({outcome:?}), exit status {status:?}, \
                     stderr:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };

        let base_url = line.trim().to_owned();
        let addr = base_url
            .strip_prefix("http://")
            .and_then(|rest| rest.parse().ok())
            .unwrap_or_else(|| panic!("first stdout line is not a base URL: {base_url:?}"));
        Self {
            base_url,
            addr,
            child,
            stderr,
            stderr_reader: Some(stderr_reader),
            http: http_client(),
        }
    }

    /// `base_url` followed by `path` (which starts with `/` and may carry a query).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Returns the reqwest client (without proxies) for requests to this tenant.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Stops the process and returns everything it wrote to stderr, which [`Sim::stderr`]
    /// cannot promise while the collecting thread may still be reading.
    pub fn stop_and_stderr(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        self.stderr()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Gets an access token with an urlencoded client-credentials request; panics unless
    /// the tenant returns 200.
    pub async fn token(&self, client_id: &str, client_secret: &str) -> String {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", client_id),
                ("client_secret", client_secret),
            ])
            .send()
            .await
            .expect("token request failed");
        assert_eq!(response.status(), 200, "token request did not return 200");
        let body: Value = response.json().await.expect("token response is not JSON");
        body["access_token"]
            .as_str()
            .expect("token response has no access_token")
            .to_owned()
    }

    /// GET on a PAT path with a bearer token; returns status and body text.
    pub async fn get(&self, path_and_query: &str, bearer: &str) -> (u16, String) {
        let response = self
            .http
            .get(self.url(path_and_query))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("GET failed");
        let status = response.status().as_u16();
        (status, response.text().await.expect("failed to read body"))
    }

    /// Lists tokens on `path_and_query` and returns their ids in order; panics unless the
    /// response is 200 with a JSON array.
    pub async fn list_ids(&self, path_and_query: &str, bearer: &str) -> Vec<String> {
        let (status, body) = self.get(path_and_query, bearer).await;
        assert_eq!(
            status, 200,
            "GET {path_and_query} returned {status}: {body}"
        );
        ids(&body)
    }

    /// DELETE on a PAT path with a bearer token; returns status and body text.
    pub async fn delete(&self, path: &str, bearer: &str) -> (u16, String) {
        let response = self
            .http
            .delete(self.url(path))
            .bearer_auth(bearer)
            .send()
            .await
            .expect("DELETE failed");
        let status = response.status().as_u16();
        (status, response.text().await.expect("failed to read body"))
    }

    /// Sends GET to the control API and returns the JSON body; panics unless the status is 200.
    pub async fn control_get(&self, path: &str) -> Value {
        let response = self
            .http
            .get(self.url(path))
            .send()
            .await
            .expect("control GET failed");
        assert_eq!(response.status(), 200, "control GET {path}");
        response.json().await.expect("control response is not JSON")
    }

    /// PUT, PATCH or POST of a JSON body on the control API; returns status and JSON body
    /// (`Value::Null` for an empty body).
    pub async fn control_send(&self, method: &str, path: &str, body: &Value) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("valid method");
        let response = self
            .http
            .request(method, self.url(path))
            .json(body)
            .send()
            .await
            .expect("control request failed");
        let status = response.status().as_u16();
        let text = response.text().await.expect("failed to read body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("control response is not JSON")
        };
        (status, json)
    }

    /// Replaces the fault settings; panics unless the tenant accepts them.
    pub async fn set_faults(&self, faults: Value) {
        let (status, body) = self.control_send("PUT", "/_sim/faults", &faults).await;
        assert_eq!(status, 200, "PUT /_sim/faults returned {status}: {body}");
    }

    /// Fetches the statistics from `GET /_sim/stats`.
    pub async fn stats(&self) -> Value {
        self.control_get("/_sim/stats").await
    }

    /// Sends `request` (a whole HTTP/1.1 request) on a new connection and returns every
    /// byte that arrives until the tenant closes it. A reset counts as the end.
    pub fn raw_exchange(&self, request: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.addr).expect("failed to connect");
        stream
            .set_read_timeout(Some(START_TIMEOUT))
            .expect("failed to set a read timeout");
        stream
            .write_all(request.as_bytes())
            .expect("failed to send the request");
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        loop {
            match stream.read(&mut buffer) {
                Ok(0) => break,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(error) => panic!("failed to read from the tenant: {error}"),
            }
        }
        received
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("failed to run kill");
        assert!(status.success(), "kill -TERM failed");
        self.child.wait().expect("failed to wait for patrol sim")
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds a reqwest client for loopback tests: no proxy, ring as the TLS provider.
pub fn http_client() -> reqwest::Client {
    static PROVIDER: Once = Once::new();
    PROVIDER.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("failed to build the HTTP client")
}

/// Extracts the `id` of every element of a JSON array body, in order.
pub fn ids(body: &str) -> Vec<String> {
    let tokens: Vec<Value> =
        serde_json::from_str(body).unwrap_or_else(|error| panic!("{error}: {body}"));
    tokens
        .iter()
        .map(|token| token["id"].as_str().expect("token without id").to_owned())
        .collect()
}

/// Builds the ids of fixture tokens from their numbers: `fixture_ids(&[1, 8])` returns
/// `aaaa…0001` and `bbbb…0008`.
pub fn fixture_ids(numbers: &[u32]) -> Vec<String> {
    numbers
        .iter()
        .map(|&number| {
            let prefix = if number == 1 { "aaaa" } else { "bbbb" };
            format!("{prefix}{number:028}")
        })
        .collect()
}
