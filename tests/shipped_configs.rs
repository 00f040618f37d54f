//! Every policy file shipped in `config/` loads without a problem.

use std::path::Path;

use patrol::config::Config;

fn load(name: &str) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name);
    match Config::load(&path) {
        Ok(config) => config,
        Err(error) => panic!("{error}"),
    }
}

#[test]
fn demo_policy_loads() {
    let config = load("demo.toml");
    assert_eq!(config.tenants[0].name, "demo");
    assert!(config.safety.dry_run);
    assert!(!config.policy.rules.is_empty());
}

#[test]
fn example_policy_loads_with_safe_defaults() {
    let config = load("patrol.example.toml");
    assert!(
        config.safety.dry_run,
        "the example must not delete when copied as is"
    );
    assert!(config.safety.protect_managed);
    assert!(config.tenants[0].api_url.starts_with("https://"));
}
