//! The life engine at top speed: ticks per second for many concurrent lives, and the CPU and
//! memory each live life costs.
//!
//! Usage: `cargo run --release -p hearth-life --example ticks [LIVES [DAYS [THREADS]]]`
//! (defaults: 1,000 lives, 36,500 days each (100 years), 1 thread). Every life uses the
//! starter catalogue and its own client seed; each round ticks every life once, answers every
//! new question at once (the first choice, or a sentence), and resolves every conversation
//! with its fallback line, as a session would when no AI provider answers. A life that ends is
//! replaced by a newborn one, so the number of live lives stays constant. With several
//! threads, each owns an equal share of the lives (the engine has no shared mutable state).
//!
//! Reported: ticks per second (wall clock), CPU time per tick (user + system time of the
//! process from `/proc/self/stat`, in 1/100 s), the resident memory the lives added
//! (`VmRSS` from `/proc/self/status` before the lives were created and after the run) divided
//! by the number of lives, and the mean size of a saved life (`Life::to_json`).

#![allow(clippy::print_stdout)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "examples fail loudly on what should not happen"
)]

use std::process::ExitCode;
use std::time::Instant;

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_life::{Answer, AnswerForm, Catalogue, Happening, Life};

struct Slot {
    index: usize,
    generation: u32,
    life: Life,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    ticks: u64,
    events: u64,
    questions: u64,
    conversations: u64,
    deaths: u64,
}

impl Counts {
    fn add(&mut self, other: Self) {
        self.ticks += other.ticks;
        self.events += other.events;
        self.questions += other.questions;
        self.conversations += other.conversations;
        self.deaths += other.deaths;
    }
}

fn newborn(catalogue: &Catalogue, index: usize, generation: u32) -> Life {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&(index as u64).to_be_bytes());
    let client = ClientSeed::parse(&format!("bench-{index}-{generation}")).unwrap();
    Life::new(catalogue, ServerSeed::from_bytes(seed), client)
}

fn step(catalogue: &Catalogue, slot: &mut Slot, counts: &mut Counts) {
    if slot.life.ended().is_some() {
        counts.deaths += 1;
        slot.generation += 1;
        slot.life = newborn(catalogue, slot.index, slot.generation);
    }
    let report = slot.life.tick(catalogue).unwrap();
    counts.ticks += 1;
    for happening in report.happenings {
        let Happening::Event {
            event,
            question,
            conversation,
            ..
        } = happening
        else {
            continue;
        };
        counts.events += 1;
        if let Some(question) = question {
            counts.questions += 1;
            let answer = match &question.answer_with {
                AnswerForm::Choices(choices) => Answer::Choice(choices[0].id.clone()),
                AnswerForm::FreeText { .. } => Answer::Text("I work hard and learn fast".into()),
            };
            slot.life.answer(catalogue, &event, &answer).unwrap();
        }
        if let Some(conversation) = conversation {
            counts.conversations += 1;
            slot.life
                .resolve_conversation(catalogue, conversation.id, None)
                .unwrap();
        }
    }
}

/// A `/proc/self/status` field in KiB.
fn status_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// User + system CPU time of the whole process, in seconds (USER_HZ is 100 on Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the command name, which is in parentheses and may contain spaces.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / 100.0
}

fn main() -> ExitCode {
    let usage = "usage: ticks [LIVES [DAYS [THREADS]]]  (positive integers)";
    let mut args = std::env::args().skip(1);
    let mut next = |default: usize| match args.next().map(|a| a.replace('_', "").parse()) {
        None => Some(default),
        Some(Ok(n)) if n > 0 => Some(n),
        Some(_) => None,
    };
    let (Some(lives), Some(days), Some(threads)) = (next(1_000), next(36_500), next(1)) else {
        eprintln!("{usage}");
        return ExitCode::FAILURE;
    };

    let catalogue = Catalogue::starter().unwrap();
    let rss_before = status_kib("VmRSS:");
    let mut slots: Vec<Slot> = (0..lives)
        .map(|index| Slot {
            index,
            generation: 0,
            life: newborn(&catalogue, index, 0),
        })
        .collect();

    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let chunk = lives.div_ceil(threads);
    let counts = std::thread::scope(|scope| {
        let handles: Vec<_> = slots
            .chunks_mut(chunk)
            .map(|share| {
                let catalogue = &catalogue;
                scope.spawn(move || {
                    let mut counts = Counts::default();
                    for _ in 0..days {
                        for slot in share.iter_mut() {
                            step(catalogue, slot, &mut counts);
                        }
                    }
                    counts
                })
            })
            .collect();
        let mut total = Counts::default();
        for handle in handles {
            total.add(handle.join().unwrap());
        }
        total
    });
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let rss_after = status_kib("VmRSS:");
    let saved: usize = slots
        .iter()
        .map(|s| s.life.to_json(&catalogue).unwrap().len())
        .sum();
    let mean_age: f64 = slots
        .iter()
        .map(|s| f64::from(s.life.age_years()))
        .sum::<f64>()
        / lives as f64;

    let ticks = counts.ticks as f64;
    let cpu_per_tick_us = cpu / ticks * 1e6;
    println!(
        "catalogue: {} ({} events)",
        catalogue.name(),
        catalogue.events().count()
    );
    println!("lives: {lives}, days per life slot: {days}, threads: {threads}");
    println!(
        "ticks: {} in {wall:.2} s wall = {:.0} ticks/s ({:.0} per life per second)",
        counts.ticks,
        ticks / wall,
        ticks / wall / lives as f64
    );
    println!(
        "events: {} ({:.4} per tick), questions answered: {}, conversations: {}, lives ended and replaced: {}",
        counts.events,
        counts.events as f64 / ticks,
        counts.questions,
        counts.conversations,
        counts.deaths
    );
    println!("cpu: {cpu:.2} s = {cpu_per_tick_us:.3} us per tick");
    for speed in [1.0, 100.0, 5_000.0] {
        println!(
            "  a life at {speed} ticks/s uses {:.4}% of one core",
            speed * cpu_per_tick_us / 1e4
        );
    }
    println!(
        "memory: VmRSS {rss_before} KiB -> {rss_after} KiB: {:.2} KiB per live life (mean age {mean_age:.1} years)",
        (rss_after.saturating_sub(rss_before)) as f64 / lives as f64
    );
    println!(
        "saved life: {:.0} bytes of JSON on average",
        saved as f64 / lives as f64
    );
    ExitCode::SUCCESS
}
