//! Integration tests of `hearth-limits`: one shared suite run on every backend, Redis-only
//! behaviour (one round trip, outage and recovery), the tower layer and the admission sequence
//! it shares with the gateway, and settings from the environment.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests fail loudly on what should not happen"
)]

mod admission;
mod anomaly;
mod layer;
mod redis_only;
mod settings_env;
mod suite;
mod support;

/// Instantiates the shared suite once per backend: `mod <backend> { #[tokio::test] … }`, each
/// test calling `suite::<name>(Backend::<backend>().await)` (or skipping, for Redis without
/// `HEARTH_TEST_REDIS_URL`).
macro_rules! shared_suite {
    (backends: [$($backend:ident),*]; tests: $tests:tt) => {
        $( shared_suite!(@backend $backend $tests); )*
    };
    (@backend $backend:ident [$($test:ident),* $(,)?]) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(backend) = crate::support::Backend::$backend().await else {
                        return;
                    };
                    crate::suite::$test(backend).await;
                }
            )*
        }
    };
}

shared_suite! {
    backends: [in_process, redis];
    tests: [
        quota_passes_at_once_then_refusal_says_when_to_retry,
        a_burst_before_a_window_boundary_leaves_nothing_after_it,
        a_refused_rule_consumes_nothing_from_the_others,
        the_decision_describes_the_tightest_rule_and_its_headers,
        keys_and_rules_keep_separate_counters,
        a_zero_quota_refuses_and_no_checks_allow,
        concurrent_requests_never_exceed_the_quota,
        settling_releases_the_difference_to_the_estimate,
        a_spent_user_budget_is_429_until_midnight_and_renews,
        a_spent_global_budget_is_503_until_the_hour,
        concurrent_reservations_never_exceed_the_budgets,
        a_dropped_reservation_is_released,
    ]
}
