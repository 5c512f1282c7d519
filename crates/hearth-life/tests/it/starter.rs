//! The starter catalogue: it loads, covers what the issue asks for, and its lives are lives.

use std::collections::{BTreeMap, BTreeSet};

use hearth_life::catalogue::STARTER_JSON;
use hearth_life::{Answer, AnswerForm, Catalogue, Happening, Life};

#[test]
fn the_starter_catalogue_loads_and_covers_the_issue() {
    let catalogue = Catalogue::starter().unwrap();
    assert_eq!(catalogue.name(), "starter");
    assert_eq!(
        catalogue.fingerprint(),
        Catalogue::from_json(STARTER_JSON).unwrap().fingerprint()
    );
    assert!(catalogue.events().count() >= 40);
    let mut per_category: BTreeMap<&str, usize> = BTreeMap::new();
    for event in catalogue.events() {
        *per_category
            .entry(catalogue.category_of(event))
            .or_default() += 1;
    }
    for category in ["school", "work", "relationships", "health", "money"] {
        assert!(
            per_category.get(category).copied().unwrap_or(0) >= 5,
            "{per_category:?}"
        );
    }
    assert!(catalogue.events().filter(|e| e.asks()).count() >= 5);
    assert!(catalogue.events().filter(|e| e.converses()).count() >= 3);
    // Some events have dependencies and conflicts, so the registry's rules are exercised.
    assert!(
        catalogue
            .events()
            .any(|e| catalogue.requires(e).count() > 0)
    );
    assert!(
        catalogue
            .events()
            .any(|e| catalogue.conflicts(e).count() > 0)
    );
}

/// Lives a whole life, answering every question at once with the choice picked by `pick`.
fn whole_life(catalogue: &Catalogue, client: &str, pick: usize) -> Life {
    let mut life = Life::new(
        catalogue,
        hearth_domain::fairness::ServerSeed::from_bytes([3; 32]),
        hearth_domain::fairness::ClientSeed::parse(client).unwrap(),
    );
    while life.ended().is_none() && life.age_years() < 150 {
        let report = life.tick(catalogue).unwrap();
        for happening in report.happenings {
            if let Happening::Event {
                question: Some(q), ..
            } = happening
            {
                let answer = match q.answer_with {
                    AnswerForm::Choices(choices) => {
                        Answer::Choice(choices[pick % choices.len()].id.clone())
                    }
                    AnswerForm::FreeText { .. } => Answer::Text(
                        ["I learn fast", "Thank you all", "Be strong"][pick % 3].into(),
                    ),
                };
                life.answer(catalogue, &q.event, &answer).unwrap();
            }
        }
    }
    life
}

#[test]
fn starter_lives_end_and_most_events_happen_in_some_life() {
    let catalogue = Catalogue::starter().unwrap();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut ages = Vec::new();
    for i in 0..24 {
        let life = whole_life(&catalogue, &format!("life-{i}"), i);
        let ending = life.ended().expect("every starter life ends");
        ages.push(ending.day / 365);
        seen.extend(life.fired_counts(&catalogue).into_keys());
    }
    // Lives end, mostly in old age; an accident or an illness may end one early.
    ages.sort_unstable();
    assert!(ages.iter().all(|a| *a <= 110), "{ages:?}");
    assert!(
        (60..=95).contains(&ages[ages.len() / 2]),
        "median of {ages:?}"
    );
    let never: Vec<&str> = catalogue
        .events()
        .map(|e| e.name())
        .filter(|n| !seen.contains(*n))
        .collect();
    // The rarest events (a lottery win, an accident) may not happen in 24 lives.
    assert!(
        never.len() * 10 <= catalogue.events().count(),
        "never fired: {never:?}"
    );
}
