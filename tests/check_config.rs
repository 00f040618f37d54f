//! `patrol check-config` run as a real process: the invalid policy corpus, the reference
//! policy and its plain-words snapshot, secret checks and the absence of network calls.
//!
//! Each file under `tests/invalid-policies/` is a near-copy of the reference policy with
//! one mistake. Its second line, `# expect: KEY line N`, names the key and the line that
//! the single reported problem must carry.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const REFERENCE: &str = "tests/fixtures/policy.toml";
const SECRET_VARIABLE: &str = "PATROL_ACME_CLIENT_SECRET";
const SECRET_VALUE: &str = "s3cret-value-that-must-not-appear";
const AS_OF: &str = "2026-12-01T00:00:00Z";

const EXIT_VALID: i32 = 0;
const EXIT_NO_INPUT: i32 = 66;
const EXIT_INVALID: i32 = 78;

/// Builds a `check-config` command with a clean secret environment.
fn check_config(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_patrol"));
    command
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .arg("--as-of")
        .arg(AS_OF)
        .env_remove(SECRET_VARIABLE)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY");
    command
}

fn run_with_secret(config: &Path) -> Output {
    check_config(config)
        .env(SECRET_VARIABLE, SECRET_VALUE)
        .output()
        .expect("failed to start patrol")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

struct Expectation {
    key: String,
    line: usize,
}

/// Reads `# expect: KEY line N` from the second line of a corpus file.
fn expectation(path: &Path) -> Expectation {
    let text = std::fs::read_to_string(path).unwrap();
    let header = text
        .lines()
        .nth(1)
        .and_then(|line| line.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{}: second line is not `# expect: ...`", path.display()));
    let (key, line) = header
        .split_once(" line ")
        .unwrap_or_else(|| panic!("{}: expectation lacks ` line N`", path.display()));
    Expectation {
        key: key.trim().to_owned(),
        line: line.trim().parse().unwrap(),
    }
}

fn corpus() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("tests/invalid-policies")
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|extension| extension == "toml")
        })
        .collect();
    files.sort();
    files
}

#[test]
fn corpus_has_at_least_thirty_files() {
    assert!(corpus().len() >= 30, "{} files", corpus().len());
}

#[test]
fn corpus_file_fails_with_its_key_and_line() {
    let mut failures = Vec::new();
    for path in corpus() {
        let expected = expectation(&path);
        let output = run_with_secret(&path);
        let printed = stdout(&output);
        let problems: Vec<&str> = printed
            .lines()
            .filter(|line| !line.contains(": invalid configuration: "))
            .collect();
        let location = format!("{}:{}:", path.display(), expected.line);
        let key = format!(": {}: ", expected.key);

        let mut wrong = Vec::new();
        if output.status.code() != Some(EXIT_INVALID) {
            wrong.push(format!("exit code {:?}", output.status.code()));
        }
        if stderr(&output).contains("panicked") {
            wrong.push("panicked".to_owned());
        }
        if problems.len() != 1 {
            wrong.push(format!("{} problems instead of 1", problems.len()));
        }
        if !problems.iter().any(|line| line.starts_with(&location)) {
            wrong.push(format!("no problem at line {}", expected.line));
        }
        if !problems.iter().any(|line| line.contains(&key)) {
            wrong.push(format!("no problem names {}", expected.key));
        }
        if !wrong.is_empty() {
            failures.push(format!(
                "{}: {}\n{printed}{}",
                path.display(),
                wrong.join(", "),
                stderr(&output)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn corpus_messages_never_show_the_password() {
    let path = Path::new("tests/invalid-policies/bad-api-url-with-password.toml");
    let output = run_with_secret(path);
    assert!(!stdout(&output).contains("hunter2"), "{}", stdout(&output));
}

#[test]
fn reference_policy_passes() {
    let output = run_with_secret(Path::new(REFERENCE));
    assert_eq!(
        output.status.code(),
        Some(EXIT_VALID),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
}

#[test]
fn reference_policy_in_plain_words() {
    let output = run_with_secret(Path::new(REFERENCE));
    let printed = stdout(&output);
    assert!(!printed.contains(SECRET_VALUE));
    insta::assert_snapshot!(printed);
}

#[test]
fn missing_secret_variable_is_reported() {
    let output = check_config(Path::new(REFERENCE)).output().unwrap();
    let printed = stdout(&output);
    assert_eq!(output.status.code(), Some(EXIT_INVALID), "{printed}");
    assert!(
        printed.contains(&format!("{REFERENCE}:10:21: tenant[0].client_secret_env: ")),
        "{printed}"
    );
    assert!(printed.contains("\"acme\""), "{printed}");
    assert!(printed.contains(SECRET_VARIABLE), "{printed}");
}

/// Writes the reference policy with its secret source replaced by `source`.
fn policy_with_secret_source(directory: &Path, source: &str) -> PathBuf {
    let reference = std::fs::read_to_string(REFERENCE).unwrap();
    let text = reference.replace("client_secret_env = \"PATROL_ACME_CLIENT_SECRET\"", source);
    let path = directory.join("patrol.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn missing_secret_file_is_reported() {
    let directory = tempfile::tempdir().unwrap();
    let config =
        policy_with_secret_source(directory.path(), "client_secret_file = \"acme.secret\"");

    let output = check_config(&config).output().unwrap();
    let printed = stdout(&output);
    assert_eq!(output.status.code(), Some(EXIT_INVALID), "{printed}");
    assert!(
        printed.contains("tenant[0].client_secret_file"),
        "{printed}"
    );
    assert!(printed.contains("acme.secret"), "{printed}");

    std::fs::write(directory.path().join("acme.secret"), SECRET_VALUE).unwrap();
    let output = check_config(&config).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(EXIT_VALID),
        "{}",
        stdout(&output)
    );
    assert!(!stdout(&output).contains(SECRET_VALUE));
}

#[test]
fn systemd_credential_is_looked_up() {
    let directory = tempfile::tempdir().unwrap();
    let credentials = directory.path().join("credentials");
    std::fs::create_dir(&credentials).unwrap();
    let config = policy_with_secret_source(
        directory.path(),
        "client_secret_credential = \"acme-client-secret\"",
    );

    // Outside the service the credential cannot be read, so it is named as not checked.
    let output = check_config(&config).output().unwrap();
    let printed = stdout(&output);
    assert_eq!(output.status.code(), Some(EXIT_VALID), "{printed}");
    assert!(printed.contains("were not checked"), "{printed}");
    assert!(printed.contains("CREDENTIALS_DIRECTORY"), "{printed}");

    let output = check_config(&config)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .output()
        .unwrap();
    let printed = stdout(&output);
    assert_eq!(output.status.code(), Some(EXIT_INVALID), "{printed}");
    assert!(
        printed.contains("tenant[0].client_secret_credential"),
        "{printed}"
    );

    std::fs::write(credentials.join("acme-client-secret"), SECRET_VALUE).unwrap();
    let output = check_config(&config)
        .env("CREDENTIALS_DIRECTORY", &credentials)
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(EXIT_VALID),
        "{}",
        stdout(&output)
    );
    assert!(!stdout(&output).contains(SECRET_VALUE));
}

#[test]
fn missing_config_file_exits_with_no_input() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("absent.toml");
    let output = check_config(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(EXIT_NO_INPUT));
    assert!(
        stdout(&output).contains("absent.toml"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn check_config_makes_no_network_call() {
    // A listener that check-config would reach if it contacted the tenant. The kernel
    // completes a TCP handshake without accept(), so any connection attempt made before
    // the child exits is waiting in the backlog afterwards.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let directory = tempfile::tempdir().unwrap();
    let reference = std::fs::read_to_string(REFERENCE).unwrap();
    let config = directory.path().join("patrol.toml");
    std::fs::write(
        &config,
        reference.replace("http://127.0.0.1:9000", &format!("http://127.0.0.1:{port}")),
    )
    .unwrap();

    let output = run_with_secret(&config);
    assert_eq!(
        output.status.code(),
        Some(EXIT_VALID),
        "{}",
        stdout(&output)
    );

    listener.set_nonblocking(true).unwrap();
    let accepted = listener.accept();
    assert!(
        matches!(&accepted, Err(error) if error.kind() == std::io::ErrorKind::WouldBlock),
        "check-config connected to the tenant: {accepted:?}"
    );
}

#[test]
fn config_that_is_not_utf8_is_invalid() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("patrol.toml");
    std::fs::write(&path, b"[safety]\ndry_run = \xff\n").unwrap();
    let output = check_config(&path).output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(EXIT_INVALID),
        "{}",
        stdout(&output)
    );
    assert!(stdout(&output).contains("not UTF-8"), "{}", stdout(&output));
}

#[test]
fn placeholder_reason_gets_a_warning() {
    let directory = tempfile::tempdir().unwrap();
    let reference = std::fs::read_to_string(REFERENCE).unwrap();
    let pasted = "\n[[exemption]]\ntoken_id = \"2c9180835d2e5168015d32f890ca1581\"\n\
                  reason = \"REPLACE: why this token is still needed, and who agreed\"\n\
                  until = \"2027-03-01\"\n";
    let path = directory.path().join("patrol.toml");
    std::fs::write(&path, format!("{reference}{pasted}")).unwrap();

    let output = run_with_secret(&path);
    let printed = stdout(&output);
    assert_eq!(output.status.code(), Some(EXIT_VALID), "{printed}");
    assert!(
        printed.contains(
            "warning: the exemption token_id = 2c9180835d2e5168015d32f890ca1581 keeps the \
             review pack's placeholder reason"
        ),
        "{printed}"
    );

    let reference_output = run_with_secret(Path::new(REFERENCE));
    assert!(!stdout(&reference_output).contains("warning"));
}
