//! The engine through its public API: priorities, repeats, paused threads, conflicts,
//! answers, conversations, the end of a life, and saved lives.

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_life::text::MAX_ANSWER_CHARS;
use hearth_life::{
    Answer, AnswerForm, Catalogue, Happening, HistoryEntry, Life, LifeError, StateError,
};
use serde_json::json;

use crate::support::{catalogue_with, event, life};

fn fired(happenings: &[Happening]) -> Vec<String> {
    happenings
        .iter()
        .filter_map(|h| match h {
            Happening::Event { event, .. } => Some(event.clone()),
            Happening::Ended { .. } => None,
        })
        .collect()
}

#[test]
fn higher_priority_events_fire_first_and_change_what_lower_ones_see() {
    let catalogue = catalogue_with(json!([
        event(
            "normal_needs_calm",
            "normal",
            json!({"when": {"not": {"flag": "alarm"}}})
        ),
        event(
            "critical_alarm",
            "critical",
            json!({"effect": {"set": ["alarm"]}})
        ),
        event("low_after_alarm", "low", json!({"when": {"flag": "alarm"}})),
    ]))
    .unwrap();
    let mut life = life(&catalogue, "priority");
    let report = life.tick(&catalogue).unwrap();
    // The critical event ran first and set the flag, so the normal one no longer applied the
    // same day, and the low one did.
    assert_eq!(
        fired(&report.happenings),
        ["critical_alarm", "low_after_alarm"]
    );
    assert_eq!(report.day, 1);
    assert_eq!(life.times_fired(&catalogue, "normal_needs_calm"), 0);
}

#[test]
fn at_most_the_daily_limit_fires_and_the_lowest_priorities_wait() {
    let catalogue = hearth_life::Catalogue::from_json(
        &json!({
            "format": 1, "name": "cap", "categories": ["a"], "max_events_per_day": 2,
            "events": [
                event("low", "low", json!({})),
                event("high", "high", json!({})),
                event("normal", "normal", json!({})),
            ]
        })
        .to_string(),
    )
    .unwrap();
    let mut life = life(&catalogue, "cap");
    assert_eq!(
        fired(&life.tick(&catalogue).unwrap().happenings),
        ["high", "normal"]
    );
    assert_eq!(fired(&life.tick(&catalogue).unwrap().happenings), ["low"]);
    assert!(life.tick(&catalogue).unwrap().happenings.is_empty());
}

#[test]
fn once_only_fires_once_and_cooldowns_are_respected() {
    let catalogue = catalogue_with(json!([
        event("once", "normal", json!({})),
        event("every_third_day", "normal", json!({"cooldown_days": 3})),
    ]))
    .unwrap();
    let mut life = life(&catalogue, "repeat");
    let mut days_of_repeat = Vec::new();
    for _ in 0..10 {
        let report = life.tick(&catalogue).unwrap();
        if fired(&report.happenings).contains(&"every_third_day".to_owned()) {
            days_of_repeat.push(report.day);
        }
    }
    assert_eq!(life.times_fired(&catalogue, "once"), 1);
    assert_eq!(days_of_repeat, [1, 4, 7, 10]);
}

#[test]
fn an_unanswered_question_pauses_its_thread_but_not_the_life() {
    let catalogue = catalogue_with(json!([
        event(
            "ask",
            "high",
            json!({"question": {"prompt": "Left or right?", "choices": [
                {"id": "left", "label": "Left", "effect": {"smarts": 5}},
                {"id": "right", "label": "Right", "effect": {"smarts": -5}}
            ]}})
        ),
        event("after_ask", "normal", json!({"requires": ["ask"]})),
        event(
            "after_after",
            "normal",
            json!({"requires": ["after_ask"], "cooldown_days": 1})
        ),
        event("daily", "low", json!({"cooldown_days": 1})),
    ]))
    .unwrap();
    let mut life = life(&catalogue, "pause");
    let first = life.tick(&catalogue).unwrap();
    let Happening::Event {
        question: Some(question),
        ..
    } = &first.happenings[0]
    else {
        panic!("{first:?}");
    };
    assert_eq!(question.prompt, "Left or right?");
    assert!(matches!(&question.answer_with, AnswerForm::Choices(c) if c.len() == 2));
    for _ in 0..5 {
        let report = life.tick(&catalogue).unwrap();
        // The rest of the life goes on; the question's thread waits.
        assert_eq!(fired(&report.happenings), ["daily"]);
    }
    assert_eq!(life.pending(&catalogue).collect::<Vec<_>>(), ["ask"]);
    assert_eq!(life.view(&catalogue).unwrap().questions.len(), 1);

    let report = life
        .answer(&catalogue, "ask", &Answer::Choice("left".into()))
        .unwrap();
    assert_eq!(report.choice.as_deref(), Some("left"));
    assert_eq!(life.stats().smarts, 55);
    assert_eq!(life.pending(&catalogue).count(), 0);
    assert_eq!(
        fired(&life.tick(&catalogue).unwrap().happenings),
        ["after_ask", "after_after", "daily"]
    );
}

#[test]
fn of_two_conflicting_events_only_one_ever_happens() {
    let catalogue = catalogue_with(json!([
        event(
            "career",
            "normal",
            json!({"cooldown_days": 2, "conflicts": ["wanderer"]})
        ),
        event("wanderer", "high", json!({"cooldown_days": 2})),
    ]))
    .unwrap();
    let mut life = life(&catalogue, "conflict");
    for _ in 0..20 {
        life.tick(&catalogue).unwrap();
    }
    assert_eq!(life.times_fired(&catalogue, "wanderer"), 10);
    assert_eq!(life.times_fired(&catalogue, "career"), 0);
}

fn asking_catalogue() -> Catalogue {
    catalogue_with(json!([
        event(
            "choose",
            "normal",
            json!({"question": {"prompt": "Pick", "choices": [
                {"id": "a", "label": "A"}, {"id": "b", "label": "B"}
            ]}})
        ),
        event(
            "write",
            "normal",
            json!({"question": {"prompt": "Say something", "free_text": {
            "rules": [
                {"keywords": ["sorry"], "effect": {"happiness": -5}},
                {"keywords": ["thank"], "effect": {"happiness": 10, "closeness": {"friend": 5}}}
            ],
            "otherwise": {"happiness": 1}
        }}, "effect": {"meet": {"friend": 40}}})
        ),
    ]))
    .unwrap()
}

#[test]
fn answers_of_the_wrong_kind_or_to_nothing_are_refused() {
    let catalogue = asking_catalogue();
    let mut life = life(&catalogue, "answers");
    assert_eq!(
        life.answer(&catalogue, "choose", &Answer::Choice("a".into())),
        Err(LifeError::NoSuchQuestion {
            event: "choose".into()
        })
    );
    life.tick(&catalogue).unwrap();
    assert_eq!(
        life.answer(&catalogue, "nope", &Answer::Choice("a".into())),
        Err(LifeError::NoSuchQuestion {
            event: "nope".into()
        })
    );
    assert_eq!(
        life.answer(&catalogue, "choose", &Answer::Text("a".into())),
        Err(LifeError::ExpectedChoice {
            event: "choose".into()
        })
    );
    assert_eq!(
        life.answer(&catalogue, "write", &Answer::Choice("a".into())),
        Err(LifeError::ExpectedText {
            event: "write".into()
        })
    );
    assert_eq!(
        life.answer(&catalogue, "choose", &Answer::Choice("c".into())),
        Err(LifeError::UnknownChoice {
            event: "choose".into(),
            choice: "c".into()
        })
    );
    // Refusals change nothing: both questions still wait.
    assert_eq!(life.pending(&catalogue).count(), 2);
    life.answer(&catalogue, "choose", &Answer::Choice("b".into()))
        .unwrap();
    assert_eq!(
        life.answer(&catalogue, "choose", &Answer::Choice("b".into())),
        Err(LifeError::NoSuchQuestion {
            event: "choose".into()
        })
    );
}

#[test]
fn free_text_is_limited_stripped_and_matched_by_keyword() {
    let catalogue = asking_catalogue();
    let mut life = life(&catalogue, "free-text");
    life.tick(&catalogue).unwrap();

    let too_long = "é".repeat(MAX_ANSWER_CHARS + 1);
    assert_eq!(
        life.answer(&catalogue, "write", &Answer::Text(too_long)),
        Err(LifeError::TooLong {
            max: 10_000,
            actual: 10_001
        })
    );

    // Exactly the limit is accepted; markup is stripped before matching and storing.
    let mut text = String::from("<script>sorry</script><b>Thanks</b>, friend! ");
    text.push_str(&"x".repeat(MAX_ANSWER_CHARS - text.chars().count()));
    assert_eq!(text.chars().count(), MAX_ANSWER_CHARS);
    let report = life
        .answer(&catalogue, "write", &Answer::Text(text))
        .unwrap();
    assert_eq!(report.rule, Some(1), "the script's `sorry` was stripped");
    let stored = report.text.unwrap();
    assert!(stored.starts_with("Thanks , friend! xxx"), "{stored:.40}");
    assert!(!stored.contains('<'));
    assert_eq!(life.stats().happiness, 80);
    assert_eq!(life.closeness(&catalogue, "friend"), Some(45));
    let reloaded = Life::from_json(&life.to_json(&catalogue).unwrap(), &catalogue).unwrap();
    assert_eq!(
        reloaded.history(&catalogue).unwrap(),
        life.history(&catalogue).unwrap()
    );
    assert!(matches!(
        life.history(&catalogue).unwrap().last(),
        Some(HistoryEntry::Answer { event, text: Some(_), choice: None, .. }) if event == "write"
    ));
}

#[test]
fn a_free_text_answer_without_a_keyword_takes_the_otherwise_effect() {
    let catalogue = asking_catalogue();
    let mut life = life(&catalogue, "otherwise");
    life.tick(&catalogue).unwrap();
    let report = life
        .answer(&catalogue, "write", &Answer::Text("<i></i>".into()))
        .unwrap();
    assert_eq!(report.rule, None);
    assert_eq!(report.text.as_deref(), Some(""));
    assert_eq!(life.stats().happiness, 71);
}

fn talking_catalogue() -> Catalogue {
    catalogue_with(json!([event(
        "chat",
        "normal",
        json!({
            "cooldown_days": 1,
            "effect": {"meet": {"friend": 50}},
            "conversation": {"character": "friend", "topic": "Fran talks about the weather.",
                             "fallback": "Fran shrugs: \"Nice day.\""}
        })
    )]))
    .unwrap()
}

#[test]
fn a_conversation_is_data_the_caller_resolves_with_a_line_or_the_fallback() {
    let catalogue = talking_catalogue();
    let mut life = life(&catalogue, "talk");
    let report = life.tick(&catalogue).unwrap();
    let Happening::Event {
        conversation: Some(request),
        ..
    } = &report.happenings[0]
    else {
        panic!("{report:?}");
    };
    assert_eq!(request.character, "friend");
    assert_eq!(request.name, "Fran");
    assert_eq!(request.persona, "a friend");
    assert_eq!(request.topic, "Fran talks about the weather.");
    let first = request.id;
    // The life does not wait for the line.
    let second_report = life.tick(&catalogue).unwrap();
    assert_eq!(life.view(&catalogue).unwrap().conversations.len(), 2);

    let line = life
        .resolve_conversation(&catalogue, first, Some("<em>Lovely</em> weather!"))
        .unwrap();
    assert_eq!(line.text, "Lovely weather!");
    assert!(!line.fallback);
    assert_eq!(line.name, "Fran");

    // No provider answered: the fallback line, and the life goes on.
    let Happening::Event {
        conversation: Some(second),
        ..
    } = &second_report.happenings[0]
    else {
        panic!("{second_report:?}");
    };
    let line = life
        .resolve_conversation(&catalogue, second.id, None)
        .unwrap();
    assert_eq!(line.text, "Fran shrugs: \"Nice day.\"");
    assert!(line.fallback);
    // A reply that is only markup counts as no reply.
    let third = life.tick(&catalogue).unwrap();
    let Happening::Event {
        conversation: Some(third),
        ..
    } = &third.happenings[0]
    else {
        panic!();
    };
    assert!(
        life.resolve_conversation(&catalogue, third.id, Some("<p></p>"))
            .unwrap()
            .fallback
    );
    assert_eq!(
        life.resolve_conversation(&catalogue, first, None),
        Err(LifeError::NoSuchConversation { id: first })
    );
    let lines = life
        .history(&catalogue)
        .unwrap()
        .iter()
        .filter(|h| matches!(h, HistoryEntry::Line { .. }))
        .count();
    assert_eq!(lines, 3);
    // Lines, replies and fallbacks alike, survive a save and a reload.
    let reloaded = Life::from_json(&life.to_json(&catalogue).unwrap(), &catalogue).unwrap();
    assert_eq!(
        reloaded.history(&catalogue).unwrap(),
        life.history(&catalogue).unwrap()
    );
}

#[test]
fn a_long_line_is_cut() {
    let catalogue = talking_catalogue();
    let mut life = life(&catalogue, "long-line");
    let report = life.tick(&catalogue).unwrap();
    let Happening::Event {
        conversation: Some(request),
        ..
    } = &report.happenings[0]
    else {
        panic!();
    };
    let line = life
        .resolve_conversation(&catalogue, request.id, Some(&"ab".repeat(5_000)))
        .unwrap();
    assert_eq!(line.text.chars().count(), hearth_life::text::MAX_LINE_CHARS);
}

#[test]
fn a_life_ends_at_zero_health_or_by_an_effect_and_then_refuses_to_tick() {
    let catalogue = catalogue_with(json!([event(
        "illness",
        "normal",
        json!({"cooldown_days": 1, "effect": {"health": -40}})
    ),]))
    .unwrap();
    let mut life = life(&catalogue, "mortal");
    life.tick(&catalogue).unwrap();
    life.tick(&catalogue).unwrap();
    let last = life.tick(&catalogue).unwrap();
    assert_eq!(
        last.happenings.last(),
        Some(&Happening::Ended {
            cause: "health reached zero".into()
        })
    );
    assert_eq!(life.stats().health, 0);
    assert_eq!(life.ended().unwrap().day, 3);
    assert_eq!(life.tick(&catalogue), Err(LifeError::Ended { day: 3 }));

    let catalogue = catalogue_with(json!([
        event(
            "ask",
            "critical",
            json!({"question": {"prompt": "?", "choices": [
                {"id": "x", "label": "X"}, {"id": "y", "label": "Y"}
            ]}})
        ),
        event(
            "meteor",
            "critical",
            json!({"effect": {"end_life": "a meteor"}})
        ),
        event("never", "low", json!({})),
    ]))
    .unwrap();
    let mut life = crate::support::life(&catalogue, "meteor");
    let report = life.tick(&catalogue).unwrap();
    assert_eq!(fired(&report.happenings), ["ask", "meteor"]);
    assert_eq!(life.ended().unwrap().cause, "a meteor");
    // The question asked the same day is withdrawn with the life.
    assert_eq!(life.pending(&catalogue).count(), 0);
    assert!(life.view(&catalogue).unwrap().questions.is_empty());
    assert_eq!(
        life.answer(&catalogue, "ask", &Answer::Choice("x".into())),
        Err(LifeError::Ended { day: 1 })
    );
    assert_eq!(
        life.answer(&catalogue, "never", &Answer::Choice("x".into())),
        Err(LifeError::Ended { day: 1 })
    );
}

#[test]
fn a_life_refuses_another_catalogue() {
    let catalogue = talking_catalogue();
    let other = asking_catalogue();
    let mut life = life(&catalogue, "bound");
    assert_eq!(life.tick(&other), Err(LifeError::WrongCatalogue));
    assert!(life.view(&other).is_err());
    assert!(life.to_json(&other).is_err());
}

#[test]
fn money_never_goes_below_zero() {
    let catalogue = catalogue_with(json!([event(
        "spree",
        "normal",
        json!({"effect": {"money": -500}})
    ),]))
    .unwrap();
    let mut life = life(&catalogue, "broke");
    life.tick(&catalogue).unwrap();
    assert_eq!(life.stats().money, 0);
}

fn run(catalogue: &Catalogue, client: &str, days: u32) -> Life {
    let mut life = life(catalogue, client);
    for _ in 0..days {
        if life.ended().is_some() {
            break;
        }
        let report = life.tick(catalogue).unwrap();
        for happening in report.happenings {
            if let Happening::Event {
                question: Some(q), ..
            } = happening
            {
                let answer = match q.answer_with {
                    AnswerForm::Choices(choices) => Answer::Choice(choices[0].id.clone()),
                    AnswerForm::FreeText { .. } => Answer::Text("I work hard".into()),
                };
                life.answer(catalogue, &q.event, &answer).unwrap();
            }
        }
    }
    life
}

#[test]
fn a_saved_life_loads_and_carries_on_exactly_as_if_never_saved() {
    let catalogue = Catalogue::starter().unwrap();
    let straight = run(&catalogue, "saved", 30 * 365);

    let mut half = run(&catalogue, "saved", 15 * 365);
    let saved = half.to_json(&catalogue).unwrap();
    half = Life::from_json(&saved, &catalogue).unwrap();
    assert_eq!(half.to_json(&catalogue).unwrap(), saved);
    for _ in 0..15 * 365 {
        if half.ended().is_some() {
            break;
        }
        let report = half.tick(&catalogue).unwrap();
        for happening in report.happenings {
            if let Happening::Event {
                question: Some(q), ..
            } = happening
            {
                let answer = match q.answer_with {
                    AnswerForm::Choices(choices) => Answer::Choice(choices[0].id.clone()),
                    AnswerForm::FreeText { .. } => Answer::Text("I work hard".into()),
                };
                half.answer(&catalogue, &q.event, &answer).unwrap();
            }
        }
    }
    assert_eq!(
        half.to_json(&catalogue).unwrap(),
        straight.to_json(&catalogue).unwrap()
    );
    assert!(straight.history_len() > 20);
}

#[test]
fn the_same_seeds_give_the_same_life_and_other_seeds_another() {
    let catalogue = Catalogue::starter().unwrap();
    let a = run(&catalogue, "seed-a", 40 * 365);
    let again = run(&catalogue, "seed-a", 40 * 365);
    let b = run(&catalogue, "seed-b", 40 * 365);
    assert_eq!(
        a.to_json(&catalogue).unwrap(),
        again.to_json(&catalogue).unwrap()
    );
    assert_ne!(
        a.history(&catalogue).unwrap(),
        b.history(&catalogue).unwrap()
    );
}

#[test]
fn saved_lives_from_elsewhere_are_refused_with_a_reason() {
    let catalogue = talking_catalogue();
    let mut life = life(&catalogue, "record");
    life.tick(&catalogue).unwrap();
    let saved: serde_json::Value =
        serde_json::from_str(&life.to_json(&catalogue).unwrap()).unwrap();

    let with = |key: &str, value: serde_json::Value| {
        let mut record = saved.clone();
        record[key] = value;
        record.to_string()
    };
    assert_eq!(
        Life::from_json(&with("version", json!(2)), &catalogue).unwrap_err(),
        StateError::Version {
            found: 2,
            supported: 1
        }
    );
    assert_eq!(
        Life::from_json(&with("catalogue", json!("other")), &catalogue).unwrap_err(),
        StateError::OtherCatalogue {
            expected: "test".into(),
            found: "other".into()
        }
    );
    assert!(matches!(
        Life::from_json(&with("surprise", json!(1)), &catalogue),
        Err(StateError::Format { message, .. }) if message.contains("unknown field `surprise`")
    ));
    assert!(matches!(
        Life::from_json(&with("stats", json!({"health": 101, "happiness": 1, "smarts": 1, "looks": 1, "money": 0})), &catalogue),
        Err(StateError::Inconsistent(reason)) if reason.contains("health 101")
    ));
    assert!(matches!(
        Life::from_json(&with("events", json!({"ghost": {"times": 1, "last_day": 1}})), &catalogue),
        Err(StateError::Inconsistent(reason)) if reason.contains("unknown event `ghost`")
    ));
    assert!(matches!(
        Life::from_json(&with("pending", json!([{"event": "chat", "asked_day": 1}])), &catalogue),
        Err(StateError::Inconsistent(reason)) if reason.contains("cannot be waiting")
    ));
    assert!(matches!(
        Life::from_json(&with("server_seed", json!("zz")), &catalogue),
        Err(StateError::Inconsistent(_))
    ));
    // The record really holds the state: an open conversation survives a reload.
    let reloaded = Life::from_json(&saved.to_string(), &catalogue).unwrap();
    assert_eq!(reloaded.view(&catalogue).unwrap().conversations.len(), 1);
}

#[test]
fn the_view_shows_no_seed() {
    let catalogue = talking_catalogue();
    let life = Life::new(
        &catalogue,
        ServerSeed::from_bytes([0xab; 32]),
        ClientSeed::parse("view").unwrap(),
    );
    let view = serde_json::to_string(&life.view(&catalogue).unwrap()).unwrap();
    assert!(!view.contains("abababab"), "{view}");
    assert!(!format!("{life:?}").contains("abababab"));
    // The saved record, which stays server-side, does hold it.
    assert!(life.to_json(&catalogue).unwrap().contains("abababab"));
}
