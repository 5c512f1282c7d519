//! A saved life: versioned JSON that names events, flags and characters (never catalogue
//! indices), so a life saved under one version of a catalogue loads under an edited one that
//! still has them.
//!
//! The record holds the server seed in hex: it is server-side state, like the games' seeds
//! before they are revealed. Show players [`Life::view`](crate::Life::view), never the record.

use std::collections::BTreeMap;

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use serde::{Deserialize, Serialize};

use crate::catalogue::Catalogue;
use crate::catalogue::Form;
use crate::life::{
    AnswerEntry, Ending, Entry, EventState, HistoryEntry, Life, LineEntry, OpenConversation,
    Pending, State, Stats, index32,
};

/// The record version [`Life::to_json`] writes and [`Life::from_json`] reads.
pub const RECORD_VERSION: u32 = 1;

/// Why a saved life could not be loaded (or, never in practice, written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The JSON does not match the record format.
    #[error("saved life format error at `{path}`: {message}")]
    Format {
        /// Where in the record.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The record's `version` is not [`RECORD_VERSION`].
    #[error("saved life version {found} is not supported (this engine reads version {supported})")]
    Version {
        /// The record's version.
        found: u32,
        /// [`RECORD_VERSION`].
        supported: u32,
    },
    /// The record was saved under another catalogue.
    #[error("saved life belongs to catalogue `{found}`, not `{expected}`")]
    OtherCatalogue {
        /// The catalogue passed in.
        expected: String,
        /// The catalogue the record names.
        found: String,
    },
    /// The record contradicts itself or the catalogue (an unknown event, a stat out of
    /// range, …).
    #[error("saved life is inconsistent: {0}")]
    Inconsistent(String),
    /// Serialising failed.
    #[error("could not write the saved life: {0}")]
    Encode(String),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LifeRecord {
    version: u32,
    catalogue: String,
    server_seed: String,
    client_seed: ClientSeed,
    day: u32,
    stats: Stats,
    flags: Vec<String>,
    relationships: BTreeMap<String, u8>,
    events: BTreeMap<String, EventRecord>,
    pending: Vec<PendingRecord>,
    conversations: Vec<ConversationRecord>,
    next_conversation: u64,
    history: Vec<HistoryEntry>,
    ended: Option<Ending>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventRecord {
    times: u32,
    last_day: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PendingRecord {
    event: String,
    asked_day: u32,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConversationRecord {
    id: u64,
    event: String,
    opened_day: u32,
}

/// Only the version, read first so that a future format fails with a clear error.
#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

fn inconsistent(what: impl Into<String>) -> StateError {
    StateError::Inconsistent(what.into())
}

impl Life {
    /// The life as versioned JSON ([`RECORD_VERSION`]). Holds the server seed: keep it
    /// server-side.
    ///
    /// # Errors
    ///
    /// [`StateError::OtherCatalogue`] when `catalogue` is not the life's, and
    /// [`StateError::Encode`], which the record's types cannot produce.
    pub fn to_json(&self, catalogue: &Catalogue) -> Result<String, StateError> {
        if self.fingerprint != catalogue.fingerprint {
            return Err(StateError::OtherCatalogue {
                expected: catalogue.name.clone(),
                found: String::from("(a different catalogue)"),
            });
        }
        let state = &self.state;
        let record = LifeRecord {
            version: RECORD_VERSION,
            catalogue: catalogue.name.clone(),
            server_seed: self.seeds.server.to_hex(),
            client_seed: self.seeds.client.clone(),
            day: state.day,
            stats: state.stats,
            flags: catalogue
                .flags
                .iter()
                .enumerate()
                .filter(|(i, _)| state.flag(*i))
                .map(|(_, name)| name.clone())
                .collect(),
            relationships: catalogue
                .characters
                .iter()
                .zip(&state.closeness)
                .filter_map(|(c, v)| v.map(|v| (c.id.clone(), v)))
                .collect(),
            events: catalogue
                .events
                .iter()
                .zip(&state.events)
                .filter(|(_, s)| s.times > 0)
                .map(|(e, s)| {
                    (
                        e.name.clone(),
                        EventRecord {
                            times: s.times,
                            last_day: s.last_day,
                        },
                    )
                })
                .collect(),
            pending: state
                .pending
                .iter()
                .map(|p| PendingRecord {
                    event: catalogue.event_name(p.event).to_owned(),
                    asked_day: p.asked_day,
                })
                .collect(),
            conversations: state
                .conversations
                .iter()
                .map(|c| ConversationRecord {
                    id: c.id,
                    event: catalogue.event_name(c.event).to_owned(),
                    opened_day: c.opened_day,
                })
                .collect(),
            next_conversation: state.next_conversation,
            history: state
                .history
                .iter()
                .map(|e| e.to_public(catalogue))
                .collect(),
            ended: state.ended.clone(),
        };
        serde_json::to_string(&record).map_err(|e| StateError::Encode(e.to_string()))
    }

    /// Loads a life saved by [`to_json`](Self::to_json), binding it to `catalogue`.
    ///
    /// # Errors
    ///
    /// [`StateError::Format`], [`StateError::Version`], [`StateError::OtherCatalogue`] when
    /// the record names another catalogue, and [`StateError::Inconsistent`] when it names
    /// an event, flag or character the catalogue lacks, or holds values no life could reach.
    pub fn from_json(json: &str, catalogue: &Catalogue) -> Result<Self, StateError> {
        let format = |e: serde_path_to_error::Error<serde_json::Error>| StateError::Format {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        };
        let version: VersionOnly =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
                .map_err(format)?;
        if version.version != RECORD_VERSION {
            return Err(StateError::Version {
                found: version.version,
                supported: RECORD_VERSION,
            });
        }
        let record: LifeRecord =
            serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_str(json))
                .map_err(format)?;
        if record.catalogue != catalogue.name {
            return Err(StateError::OtherCatalogue {
                expected: catalogue.name.clone(),
                found: record.catalogue,
            });
        }
        let server = ServerSeed::from_hex(&record.server_seed)
            .map_err(|e| inconsistent(format!("server_seed: {e}")))?;
        let stats = record.stats;
        for (name, value) in [
            ("health", stats.health),
            ("happiness", stats.happiness),
            ("smarts", stats.smarts),
            ("looks", stats.looks),
        ] {
            if !(0..=100).contains(&value) {
                return Err(inconsistent(format!("{name} {value} is outside 0 to 100")));
            }
        }
        if stats.money < 0 {
            return Err(inconsistent("money is negative"));
        }
        if stats.health == 0 && record.ended.is_none() {
            return Err(inconsistent("health is 0 but the life has not ended"));
        }

        let mut life = Self::new(catalogue, server, record.client_seed);
        let state: &mut State = &mut life.state;
        state.day = record.day;
        state.stats = stats;
        for flag in &record.flags {
            let index = catalogue
                .flag_index(flag)
                .ok_or_else(|| inconsistent(format!("unknown flag `{flag}`")))?;
            state.set_flag(index, true);
        }
        state.closeness = vec![None; catalogue.characters.len()];
        for (character, closeness) in &record.relationships {
            let index = catalogue
                .character_index(character)
                .ok_or_else(|| inconsistent(format!("unknown character `{character}`")))?;
            if *closeness > 100 {
                return Err(inconsistent(format!(
                    "closeness of `{character}` is above 100"
                )));
            }
            if let Some(slot) = state.closeness.get_mut(index) {
                *slot = Some(*closeness);
            }
        }
        let event_index = |name: &str| {
            catalogue
                .by_name
                .get(name)
                .copied()
                .ok_or_else(|| inconsistent(format!("unknown event `{name}`")))
        };
        for (name, event) in &record.events {
            let index = event_index(name)?;
            if event.times == 0 || event.last_day > record.day {
                return Err(inconsistent(format!("impossible counters for `{name}`")));
            }
            if let Some(slot) = state.events.get_mut(index) {
                *slot = EventState {
                    times: event.times,
                    last_day: event.last_day,
                    pending: false,
                };
            }
        }
        if record.ended.is_some() && !record.pending.is_empty() {
            return Err(inconsistent("an ended life has questions waiting"));
        }
        for pending in &record.pending {
            let index = event_index(&pending.event)?;
            let asks = catalogue.events.get(index).is_some_and(|e| e.asks());
            let slot = state.events.get_mut(index);
            match slot {
                Some(slot) if asks && slot.times > 0 && !slot.pending => slot.pending = true,
                _ => {
                    return Err(inconsistent(format!(
                        "`{}` cannot be waiting for an answer",
                        pending.event
                    )));
                }
            }
            state.pending.push(Pending {
                event: index,
                asked_day: pending.asked_day,
            });
        }
        for conversation in &record.conversations {
            let index = event_index(&conversation.event)?;
            let converses = catalogue.events.get(index).is_some_and(|e| e.converses());
            if !converses
                || conversation.id >= record.next_conversation
                || state.conversations.iter().any(|c| c.id == conversation.id)
            {
                return Err(inconsistent(format!(
                    "conversation {} cannot be open",
                    conversation.id
                )));
            }
            state.conversations.push(OpenConversation {
                id: conversation.id,
                event: index,
                opened_day: conversation.opened_day,
            });
        }
        state.next_conversation = record.next_conversation;
        state.history = record
            .history
            .into_iter()
            .map(|entry| entry_from_record(entry, catalogue))
            .collect::<Result<_, _>>()?;
        state.ended = record.ended;
        Ok(life)
    }
}

/// A saved history entry back to its in-memory form, names resolved in `catalogue`.
fn entry_from_record(entry: HistoryEntry, catalogue: &Catalogue) -> Result<Entry, StateError> {
    let event_index = |name: &str| {
        catalogue
            .by_name
            .get(name)
            .copied()
            .ok_or_else(|| inconsistent(format!("history names unknown event `{name}`")))
    };
    Ok(match entry {
        HistoryEntry::Event { day, event } => Entry::Event {
            day,
            event: index32(event_index(&event)?),
        },
        HistoryEntry::Answer {
            day,
            event,
            choice,
            text,
        } => {
            let index = event_index(&event)?;
            let choice = match choice {
                None => None,
                Some(id) => {
                    let form = catalogue
                        .events
                        .get(index)
                        .and_then(|e| e.question.as_ref())
                        .map(|q| &q.form);
                    let position = match form {
                        Some(Form::Choices(choices)) => choices.iter().position(|c| c.id == id),
                        _ => None,
                    };
                    Some(index32(position.ok_or_else(|| {
                        inconsistent(format!("history names unknown choice `{event}.{id}`"))
                    })?))
                }
            };
            Entry::Answer(Box::new(AnswerEntry {
                day,
                event: index32(index),
                choice,
                text: text.map(String::into_boxed_str),
            }))
        }
        HistoryEntry::Line {
            day,
            conversation,
            event,
            text,
            fallback,
            ..
        } => {
            let index = event_index(&event)?;
            if !catalogue.events.get(index).is_some_and(|e| e.converses()) {
                return Err(inconsistent(format!("`{event}` opens no conversation")));
            }
            // A fallback line is read back from the catalogue, so only a real reply is kept.
            Entry::Line(Box::new(LineEntry {
                day,
                conversation,
                event: index32(index),
                text: (!fallback).then(|| text.into_boxed_str()),
            }))
        }
        HistoryEntry::Ended { day, cause } => Entry::Ended(Box::new(Ending { day, cause })),
    })
}
