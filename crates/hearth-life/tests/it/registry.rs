//! The registry refuses invalid catalogues with errors that name what is wrong.

use hearth_life::{CatalogueError, Problem};
use serde_json::json;

use crate::support::{catalogue_from, catalogue_with, event};

fn problems(result: Result<hearth_life::Catalogue, CatalogueError>) -> Vec<Problem> {
    match result {
        Err(CatalogueError::Invalid(problems)) => problems,
        other => panic!("expected an invalid catalogue, got {other:?}"),
    }
}

#[test]
fn a_dependency_on_an_unknown_event_is_named() {
    let result = catalogue_with(json!([event(
        "a",
        "normal",
        json!({"requires": ["ghost"]})
    )]));
    assert_eq!(
        problems(result),
        [Problem::UnknownDependency {
            event: "a".into(),
            dependency: "ghost".into()
        }]
    );
}

#[test]
fn a_dependency_cycle_is_reported_with_its_path() {
    let result = catalogue_with(json!([
        event("a", "normal", json!({"requires": ["c"]})),
        event("b", "normal", json!({"requires": ["a"]})),
        event("c", "normal", json!({"requires": ["b"]})),
        event("free", "normal", json!({})),
    ]));
    let problems = problems(result);
    assert_eq!(problems.len(), 1, "{problems:?}");
    let Problem::Cycle { cycle } = &problems[0] else {
        panic!("{problems:?}");
    };
    assert_eq!(cycle, &["a", "c", "b", "a"]);
    assert_eq!(
        problems[0].to_string(),
        "dependency cycle: a -> c -> b -> a"
    );
}

#[test]
fn an_event_may_not_require_itself() {
    let result = catalogue_with(json!([event("a", "normal", json!({"requires": ["a"]}))]));
    let problems = problems(result);
    assert!(
        problems
            .iter()
            .any(|p| p.to_string() == "event `a`: must not require itself"),
        "{problems:?}"
    );
}

#[test]
fn an_event_that_conflicts_with_its_own_dependency_is_refused() {
    // Directly…
    let direct = catalogue_with(json!([
        event("a", "normal", json!({})),
        event(
            "b",
            "normal",
            json!({"requires": ["a"], "conflicts": ["a"]})
        ),
    ]));
    assert_eq!(
        problems(direct),
        [Problem::ConflictsWithDependency {
            event: "b".into(),
            dependency: "a".into()
        }]
    );
    // …through another event, and declared on the other side.
    let transitive = catalogue_with(json!([
        event("a", "normal", json!({"conflicts": ["c"]})),
        event("b", "normal", json!({"requires": ["a"]})),
        event("c", "normal", json!({"requires": ["b"]})),
    ]));
    assert_eq!(
        problems(transitive),
        [Problem::ConflictsWithDependency {
            event: "c".into(),
            dependency: "a".into()
        }]
    );
}

#[test]
fn an_event_that_needs_two_conflicting_events_is_refused() {
    let result = catalogue_with(json!([
        event("a", "normal", json!({"conflicts": ["b"]})),
        event("b", "normal", json!({})),
        event("both", "normal", json!({"requires": ["a", "b"]})),
    ]));
    assert_eq!(
        problems(result),
        [Problem::RequiresConflicting {
            event: "both".into(),
            first: "a".into(),
            second: "b".into()
        }]
    );
}

#[test]
fn an_unknown_stat_names_the_event() {
    let result = catalogue_with(json!([event(
        "a",
        "normal",
        json!({"when": {"stat": "helth", "at_least": 3}})
    )]));
    let problems = problems(result);
    assert_eq!(
        problems,
        [Problem::UnknownStat {
            event: "a".into(),
            stat: "helth".into()
        }]
    );
    assert!(
        problems[0]
            .to_string()
            .starts_with("event `a`: unknown stat `helth`")
    );
}

#[test]
fn an_unknown_effect_field_names_the_event_and_the_path() {
    let result = catalogue_with(json!([
        event("fine", "normal", json!({})),
        event("typo", "normal", json!({"effect": {"helth": -3}})),
    ]));
    let Err(CatalogueError::Format {
        event,
        path,
        message,
    }) = result
    else {
        panic!("{result:?}");
    };
    assert_eq!(event.as_deref(), Some("typo"));
    assert_eq!(path, "effect.helth");
    assert!(message.contains("unknown field `helth`"), "{message}");
}

#[test]
fn unknown_top_level_fields_and_bad_json_are_refused() {
    let unknown = catalogue_from(json!({
        "format": 1, "name": "x", "categories": ["a"], "events": [], "extra": 1
    }));
    assert!(
        matches!(&unknown, Err(CatalogueError::Format { event: None, message, .. }) if message.contains("unknown field `extra`")),
        "{unknown:?}"
    );
    let syntax = hearth_life::Catalogue::from_json("{\"format\": 1,");
    assert!(matches!(syntax, Err(CatalogueError::Format { .. })));
    let trailing = hearth_life::Catalogue::from_json(
        r#"{"format": 1, "name": "x", "categories": ["a"], "events": [{"name": "a", "description": "d", "priority": "low", "category": "a", "once": true}]} trailing"#,
    );
    assert!(
        matches!(trailing, Err(CatalogueError::Format { .. })),
        "{trailing:?}"
    );
}

#[test]
fn another_format_version_is_refused() {
    let result = catalogue_from(json!({
        "format": 2, "name": "x", "categories": ["a"], "events": []
    }));
    assert_eq!(
        result.unwrap_err(),
        CatalogueError::UnsupportedFormat {
            found: 2,
            supported: 1
        }
    );
}

#[test]
fn a_flag_no_effect_sets_is_refused() {
    let result = catalogue_with(json!([event(
        "a",
        "normal",
        json!({"when": {"flag": "rich"}, "effect": {"set": ["poor"]}})
    ),]));
    assert_eq!(
        problems(result),
        [Problem::FlagNeverSet {
            event: "a".into(),
            flag: "rich".into()
        }]
    );
}

#[test]
fn unknown_categories_characters_and_events_are_named() {
    let result = catalogue_with(json!([
        event("a", "normal", json!({"category": "sport"})),
        event("b", "normal", json!({"effect": {"meet": {"ghost": 50}}})),
        event("c", "normal", json!({"when": {"happened": "nothing"}})),
        event("d", "normal", json!({"conflicts": ["nobody"]})),
        event(
            "e",
            "normal",
            json!({"conversation": {"character": "stranger", "topic": "t", "fallback": "f"}})
        ),
    ]));
    assert_eq!(
        problems(result),
        [
            Problem::UnknownCategory {
                event: "a".into(),
                category: "sport".into()
            },
            Problem::UnknownCharacter {
                event: "event `b`".into(),
                character: "ghost".into()
            },
            Problem::UnknownEvent {
                event: "c".into(),
                reference: "nothing".into()
            },
            Problem::UnknownConflict {
                event: "d".into(),
                conflict: "nobody".into()
            },
            Problem::UnknownCharacter {
                event: "event `e`".into(),
                character: "stranger".into()
            },
        ]
    );
}

#[test]
fn every_problem_is_listed_at_once() {
    let result = catalogue_with(json!([
        event("a", "normal", json!({"chance": 1.5})),
        event("a", "normal", json!({})),
        {"name": "Bad Name", "description": "d", "priority": "low", "category": "a"},
        event("c", "normal", json!({"once": true, "cooldown_days": 3})),
        event("d", "normal", json!({"effect": {"health": 200}})),
        event("e", "normal", json!({"when": {"stat": "smarts", "at_least": 9, "at_most": 3}})),
        event("f", "normal", json!({"when": {"flag": "x", "knows": "friend"}, "effect": {"set": ["x"]}})),
        event("g", "normal", json!({"when": {"all": []}})),
        event("h", "normal", json!({"description": " "})),
    ]));
    let err = result.unwrap_err();
    let text = err.to_string();
    for expected in [
        "event `a`: chance must be above 0 and at most 1, got 1.5",
        "duplicate event `a`",
        "event name \"Bad Name\" must be 1 to 64 characters of a-z, 0-9 and _",
        "event `Bad Name`: must say either",
        "event `c`: must say either",
        "event `d`: health change must be -100 to 100, got 200",
        "event `e`: at_least 9 is above at_most 3",
        "event `f`: a condition needs exactly one of",
        "event `g`: all and any need at least one condition",
        "event `h`: description must not be empty",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert_eq!(err.problems().len(), 10, "{text}");
}

#[test]
fn questions_are_checked() {
    let one_choice = catalogue_with(json!([event(
        "a",
        "normal",
        json!({"question": {
            "prompt": "?", "choices": [{"id": "only", "label": "Only"}]
        }})
    )]));
    assert!(
        one_choice
            .unwrap_err()
            .to_string()
            .contains("2 to 10 choices")
    );

    let both = catalogue_with(json!([event(
        "a",
        "normal",
        json!({"question": {
            "prompt": "?", "choices": [{"id": "x", "label": "X"}, {"id": "y", "label": "Y"}],
            "free_text": {}
        }})
    )]));
    assert!(
        both.unwrap_err()
            .to_string()
            .contains("either choices or free_text")
    );

    let duplicate = catalogue_with(json!([event(
        "a",
        "normal",
        json!({"question": {
            "prompt": "?", "choices": [{"id": "x", "label": "X"}, {"id": "x", "label": "Y"}]
        }})
    )]));
    assert_eq!(
        problems(duplicate),
        [Problem::Duplicate {
            what: "choice",
            name: "a.x".into()
        }]
    );

    let keywords = catalogue_with(json!([event(
        "a",
        "normal",
        json!({"question": {
            "prompt": "?", "free_text": {"rules": [{"keywords": ["Two Words"]}]}
        }})
    )]));
    assert!(
        keywords
            .unwrap_err()
            .to_string()
            .contains("keywords of 1 to 32")
    );
}

#[test]
fn start_values_are_checked() {
    let result = catalogue_from(json!({
        "format": 1, "name": "x", "categories": ["a"],
        "start": {"health": 0, "money": -1, "relationships": {"ghost": 10}},
        "events": [event("a", "normal", json!({}))]
    }));
    let text = result.unwrap_err().to_string();
    assert!(
        text.contains("start: health must be 1 to 100, got 0"),
        "{text}"
    );
    assert!(text.contains("start: money must not be negative"), "{text}");
    assert!(text.contains("start: unknown character `ghost`"), "{text}");
}

#[test]
fn a_valid_catalogue_orders_events_by_priority_then_file_order() {
    let catalogue = catalogue_with(json!([
        event("low_one", "low", json!({})),
        event("normal_one", "normal", json!({})),
        event("critical_one", "critical", json!({})),
        event("normal_two", "normal", json!({})),
        event("high_one", "high", json!({"conflicts": ["low_one"]})),
    ]))
    .unwrap();
    let order: Vec<&str> = catalogue.in_priority_order().map(|e| e.name()).collect();
    assert_eq!(
        order,
        [
            "critical_one",
            "high_one",
            "normal_one",
            "normal_two",
            "low_one"
        ]
    );
    // Conflicts are symmetric once loaded.
    let low = catalogue.event("low_one").unwrap();
    assert_eq!(catalogue.conflicts(low).collect::<Vec<_>>(), ["high_one"]);
}
