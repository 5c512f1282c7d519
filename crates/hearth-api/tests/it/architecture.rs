//! The architecture's invariants, checked against `cargo metadata` and the repository.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Normal (non-dev) dependencies of each workspace package; with `optional`, the optional ones
/// (behind features a user may turn off) too.
fn dependencies() -> HashMap<String, HashSet<String>> {
    dependencies_where(|_| true)
}

/// Normal dependencies that are always built, whatever features are chosen.
fn required_dependencies() -> HashMap<String, HashSet<String>> {
    dependencies_where(|dep| dep["optional"] != Value::Bool(true))
}

fn dependencies_where(keep: impl Fn(&Value) -> bool) -> HashMap<String, HashSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(root())
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null() && keep(d))
                .map(|d| d["name"].as_str().unwrap().to_owned())
                .collect();
            (package["name"].as_str().unwrap().to_owned(), deps)
        })
        .collect()
}

#[test]
fn the_domain_crate_depends_on_no_io_crate() {
    let deps = &dependencies()["hearth-domain"];
    for io in [
        "tokio",
        "sqlx",
        "redis",
        "axum",
        "hyper",
        "reqwest",
        "tower",
        "hearth-storage",
    ] {
        assert!(!deps.contains(io), "hearth-domain depends on {io}");
    }
}

#[test]
fn the_life_engine_depends_on_no_io_crate() {
    let deps = &dependencies()["hearth-life"];
    for io in [
        "tokio",
        "sqlx",
        "redis",
        "axum",
        "hyper",
        "reqwest",
        "tower",
        "hearth-storage",
        "hearth-app",
        "metrics",
        "tracing",
    ] {
        assert!(!deps.contains(io), "hearth-life depends on {io}");
    }
}

#[test]
fn only_the_gateway_depends_on_the_http_crate() {
    for (package, deps) in dependencies() {
        if deps.contains("hearth-api") {
            assert_eq!(package, "hearth-gateway", "{package} depends on hearth-api");
        }
    }
}

#[test]
fn the_worker_and_the_app_crate_know_no_http_framework() {
    let all = dependencies();
    for package in ["hearth-worker", "hearth-app"] {
        for http in ["hearth-api", "axum", "tower-http"] {
            assert!(!all[package].contains(http), "{package} depends on {http}");
        }
    }
    // The application layer is transport-free: not even hyper.
    assert!(
        !all["hearth-app"].contains("hyper"),
        "hearth-app depends on hyper"
    );
    // Both binaries are built on it.
    for binary in ["hearth-gateway", "hearth-worker"] {
        assert!(
            all[binary].contains("hearth-app"),
            "{binary} skips hearth-app"
        );
    }
}

#[test]
fn libraries_point_toward_the_domain_never_back() {
    let all = dependencies();
    let required = required_dependencies();
    assert!(!all["hearth-storage"].contains("hearth-auth"));
    // Storage speaks SQL and nothing else: Redis-backed stores live in hearth-app.
    assert!(
        !all["hearth-storage"].contains("redis"),
        "hearth-storage depends on redis"
    );
    assert!(!all["hearth-storage"].contains("hearth-app"));
    // Storage knows no HTTP.
    for http in [
        "axum",
        "hyper",
        "http",
        "tower",
        "hearth-api",
        "hearth-limits",
    ] {
        assert!(
            !all["hearth-storage"].contains(http),
            "hearth-storage depends on {http}"
        );
    }
    assert!(
        !all["hearth-auth"].contains("hearth-storage"),
        "auth builds without storage"
    );
    // The limits layer can be taken without Redis: Redis is behind a feature.
    assert!(
        !required["hearth-limits"].contains("redis"),
        "hearth-limits requires redis"
    );
    assert!(!all["hearth-limits"].contains("hearth-storage"));
    // The auth crate's tower layer and Redis stores are features: the core needs neither.
    for optional in ["axum", "tower", "redis"] {
        assert!(
            !required["hearth-auth"].contains(optional),
            "hearth-auth requires {optional}"
        );
    }
    for lib in [
        "hearth-domain",
        "hearth-storage",
        "hearth-limits",
        "hearth-observability",
        "hearth-app",
    ] {
        assert!(
            !all[lib].contains("axum"),
            "{lib} knows axum; only hearth-api (and the optional layers of hearth-auth and hearth-limits) should"
        );
        assert!(
            !all[lib].contains("hearth-test-support"),
            "{lib} depends on test support"
        );
    }
}

#[test]
fn only_the_storage_crate_holds_sql() {
    let mut offenders = Vec::new();
    for dir in ["crates", "bins"] {
        visit(&root().join(dir), &mut |path| {
            let text = std::fs::read_to_string(path).unwrap();
            let in_storage = path.components().any(|c| {
                c.as_os_str() == "hearth-storage" || c.as_os_str() == "hearth-test-support"
            });
            let has_sql = ["SELECT ", "INSERT INTO", "UPDATE wallets", "DELETE FROM"]
                .iter()
                .any(|k| text.contains(k));
            // Tests may tamper with rows on purpose; shipped code may not hold SQL.
            let is_test = path.components().any(|c| c.as_os_str() == "tests");
            if has_sql && !in_storage && !is_test {
                offenders.push(path.display().to_string());
            }
        });
    }
    assert!(
        offenders.is_empty(),
        "SQL outside hearth-storage: {offenders:?}"
    );
}

#[test]
fn no_shipped_code_updates_or_deletes_the_admin_audit() {
    let mut offenders = Vec::new();
    for dir in ["crates", "bins"] {
        visit(&root().join(dir), &mut |path| {
            let text = std::fs::read_to_string(path).unwrap().to_lowercase();
            let rewrites = [
                "update admin_audit",
                "delete from admin_audit",
                "truncate admin_audit",
            ]
            .iter()
            .any(|k| text.contains(k));
            // Tests try it on purpose, to see the triggers refuse.
            let is_test = path.components().any(|c| c.as_os_str() == "tests");
            if rewrites && !is_test {
                offenders.push(path.display().to_string());
            }
        });
    }
    assert!(
        offenders.is_empty(),
        "the audit trail is append-only: {offenders:?}"
    );
}

fn visit(dir: &Path, f: &mut impl FnMut(&Path)) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if !path.ends_with("target") {
                visit(&path, f);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            f(&path);
        }
    }
}

#[test]
fn the_realtime_hub_knows_no_transport_and_no_storage() {
    let all = dependencies();
    for other in [
        "axum",
        "hyper",
        "tower",
        "hearth-api",
        "hearth-storage",
        "hearth-app",
    ] {
        assert!(
            !all["hearth-realtime"].contains(other),
            "hearth-realtime depends on {other}"
        );
    }
}

#[test]
fn every_key_in_env_example_is_a_real_setting() {
    let text = std::fs::read_to_string(root().join(".env.example")).expect(".env.example exists");
    let mut vars = Vec::new();
    for line in text.lines() {
        let line = line.trim().trim_start_matches('#').trim();
        if let Some((key, value)) = line.split_once('=')
            && key.starts_with("HEARTH__")
            && !key.contains(' ')
        {
            vars.push((key.to_owned(), value.to_owned()));
        }
    }
    assert!(
        vars.len() >= 20,
        "only {} keys found in .env.example",
        vars.len()
    );
    for contract in [
        "HEARTH__ENVIRONMENT",
        "HEARTH__SERVER__ADDR",
        "HEARTH__DATABASE__URL",
        "HEARTH__REDIS__URL",
        "HEARTH__AUTH__JWT_SECRET",
        "HEARTH__AUTH__BCRYPT_COST",
        "HEARTH__WALLET__STARTING_BALANCE",
    ] {
        assert!(
            vars.iter().any(|(k, _)| k == contract),
            "{contract} missing from .env.example"
        );
    }
    // Each key, with its example value, must load: an unknown or mistyped key fails here.
    for (key, value) in &vars {
        let mut env = std::collections::HashMap::new();
        env.insert(key.clone(), value.clone());
        // Keys that only make sense together load together.
        if key.starts_with("HEARTH__AUTH__PREVIOUS_JWT_") {
            env.extend(
                vars.iter()
                    .filter(|(k, _)| k.starts_with("HEARTH__AUTH__PREVIOUS_JWT_"))
                    .cloned(),
            );
        }
        // A provider's fields describe one provider.
        if let Some(provider) = key
            .strip_prefix("HEARTH__AI__PROVIDERS__")
            .and_then(|rest| rest.split_once("__"))
            .map(|(n, _)| format!("HEARTH__AI__PROVIDERS__{n}__"))
        {
            env.extend(
                vars.iter()
                    .filter(|(k, _)| k.starts_with(&provider))
                    .cloned(),
            );
        }
        let settings = hearth_api::settings::Settings::load_from_map(env);
        if key == "HEARTH__ENVIRONMENT" && value == "production" {
            continue;
        }
        assert!(settings.is_ok(), "{key}={value}: {:?}", settings.err());
    }
}

#[test]
fn the_ai_client_knows_no_storage_no_budgets_and_no_web_framework() {
    let all = dependencies();
    for other in [
        "axum",
        "tower-http",
        "sqlx",
        "redis",
        "hearth-storage",
        "hearth-limits",
        "hearth-app",
        "hearth-api",
    ] {
        assert!(
            !all["hearth-ai"].contains(other),
            "hearth-ai depends on {other}"
        );
    }
    // TLS on ring, as sqlx has it: no second crypto provider to install or build.
    assert!(
        !all["hearth-ai"].contains("reqwest"),
        "hearth-ai uses reqwest"
    );
}
