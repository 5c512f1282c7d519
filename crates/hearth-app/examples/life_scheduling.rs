//! One task for every life, or one task per life? The engine alone under both schedules, at
//! the top speed (5,000 ticks per minute, 83.3 a second), so their scheduling costs compare.
//!
//! Usage: `cargo run --release -p hearth-app --example life_scheduling [LIVES [SECONDS]]`
//! (defaults: 1,000 lives, 20 s). `one`: a single task wakes every 50 ms and ticks every life
//! the days its speed owes (what `hearth_app::life::Lives` does). `each`: every life has its
//! own task and interval of 12 ms (83.3 wake-ups a second), ticking one day per wake-up.
//! Reported per schedule: days lived per second and the process's CPU per day
//! (`/proc/self/stat`). Neither saves, pushes or locks: only the scheduling differs.

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_life::{Catalogue, Life};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / 100.0
}

fn newborn(catalogue: &Catalogue, i: usize) -> Life {
    let mut seed = [0_u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Life::new(
        catalogue,
        ServerSeed::from_bytes(seed),
        ClientSeed::parse(&format!("life-{i}")).unwrap(),
    )
}

const PER_SECOND: f64 = 5_000.0 / 60.0;

async fn one_task(catalogue: Arc<Catalogue>, lives: usize, run: Duration) -> u64 {
    let mut all: Vec<(Life, f64)> = (0..lives).map(|i| (newborn(&catalogue, i), 0.0)).collect();
    let mut every = tokio::time::interval(Duration::from_millis(50));
    let started = Instant::now();
    let mut last = Instant::now();
    let mut days = 0;
    while started.elapsed() < run {
        every.tick().await;
        let now = Instant::now();
        let owed = now.duration_since(last).as_secs_f64() * PER_SECOND;
        last = now;
        for (life, debt) in &mut all {
            *debt += owed;
            while *debt >= 1.0 {
                *debt -= 1.0;
                if life.tick(&catalogue).is_ok() {
                    days += 1;
                }
            }
        }
    }
    days
}

async fn task_each(catalogue: Arc<Catalogue>, lives: usize, run: Duration) -> u64 {
    let days = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / PER_SECOND);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..lives {
        let (catalogue, days) = (catalogue.clone(), days.clone());
        tasks.spawn(async move {
            let mut life = newborn(&catalogue, i);
            let mut every = tokio::time::interval(period);
            let started = Instant::now();
            while started.elapsed() < run {
                every.tick().await;
                if life.tick(&catalogue).is_ok() {
                    days.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    days.load(Ordering::Relaxed)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let lives: usize = args.get(1).map_or(1_000, |a| a.parse().unwrap());
    let seconds: u64 = args.get(2).map_or(20, |a| a.parse().unwrap());
    let run = Duration::from_secs(seconds);
    let catalogue = Arc::new(Catalogue::starter().unwrap());
    for schedule in ["one", "each"] {
        let cpu = cpu_seconds();
        let started = Instant::now();
        let days = match schedule {
            "one" => one_task(catalogue.clone(), lives, run).await,
            _ => task_each(catalogue.clone(), lives, run).await,
        };
        let wall = started.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu;
        #[allow(clippy::cast_precision_loss)]
        {
            println!(
                "{schedule:>4}: {lives} lives, {days} days in {wall:.1} s = {:.0} ticks/s; CPU {cpu:.2} s = {:.1} % of a core, {:.2} µs per tick",
                days as f64 / wall,
                100.0 * cpu / wall,
                1e6 * cpu / days as f64
            );
        }
    }
}
