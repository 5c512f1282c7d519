//! Redis-backed decision throughput: N concurrent tasks deciding for a few seconds.
//!
//! ```text
//! cargo run --release -p hearth-limits --example redis_throughput -- [rules=1|3] [tasks=50] [secs=5]
//! ```
//!
//! Uses `HEARTH_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). Keys are random among
//! 100 000 per task draw, like `redis-benchmark -r 100000`, so most decisions are allowed.

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hearth_limits::{Limiter, RedisDownPolicy, Rule};

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let rules_n = arg(1, 3);
    let tasks = arg(2, 50);
    let secs = arg(3, 5);
    let url = std::env::var("HEARTH_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let limiter = Limiter::builder()
            .redis(url.as_str(), RedisDownPolicy::Refuse)
            .key_prefix("hearth-bench:rl:")
            .build()
            .await
            .unwrap();
        assert!(!limiter.is_degraded(), "Redis at {url} answers");
        let all = [
            Rule::per_minute("ip.minute", 60),
            Rule::per_minute("game.minute", 60),
            Rule::per_hour("game.hour", 1000),
        ];
        let rules: Arc<Vec<Rule>> = Arc::new(all[..rules_n.clamp(1, 3) as usize].to_vec());
        let done = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicU64::new(0));
        let mut handles = Vec::new();
        let started = Instant::now();
        for t in 0..tasks {
            let (limiter, rules, done, stop, errors) = (
                limiter.clone(),
                rules.clone(),
                done.clone(),
                stop.clone(),
                errors.clone(),
            );
            handles.push(tokio::spawn(async move {
                // A cheap per-task xorshift for random keys.
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = format!("user:{}", x % 100_000);
                    let checks: Vec<_> = rules.iter().map(|r| r.check(key.clone())).collect();
                    match limiter.check(&checks).await {
                        Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(secs)).await;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();
        let n = done.load(Ordering::Relaxed);
        println!(
            "redis_throughput rules={} tasks={tasks} secs={elapsed:.1}: {n} decisions, {:.0} decisions/s, errors={}, degraded={}",
            rules.len(),
            n as f64 / elapsed,
            errors.load(Ordering::Relaxed),
            limiter.is_degraded()
        );
    });
}
