//! The catalogue file as written: plain serde types, every object refusing unknown fields.
//! `catalogue.rs` turns them into the checked, indexed [`Catalogue`](super::Catalogue).

use std::collections::BTreeMap;

use serde::Deserialize;

/// The top level of a catalogue file, with its events still unparsed so that a format error
/// inside one event can name that event.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCatalogue {
    pub(super) format: u32,
    pub(super) name: String,
    #[serde(default = "default_max_events_per_day")]
    pub(super) max_events_per_day: u32,
    #[serde(default)]
    pub(super) start: RawStart,
    pub(super) categories: Vec<String>,
    #[serde(default)]
    pub(super) characters: Vec<RawCharacter>,
    pub(super) events: Vec<serde_json::Value>,
}

const fn default_max_events_per_day() -> u32 {
    3
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawStart {
    pub(super) health: i64,
    pub(super) happiness: i64,
    pub(super) smarts: i64,
    pub(super) looks: i64,
    pub(super) money: i64,
    pub(super) relationships: BTreeMap<String, i64>,
}

impl Default for RawStart {
    fn default() -> Self {
        Self {
            health: 90,
            happiness: 70,
            smarts: 50,
            looks: 50,
            money: 0,
            relationships: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCharacter {
    pub(super) id: String,
    pub(super) name: String,
    #[serde(default)]
    pub(super) persona: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEvent {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) priority: crate::Priority,
    pub(super) category: String,
    #[serde(default)]
    pub(super) requires: Vec<String>,
    #[serde(default)]
    pub(super) conflicts: Vec<String>,
    pub(super) once: Option<bool>,
    pub(super) cooldown_days: Option<u32>,
    pub(super) when: Option<RawCondition>,
    pub(super) chance: Option<f64>,
    #[serde(default)]
    pub(super) effect: RawEffect,
    pub(super) question: Option<RawQuestion>,
    pub(super) conversation: Option<RawConversation>,
}

/// One condition object: exactly one of its kinds (`all`, `any`, `not`, `stat`, `closeness`,
/// `flag`, `happened`, `knows`) with the bounds that kind takes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawCondition {
    pub(super) all: Option<Vec<RawCondition>>,
    pub(super) any: Option<Vec<RawCondition>>,
    pub(super) not: Option<Box<RawCondition>>,
    pub(super) stat: Option<String>,
    pub(super) closeness: Option<String>,
    pub(super) at_least: Option<i64>,
    pub(super) at_most: Option<i64>,
    pub(super) flag: Option<String>,
    pub(super) happened: Option<String>,
    pub(super) knows: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub(super) struct RawEffect {
    pub(super) health: i64,
    pub(super) happiness: i64,
    pub(super) smarts: i64,
    pub(super) looks: i64,
    pub(super) money: i64,
    pub(super) set: Vec<String>,
    pub(super) clear: Vec<String>,
    pub(super) meet: BTreeMap<String, i64>,
    pub(super) closeness: BTreeMap<String, i64>,
    pub(super) part: Vec<String>,
    pub(super) end_life: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawQuestion {
    pub(super) prompt: String,
    pub(super) choices: Option<Vec<RawChoice>>,
    pub(super) free_text: Option<RawFreeText>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChoice {
    pub(super) id: String,
    pub(super) label: String,
    #[serde(default)]
    pub(super) effect: RawEffect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFreeText {
    #[serde(default)]
    pub(super) rules: Vec<RawRule>,
    #[serde(default)]
    pub(super) otherwise: RawEffect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRule {
    pub(super) keywords: Vec<String>,
    #[serde(default)]
    pub(super) effect: RawEffect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConversation {
    pub(super) character: String,
    pub(super) topic: String,
    pub(super) fallback: String,
}
