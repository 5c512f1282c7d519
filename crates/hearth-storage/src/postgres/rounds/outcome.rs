//! What `hearth_play_round` answers, decoded once: the row as `sqlx` reads it
//! ([`OneCallRow`]), and what it means ([`RoundOutcome`]), with the columns each outcome fills.
//! Deciding what to do about an outcome is the engine's (module `rounds`), not this module's.

use sqlx::types::Json;
use time::OffsetDateTime;

use super::draws::DrawInputs;
use crate::rows::IdempotencyRow;
use crate::{SettledRound, StorageError};

/// A row of `hearth_play_round` (migration `20261201000005`), column for column.
#[derive(sqlx::FromRow)]
pub(super) struct OneCallRow {
    outcome: String,
    balance_after: Option<i64>,
    played_at: Option<OffsetDateTime>,
    nonce_played: Option<i64>,
    stored_fingerprint: Option<String>,
    stored_response: Option<Json<SettledRound>>,
    current_server_seed: Option<String>,
    current_server_seed_hash: Option<String>,
    current_client_seed: Option<String>,
    current_nonce: Option<i64>,
}

/// What `hearth_play_round` did with one round.
pub(super) enum RoundOutcome {
    /// `ok`: the round is written, with the outcome drawn for `nonce`.
    Played {
        /// The nonce the round was played with.
        nonce: i64,
        /// The balance after the round.
        balance: i64,
        /// The round's time (the transaction's `now()`).
        at: OffsetDateTime,
    },
    /// `not_found`: the player has no wallet or no seeds.
    NotFound,
    /// Any other outcome: nothing was written; `current` are the draw inputs found (under the
    /// lock, unless the refusal is a stale draw seen before locking).
    Refused {
        current: DrawInputs,
        refusal: Refusal,
    },
}

/// Why `hearth_play_round` wrote nothing.
pub(super) enum Refusal {
    /// `stale`: no outcome drawn is for the seeds and nonce found; draw again from `current`.
    Stale,
    /// `replay`: the Idempotency-Key was used before; this is what it stored (boxed: the
    /// stored answer is most of the row, and replays are rare).
    Replay(Box<IdempotencyRow>),
    /// `open`: a round of the game is open.
    Open,
    /// `insufficient`: `balance` cannot cover the bet.
    Insufficient { balance: i64 },
    /// `overflow`: the win would not fit on top of `balance` less the bet.
    Overflow { balance: i64 },
}

impl TryFrom<OneCallRow> for RoundOutcome {
    type Error = StorageError;

    /// The one place the `outcome` column is read.
    ///
    /// # Errors
    /// [`StorageError::Corrupt`] for an outcome this code does not know, or one without the
    /// columns it fills.
    fn try_from(mut row: OneCallRow) -> Result<Self, Self::Error> {
        let outcome = std::mem::take(&mut row.outcome);
        let balance = row.balance_after.unwrap_or(0);
        let refusal = match outcome.as_str() {
            "ok" => {
                return Ok(Self::Played {
                    nonce: row
                        .nonce_played
                        .ok_or_else(|| StorageError::Corrupt("nonce played".into()))?,
                    balance,
                    at: row
                        .played_at
                        .ok_or_else(|| StorageError::Corrupt("round time".into()))?,
                });
            }
            "not_found" => return Ok(Self::NotFound),
            "stale" => Refusal::Stale,
            "replay" => {
                // The inputs first: without them the row is corrupt whatever else it holds.
                let current = row.current_inputs(&outcome)?;
                let stored = IdempotencyRow::new(row.stored_fingerprint, row.stored_response)?;
                return Ok(Self::Refused {
                    current,
                    refusal: Refusal::Replay(Box::new(stored)),
                });
            }
            "open" => Refusal::Open,
            "insufficient" => Refusal::Insufficient { balance },
            "overflow" => Refusal::Overflow { balance },
            other => {
                return Err(StorageError::Corrupt(format!(
                    "hearth_play_round said {other:?}"
                )));
            }
        };
        Ok(Self::Refused {
            current: row.current_inputs(&outcome)?,
            refusal,
        })
    }
}

impl OneCallRow {
    /// The draw inputs found, returned with every `outcome` that wrote nothing.
    fn current_inputs(&mut self, outcome: &str) -> Result<DrawInputs, StorageError> {
        match (
            self.current_server_seed.take(),
            self.current_server_seed_hash.take(),
            self.current_client_seed.take(),
            self.current_nonce,
        ) {
            (Some(server_seed), Some(server_seed_hash), Some(client_seed), Some(nonce)) => {
                Ok(DrawInputs {
                    server_seed,
                    server_seed_hash,
                    client_seed,
                    nonce,
                })
            }
            _ => Err(StorageError::Corrupt(format!(
                "hearth_play_round said {outcome} without the draw inputs"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row as the function fills it for `outcome`: the draw inputs with everything that
    /// wrote nothing, the balance with `ok`, `insufficient` and `overflow`.
    fn row(outcome: &str) -> OneCallRow {
        let wrote = outcome == "ok";
        OneCallRow {
            outcome: outcome.to_owned(),
            balance_after: Some(70),
            played_at: Some(OffsetDateTime::UNIX_EPOCH),
            nonce_played: wrote.then_some(7),
            stored_fingerprint: None,
            stored_response: None,
            current_server_seed: (!wrote).then(|| "ab".repeat(32)),
            current_server_seed_hash: (!wrote).then(|| "hash".to_owned()),
            current_client_seed: (!wrote).then(|| "client".to_owned()),
            current_nonce: (!wrote).then_some(9),
        }
    }

    fn refusal(outcome: &str) -> (DrawInputs, Refusal) {
        match RoundOutcome::try_from(row(outcome)) {
            Ok(RoundOutcome::Refused { current, refusal }) => (current, refusal),
            Ok(_) => panic!("{outcome} decoded as something other than a refusal"),
            Err(error) => panic!("{outcome} did not decode: {error}"),
        }
    }

    #[test]
    fn ok_decodes_as_played_with_its_nonce_balance_and_time() {
        let played = RoundOutcome::try_from(row("ok"));
        let Ok(RoundOutcome::Played { nonce, balance, at }) = played else {
            panic!("ok did not decode as played");
        };
        assert_eq!((nonce, balance, at), (7, 70, OffsetDateTime::UNIX_EPOCH));
    }

    #[test]
    fn not_found_decodes_without_draw_inputs() {
        let mut found = row("not_found");
        found.current_server_seed = None;
        assert!(matches!(
            RoundOutcome::try_from(found),
            Ok(RoundOutcome::NotFound)
        ));
    }

    #[test]
    fn every_refusal_decodes_with_the_draw_inputs_found() {
        let (current, why) = refusal("stale");
        assert!(matches!(why, Refusal::Stale));
        assert_eq!(
            (current.server_seed_hash.as_str(), current.nonce),
            ("hash", 9)
        );
        assert!(matches!(refusal("open").1, Refusal::Open));
        assert!(matches!(
            refusal("insufficient").1,
            Refusal::Insufficient { balance: 70 }
        ));
        assert!(matches!(
            refusal("overflow").1,
            Refusal::Overflow { balance: 70 }
        ));
    }

    #[test]
    fn a_replay_decodes_with_the_stored_answer_and_needs_it() {
        let mut replay = row("replay");
        assert!(matches!(
            RoundOutcome::try_from(row("replay")),
            Err(StorageError::Corrupt(_))
        ));
        replay.stored_fingerprint = Some("fp".into());
        replay.stored_response = Some(Json(SettledRound {
            round_id: uuid::Uuid::nil(),
            status: "settled".into(),
            game: "slots".into(),
            bet: 10,
            win: 0,
            balance: 70,
            detail: serde_json::Value::Null,
            server_seed_hash: "hash".into(),
            client_seed: "client".into(),
            nonce: 8,
            created_at: OffsetDateTime::UNIX_EPOCH,
        }));
        let (_, why) = match RoundOutcome::try_from(replay) {
            Ok(RoundOutcome::Refused { current, refusal }) => (current, refusal),
            _ => panic!("a replay with its answer did not decode"),
        };
        let Refusal::Replay(stored) = why else {
            panic!("replay decoded as another refusal");
        };
        let idempotency = crate::Idempotency {
            key: "k".into(),
            fingerprint: "fp".into(),
        };
        assert!(matches!(
            stored.replay(&idempotency),
            Ok(crate::Played { replayed: true, .. })
        ));
    }

    #[test]
    fn an_unknown_outcome_is_corrupt_data_not_a_panic() {
        for outcome in ["", "OK", "settled", "stale "] {
            assert!(
                matches!(
                    RoundOutcome::try_from(row(outcome)),
                    Err(StorageError::Corrupt(_))
                ),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn an_outcome_without_the_columns_it_fills_is_corrupt_data() {
        let mut played = row("ok");
        played.nonce_played = None;
        assert!(matches!(
            RoundOutcome::try_from(played),
            Err(StorageError::Corrupt(_))
        ));
        let mut stale = row("stale");
        stale.current_nonce = None;
        assert!(matches!(
            RoundOutcome::try_from(stale),
            Err(StorageError::Corrupt(_))
        ));
    }
}
