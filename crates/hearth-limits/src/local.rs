//! The in-process GCRA store: a fixed set of mutex-guarded shards of `key → [(rule, TAT)]`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::clock::{Clock, to_micros};
use crate::gcra::{self, Params, RuleResult};
use crate::rule::{AsCheck, Decision};

/// Number of shards. A power of two well above the core count keeps two decisions from
/// waiting on each other unless their keys collide.
const SHARDS: usize = 64;
/// A shard sweeps expired entries after this many writes at the least, and otherwise after
/// as many writes as it has keys: amortised O(1) per decision, memory bounded by the keys
/// active within their windows.
const MIN_SWEEP_EVERY: usize = 1024;

#[derive(Debug)]
struct Slot {
    rule: Cow<'static, str>,
    tat: u64,
}

#[derive(Debug, Default)]
struct Shard {
    keys: HashMap<Box<str>, Vec<Slot>>,
    writes: usize,
}

impl Shard {
    fn tat(&self, key: &str, rule: &str) -> Option<u64> {
        self.keys
            .get(key)?
            .iter()
            .find(|slot| slot.rule == rule)
            .map(|slot| slot.tat)
    }

    #[allow(
        clippy::ptr_arg,
        reason = "cloning a borrowed Cow keeps `&'static` rule names allocation-free"
    )]
    fn set(&mut self, key: &str, rule: &Cow<'static, str>, tat: u64) {
        self.writes += 1;
        if let Some(slots) = self.keys.get_mut(key) {
            if let Some(slot) = slots.iter_mut().find(|slot| slot.rule == *rule) {
                slot.tat = tat;
            } else {
                slots.push(Slot {
                    rule: rule.clone(),
                    tat,
                });
            }
        } else {
            self.keys.insert(
                key.into(),
                vec![Slot {
                    rule: rule.clone(),
                    tat,
                }],
            );
        }
    }

    /// Drops every counter whose TAT has passed: such a counter is indistinguishable from an
    /// absent one, so eviction never changes a decision.
    fn sweep_if_due(&mut self, now: u64) {
        if self.writes < self.keys.len().max(MIN_SWEEP_EVERY) {
            return;
        }
        self.writes = 0;
        self.keys.retain(|_, slots| {
            slots.retain(|slot| slot.tat > now);
            !slots.is_empty()
        });
    }
}

/// In-process GCRA decisions over all of a request's checks, all-or-nothing.
#[derive(Debug)]
pub(crate) struct LocalStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    clock: Arc<dyn Clock>,
}

impl LocalStore {
    pub(crate) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            clock,
        }
    }

    fn shard_of(&self, key: &str) -> usize {
        // Truncation is fine: only the low bits pick a shard.
        (self.hasher.hash_one(key) as usize) % SHARDS
    }

    /// Decides all checks atomically: every involved shard is locked (in index order, so
    /// concurrent decisions cannot deadlock), all rules are evaluated, and TATs are written
    /// only if every rule allows.
    pub(crate) fn decide<C: AsCheck>(&self, checks: &[C]) -> Decision {
        self.decide_at(checks, to_micros(self.clock.now()))
    }

    /// [`decide`](Self::decide) at `at`, a moment the caller read.
    pub(crate) fn decide_at_instant<C: AsCheck>(&self, checks: &[C], at: Instant) -> Decision {
        self.decide_at(checks, to_micros(self.clock.at(at)))
    }

    fn decide_at<C: AsCheck>(&self, checks: &[C], now: u64) -> Decision {
        if let [check] = checks {
            return self.decide_one(check, checks, now);
        }
        // Per check: its shard, its verdict and the TAT to commit.
        let mut work: Vec<(usize, RuleResult, u64)> = Vec::with_capacity(checks.len());
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = Vec::with_capacity(checks.len());
        let mut order: Vec<usize> = checks.iter().map(|c| self.shard_of(c.key())).collect();
        for &ix in &order {
            work.push((ix, NOTHING, 0));
        }
        order.sort_unstable();
        order.dedup();
        for ix in order {
            let guard = self.shards[ix]
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            guards.push((ix, guard));
        }
        let slot_of = |guards: &[(usize, MutexGuard<'_, Shard>)], ix: usize| {
            guards.iter().position(|(g, _)| *g == ix).unwrap_or(0)
        };

        for (i, c) in checks.iter().enumerate() {
            let rule = c.rule();
            // A repeated (rule, key) in one decision sees the earlier tentative TAT.
            let earlier = (0..i)
                .rev()
                .find(|&j| checks[j].key() == c.key() && checks[j].rule().name == rule.name);
            let stored = match earlier {
                Some(j) => Some(work[j].2),
                None => guards[slot_of(&guards, work[i].0)]
                    .1
                    .tat(c.key(), &rule.name),
            };
            let (result, tat) = gcra::evaluate(stored, now, Params::of(rule));
            work[i].1 = result;
            work[i].2 = tat;
        }
        let results: Vec<RuleResult> = work.iter().map(|w| w.1).collect();
        if results.iter().all(|r| r.allowed) {
            for (c, &(ix, _, tat)) in checks.iter().zip(&work) {
                let g = slot_of(&guards, ix);
                guards[g].1.set(c.key(), &c.rule().name, tat);
            }
            for (_, guard) in &mut guards {
                guard.sweep_if_due(now);
            }
        }
        drop(guards);
        gcra::decision(checks, &results)
    }

    /// [`decide`](Self::decide) for a request with one check (an anonymous request, most
    /// often): one shard, one map lookup, nothing allocated unless the key is new.
    fn decide_one<C: AsCheck>(&self, check: &C, checks: &[C], now: u64) -> Decision {
        let (key, rule) = (check.key(), check.rule());
        let mut shard = self.shards[self.shard_of(key)]
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let slot = shard
            .keys
            .get_mut(key)
            .and_then(|slots| slots.iter_mut().find(|slot| slot.rule == rule.name));
        let (result, tat) = gcra::evaluate(slot.as_ref().map(|s| s.tat), now, Params::of(rule));
        if result.allowed {
            match slot {
                Some(slot) => {
                    slot.tat = tat;
                    shard.writes += 1;
                }
                None => shard.set(key, &rule.name, tat),
            }
            shard.sweep_if_due(now);
        }
        drop(shard);
        gcra::decision(checks, &[result])
    }

    /// Number of keys held whose name starts with `prefix` (for tests of eviction).
    #[cfg(test)]
    fn count(&self, prefix: &str) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let shard = s.lock().unwrap_or_else(PoisonError::into_inner);
                shard.keys.keys().filter(|k| k.starts_with(prefix)).count()
            })
            .sum()
    }
}

const NOTHING: RuleResult = RuleResult {
    allowed: false,
    debt: 0,
    retry: 0,
};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;
    use crate::rule::Rule;

    fn store() -> (LocalStore, ManualClock) {
        let clock = ManualClock::new(Duration::from_secs(1_000_000));
        (LocalStore::new(Arc::new(clock.clone())), clock)
    }

    #[test]
    fn a_refused_rule_consumes_nothing_from_the_others() {
        let (store, _) = store();
        let wide = Rule::per_minute("wide", 10);
        let narrow = Rule::per_minute("narrow", 2);
        let both = [(&wide, "k"), (&narrow, "k")];
        assert!(store.decide(&both).allowed);
        assert!(store.decide(&both).allowed);
        let refused = store.decide(&both);
        assert!(!refused.allowed);
        assert_eq!(refused.rule, "narrow");
        // `wide` was charged twice, not three times.
        let alone = store.decide(&[(&wide, "k")]);
        assert_eq!(alone.remaining, 7);
    }

    #[test]
    fn a_repeated_check_in_one_decision_counts_twice() {
        let (store, _) = store();
        let rule = Rule::per_minute("r", 3);
        assert!(store.decide(&[(&rule, "k"), (&rule, "k")]).allowed);
        assert_eq!(store.decide(&[(&rule, "k")]).remaining, 0);
    }

    #[test]
    fn expired_counters_are_evicted_so_memory_stays_bounded() {
        let (store, clock) = store();
        let rule = Rule::new("r", 1, Duration::from_secs(1));
        let keys: Vec<String> = (0..5_000).map(|i| format!("ip:{i}")).collect();
        for key in &keys {
            assert!(store.decide(&[(&rule, key.as_str())]).allowed);
        }
        assert_eq!(store.count("ip:"), 5_000);
        clock.advance(Duration::from_secs(2));
        // Twice the writes that make every shard sweep once, on fresh keys.
        for i in 0..(2 * SHARDS * MIN_SWEEP_EVERY / 4) {
            let keys: Vec<String> = (0..4).map(|j| format!("new:{i}:{j}")).collect();
            let checks: Vec<(&Rule, &str)> = keys.iter().map(|k| (&rule, k.as_str())).collect();
            assert!(store.decide(&checks).allowed);
        }
        assert_eq!(store.count("ip:"), 0, "expired keys were swept");
    }
}
