//! The event catalogue: loaded from JSON, validated as a whole, indexed for ticking.
//!
//! [`Catalogue::from_json`] reads a file's contents (the caller reads the file) and
//! [`Catalogue::starter`] the starter catalogue built into the crate. Loading checks
//! everything a tick relies on, and lists every problem at once ([`CatalogueError::Invalid`]):
//! unknown names (dependencies, conflicts, categories, characters, stats, flags no event
//! sets), dependency cycles, an event that depends (directly or through others) on an event it
//! conflicts with, an event that needs two events that conflict with each other, and values out
//! of range. The file format is described in `docs/life.md`.

mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::condition::{Condition, Stat};
use crate::effect::{Effect, MAX_MONEY_DELTA, MAX_STAT_DELTA};
use crate::text::MAX_LINE_CHARS;
use raw::{
    RawCatalogue, RawCharacter, RawCondition, RawConversation, RawEffect, RawEvent, RawQuestion,
};

/// The catalogue file format this engine reads (the file's `format` field).
pub const FORMAT: u32 = 1;

/// The starter catalogue's JSON, built into the crate.
pub const STARTER_JSON: &str = include_str!("../catalogue/starter.json");

/// The longest description, prompt, label, topic, persona or fallback line, in characters.
pub const MAX_TEXT_CHARS: usize = MAX_LINE_CHARS;

/// The most choices a question may offer.
pub const MAX_CHOICES: usize = 10;

/// One part in a million: the resolution of an event's `chance`.
pub(crate) const CHANCE_SCALE: u32 = 1_000_000;

/// How urgent an event is. Events are evaluated in priority order every tick, highest first;
/// events of equal priority in catalogue order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// 25.
    Low,
    /// 50.
    Normal,
    /// 75.
    High,
    /// 100.
    Critical,
}

impl Priority {
    /// The numeric priority: critical 100, high 75, normal 50, low 25.
    #[must_use]
    pub const fn value(self) -> u8 {
        match self {
            Self::Low => 25,
            Self::Normal => 50,
            Self::High => 75,
            Self::Critical => 100,
        }
    }
}

/// How often an event may fire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Repeat {
    /// At most once in a life (`"once": true`).
    Once,
    /// Again once this many days have passed since it last fired (`"cooldown_days": n`).
    Cooldown {
        /// At least 1.
        days: u32,
    },
}

/// A character events can introduce, change closeness with, and hold conversations with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Character {
    /// The identifier used in the catalogue and in saved lives.
    pub id: String,
    /// The name shown to the player.
    pub name: String,
    /// Who the character is, for whoever voices their lines (an AI prompt).
    pub persona: String,
}

/// The starting state of every life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Start {
    pub(crate) stats: crate::Stats,
    pub(crate) relationships: Vec<(usize, u8)>,
}

/// A question an event asks, answered later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Question {
    pub(crate) prompt: String,
    pub(crate) form: Form,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Form {
    Choices(Vec<Choice>),
    FreeText {
        rules: Vec<(Vec<String>, Effect)>,
        otherwise: Effect,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Choice {
    pub(crate) id: String,
    pub(crate) label: String,
    pub(crate) effect: Effect,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConversationSpec {
    pub(crate) character: usize,
    pub(crate) topic: String,
    pub(crate) fallback: String,
}

/// One event of a loaded catalogue.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) priority: Priority,
    pub(crate) category: usize,
    /// Direct dependencies.
    pub(crate) requires: Vec<usize>,
    /// Every event this one depends on, directly or through others: while any of them waits
    /// for an answer, this event waits too (its thread is paused).
    pub(crate) ancestors: Vec<usize>,
    /// Conflicts in both directions: listed here or listing this event.
    pub(crate) conflicts: Vec<usize>,
    pub(crate) repeat: Repeat,
    pub(crate) condition: Option<Condition>,
    pub(crate) chance_ppm: u32,
    pub(crate) effect: Effect,
    pub(crate) question: Option<Question>,
    pub(crate) conversation: Option<ConversationSpec>,
}

impl Event {
    /// The event's unique name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text shown when the event fires.
    #[must_use]
    pub fn description(&self) -> &str {
        &self.description
    }

    /// Its priority.
    #[must_use]
    pub const fn priority(&self) -> Priority {
        self.priority
    }

    /// Once-only or cooldown.
    #[must_use]
    pub const fn repeat(&self) -> Repeat {
        self.repeat
    }

    /// The chance of firing on a day its condition holds, in millionths (1,000,000 = always).
    #[must_use]
    pub const fn chance_per_million(&self) -> u32 {
        self.chance_ppm
    }

    /// Whether it asks a question.
    #[must_use]
    pub const fn asks(&self) -> bool {
        self.question.is_some()
    }

    /// Whether it opens a conversation.
    #[must_use]
    pub const fn converses(&self) -> bool {
        self.conversation.is_some()
    }
}

/// A loaded, validated catalogue. Immutable; share it (`Arc`) between every life that uses it.
#[derive(Debug, Clone)]
pub struct Catalogue {
    pub(crate) name: String,
    pub(crate) fingerprint: u64,
    pub(crate) max_events_per_day: u32,
    pub(crate) start: Start,
    pub(crate) categories: Vec<String>,
    pub(crate) characters: Vec<Character>,
    pub(crate) flags: Vec<String>,
    pub(crate) events: Vec<Event>,
    /// Event indices, highest priority first, ties in catalogue order.
    pub(crate) order: Vec<usize>,
    pub(crate) by_name: BTreeMap<String, usize>,
}

impl Catalogue {
    /// Loads and validates a catalogue from a file's contents.
    ///
    /// ```
    /// let catalogue = hearth_life::Catalogue::from_json(r#"{
    ///   "format": 1, "name": "tiny", "categories": ["school"],
    ///   "events": [{"name": "first_day", "description": "School starts.",
    ///               "priority": "normal", "category": "school", "once": true,
    ///               "when": {"stat": "age_years", "at_least": 5}}]
    /// }"#)?;
    /// assert_eq!(catalogue.events().count(), 1);
    /// # Ok::<(), hearth_life::CatalogueError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// - [`CatalogueError::Format`] when the JSON does not match the format (a syntax error,
    ///   a missing or unknown field, a wrong type), naming the event and the path inside it.
    /// - [`CatalogueError::UnsupportedFormat`] when `format` is not [`FORMAT`].
    /// - [`CatalogueError::Invalid`] listing every [`Problem`] found.
    pub fn from_json(text: &str) -> Result<Self, CatalogueError> {
        let mut de = serde_json::Deserializer::from_str(text);
        let raw: RawCatalogue =
            serde_path_to_error::deserialize(&mut de).map_err(|e| CatalogueError::Format {
                event: None,
                path: e.path().to_string(),
                message: e.inner().to_string(),
            })?;
        de.end().map_err(|e| CatalogueError::Format {
            event: None,
            path: String::new(),
            message: e.to_string(),
        })?;
        if raw.format != FORMAT {
            return Err(CatalogueError::UnsupportedFormat {
                found: raw.format,
                supported: FORMAT,
            });
        }
        Builder::default().build(raw, fingerprint(text))
    }

    /// The starter catalogue built into the crate ([`STARTER_JSON`]).
    ///
    /// # Errors
    ///
    /// None in practice: the crate's tests load it. The `Result` keeps a broken edit of the
    /// file from becoming a panic.
    pub fn starter() -> Result<Self, CatalogueError> {
        Self::from_json(STARTER_JSON)
    }

    /// The catalogue's name (its `name` field), recorded in every saved life.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A 64-bit FNV-1a hash of the file's bytes: lives remember it, so a life is never ticked
    /// against a different catalogue than the one its indices refer to.
    #[must_use]
    pub const fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// The most events that fire on one day.
    #[must_use]
    pub const fn max_events_per_day(&self) -> u32 {
        self.max_events_per_day
    }

    /// The categories, in file order.
    #[must_use]
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// The characters, in file order.
    #[must_use]
    pub fn characters(&self) -> &[Character] {
        &self.characters
    }

    /// Every event, in file order.
    pub fn events(&self) -> impl ExactSizeIterator<Item = &Event> {
        self.events.iter()
    }

    /// Every event in evaluation order: highest priority first, ties in file order.
    pub fn in_priority_order(&self) -> impl Iterator<Item = &Event> {
        self.order.iter().filter_map(|&i| self.events.get(i))
    }

    /// The event with this name.
    #[must_use]
    pub fn event(&self, name: &str) -> Option<&Event> {
        self.by_name.get(name).and_then(|&i| self.events.get(i))
    }

    /// The name of an event's category.
    #[must_use]
    pub fn category_of(&self, event: &Event) -> &str {
        self.categories
            .get(event.category)
            .map_or("", String::as_str)
    }

    /// The names of the events `event` requires.
    pub fn requires<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a str> + 'a {
        event.requires.iter().map(|&i| self.event_name(i))
    }

    /// The names of every event `event` depends on, directly or through others.
    pub fn ancestors<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a str> + 'a {
        event.ancestors.iter().map(|&i| self.event_name(i))
    }

    /// The names of the events `event` conflicts with (in either direction).
    pub fn conflicts<'a>(&'a self, event: &'a Event) -> impl Iterator<Item = &'a str> + 'a {
        event.conflicts.iter().map(|&i| self.event_name(i))
    }

    pub(crate) fn event_name(&self, index: usize) -> &str {
        self.events.get(index).map_or("", |e| e.name.as_str())
    }

    pub(crate) fn character(&self, index: usize) -> Option<&Character> {
        self.characters.get(index)
    }

    pub(crate) fn character_index(&self, id: &str) -> Option<usize> {
        self.characters.iter().position(|c| c.id == id)
    }

    pub(crate) fn flag_index(&self, name: &str) -> Option<usize> {
        self.flags.iter().position(|f| f == name)
    }
}

/// FNV-1a, 64 bits.
fn fingerprint(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Why a catalogue could not be loaded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogueError {
    /// The JSON does not match the format.
    #[error("catalogue format error{}{}: {message}",
        .event.as_ref().map(|e| format!(" in event `{e}`")).unwrap_or_default(),
        if .path.is_empty() || .path == "." { String::new() } else { format!(" at `{}`", .path) })]
    Format {
        /// The event the error is in, when it is inside one.
        event: Option<String>,
        /// Where inside the file (or the event), as `a.b[2].c`.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The file's `format` is not one this engine reads.
    #[error("catalogue format {found} is not supported (this engine reads format {supported})")]
    UnsupportedFormat {
        /// The file's `format`.
        found: u32,
        /// [`FORMAT`].
        supported: u32,
    },
    /// The file parsed but is not a valid catalogue; every problem is listed.
    #[error("invalid catalogue:\n  - {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  - "))]
    Invalid(Vec<Problem>),
}

impl CatalogueError {
    /// The problems of an [`Invalid`](Self::Invalid) catalogue; empty otherwise.
    #[must_use]
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problems) => problems,
            _ => &[],
        }
    }
}

/// One reason a catalogue is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The catalogue has no events.
    #[error("the catalogue has no events")]
    NoEvents,
    /// A name is not 1 to 64 characters of `a-z`, `0-9` and `_`.
    #[error("{what} name {name:?} must be 1 to 64 characters of a-z, 0-9 and _")]
    BadName {
        /// What kind of name (`event`, `category`, `flag`, `character`, `choice`, `catalogue`).
        what: &'static str,
        /// The name as written.
        name: String,
    },
    /// Two events, categories, characters or choices share a name.
    #[error("duplicate {what} `{name}`")]
    Duplicate {
        /// What kind of name.
        what: &'static str,
        /// The repeated name.
        name: String,
    },
    /// An event names a category the catalogue does not declare.
    #[error("event `{event}`: unknown category `{category}`")]
    UnknownCategory {
        /// The event.
        event: String,
        /// The undeclared category.
        category: String,
    },
    /// An event requires an event that does not exist.
    #[error("event `{event}` requires unknown event `{dependency}`")]
    UnknownDependency {
        /// The event.
        event: String,
        /// The missing dependency.
        dependency: String,
    },
    /// An event conflicts with an event that does not exist.
    #[error("event `{event}` conflicts with unknown event `{conflict}`")]
    UnknownConflict {
        /// The event.
        event: String,
        /// The missing event.
        conflict: String,
    },
    /// A condition's `happened` names an event that does not exist.
    #[error("event `{event}`: condition names unknown event `{reference}`")]
    UnknownEvent {
        /// The event whose condition it is.
        event: String,
        /// The missing event.
        reference: String,
    },
    /// Dependencies form a cycle, so none of its events could ever fire.
    #[error("dependency cycle: {}", .cycle.join(" -> "))]
    Cycle {
        /// The events of the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },
    /// An event depends, directly or through others, on an event it conflicts with, so it
    /// could never fire.
    #[error("event `{event}` depends on `{dependency}`, which it conflicts with")]
    ConflictsWithDependency {
        /// The event.
        event: String,
        /// The dependency it conflicts with.
        dependency: String,
    },
    /// An event depends on two events that conflict with each other, so it could never fire.
    #[error("event `{event}` depends on both `{first}` and `{second}`, which conflict")]
    RequiresConflicting {
        /// The event.
        event: String,
        /// One of the conflicting dependencies.
        first: String,
        /// The other.
        second: String,
    },
    /// A condition names a stat that does not exist.
    #[error(
        "event `{event}`: unknown stat `{stat}` (known: health, happiness, smarts, looks, money, age_years, age_days)"
    )]
    UnknownStat {
        /// The event.
        event: String,
        /// The unknown stat.
        stat: String,
    },
    /// An event or the start names a character the catalogue does not declare.
    #[error("{event}: unknown character `{character}`")]
    UnknownCharacter {
        /// `event `name`` or `start`.
        event: String,
        /// The undeclared character.
        character: String,
    },
    /// A condition reads a flag that no effect ever sets, so it could never be true.
    #[error("event `{event}`: flag `{flag}` is read but no effect sets it")]
    FlagNeverSet {
        /// The event whose condition reads it.
        event: String,
        /// The flag.
        flag: String,
    },
    /// Anything else out of range or malformed, with the reason.
    #[error("{event}: {reason}")]
    Invalid {
        /// `event `name``, `start`, or `catalogue`.
        event: String,
        /// What is wrong.
        reason: String,
    },
}

/// Whether `name` is 1 to 64 characters of `a-z`, `0-9`, `_`.
fn is_identifier(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Collects problems while compiling raw events.
#[derive(Default)]
struct Builder {
    problems: Vec<Problem>,
    categories: Vec<String>,
    characters: Vec<Character>,
    event_index: BTreeMap<String, usize>,
    /// Interned flags, in first-seen order.
    flags: Vec<String>,
    /// Flags some effect sets.
    set_flags: BTreeSet<usize>,
    /// Flags read by conditions, with the first event that reads each.
    read_flags: BTreeMap<usize, String>,
}

impl Builder {
    fn build(mut self, raw: RawCatalogue, fingerprint: u64) -> Result<Catalogue, CatalogueError> {
        if !is_identifier(&raw.name) {
            self.problems.push(Problem::BadName {
                what: "catalogue",
                name: raw.name.clone(),
            });
        }
        if raw.max_events_per_day == 0 {
            self.invalid("catalogue", "max_events_per_day must be at least 1");
        }
        for category in raw.categories {
            self.name_check("category", &category);
            if self.categories.contains(&category) {
                self.problems.push(Problem::Duplicate {
                    what: "category",
                    name: category,
                });
            } else {
                self.categories.push(category);
            }
        }
        for character in raw.characters {
            self.character(character);
        }
        let start = self.start(raw.start);

        // Parse every event, then index the names, then compile: conditions and dependencies
        // may name events declared later in the file.
        let mut parsed = Vec::with_capacity(raw.events.len());
        for (i, value) in raw.events.into_iter().enumerate() {
            let label = value
                .get("name")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| format!("events[{i}]"), ToOwned::to_owned);
            match serde_path_to_error::deserialize::<_, RawEvent>(value) {
                Ok(event) => parsed.push(event),
                Err(e) => {
                    return Err(CatalogueError::Format {
                        event: Some(label),
                        path: e.path().to_string(),
                        message: e.inner().to_string(),
                    });
                }
            }
        }
        if parsed.is_empty() {
            self.problems.push(Problem::NoEvents);
        }
        for (i, event) in parsed.iter().enumerate() {
            self.name_check("event", &event.name);
            if self.event_index.insert(event.name.clone(), i).is_some() {
                self.problems.push(Problem::Duplicate {
                    what: "event",
                    name: event.name.clone(),
                });
            }
        }
        let mut events: Vec<Event> = parsed.into_iter().map(|e| self.event(e)).collect();

        for (flag, event) in std::mem::take(&mut self.read_flags) {
            if !self.set_flags.contains(&flag) {
                self.problems.push(Problem::FlagNeverSet {
                    event,
                    flag: self.flags.get(flag).cloned().unwrap_or_default(),
                });
            }
        }
        self.links(&mut events);

        if !self.problems.is_empty() {
            return Err(CatalogueError::Invalid(self.problems));
        }
        let mut order: Vec<usize> = (0..events.len()).collect();
        // A stable sort keeps file order among equal priorities.
        order.sort_by_key(|&i| std::cmp::Reverse(events[i].priority));
        Ok(Catalogue {
            name: raw.name,
            fingerprint,
            max_events_per_day: raw.max_events_per_day,
            start,
            categories: self.categories,
            characters: self.characters,
            flags: self.flags,
            events,
            order,
            by_name: self.event_index,
        })
    }

    fn invalid(&mut self, event: impl Into<String>, reason: impl Into<String>) {
        self.problems.push(Problem::Invalid {
            event: event.into(),
            reason: reason.into(),
        });
    }

    fn name_check(&mut self, what: &'static str, name: &str) {
        if !is_identifier(name) {
            self.problems.push(Problem::BadName {
                what,
                name: name.to_owned(),
            });
        }
    }

    fn text_check(&mut self, owner: &str, field: &str, text: &str, required: bool) {
        if required && text.trim().is_empty() {
            self.invalid(owner, format!("{field} must not be empty"));
        }
        if text.chars().count() > MAX_TEXT_CHARS {
            self.invalid(
                owner,
                format!("{field} is longer than {MAX_TEXT_CHARS} characters"),
            );
        }
    }

    fn character(&mut self, raw: RawCharacter) {
        self.name_check("character", &raw.id);
        let owner = format!("character `{}`", raw.id);
        self.text_check(&owner, "name", &raw.name, true);
        self.text_check(&owner, "persona", &raw.persona, false);
        if self.characters.iter().any(|c| c.id == raw.id) {
            self.problems.push(Problem::Duplicate {
                what: "character",
                name: raw.id,
            });
        } else {
            self.characters.push(Character {
                id: raw.id,
                name: raw.name,
                persona: raw.persona,
            });
        }
    }

    fn character_ref(&mut self, owner: &str, id: &str) -> Option<usize> {
        let found = self.characters.iter().position(|c| c.id == id);
        if found.is_none() {
            self.problems.push(Problem::UnknownCharacter {
                event: owner.to_owned(),
                character: id.to_owned(),
            });
        }
        found
    }

    fn percent(&mut self, owner: &str, field: &str, value: i64, min: i64) -> u8 {
        match u8::try_from(value) {
            Ok(v) if i64::from(v) >= min && v <= 100 => v,
            _ => {
                self.invalid(owner, format!("{field} must be {min} to 100, got {value}"));
                0
            }
        }
    }

    fn start(&mut self, raw: raw::RawStart) -> Start {
        let owner = "start";
        let stats = crate::Stats {
            health: i32::from(self.percent(owner, "health", raw.health, 1)),
            happiness: i32::from(self.percent(owner, "happiness", raw.happiness, 0)),
            smarts: i32::from(self.percent(owner, "smarts", raw.smarts, 0)),
            looks: i32::from(self.percent(owner, "looks", raw.looks, 0)),
            money: raw.money,
        };
        if raw.money < 0 {
            self.invalid(owner, "money must not be negative");
        }
        let mut relationships = Vec::new();
        for (id, closeness) in raw.relationships {
            let closeness = self.percent(owner, &format!("closeness of `{id}`"), closeness, 0);
            if let Some(c) = self.character_ref(owner, &id) {
                relationships.push((c, closeness));
            }
        }
        Start {
            stats,
            relationships,
        }
    }

    fn flag(&mut self, name: &str) -> usize {
        self.name_check("flag", name);
        if let Some(i) = self.flags.iter().position(|f| f == name) {
            return i;
        }
        self.flags.push(name.to_owned());
        self.flags.len() - 1
    }

    fn event(&mut self, raw: RawEvent) -> Event {
        let owner = format!("event `{}`", raw.name);
        self.text_check(&owner, "description", &raw.description, true);
        let category = match self.categories.iter().position(|c| *c == raw.category) {
            Some(i) => i,
            None => {
                self.problems.push(Problem::UnknownCategory {
                    event: raw.name.clone(),
                    category: raw.category.clone(),
                });
                0
            }
        };
        let repeat = match (raw.once, raw.cooldown_days) {
            (Some(true), None) => Repeat::Once,
            (None | Some(false), Some(days)) if days >= 1 => Repeat::Cooldown { days },
            _ => {
                self.invalid(
                    &owner,
                    "must say either `\"once\": true` or `\"cooldown_days\": n` with n at least 1",
                );
                Repeat::Once
            }
        };
        let chance_ppm = match raw.chance {
            None => CHANCE_SCALE,
            Some(chance) if chance.is_finite() && chance > 0.0 && chance <= 1.0 => {
                // In (0, 1] times a million, so the rounded value fits a u32.
                #[allow(
                    clippy::cast_possible_truncation,
                    clippy::cast_sign_loss,
                    reason = "the value is in 0..=1e6"
                )]
                let ppm = (chance * f64::from(CHANCE_SCALE)).round() as u32;
                if ppm == 0 {
                    self.invalid(&owner, "chance is below one in a million");
                }
                ppm
            }
            Some(chance) => {
                self.invalid(
                    &owner,
                    format!("chance must be above 0 and at most 1, got {chance}"),
                );
                CHANCE_SCALE
            }
        };
        let condition = raw.when.map(|c| self.condition(&raw.name, c));
        let effect = self.effect(&owner, raw.effect);
        let question = raw.question.map(|q| self.question(&raw.name, &owner, q));
        let conversation = raw.conversation.and_then(|c| self.conversation(&owner, c));
        let requires = self.event_refs(&raw.name, &raw.requires, true);
        let conflicts = self.event_refs(&raw.name, &raw.conflicts, false);
        Event {
            name: raw.name,
            description: raw.description,
            priority: raw.priority,
            category,
            requires,
            ancestors: Vec::new(),
            conflicts,
            repeat,
            condition,
            chance_ppm,
            effect,
            question,
            conversation,
        }
    }

    fn event_refs(&mut self, event: &str, names: &[String], requires: bool) -> Vec<usize> {
        let mut out = Vec::new();
        for name in names {
            match self.event_index.get(name) {
                Some(_) if name == event => {
                    let what = if requires { "require" } else { "conflict with" };
                    self.invalid(
                        format!("event `{event}`"),
                        format!("must not {what} itself"),
                    );
                }
                Some(&i) => {
                    if !out.contains(&i) {
                        out.push(i);
                    }
                }
                None if requires => self.problems.push(Problem::UnknownDependency {
                    event: event.to_owned(),
                    dependency: name.clone(),
                }),
                None => self.problems.push(Problem::UnknownConflict {
                    event: event.to_owned(),
                    conflict: name.clone(),
                }),
            }
        }
        out
    }

    fn condition(&mut self, event: &str, raw: RawCondition) -> Condition {
        let owner = format!("event `{event}`");
        let kinds = [
            raw.all.is_some(),
            raw.any.is_some(),
            raw.not.is_some(),
            raw.stat.is_some(),
            raw.closeness.is_some(),
            raw.flag.is_some(),
            raw.happened.is_some(),
            raw.knows.is_some(),
        ];
        let bounded = raw.stat.is_some() || raw.closeness.is_some();
        if kinds.iter().filter(|k| **k).count() != 1 {
            self.invalid(
                &owner,
                "a condition needs exactly one of all, any, not, stat, closeness, flag, happened, knows",
            );
            return Condition::All(Vec::new());
        }
        if !bounded && (raw.at_least.is_some() || raw.at_most.is_some()) {
            self.invalid(&owner, "at_least and at_most belong to stat and closeness");
        }
        if let Some(list) = raw.all {
            return Condition::All(self.conditions(event, list));
        }
        if let Some(list) = raw.any {
            return Condition::Any(self.conditions(event, list));
        }
        if let Some(inner) = raw.not {
            return Condition::Not(Box::new(self.condition(event, *inner)));
        }
        if let Some(stat) = &raw.stat {
            let (min, max) = self.bounds(&owner, raw.at_least, raw.at_most);
            return match Stat::parse(stat) {
                Some(stat) => Condition::Stat { stat, min, max },
                None => {
                    self.problems.push(Problem::UnknownStat {
                        event: event.to_owned(),
                        stat: stat.clone(),
                    });
                    Condition::All(Vec::new())
                }
            };
        }
        if let Some(character) = &raw.closeness {
            let (min, max) = self.bounds(&owner, raw.at_least, raw.at_most);
            return match self.character_ref(&owner, character) {
                Some(character) => Condition::Closeness {
                    character,
                    min,
                    max,
                },
                None => Condition::All(Vec::new()),
            };
        }
        if let Some(flag) = &raw.flag {
            let flag = self.flag(flag);
            self.read_flags
                .entry(flag)
                .or_insert_with(|| event.to_owned());
            return Condition::Flag(flag);
        }
        if let Some(reference) = &raw.happened {
            return match self.event_index.get(reference) {
                Some(&i) => Condition::Happened(i),
                None => {
                    self.problems.push(Problem::UnknownEvent {
                        event: event.to_owned(),
                        reference: reference.clone(),
                    });
                    Condition::All(Vec::new())
                }
            };
        }
        if let Some(character) = &raw.knows {
            return match self.character_ref(&owner, character) {
                Some(character) => Condition::Knows(character),
                None => Condition::All(Vec::new()),
            };
        }
        Condition::All(Vec::new())
    }

    fn bounds(&mut self, owner: &str, at_least: Option<i64>, at_most: Option<i64>) -> (i64, i64) {
        let (min, max) = (at_least.unwrap_or(i64::MIN), at_most.unwrap_or(i64::MAX));
        if at_least.is_none() && at_most.is_none() {
            self.invalid(
                owner,
                "a stat or closeness condition needs at_least or at_most",
            );
        } else if min > max {
            self.invalid(owner, format!("at_least {min} is above at_most {max}"));
        }
        (min, max)
    }

    fn conditions(&mut self, event: &str, list: Vec<RawCondition>) -> Vec<Condition> {
        if list.is_empty() {
            self.invalid(
                format!("event `{event}`"),
                "all and any need at least one condition",
            );
        }
        list.into_iter().map(|c| self.condition(event, c)).collect()
    }

    fn delta(&mut self, owner: &str, field: &str, value: i64) -> i32 {
        if value.abs() > MAX_STAT_DELTA {
            self.invalid(
                owner,
                format!(
                    "{field} change must be -{MAX_STAT_DELTA} to {MAX_STAT_DELTA}, got {value}"
                ),
            );
            return 0;
        }
        // Within ±100 just above.
        i32::try_from(value).unwrap_or(0)
    }

    fn effect(&mut self, owner: &str, raw: RawEffect) -> Effect {
        if raw.money.abs() > MAX_MONEY_DELTA {
            self.invalid(
                owner,
                format!("money change must be at most {MAX_MONEY_DELTA} either way"),
            );
        }
        let mut effect = Effect {
            health: self.delta(owner, "health", raw.health),
            happiness: self.delta(owner, "happiness", raw.happiness),
            smarts: self.delta(owner, "smarts", raw.smarts),
            looks: self.delta(owner, "looks", raw.looks),
            money: raw.money.clamp(-MAX_MONEY_DELTA, MAX_MONEY_DELTA),
            ..Effect::default()
        };
        for flag in &raw.set {
            let flag = self.flag(flag);
            self.set_flags.insert(flag);
            effect.set.push(flag);
        }
        for flag in &raw.clear {
            let flag = self.flag(flag);
            effect.clear.push(flag);
        }
        for (id, start) in &raw.meet {
            let start = self.percent(owner, &format!("meet `{id}`"), *start, 0);
            if let Some(c) = self.character_ref(owner, id) {
                effect.meet.push((c, start));
            }
        }
        for (id, delta) in &raw.closeness {
            let delta = self.delta(owner, &format!("closeness of `{id}`"), *delta);
            if let Some(c) = self.character_ref(owner, id) {
                effect.closeness.push((c, delta));
            }
        }
        for id in &raw.part {
            if let Some(c) = self.character_ref(owner, id) {
                effect.part.push(c);
            }
        }
        if let Some(cause) = raw.end_life {
            self.text_check(owner, "end_life", &cause, true);
            effect.end_life = Some(cause);
        }
        effect
    }

    fn question(&mut self, event: &str, owner: &str, raw: RawQuestion) -> Question {
        self.text_check(owner, "question prompt", &raw.prompt, true);
        let form = match (raw.choices, raw.free_text) {
            (Some(choices), None) => {
                if !(2..=MAX_CHOICES).contains(&choices.len()) {
                    self.invalid(
                        owner,
                        format!("a question offers 2 to {MAX_CHOICES} choices"),
                    );
                }
                let mut out: Vec<Choice> = Vec::with_capacity(choices.len());
                for choice in choices {
                    self.name_check("choice", &choice.id);
                    self.text_check(owner, "choice label", &choice.label, true);
                    if out.iter().any(|c| c.id == choice.id) {
                        self.problems.push(Problem::Duplicate {
                            what: "choice",
                            name: format!("{event}.{}", choice.id),
                        });
                    }
                    let effect = self.effect(owner, choice.effect);
                    out.push(Choice {
                        id: choice.id,
                        label: choice.label,
                        effect,
                    });
                }
                Form::Choices(out)
            }
            (None, Some(free)) => {
                let mut rules = Vec::with_capacity(free.rules.len());
                for rule in free.rules {
                    let valid = !rule.keywords.is_empty()
                        && rule.keywords.iter().all(|k| {
                            (1..=32).contains(&k.len())
                                && k.chars().all(|c| c.is_lowercase() || c.is_ascii_digit())
                        });
                    if !valid {
                        self.invalid(
                            owner,
                            "free-text rules need keywords of 1 to 32 lowercase letters or digits",
                        );
                    }
                    let effect = self.effect(owner, rule.effect);
                    rules.push((rule.keywords, effect));
                }
                let otherwise = self.effect(owner, free.otherwise);
                Form::FreeText { rules, otherwise }
            }
            _ => {
                self.invalid(owner, "a question has either choices or free_text");
                Form::Choices(Vec::new())
            }
        };
        Question {
            prompt: raw.prompt,
            form,
        }
    }

    fn conversation(&mut self, owner: &str, raw: RawConversation) -> Option<ConversationSpec> {
        self.text_check(owner, "conversation topic", &raw.topic, true);
        self.text_check(owner, "conversation fallback", &raw.fallback, true);
        let character = self.character_ref(owner, &raw.character)?;
        Some(ConversationSpec {
            character,
            topic: raw.topic,
            fallback: raw.fallback,
        })
    }

    /// Dependency cycles, transitive dependencies, symmetric conflicts and the rules between
    /// them.
    fn links(&mut self, events: &mut [Event]) {
        let n = events.len();
        // Conflicts both ways.
        let mut conflicts: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
        for (i, event) in events.iter().enumerate() {
            for &j in &event.conflicts {
                conflicts[i].insert(j);
                conflicts[j].insert(i);
            }
        }
        for (event, set) in events.iter_mut().zip(&conflicts) {
            event.conflicts = set.iter().copied().collect();
        }

        // Cycles: an iterative depth-first search (catalogues can be long chains).
        let mut colour = vec![0u8; n]; // 0 unvisited, 1 on the stack, 2 done.
        let mut cyclic = false;
        for root in 0..n {
            if colour[root] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
            colour[root] = 1;
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if let Some(&dep) = events[node].requires.get(*next) {
                    *next += 1;
                    match colour[dep] {
                        0 => {
                            colour[dep] = 1;
                            stack.push((dep, 0));
                        }
                        1 => {
                            cyclic = true;
                            let from = stack.iter().position(|(e, _)| *e == dep).unwrap_or(0);
                            let mut cycle: Vec<String> = stack[from..]
                                .iter()
                                .map(|(e, _)| events[*e].name.clone())
                                .collect();
                            cycle.push(events[dep].name.clone());
                            self.problems.push(Problem::Cycle { cycle });
                        }
                        _ => {}
                    }
                } else {
                    colour[node] = 2;
                    stack.pop();
                }
            }
        }
        if cyclic {
            return;
        }

        // Ancestors, in an order where every dependency comes first (post-order of the search
        // above, recomputed here without the cycle bookkeeping).
        let mut ancestors: Vec<Option<BTreeSet<usize>>> = vec![None; n];
        for root in 0..n {
            let mut stack = vec![root];
            while let Some(&node) = stack.last() {
                if ancestors[node].is_some() {
                    stack.pop();
                    continue;
                }
                let pending: Vec<usize> = events[node]
                    .requires
                    .iter()
                    .copied()
                    .filter(|d| ancestors[*d].is_none())
                    .collect();
                if pending.is_empty() {
                    let mut set = BTreeSet::new();
                    for &d in &events[node].requires {
                        set.insert(d);
                        if let Some(a) = &ancestors[d] {
                            set.extend(a.iter().copied());
                        }
                    }
                    ancestors[node] = Some(set);
                    stack.pop();
                } else {
                    stack.extend(pending);
                }
            }
        }
        for (i, set) in ancestors.into_iter().enumerate() {
            let set = set.unwrap_or_default();
            let name = events[i].name.clone();
            for &a in &set {
                if conflicts[i].contains(&a) {
                    self.problems.push(Problem::ConflictsWithDependency {
                        event: name.clone(),
                        dependency: events[a].name.clone(),
                    });
                }
            }
            let list: Vec<usize> = set.into_iter().collect();
            'pairs: for (k, &a) in list.iter().enumerate() {
                for &b in &list[k + 1..] {
                    if conflicts[a].contains(&b) {
                        self.problems.push(Problem::RequiresConflicting {
                            event: name.clone(),
                            first: events[a].name.clone(),
                            second: events[b].name.clone(),
                        });
                        break 'pairs;
                    }
                }
            }
            events[i].ancestors = list;
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Low => "low",
            Self::Normal => "normal",
            Self::High => "high",
            Self::Critical => "critical",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_have_the_issue_values_and_order() {
        assert_eq!(Priority::Critical.value(), 100);
        assert_eq!(Priority::High.value(), 75);
        assert_eq!(Priority::Normal.value(), 50);
        assert_eq!(Priority::Low.value(), 25);
        assert!(Priority::Critical > Priority::High && Priority::Normal > Priority::Low);
        assert_eq!(
            serde_json::from_str::<Priority>("\"critical\"").unwrap(),
            Priority::Critical
        );
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("first_job2"));
        assert!(!is_identifier(""));
        assert!(!is_identifier("First"));
        assert!(!is_identifier("a-b"));
        assert!(!is_identifier(&"a".repeat(65)));
    }

    #[test]
    fn fingerprints_differ_by_content() {
        assert_eq!(fingerprint("a"), fingerprint("a"));
        assert_ne!(fingerprint("a"), fingerprint("b"));
    }
}
