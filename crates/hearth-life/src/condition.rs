//! Conditions over a life's state, checked when the catalogue loads and evaluated every tick.
//!
//! In a catalogue file a condition is one JSON object with exactly one kind:
//!
//! | object | holds when |
//! | --- | --- |
//! | `{"all": [c, …]}` | every `c` holds (at least one `c`) |
//! | `{"any": [c, …]}` | some `c` holds (at least one `c`) |
//! | `{"not": c}` | `c` does not hold |
//! | `{"stat": "smarts", "at_least": 60, "at_most": 90}` | the [`Stat`] is in the range (either bound may be left out, not both) |
//! | `{"closeness": "mother", "at_least": 50}` | the character is known and the closeness is in the range |
//! | `{"flag": "employed"}` | the flag is set |
//! | `{"happened": "graduation"}` | the event has fired at least once |
//! | `{"knows": "partner"}` | the character is known (met and not parted from) |

use serde::{Deserialize, Serialize};

use crate::life::State;

/// A number a condition can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stat {
    /// 0 to 100; the life ends when it reaches 0.
    Health,
    /// 0 to 100.
    Happiness,
    /// 0 to 100.
    Smarts,
    /// 0 to 100.
    Looks,
    /// In-game money, never below 0. Not the player's coins.
    Money,
    /// Whole years lived: `age_days / 365`.
    AgeYears,
    /// Days lived: one per tick.
    AgeDays,
}

impl Stat {
    /// Every stat, in the order the docs list them.
    pub const ALL: [Self; 7] = [
        Self::Health,
        Self::Happiness,
        Self::Smarts,
        Self::Looks,
        Self::Money,
        Self::AgeYears,
        Self::AgeDays,
    ];

    /// The name used in catalogue files.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Health => "health",
            Self::Happiness => "happiness",
            Self::Smarts => "smarts",
            Self::Looks => "looks",
            Self::Money => "money",
            Self::AgeYears => "age_years",
            Self::AgeDays => "age_days",
        }
    }

    /// The stat with this catalogue name, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// A checked condition: names resolved to indices, bounds as an inclusive range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Stat {
        stat: Stat,
        min: i64,
        max: i64,
    },
    Closeness {
        character: usize,
        min: i64,
        max: i64,
    },
    Flag(usize),
    Happened(usize),
    Knows(usize),
}

impl Condition {
    /// Whether the condition holds for `state` now.
    pub(crate) fn holds(&self, state: &State) -> bool {
        match self {
            Self::All(all) => all.iter().all(|c| c.holds(state)),
            Self::Any(any) => any.iter().any(|c| c.holds(state)),
            Self::Not(inner) => !inner.holds(state),
            Self::Stat { stat, min, max } => {
                let value = state.stat(*stat);
                *min <= value && value <= *max
            }
            Self::Closeness {
                character,
                min,
                max,
            } => state
                .closeness
                .get(*character)
                .copied()
                .flatten()
                .is_some_and(|c| *min <= i64::from(c) && i64::from(c) <= *max),
            Self::Flag(flag) => state.flag(*flag),
            Self::Happened(event) => state.events.get(*event).is_some_and(|e| e.times > 0),
            Self::Knows(character) => state.closeness.get(*character).is_some_and(Option::is_some),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_names_round_trip() {
        for stat in Stat::ALL {
            assert_eq!(Stat::parse(stat.name()), Some(stat));
            let json = serde_json::to_string(&stat).unwrap();
            assert_eq!(json, format!("\"{}\"", stat.name()));
        }
        assert_eq!(Stat::parse("helth"), None);
    }
}
