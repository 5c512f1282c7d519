//! Cron-scheduled jobs: each slot (a moment the expression names) is enqueued once, by
//! whichever worker gets there first ([`hearth_storage::JobRepository::enqueue_scheduled`]).

use std::str::FromStr as _;

use chrono::{DateTime, Utc};
use hearth_storage::NewJob;
use time::OffsetDateTime;

/// A job enqueued on a cron schedule.
#[derive(Clone)]
pub struct Scheduled {
    /// The schedule's name, unique per deployment; slots are recorded under it.
    pub name: String,
    /// The expression (5 fields, minute first, UTC; or 6 with seconds first).
    pub expression: String,
    cron: croner::Cron,
    /// The job kind each slot enqueues.
    pub kind: String,
    /// The payload of each slot's job.
    pub payload: serde_json::Value,
    /// Attempts per slot's job.
    pub max_attempts: i32,
}

impl std::fmt::Debug for Scheduled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduled")
            .field("name", &self.name)
            .field("expression", &self.expression)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// A cron expression that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("schedule {name}: invalid cron expression {expression:?}: {reason}")]
pub struct ScheduleError {
    /// The schedule.
    pub name: String,
    /// The expression given.
    pub expression: String,
    /// What the parser said.
    pub reason: String,
}

impl Scheduled {
    /// A schedule named `name` running `kind` (payload `{}`, 3 attempts) at the slots
    /// `expression` names.
    ///
    /// # Errors
    /// [`ScheduleError`] when the expression does not parse.
    pub fn new(
        name: impl Into<String>,
        expression: &str,
        kind: impl Into<String>,
    ) -> Result<Self, ScheduleError> {
        let name = name.into();
        let cron = croner::Cron::from_str(expression.trim()).map_err(|e| ScheduleError {
            name: name.clone(),
            expression: expression.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self {
            name,
            expression: expression.trim().to_owned(),
            cron,
            kind: kind.into(),
            payload: serde_json::json!({}),
            max_attempts: 3,
        })
    }

    /// The latest slot at or before `now`, if the expression names one (within its search).
    pub fn latest_slot(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let at = to_chrono(now)?;
        let slot = self.cron.find_previous_occurrence(&at, true).ok()?;
        from_chrono(slot)
    }

    /// The first slot strictly after `now`.
    pub fn next_slot(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        let at = to_chrono(now)?;
        let slot = self.cron.find_next_occurrence(&at, false).ok()?;
        from_chrono(slot)
    }

    /// The job for `slot`, due at the slot.
    pub fn job(&self, slot: OffsetDateTime) -> NewJob {
        NewJob::new(self.kind.clone(), self.payload.clone(), self.max_attempts).at(slot)
    }
}

/// Whole seconds only: croner keeps the fraction of the moment it starts from, and a slot must
/// be the same moment whenever (and by whichever worker) it is computed.
fn to_chrono(at: OffsetDateTime) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp(at.unix_timestamp(), 0)
}

fn from_chrono(at: DateTime<Utc>) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.timestamp_nanos_opt()?)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> OffsetDateTime {
        OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap()
    }

    #[test]
    fn slots_are_the_moments_the_expression_names() {
        let every_five = Scheduled::new("reconcile", "*/5 * * * *", "reconcile").unwrap();
        assert_eq!(
            every_five.latest_slot(at("2026-12-05T07:13:20Z")),
            Some(at("2026-12-05T07:10:00Z"))
        );
        assert_eq!(
            every_five.latest_slot(at("2026-12-05T07:10:00Z")),
            Some(at("2026-12-05T07:10:00Z")),
            "a slot is its own latest slot"
        );
        assert_eq!(
            every_five.next_slot(at("2026-12-05T07:10:00Z")),
            Some(at("2026-12-05T07:15:00Z"))
        );
        let nightly = Scheduled::new("backup", "30 3 * * *", "backup").unwrap();
        assert_eq!(
            nightly.latest_slot(at("2026-12-05T02:00:00Z")),
            Some(at("2026-12-04T03:30:00Z"))
        );
    }

    #[test]
    fn a_moment_within_a_second_has_the_same_slot() {
        let every_minute = Scheduled::new("tick", "* * * * *", "tick").unwrap();
        let a = at("2026-12-05T07:13:20.123456789Z");
        let b = at("2026-12-05T07:13:59.999Z");
        assert_eq!(
            every_minute.latest_slot(a),
            Some(at("2026-12-05T07:13:00Z"))
        );
        assert_eq!(
            every_minute.latest_slot(b),
            Some(at("2026-12-05T07:13:00Z"))
        );
    }

    #[test]
    fn a_malformed_expression_is_refused_with_its_name() {
        let error = Scheduled::new("backup", "every night", "backup").unwrap_err();
        assert!(error.to_string().contains("schedule backup"));
        assert!(Scheduled::new("x", "61 * * * *", "x").is_err());
    }
}
