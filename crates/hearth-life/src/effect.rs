//! Effects: what an event, a choice or a free-text rule does to a life.
//!
//! In a catalogue file an effect is one JSON object; every field is optional:
//!
//! | field | meaning |
//! | --- | --- |
//! | `health`, `happiness`, `smarts`, `looks` | added to the stat (-100 to 100); the result is kept within 0 to 100 |
//! | `money` | added to money; money never goes below 0 (a larger loss takes what there is) |
//! | `set`, `clear` | flags to set or clear |
//! | `meet` | characters met, each with its starting closeness (0 to 100); a character already known keeps its closeness |
//! | `closeness` | added to a known character's closeness (-100 to 100), kept within 0 to 100; an unknown character is left unknown |
//! | `part` | characters who leave the life (no longer known) |
//! | `end_life` | ends the life, with this text as the cause |
//!
//! Effects apply in the order of that table. A life whose health reaches 0 ends with the cause
//! [`HEALTH_CAUSE`].

use crate::life::State;

/// The cause recorded when a life ends because its health reached 0.
pub const HEALTH_CAUSE: &str = "health reached zero";

/// The largest change an effect may make to a 0–100 stat or a closeness, either way.
pub(crate) const MAX_STAT_DELTA: i64 = 100;

/// The largest change an effect may make to money, either way.
pub(crate) const MAX_MONEY_DELTA: i64 = 1_000_000_000_000;

/// A checked effect, names resolved to indices.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Effect {
    pub(crate) health: i32,
    pub(crate) happiness: i32,
    pub(crate) smarts: i32,
    pub(crate) looks: i32,
    pub(crate) money: i64,
    pub(crate) set: Vec<usize>,
    pub(crate) clear: Vec<usize>,
    pub(crate) meet: Vec<(usize, u8)>,
    pub(crate) closeness: Vec<(usize, i32)>,
    pub(crate) part: Vec<usize>,
    pub(crate) end_life: Option<String>,
}

impl Effect {
    /// Applies the effect; returns the cause when it ends the life.
    pub(crate) fn apply(&self, state: &mut State) -> Option<String> {
        let stats = &mut state.stats;
        stats.health = clamp_stat(stats.health, self.health);
        stats.happiness = clamp_stat(stats.happiness, self.happiness);
        stats.smarts = clamp_stat(stats.smarts, self.smarts);
        stats.looks = clamp_stat(stats.looks, self.looks);
        stats.money = stats.money.saturating_add(self.money).max(0);
        for &flag in &self.set {
            state.set_flag(flag, true);
        }
        for &flag in &self.clear {
            state.set_flag(flag, false);
        }
        for &(character, start) in &self.meet {
            if let Some(slot) = state.closeness.get_mut(character)
                && slot.is_none()
            {
                *slot = Some(start);
            }
        }
        for &(character, delta) in &self.closeness {
            if let Some(Some(value)) = state.closeness.get_mut(character) {
                *value = clamp_closeness(*value, delta);
            }
        }
        for &character in &self.part {
            if let Some(slot) = state.closeness.get_mut(character) {
                *slot = None;
            }
        }
        if let Some(cause) = &self.end_life {
            return Some(cause.clone());
        }
        (state.stats.health == 0).then(|| HEALTH_CAUSE.to_owned())
    }
}

/// `value + delta`, kept within 0 to 100.
fn clamp_stat(value: i32, delta: i32) -> i32 {
    value.saturating_add(delta).clamp(0, 100)
}

fn clamp_closeness(value: u8, delta: i32) -> u8 {
    let next = i32::from(value).saturating_add(delta).clamp(0, 100);
    // Clamped to 0..=100 just above, so it fits.
    u8::try_from(next).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_stay_within_their_ranges() {
        assert_eq!(clamp_stat(95, 10), 100);
        assert_eq!(clamp_stat(5, -10), 0);
        assert_eq!(clamp_stat(50, -10), 40);
        assert_eq!(clamp_closeness(3, -10), 0);
        assert_eq!(clamp_closeness(97, 10), 100);
    }
}
