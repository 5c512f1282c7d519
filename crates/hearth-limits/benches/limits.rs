//! Criterion benchmarks: an in-process decision (one rule, three rules) and a Redis-backed
//! three-rule decision (skipped without `HEARTH_TEST_REDIS_URL`).
//!
//! In-process decisions never suspend, so they are driven with `now_or_never` and measure the
//! decision itself, not an executor.

#![allow(clippy::print_stdout, missing_docs)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmarks fail loudly on what should not happen"
)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use hearth_limits::{Check, Limiter, Rule};

fn rules() -> [Rule; 3] {
    // Quotas high enough that every decision is allowed: the slower, committing path.
    [
        Rule::per_minute("ip.minute", 1_000_000_000),
        Rule::per_minute("game.minute", 1_000_000_000),
        Rule::per_hour("game.hour", 1_000_000_000),
    ]
}

fn in_process(c: &mut Criterion) {
    let limiter = Limiter::in_process();
    let [ip, game_min, game_hour] = rules();
    c.bench_function("in_process/1_rule", |b| {
        b.iter(|| {
            let d = limiter
                .check_one(black_box("ip:203.0.113.7"), &ip)
                .now_or_never()
                .expect("in-process decisions never suspend")
                .unwrap();
            black_box(d)
        });
    });
    let checks = [
        Check::new(ip.clone(), "ip:203.0.113.7"),
        Check::new(game_min, "user:0191f1c2-7a9e-7cc1-9d0e-2f4b7b1d3a55"),
        Check::new(game_hour, "user:0191f1c2-7a9e-7cc1-9d0e-2f4b7b1d3a55"),
    ];
    c.bench_function("in_process/3_rules", |b| {
        b.iter(|| {
            let d = limiter
                .check(black_box(&checks))
                .now_or_never()
                .expect("in-process decisions never suspend")
                .unwrap();
            black_box(d)
        });
    });
}

#[cfg(not(feature = "redis"))]
fn redis(_: &mut Criterion) {
    eprintln!("SKIPPED: Redis benchmark (built without the `redis` feature)");
}

#[cfg(feature = "redis")]
fn redis(c: &mut Criterion) {
    let Ok(url) = std::env::var("HEARTH_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: Redis benchmark (set HEARTH_TEST_REDIS_URL)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limiter = runtime.block_on(async {
        Limiter::builder()
            .redis(url.as_str(), hearth_limits::RedisDownPolicy::Refuse)
            .key_prefix("hearth-bench:rl:")
            .build()
            .await
            .unwrap()
    });
    let [ip, game_min, game_hour] = rules();
    let checks = [
        Check::new(ip, "ip:203.0.113.7"),
        Check::new(game_min, "user:bench"),
        Check::new(game_hour, "user:bench"),
    ];
    c.bench_function("redis/3_rules", |b| {
        b.to_async(&runtime)
            .iter(|| async { black_box(limiter.check(&checks).await.unwrap()) });
    });
}

criterion_group!(benches, in_process, redis);
criterion_main!(benches);
