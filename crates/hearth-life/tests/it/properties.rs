//! Properties over generated catalogues and the starter catalogue: every fired event was
//! eligible by the rules checked here from the history alone (priority order within a day,
//! the daily limit, dependencies, paused threads, conflicts, once-only and cooldowns), and the
//! same seeds (and answers) give the same life, saved and reloaded or not.

use std::collections::BTreeSet;

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_life::{Answer, AnswerForm, Catalogue, HistoryEntry, Life, Priority, Repeat};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{Value, json};

/// What the test knows about a catalogue, computed independently of the engine.
#[derive(Debug, Clone)]
struct Model {
    names: Vec<String>,
    priority: Vec<Priority>,
    /// `None` for once-only.
    cooldown: Vec<Option<u32>>,
    requires: Vec<Vec<usize>>,
    ancestors: Vec<BTreeSet<usize>>,
    conflicts: Vec<BTreeSet<usize>>,
    asks: Vec<bool>,
    max_per_day: u32,
}

impl Model {
    fn index(&self, name: &str) -> usize {
        self.names.iter().position(|n| n == name).unwrap()
    }

    fn from_catalogue(catalogue: &Catalogue) -> Self {
        let names: Vec<String> = catalogue.events().map(|e| e.name().to_owned()).collect();
        let index = |n: &str| names.iter().position(|x| x == n).unwrap();
        let events: Vec<_> = catalogue.events().collect();
        Self {
            priority: events.iter().map(|e| e.priority()).collect(),
            cooldown: events
                .iter()
                .map(|e| match e.repeat() {
                    Repeat::Once => None,
                    Repeat::Cooldown { days } => Some(days),
                })
                .collect(),
            requires: events
                .iter()
                .map(|e| catalogue.requires(e).map(index).collect())
                .collect(),
            ancestors: events
                .iter()
                .map(|e| catalogue.ancestors(e).map(index).collect())
                .collect(),
            conflicts: events
                .iter()
                .map(|e| catalogue.conflicts(e).map(index).collect())
                .collect(),
            asks: events.iter().map(|e| e.asks()).collect(),
            max_per_day: catalogue.max_events_per_day(),
            names,
        }
    }

    /// Replays `history` and fails on the first event that fired against the rules.
    fn check(&self, history: &[HistoryEntry]) -> Result<(), TestCaseError> {
        let mut times = vec![0u32; self.names.len()];
        let mut last_day = vec![0u32; self.names.len()];
        let mut pending: BTreeSet<usize> = BTreeSet::new();
        // The previous event fired on the same day: (day, priority, index), and the count.
        let mut previous: Option<(u32, Priority, usize)> = None;
        let mut today = 0u32;
        for entry in history {
            match entry {
                HistoryEntry::Event { day, event } => {
                    let e = self.index(event);
                    if let Some((d, p, i)) = previous {
                        if d == *day {
                            // Highest priority first; equal priorities in file order.
                            prop_assert!(
                                p > self.priority[e] || (p == self.priority[e] && i < e),
                                "day {day}: {event} after {}",
                                self.names[i]
                            );
                            today += 1;
                        } else {
                            today = 1;
                        }
                    } else {
                        today = 1;
                    }
                    prop_assert!(today <= self.max_per_day, "day {day}: too many events");
                    prop_assert!(!pending.contains(&e), "{event} fired while waiting");
                    match self.cooldown[e] {
                        None => prop_assert_eq!(times[e], 0, "{} fired twice", event),
                        Some(days) => prop_assert!(
                            times[e] == 0 || day - last_day[e] >= days,
                            "{event} fired within its cooldown"
                        ),
                    }
                    for &r in &self.requires[e] {
                        prop_assert!(times[r] > 0, "{event} before {}", self.names[r]);
                    }
                    for &a in &self.ancestors[e] {
                        prop_assert!(
                            !pending.contains(&a),
                            "{event} while {} waited for an answer",
                            self.names[a]
                        );
                    }
                    for &c in &self.conflicts[e] {
                        prop_assert_eq!(times[c], 0, "{} and {} both fired", event, self.names[c]);
                    }
                    times[e] += 1;
                    last_day[e] = *day;
                    if self.asks[e] {
                        pending.insert(e);
                    }
                    previous = Some((*day, self.priority[e], e));
                }
                HistoryEntry::Answer { event, .. } => {
                    let e = self.index(event);
                    prop_assert!(pending.remove(&e), "answer to {event}, which did not ask");
                }
                HistoryEntry::Ended { .. } => {
                    // Questions are withdrawn when the life ends.
                    pending.clear();
                }
                HistoryEntry::Line { .. } => {}
            }
        }
        Ok(())
    }
}

/// The raw draws for one generated event.
#[derive(Debug, Clone)]
struct Draw {
    priority: usize,
    cooldown: Option<u32>,
    requires: Vec<Index>,
    conflicts: Vec<Index>,
    chance: f64,
    condition: (u8, i64),
    health: i64,
    happiness: i64,
    set: Option<usize>,
    clear: Option<usize>,
    question: bool,
}

fn draw() -> impl Strategy<Value = Draw> {
    (
        (
            0usize..4,
            prop::option::of(1u32..5),
            prop::collection::vec(any::<Index>(), 0..3),
            prop::collection::vec(any::<Index>(), 0..2),
            prop::sample::select(vec![1.0, 0.5, 0.05]),
        ),
        (
            (0u8..4, 0i64..100),
            -20i64..8,
            -10i64..10,
            prop::option::of(0usize..3),
            prop::option::of(0usize..3),
            prop::bool::weighted(0.3),
        ),
    )
        .prop_map(
            |(
                (priority, cooldown, requires, conflicts, chance),
                (condition, health, happiness, set, clear, question),
            )| Draw {
                priority,
                cooldown,
                requires,
                conflicts,
                chance,
                condition,
                health,
                happiness,
                set,
                clear,
                question,
            },
        )
}

const PRIORITIES: [&str; 4] = ["low", "normal", "high", "critical"];

/// A valid catalogue from the draws: dependencies only on earlier events (so no cycles), and
/// only the conflicts the rules allow; plus the test's own model of it.
fn build(draws: &[Draw], max_per_day: u32) -> (String, Model) {
    let n = draws.len();
    let mut requires: Vec<Vec<usize>> = Vec::with_capacity(n);
    let mut ancestors: Vec<BTreeSet<usize>> = Vec::with_capacity(n);
    for (i, d) in draws.iter().enumerate() {
        let mut req: Vec<usize> = if i == 0 {
            Vec::new()
        } else {
            d.requires.iter().map(|x| x.index(i)).collect()
        };
        req.sort_unstable();
        req.dedup();
        let mut anc = BTreeSet::new();
        for &r in &req {
            anc.insert(r);
            anc.extend(ancestors[r].iter().copied());
        }
        requires.push(req);
        ancestors.push(anc);
    }
    let mut conflicts: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut listed: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, d) in draws.iter().enumerate() {
        for x in &d.conflicts {
            let j = x.index(n);
            let related = i == j || ancestors[i].contains(&j) || ancestors[j].contains(&i);
            let shared = ancestors.iter().any(|a| a.contains(&i) && a.contains(&j));
            if !related && !shared {
                conflicts[i].insert(j);
                conflicts[j].insert(i);
                listed[i].push(j);
            }
        }
    }
    let set_flags: BTreeSet<usize> = draws.iter().filter_map(|d| d.set).collect();
    let name = |i: usize| format!("e{i}");
    let events: Vec<Value> = draws
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut event = json!({
                "name": name(i),
                "description": "something happens",
                "priority": PRIORITIES[d.priority],
                "category": "c",
                "requires": requires[i].iter().map(|&r| name(r)).collect::<Vec<_>>(),
                "conflicts": listed[i].iter().map(|&c| name(c)).collect::<Vec<_>>(),
                "chance": d.chance,
            });
            match d.cooldown {
                Some(days) => event["cooldown_days"] = json!(days),
                None => event["once"] = json!(true),
            }
            let flag = usize::try_from(d.condition.1 % 3).unwrap();
            let when = match d.condition.0 {
                1 => Some(json!({"stat": "health", "at_least": d.condition.1})),
                2 if set_flags.contains(&flag) => Some(json!({"flag": format!("f{flag}")})),
                3 if set_flags.contains(&flag) => {
                    Some(json!({"not": {"flag": format!("f{flag}")}}))
                }
                _ => None,
            };
            if let Some(when) = when {
                event["when"] = when;
            }
            let mut effect = json!({"health": d.health, "happiness": d.happiness});
            if let Some(f) = d.set {
                effect["set"] = json!([format!("f{f}")]);
            }
            if let Some(f) = d.clear {
                effect["clear"] = json!([format!("f{f}")]);
            }
            event["effect"] = effect;
            if d.question {
                event["question"] = json!({"prompt": "?", "choices": [
                    {"id": "up", "label": "Up", "effect": {"happiness": 5}},
                    {"id": "down", "label": "Down", "effect": {"health": -5}}
                ]});
            }
            event
        })
        .collect();
    let file = json!({
        "format": 1, "name": "generated", "categories": ["c"],
        "max_events_per_day": max_per_day, "events": events,
    });
    let model = Model {
        names: (0..n).map(name).collect(),
        priority: draws
            .iter()
            .map(|d| match d.priority {
                0 => Priority::Low,
                1 => Priority::Normal,
                2 => Priority::High,
                _ => Priority::Critical,
            })
            .collect(),
        cooldown: draws.iter().map(|d| d.cooldown).collect(),
        requires,
        ancestors,
        conflicts,
        asks: draws.iter().map(|d| d.question).collect(),
        max_per_day,
    };
    (file.to_string(), model)
}

/// Lives up to `days` days, answering some questions after some ticks (a fixed rule of the
/// day and the event, so runs compare), and optionally saving and reloading after `save_at`.
fn live(
    catalogue: &Catalogue,
    seed: [u8; 32],
    client: &str,
    days: u32,
    save_at: Option<u32>,
) -> Life {
    let mut life = Life::new(
        catalogue,
        ServerSeed::from_bytes(seed),
        ClientSeed::parse(client).unwrap(),
    );
    for _ in 0..days {
        if life.ended().is_some() {
            break;
        }
        let day = life.tick(catalogue).unwrap().day;
        let waiting: Vec<String> = life.pending(catalogue).map(str::to_owned).collect();
        for event in waiting {
            if life.ended().is_some() {
                break; // An answer's effect may end the life; the rest go unanswered.
            }
            let salt = u32::try_from(event.len()).unwrap();
            if !(day + salt).is_multiple_of(4) {
                continue; // Left waiting: its thread stays paused for now.
            }
            let view = life.view(catalogue).unwrap();
            let question = view.questions.iter().find(|q| q.event == event).unwrap();
            let answer = match &question.answer_with {
                AnswerForm::Choices(choices) => {
                    Answer::Choice(choices[(day as usize) % choices.len()].id.clone())
                }
                AnswerForm::FreeText { .. } => Answer::Text(format!("day {day}: I work hard")),
            };
            life.answer(catalogue, &event, &answer).unwrap();
        }
        if save_at == Some(day) {
            let saved = life.to_json(catalogue).unwrap();
            life = Life::from_json(&saved, catalogue).unwrap();
        }
    }
    life
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn generated_catalogues_load_and_lives_keep_every_rule(
        draws in prop::collection::vec(draw(), 1..14),
        max_per_day in 1u32..4,
        seed in any::<[u8; 32]>(),
        save_at in 1u32..200,
    ) {
        let (file, model) = build(&draws, max_per_day);
        let catalogue = Catalogue::from_json(&file);
        prop_assert!(catalogue.is_ok(), "{:?}\n{file}", catalogue.err());
        let catalogue = catalogue.unwrap();
        // The engine's own view of dependencies and conflicts matches the test's.
        let engine = Model::from_catalogue(&catalogue);
        prop_assert_eq!(&engine.ancestors, &model.ancestors);
        prop_assert_eq!(&engine.conflicts, &model.conflicts);

        let life = live(&catalogue, seed, "prop", 200, None);
        model.check(&life.history(&catalogue).unwrap())?;

        // The same seeds give the same life, whether or not it was saved and reloaded.
        let again = live(&catalogue, seed, "prop", 200, Some(save_at));
        prop_assert_eq!(life.to_json(&catalogue).unwrap(), again.to_json(&catalogue).unwrap());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn starter_lives_keep_every_rule_and_replay_from_their_seeds(
        seed in any::<[u8; 32]>(),
        client in "[a-z0-9]{1,16}",
    ) {
        let catalogue = Catalogue::starter().unwrap();
        let model = Model::from_catalogue(&catalogue);
        let life = live(&catalogue, seed, &client, 100 * 365, None);
        model.check(&life.history(&catalogue).unwrap())?;
        let replay = live(&catalogue, seed, &client, 100 * 365, None);
        prop_assert_eq!(life.history(&catalogue).unwrap(), replay.history(&catalogue).unwrap());
        prop_assert_eq!(life.stats(), replay.stats());
    }
}

#[test]
fn the_model_catches_a_broken_history() {
    // The checker is not vacuous: it rejects a dependency fired too early and a conflict.
    let (file, model) = build(
        &vec![
            Draw {
                priority: 1,
                cooldown: None,
                requires: vec![],
                conflicts: vec![],
                chance: 1.0,
                condition: (0, 0),
                health: 0,
                happiness: 0,
                set: None,
                clear: None,
                question: false,
            };
            2
        ],
        3,
    );
    assert!(Catalogue::from_json(&file).is_ok());
    let event = |day, name: &str| HistoryEntry::Event {
        day,
        event: name.to_owned(),
    };
    assert!(model.check(&[event(1, "e0"), event(1, "e1")]).is_ok());
    assert!(model.check(&[event(1, "e1"), event(1, "e0")]).is_err());
    assert!(model.check(&[event(1, "e0"), event(2, "e0")]).is_err());
    let mut with_dependency = model.clone();
    with_dependency.requires[1] = vec![0];
    assert!(with_dependency.check(&[event(1, "e1")]).is_err());
    let mut with_conflict = model;
    with_conflict.conflicts[1].insert(0);
    assert!(
        with_conflict
            .check(&[event(1, "e0"), event(2, "e1")])
            .is_err()
    );
}
