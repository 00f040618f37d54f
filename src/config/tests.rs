use std::path::Path;

use chrono::TimeDelta;

use super::*;

const CONTRACT: &str = include_str!("../../tests/fixtures/policy.toml");

fn problems(text: &str) -> Vec<Problem> {
    match Config::parse(text, Path::new("patrol.toml")) {
        Ok(_) => panic!("the policy was accepted"),
        Err(error) => error.problems().to_vec(),
    }
}

const MINIMAL: &str = r#"
[[tenant]]
name = "acme"
api_url = "https://acme.api.identitynow.com"
client_id = "aaaa0000000000000000000000000001"
client_secret_env = "PATROL_SECRET"
"#;

#[test]
fn contract_policy_loads() {
    let config = Config::parse(CONTRACT, Path::new("policy.toml")).unwrap();
    assert_eq!(config.tenants.len(), 1);
    assert_eq!(config.tenants[0].name, "acme");
    assert_eq!(config.tenants[0].api_version, ApiVersion::V3);
    assert_eq!(config.policy.rules.len(), 6);
    assert_eq!(config.exemptions.len(), 3);
    assert_eq!(config.safety.grace_period, TimeDelta::days(7));
    assert!(config.safety.dry_run);
    assert_eq!(config.schedule.timezone, "Europe/Berlin");
    assert_eq!(config.state_dir, Path::new("/var/lib/patrol"));
}

#[test]
fn defaults_are_safe() {
    let config = Config::parse(MINIMAL, Path::new("patrol.toml")).unwrap();
    assert!(config.safety.dry_run);
    assert!(config.safety.protect_managed);
    assert_eq!(config.safety.grace_period, TimeDelta::days(7));
    assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9464");
    assert!(config.policy.rules.is_empty());
}

#[test]
fn unknown_key_names_key_and_line() {
    let text = format!("{MINIMAL}\n[safety]\ndry_rnu = false\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].line, 9);
    assert!(found[0].message.contains("dry_rnu"), "{:?}", found[0]);
}

#[test]
fn wrong_type_names_key_path() {
    let text =
        format!("{MINIMAL}\n[[rule]]\nname = \"r\"\naction = \"delete\"\nnever_used = \"yes\"\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].key, "rule[0].never_used");
    assert_eq!(found[0].line, 11);
}

#[test]
fn every_problem_is_reported() {
    let text = format!(
        "{MINIMAL}
[[rule]]
name = \"a\"
action = \"purge\"
last_used_older_than = \"1d\"

[[rule]]
name = \"a\"
action = \"report\"
name_matches = \"([\"

[[exemption]]
token_id = \"x\"
until = \"someday\"
"
    );
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|problem| problem.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "rule[0].action",
            "rule[0].last_used_older_than",
            "rule[1].name",
            "rule[1].name_matches",
            "exemption[0].reason",
            "exemption[0].until",
        ]
    );
    assert!(found.iter().all(|problem| problem.line > 0));
}

#[test]
fn plain_http_only_for_loopback() {
    let remote = MINIMAL.replace(
        "https://acme.api.identitynow.com",
        "http://acme.api.identitynow.com",
    );
    let found = problems(&remote);
    assert_eq!(found[0].key, "tenant[0].api_url");
    assert!(found[0].message.contains("loopback"));

    for url in [
        "http://127.0.0.1:9000",
        "http://[::1]:9000",
        "http://localhost:9000",
    ] {
        let local = MINIMAL.replace("https://acme.api.identitynow.com", url);
        assert!(
            Config::parse(&local, Path::new("p.toml")).is_ok(),
            "{url} was rejected"
        );
    }
}

#[test]
fn secret_source_must_be_exactly_one() {
    let none = MINIMAL.replace("client_secret_env = \"PATROL_SECRET\"\n", "");
    assert!(
        problems(&none)[0]
            .message
            .contains("no client secret source")
    );
    let two = format!("{MINIMAL}client_secret_file = \"/run/secret\"\n");
    let found = problems(&two);
    assert!(found[0].message.contains("more than one"), "{found:?}");
}
