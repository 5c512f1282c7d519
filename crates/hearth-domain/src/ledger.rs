//! Ledger vocabulary: what kind of money movement an entry records and what
//! state it is in.
//!
//! The storage crate persists these as their [`as_str`](EntryKind::as_str)
//! names and the HTTP crate shows them in JSON using the same snake_case
//! names, so the string forms are part of the public contract and must never
//! change.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest part of an unrecognised input kept inside a parse error, in bytes
/// (rounded down to a character boundary). Keeps errors small when the input
/// came from an untrusted source.
const MAX_ECHOED_INPUT: usize = 64;

/// Cuts `input` to at most [`MAX_ECHOED_INPUT`] bytes on a character boundary.
fn echo(input: &str) -> String {
    let mut end = input.len().min(MAX_ECHOED_INPUT);
    while !input.is_char_boundary(end) {
        end -= 1;
    }
    input[..end].to_owned()
}

/// What a ledger entry records.
///
/// Serialized (serde) and stored as the snake_case name returned by
/// [`EntryKind::as_str`]: `"bet"`, `"win"`, `"deposit"`, `"bonus"`,
/// `"adjustment"`, `"refund"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A stake taken from the player's balance when a round starts.
    Bet,
    /// A payout credited to the player when a round settles with a win.
    Win,
    /// Coins added to the balance from outside the games (a purchase or grant).
    Deposit,
    /// Promotional coins credited by the operator.
    Bonus,
    /// A manual correction by an operator, in either direction.
    Adjustment,
    /// A stake returned to the player, for example when a round is voided.
    Refund,
}

impl EntryKind {
    /// Every kind, in declaration order. Handy for database check constraints
    /// and exhaustive tests.
    pub const ALL: [Self; 6] = [
        Self::Bet,
        Self::Win,
        Self::Deposit,
        Self::Bonus,
        Self::Adjustment,
        Self::Refund,
    ];

    /// The stable snake_case name used in storage and JSON.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Bet => "bet",
            Self::Win => "win",
            Self::Deposit => "deposit",
            Self::Bonus => "bonus",
            Self::Adjustment => "adjustment",
            Self::Refund => "refund",
        }
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not the name of any [`EntryKind`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ledger entry kind {input:?}")]
pub struct UnknownEntryKind {
    input: String,
}

impl UnknownEntryKind {
    /// The rejected input (at most its first 64 bytes).
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl FromStr for EntryKind {
    type Err = UnknownEntryKind;

    /// Parses the exact (case-sensitive) name produced by [`EntryKind::as_str`].
    ///
    /// # Errors
    ///
    /// [`UnknownEntryKind`] if `s` is not one of the six names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| UnknownEntryKind { input: echo(s) })
    }
}

/// Where a ledger entry is in its life.
///
/// Only [`EntryStatus::Settled`] exists today; pending and void states are
/// reserved for later. Serialized and stored as `"settled"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// The entry is final and counted in the balance.
    Settled,
}

impl EntryStatus {
    /// Every status, in declaration order.
    pub const ALL: [Self; 1] = [Self::Settled];

    /// The stable snake_case name used in storage and JSON.
    #[must_use]
    pub const fn as_str(&self) -> &'static str {
        match self {
            Self::Settled => "settled",
        }
    }
}

impl fmt::Display for EntryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error returned when a string is not the name of any [`EntryStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown ledger entry status {input:?}")]
pub struct UnknownEntryStatus {
    input: String,
}

impl UnknownEntryStatus {
    /// The rejected input (at most its first 64 bytes).
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }
}

impl FromStr for EntryStatus {
    type Err = UnknownEntryStatus;

    /// Parses the exact (case-sensitive) name produced by [`EntryStatus::as_str`].
    ///
    /// # Errors
    ///
    /// [`UnknownEntryStatus`] if `s` is not a known status name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownEntryStatus { input: echo(s) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip_through_from_str_display_and_serde() {
        for kind in EntryKind::ALL {
            assert_eq!(kind.as_str().parse::<EntryKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<EntryKind>(&json).unwrap(), kind);
        }
    }

    #[test]
    fn kind_names_are_the_documented_ones() {
        let names: Vec<_> = EntryKind::ALL.iter().map(EntryKind::as_str).collect();
        assert_eq!(
            names,
            ["bet", "win", "deposit", "bonus", "adjustment", "refund"]
        );
    }

    #[test]
    fn unknown_kind_is_rejected_and_echo_is_bounded() {
        let err = "Bet".parse::<EntryKind>().unwrap_err();
        assert_eq!(err.input(), "Bet");
        assert!(err.to_string().contains("Bet"));
        assert!("".parse::<EntryKind>().is_err());
        let long = "é".repeat(100);
        let err = long.parse::<EntryKind>().unwrap_err();
        assert!(err.input().len() <= MAX_ECHOED_INPUT);
        assert!(serde_json::from_str::<EntryKind>("\"jackpot\"").is_err());
    }

    #[test]
    fn status_round_trips() {
        assert_eq!(EntryStatus::Settled.as_str(), "settled");
        assert_eq!("settled".parse::<EntryStatus>(), Ok(EntryStatus::Settled));
        assert_eq!(EntryStatus::Settled.to_string(), "settled");
        assert_eq!(
            serde_json::to_string(&EntryStatus::Settled).unwrap(),
            "\"settled\""
        );
        assert_eq!(
            serde_json::from_str::<EntryStatus>("\"settled\"").unwrap(),
            EntryStatus::Settled
        );
        assert_eq!(
            "pending".parse::<EntryStatus>().unwrap_err().input(),
            "pending"
        );
    }
}
