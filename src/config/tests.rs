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
    assert_eq!(config.schedule.timezone, chrono_tz::Tz::Europe__Berlin);
    assert_eq!(config.schedule.cron, "15 3 * * *");
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

fn with_schedule(cron: &str, timezone: &str) -> String {
    format!("{MINIMAL}\n[schedule]\ncron = \"{cron}\"\ntimezone = \"{timezone}\"\n")
}

#[test]
fn cron_accepts_five_and_six_fields() {
    let five = Config::parse(&with_schedule("15 3 * * *", "UTC"), Path::new("p.toml")).unwrap();
    assert_eq!(five.schedule.cron, "15 3 * * *");
    let six = Config::parse(&with_schedule("30 15 3 * * *", "UTC"), Path::new("p.toml")).unwrap();
    assert_eq!(six.schedule.cron, "30 15 3 * * *");
}

#[test]
fn invalid_cron_names_key_line_and_field() {
    let found = problems(&with_schedule("15 27 * * *", "UTC"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "schedule.cron");
    assert_eq!(found[0].line, 9);
    assert!(found[0].message.contains("hour field \"27\""), "{found:?}");
}

#[test]
fn cron_with_year_field_is_rejected() {
    let found = problems(&with_schedule("0 15 3 * * * 2027", "UTC"));
    assert_eq!(found[0].key, "schedule.cron");
    assert!(found[0].message.contains("7 fields"), "{found:?}");
}

#[test]
fn unknown_timezone_suggests_a_name() {
    let found = problems(&with_schedule("15 3 * * *", "Berlin"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "schedule.timezone");
    assert_eq!(found[0].line, 10);
    assert!(found[0].message.contains("\"Europe/Berlin\""), "{found:?}");
}

#[test]
fn default_schedule_is_daily_in_utc() {
    let config = Config::parse(MINIMAL, Path::new("patrol.toml")).unwrap();
    assert_eq!(config.schedule.cron, "15 3 * * *");
    assert_eq!(config.schedule.timezone, chrono_tz::Tz::UTC);
}

#[test]
fn zero_grace_period_is_accepted() {
    let text = format!("{MINIMAL}\n[safety]\ngrace_period = \"0s\"\n");
    let config = Config::parse(&text, Path::new("patrol.toml")).unwrap();
    assert!(config.safety.grace_period.is_zero());
}

#[test]
fn api_url_with_password_is_rejected_without_echoing_it() {
    let text = MINIMAL.replace(
        "https://acme.api.identitynow.com",
        "https://auditor:hunter2@acme.api.identitynow.com",
    );
    let found = problems(&text);
    assert_eq!(found[0].key, "tenant[0].api_url");
    assert!(
        found[0].message.contains("user name or password"),
        "{found:?}"
    );
    assert!(!found[0].message.contains("hunter2"), "{found:?}");
}

#[test]
fn api_url_with_version_path_is_rejected() {
    let text = MINIMAL.replace(
        "https://acme.api.identitynow.com",
        "https://acme.api.identitynow.com/v3/",
    );
    let found = problems(&text);
    assert_eq!(found[0].key, "tenant[0].api_url");
    assert!(
        found[0].message.contains("api_version = \"v3\""),
        "{found:?}"
    );
}

#[test]
fn contradicting_conditions_are_rejected() {
    let cases = [
        (
            "never_used = true\nlast_used_older_than = \"90d\"",
            "never_used",
        ),
        ("expired = true\nexpires_within = \"14d\"", "expired"),
        ("never_expires = true\nexpired = true", "never_expires"),
        (
            "never_expires = true\nexpires_within = \"14d\"",
            "never_expires",
        ),
    ];
    for (conditions, field) in cases {
        let text =
            format!("{MINIMAL}\n[[rule]]\nname = \"r\"\naction = \"report\"\n{conditions}\n");
        let found = problems(&text);
        assert_eq!(found.len(), 1, "{conditions}: {found:?}");
        assert_eq!(found[0].key, format!("rule[0].{field}"), "{conditions}");
        assert!(found[0].message.contains("never match"), "{found:?}");
    }
}

#[test]
fn consistent_negated_conditions_are_accepted() {
    let text = format!(
        "{MINIMAL}\n[[rule]]\nname = \"r\"\naction = \"report\"\nnever_used = false\n\
         last_used_older_than = \"90d\"\nexpired = false\nexpires_within = \"14d\"\n"
    );
    assert!(Config::parse(&text, Path::new("p.toml")).is_ok());
}

#[test]
fn exemption_with_past_until_is_valid() {
    let text = format!(
        "{MINIMAL}\n[[exemption]]\ntoken_id = \"t1\"\nreason = \"kept\"\nuntil = \"2001-01-01\"\n"
    );
    let config = Config::parse(&text, Path::new("p.toml")).unwrap();
    assert_eq!(config.exemptions.len(), 1);
}

#[test]
fn exemption_with_empty_token_id_is_rejected() {
    let text = format!("{MINIMAL}\n[[exemption]]\ntoken_id = \"\"\nreason = \"kept\"\n");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "exemption[0].token_id");
}

#[test]
fn table_problem_points_at_its_header() {
    let text = format!("{MINIMAL}\n[[exemption]]\nuntil = \"2027-01-01\"\n");
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|problem| problem.key.as_str()).collect();
    assert_eq!(keys, ["exemption[0]", "exemption[0].reason"]);
    assert!(found.iter().all(|problem| problem.line == 8), "{found:?}");
}

#[test]
fn missing_key_is_named_in_the_key_path() {
    let text = MINIMAL.replace("client_id = \"aaaa0000000000000000000000000001\"\n", "");
    let found = problems(&text);
    assert_eq!(found[0].key, "tenant[0].client_id");
    assert!(
        found[0].message.contains("missing required key"),
        "{found:?}"
    );
}

#[test]
fn wrong_type_of_spanned_value_has_clean_key() {
    let text = format!("{MINIMAL}\n[safety]\nmax_deletions_per_run = \"25\"\n");
    let found = problems(&text);
    assert_eq!(found[0].key, "safety.max_deletions_per_run");
    assert!(
        found[0].message.contains("expected an integer"),
        "{found:?}"
    );
}

#[test]
fn duplicate_key_names_the_key_and_table() {
    let text = format!("{MINIMAL}\n[safety]\ndry_run = true\ndry_run = false\n");
    let found = problems(&text);
    assert_eq!(found[0].key, "safety.dry_run");
    assert_eq!(found[0].line, 10);
    assert!(
        found[0].message.contains("duplicate key `dry_run`"),
        "{found:?}"
    );
}

#[test]
fn syntax_error_names_the_key_of_its_line() {
    let text = format!("{MINIMAL}\n[safety]\ngrace_period = \"7d\n");
    let found = problems(&text);
    assert_eq!(found[0].key, "safety.grace_period");
    assert_eq!(found[0].line, 9);
    assert!(found[0].message.starts_with("invalid TOML"), "{found:?}");
}

#[test]
fn section_of_the_wrong_shape_says_how_to_write_it() {
    let found = problems(&format!("{MINIMAL}\n[[schedule]]\ncron = \"15 3 * * *\"\n"));
    assert_eq!(found[0].key, "schedule");
    assert!(
        found[0].message.contains("write [schedule] once"),
        "{found:?}"
    );

    let found = problems(&format!(
        "{MINIMAL}\n[rule]\nname = \"r\"\naction = \"report\"\n"
    ));
    assert_eq!(found[0].key, "rule");
    assert!(found[0].message.contains("write [[rule]]"), "{found:?}");
}

#[test]
fn empty_tenant_list_points_at_the_file_start() {
    let found = problems("[safety]\ndry_run = true\n");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "tenant");
    assert_eq!((found[0].line, found[0].column), (1, 1));
}

#[test]
fn problems_are_sorted_by_line() {
    let text = format!(
        "[schedule]\ntimezone = \"Nowhere\"\n{MINIMAL}\n[[rule]]\nname = \"r\"\naction = \"purge\"\n\
         never_used = true\n"
    );
    let found = problems(&text);
    let lines: Vec<usize> = found.iter().map(|problem| problem.line).collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    assert_eq!(found[0].key, "schedule.timezone");
}

#[test]
fn missing_secret_names_tenant_source_and_line() {
    let text = MINIMAL.replace("PATROL_SECRET", "PATROL_TEST_VARIABLE_THAT_IS_NEVER_SET");
    let config = Config::parse(&text, Path::new("p.toml")).unwrap();
    let (found, _) = config.check_secrets();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].key, "tenant[0].client_secret_env");
    assert_eq!(found[0].line, 6);
    assert!(found[0].message.contains("\"acme\""), "{found:?}");
    assert!(
        found[0]
            .message
            .contains("PATROL_TEST_VARIABLE_THAT_IS_NEVER_SET"),
        "{found:?}"
    );
}

#[test]
fn readable_secret_file_passes_without_being_shown() {
    let directory = tempfile::tempdir().unwrap();
    std::fs::write(directory.path().join("secret"), "s3cret-value\n").unwrap();
    let text = MINIMAL.replace(
        "client_secret_env = \"PATROL_SECRET\"",
        "client_secret_file = \"secret\"",
    );
    let config = Config::parse(&text, &directory.path().join("patrol.toml")).unwrap();
    assert!(config.check_secrets().0.is_empty());
    assert!(!format!("{config:?}").contains("s3cret-value"));

    std::fs::remove_file(directory.path().join("secret")).unwrap();
    let (found, _) = config.check_secrets();
    assert_eq!(found[0].key, "tenant[0].client_secret_file");
}

#[test]
fn unknown_keys_do_not_hide_other_problems() {
    let text = format!(
        "{MINIMAL}\n[metrics]\nlistne = \"x\"\n\n[safety]\nfoo = 1\ngrace_period = \"7days\"\n"
    );
    let found = problems(&text);
    let keys: Vec<&str> = found.iter().map(|problem| problem.key.as_str()).collect();
    assert_eq!(
        keys,
        ["metrics.listne", "safety.foo", "safety.grace_period"]
    );
}

#[test]
fn log_section_sets_level_and_format() {
    let config = Config::parse(MINIMAL, Path::new("patrol.toml")).unwrap();
    assert_eq!(config.log, Log::default());
    assert_eq!(config.log.level, "info");
    assert_eq!(config.log.format, LogFormat::Auto);

    let text = format!("{MINIMAL}\n[log]\nlevel = \"patrol=debug,warn\"\nformat = \"json\"\n");
    let config = Config::parse(&text, Path::new("patrol.toml")).unwrap();
    assert_eq!(config.log.level, "patrol=debug,warn");
    assert_eq!(config.log.format, LogFormat::Json);
}

#[test]
fn invalid_log_settings_are_named() {
    let text = format!("{MINIMAL}\n[log]\nlevel = \"loud\"\nformat = \"xml\"\n");
    let problems = problems(&text);
    let keys: Vec<&str> = problems
        .iter()
        .map(|problem| problem.key.as_str())
        .collect();
    assert_eq!(keys, ["log.level", "log.format"], "{problems:?}");
    assert!(
        problems[0].message.contains("invalid log level \"loud\""),
        "{problems:?}"
    );
    assert!(
        problems[1]
            .message
            .contains("expected \"auto\", \"text\" or \"json\""),
        "{problems:?}"
    );
}
