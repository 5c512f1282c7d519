//! Whether a suite that needs a service runs, and one visible line per test binary when it
//! does not.
//!
//! Each test binary decides once per service: the first test that asks reads the variable, later
//! tests get the same answer. A skip is announced once per binary and per service, as
//! `SKIPPED in hearth-storage/it: PostgreSQL suites (set HEARTH_TEST_DATABASE_URL, …)`, written
//! straight to the process's standard error. libtest captures only what the print macros write
//! (`eprintln!` from a test shows only when that test fails), so a line written through
//! [`std::io::stderr`] reaches plain `cargo test` output, which otherwise shows the skipped
//! tests as `ok`. Under `CI=true` a missing service panics in every test that needs it.

use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::sync::{Mutex, PoisonError};

use crate::{DATABASE_URL_VAR, REDIS_URL_VAR};

/// Whether this run is CI, where skipping a service suite is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The URL of a service for tests, or `None` when its suites skip in this binary.
///
/// `var` names the variable (for example [`DATABASE_URL_VAR`]); `what` names the suite for the
/// failure message under CI. The decision is read once per binary and per variable.
///
/// # Panics
/// Under `CI=true` when the variable is unset or empty.
pub fn service_url(var: &str, what: &str) -> Option<String> {
    /// Each variable's answer, as first read in this binary.
    static DECIDED: Mutex<BTreeMap<String, Option<String>>> = Mutex::new(BTreeMap::new());
    let url = DECIDED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(var.to_owned())
        .or_insert_with(|| std::env::var(var).ok().filter(|url| !url.is_empty()))
        .clone();
    if url.is_none() {
        assert!(!in_ci(), "{var} is not set: CI must run the {what} suites");
        let (service, example) = match var {
            DATABASE_URL_VAR => (
                "PostgreSQL",
                ", e.g. postgres://postgres@127.0.0.1:5432/test,",
            ),
            REDIS_URL_VAR => ("Redis", ", e.g. redis://127.0.0.1:6379,"),
            _ => (what, ""),
        };
        skip_suites(
            &format!("{service} suites"),
            &format!("set {var}{example} to run them"),
        );
    }
    url
}

/// Announces, once per test binary and per `suites`, that those suites skip and how to run them.
///
/// For skips that are not a missing service URL (a missing tool, a feature left out of the
/// build). Callers decide themselves whether CI allows the skip.
pub fn skip_suites(suites: &str, how_to_run: &str) {
    /// The suites already announced in this binary.
    static ANNOUNCED: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = ANNOUNCED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(suites.to_owned());
    if first {
        let line = format!("SKIPPED in {}: {suites} ({how_to_run})\n", binary_label());
        // Straight to the descriptor, past libtest's capture; a failed write loses only the note.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

/// `package/target` of the running test binary, e.g. `hearth-storage/it`.
///
/// Cargo sets `CARGO_PKG_NAME` when it runs a test binary; the target is the executable's name
/// without the hash Cargo appends (`it-0123456789abcdef`).
fn binary_label() -> String {
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.file_stem()?.to_str().map(str::to_owned))
        .map(|stem| match stem.rsplit_once('-') {
            Some((name, hash)) if hash.bytes().all(|b| b.is_ascii_hexdigit()) => name.to_owned(),
            _ => stem,
        })
        .unwrap_or_else(|| "tests".to_owned());
    match std::env::var("CARGO_PKG_NAME") {
        Ok(package) if !package.is_empty() => format!("{package}/{target}"),
        _ => target,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_label_drops_cargos_hash_from_the_executable_name() {
        let label = binary_label();
        assert!(!label.is_empty());
        let target = label.rsplit('/').next().unwrap_or_default();
        // This unit-test binary is `hearth_test_support-<hash>`.
        assert_eq!(target, "hearth_test_support", "label was {label}");
    }
}
