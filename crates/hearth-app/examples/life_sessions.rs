//! The life session manager at top speed: ticks per second for many concurrent lives driven by
//! one process's `Lives` (with its saves, leases, pushes and conversation lines), and the CPU
//! and memory each live life costs.
//!
//! Usage: `cargo run --release -p hearth-app --example life_sessions [LIVES [SECONDS [DATABASE_URL]]]`
//! (defaults: 1,000 lives, 60 seconds, a SQLite file in a temporary directory). Every life is
//! started through `Lives::command` and set to 5,000 ticks per minute, the top speed, with the
//! default session settings (a save every 10 s, leases of 30 s renewed every 10 s, `life.state`
//! at most once a second) on the in-process hub. Nobody answers questions, so each question
//! pauses its own thread of events, as for a player who does not reply; conversation lines
//! come from the built-in local AI provider under the budgets.
//!
//! Reported: days lived per second (the sum of every life's `age_days` over the measured
//! window), CPU time of the process over the window (`/proc/self/stat`), resident memory the
//! lives added (`VmRSS` before creating them and at the end), saves written and their mean
//! latency (from the `hearth_life_save_seconds` summary).

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::time::{Duration, Instant};

use hearth_app::life::Command;
use hearth_app::{Hearth, Settings};
use hearth_storage::DatabaseSettings;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based in proc(5)).
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / 100.0
}

fn rss_kib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `name_sum` and `name_count` of a summary in the Prometheus text.
fn summary(text: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{suffix} ")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    (value("_sum"), value("_count"))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lives: usize = args.get(1).map_or(1_000, |a| a.parse().unwrap());
    let seconds: u64 = args.get(2).map_or(60, |a| a.parse().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let url = args
        .get(3)
        .cloned()
        .unwrap_or_else(|| format!("sqlite://{}/life-bench.db", dir.path().display()));
    let mut settings = Settings {
        database: DatabaseSettings {
            url: url.clone().into(),
            ..DatabaseSettings::default()
        },
        ..Settings::default()
    };
    settings.database.max_connections = 8;
    let hearth = Hearth::open(settings, "life-bench").await.unwrap();
    let mut users = Vec::with_capacity(lives);
    for i in 0..lives {
        let name = format!("bench_{}_{i}", uuid::Uuid::new_v4().simple());
        let name = &name[..name.len().min(32)];
        let user = hearth
            .db
            .create_user(hearth_test_support::new_user(name, 0))
            .await
            .unwrap();
        users.push(user.id);
    }
    let rss_before = rss_kib();
    for &user in &users {
        hearth.lives.command(user, Command::Start).await.unwrap();
        hearth
            .lives
            .command(
                user,
                Command::Speed {
                    ticks_per_minute: 5_000,
                },
            )
            .await
            .unwrap();
    }
    assert_eq!(hearth.lives.live(), lives);
    // Let every life reach its speed, then measure a window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let days = |hearth: &Hearth, users: &[uuid::Uuid]| {
        let hearth = hearth.clone();
        let users = users.to_vec();
        async move {
            let mut total = 0_u64;
            for user in users {
                total += u64::from(hearth.lives.snapshot(user).await.unwrap().unwrap().age_days);
            }
            total
        }
    };
    let (sum0, count0) = summary(&hearth.metrics.render(), "hearth_life_save_seconds");
    let days_before = days(&hearth, &users).await;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let days_after = days(&hearth, &users).await;
    let cpu = cpu_seconds() - cpu_before;
    let wall = started.elapsed().as_secs_f64();
    let (sum1, count1) = summary(&hearth.metrics.render(), "hearth_life_save_seconds");
    let rss_after = rss_kib();
    let ticked = days_after - days_before;
    #[allow(clippy::cast_precision_loss)]
    {
        let n = lives as f64;
        let per_second = ticked as f64 / wall;
        println!(
            "backend {}: {lives} lives at 5,000 ticks/min for {wall:.1} s",
            hearth.db.backend()
        );
        println!(
            "days lived: {ticked} = {per_second:.0} ticks/s ({:.1} per life per second; the speed asks 83.3)",
            per_second / n
        );
        println!(
            "CPU: {cpu:.2} s over {wall:.1} s = {:.1} % of a core; {:.2} µs per tick; {:.4} % of a core per live life",
            100.0 * cpu / wall,
            1e6 * cpu / ticked as f64,
            100.0 * cpu / wall / n
        );
        println!(
            "memory: VmRSS {rss_before:.0} KiB before the lives, {rss_after:.0} KiB after = {:.1} KiB per live life",
            (rss_after - rss_before) / n
        );
        let saves = count1 - count0;
        println!(
            "saves: {saves:.0} in the window ({:.0}/s), mean {:.2} ms",
            saves / wall,
            if saves > 0.0 {
                1e3 * (sum1 - sum0) / saves
            } else {
                0.0
            }
        );
    }
    hearth.close().await;
}
