//! Small catalogues written inline, and seeds.

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_life::{Catalogue, CatalogueError, Life};
use serde_json::{Value, json};

/// A catalogue with the given events, categories `a` and `b`, and characters `friend` and
/// `rival`.
pub(crate) fn catalogue_with(events: Value) -> Result<Catalogue, CatalogueError> {
    catalogue_from(json!({
        "format": 1,
        "name": "test",
        "categories": ["a", "b"],
        "characters": [
            { "id": "friend", "name": "Fran", "persona": "a friend" },
            { "id": "rival", "name": "Rex", "persona": "a rival" }
        ],
        "events": events,
    }))
}

pub(crate) fn catalogue_from(file: Value) -> Result<Catalogue, CatalogueError> {
    Catalogue::from_json(&file.to_string())
}

/// One event object with the required fields, merged with `extra`.
pub(crate) fn event(name: &str, priority: &str, extra: Value) -> Value {
    let mut event = json!({
        "name": name,
        "description": format!("{name} happens"),
        "priority": priority,
        "category": "a",
    });
    let (Value::Object(target), Value::Object(extra)) = (&mut event, extra) else {
        panic!("objects expected");
    };
    target.extend(extra);
    if !target.contains_key("once") && !target.contains_key("cooldown_days") {
        target.insert("once".into(), Value::Bool(true));
    }
    event
}

pub(crate) fn life(catalogue: &Catalogue, client: &str) -> Life {
    Life::new(
        catalogue,
        ServerSeed::from_bytes([0x5a; 32]),
        ClientSeed::parse(client).unwrap(),
    )
}
