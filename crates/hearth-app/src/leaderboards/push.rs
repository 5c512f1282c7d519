//! The `leaderboard` pushes: each gateway computes them for its own sockets.
//!
//! Every tick (a second in the gateway) the pusher looks at each board and period that has
//! subscribers **in this process**, reads its top 10 from the shared store and, when it differs
//! from what this pusher last delivered on that topic, hands
//! `{"type":"leaderboard","board","period","entries":[…]}` to the local subscribers only
//! ([`Hub::deliver_local`]). Nothing crosses gateways: each one reads the same store, so each
//! socket gets every change once, coalesced to at most one push a second, and a board nobody
//! here watches is never read.

use std::collections::HashMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use hearth_realtime::{Hub, topics};
use serde::Serialize;
use time::OffsetDateTime;

use super::{Board, Entry, Leaderboards};

/// How many entries a push carries.
pub const PUSHED_ENTRIES: u32 = 10;

/// Computes and delivers this process's `leaderboard` pushes; see the module docs.
///
/// Its state is what it last delivered per topic, so a board that did not change is not sent
/// again. A topic that loses its last local subscriber is forgotten. An empty board is not
/// pushed until it has entries.
pub struct LeaderboardPusher {
    hub: Arc<dyn Hub>,
    boards: Arc<dyn Leaderboards>,
    /// Topic → what was last delivered on it. Owned by the pusher's task: no lock.
    last: HashMap<String, Pushed>,
}

impl std::fmt::Debug for LeaderboardPusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeaderboardPusher")
            .field("hub", &self.hub.backend())
            .field("boards", &self.boards.backend())
            .field("topics", &self.last.len())
            .finish()
    }
}

/// What a topic was last sent, and to how many local subscribers.
struct Pushed {
    entries: Vec<Entry>,
    /// When more subscribers are there at the next tick, someone new has not seen `entries`
    /// yet: they are sent again (the others get the same top once more).
    subscribers: usize,
}

/// The message, as the contract spells it.
#[derive(Serialize)]
struct Push<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    board: &'static str,
    period: &'static str,
    entries: &'a [Entry],
}

impl LeaderboardPusher {
    /// A pusher delivering on `hub`'s local subscribers what `boards` holds.
    pub fn new(hub: Arc<dyn Hub>, boards: Arc<dyn Leaderboards>) -> Self {
        Self {
            hub,
            boards,
            last: HashMap::new(),
        }
    }

    /// Runs [`tick`](Self::tick) every `every` (the first at once) until `shutdown`
    /// completes; a tick in progress is then abandoned.
    pub async fn run(mut self, every: Duration, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let mut interval = tokio::time::interval(every);
        // A slow store delays the next tick rather than bunching several.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let round = async {
                interval.tick().await;
                self.tick(OffsetDateTime::now_utc()).await;
            };
            // Shutdown also cancels a tick waiting on a slow store.
            tokio::select! {
                () = &mut shutdown => break,
                () = round => {}
            }
        }
        tracing::debug!("leaderboard pusher stopped");
    }

    /// One round: for each board and period with local subscribers, reads the top
    /// [`PUSHED_ENTRIES`] of the period holding `at` and delivers it when it changed (or when
    /// new subscribers arrived). Returns how many topics were pushed. A board that cannot be
    /// read is logged and skipped; the others still go out.
    pub async fn tick(&mut self, at: OffsetDateTime) -> usize {
        let mut pushed = 0;
        for board in Board::ALL {
            for &period in board.periods() {
                let topic = topics::leaderboard(board.as_str(), period.as_str());
                let subscribers = self.hub.local_subscribers(&topic);
                if subscribers == 0 {
                    self.last.remove(&topic);
                    continue;
                }
                let entries = match self.boards.top(board, period, at, PUSHED_ENTRIES).await {
                    Ok(entries) => entries,
                    Err(error) => {
                        tracing::warn!(
                            error = &error as &dyn std::error::Error,
                            topic,
                            "reading a leaderboard to push failed; skipped this tick"
                        );
                        continue;
                    }
                };
                let (before, seen_by) = self
                    .last
                    .get(&topic)
                    .map_or((&[][..], 0), |last| (&last.entries[..], last.subscribers));
                let changed = entries != before || (subscribers > seen_by && !entries.is_empty());
                if changed {
                    let push = Push {
                        kind: "leaderboard",
                        board: board.as_str(),
                        period: period.as_str(),
                        entries: &entries,
                    };
                    match serde_json::to_string(&push) {
                        Ok(payload) => {
                            self.hub.deliver_local(&topic, &payload);
                            pushed += 1;
                        }
                        Err(error) => {
                            tracing::error!(%error, topic, "serialising a leaderboard push failed");
                            continue;
                        }
                    }
                }
                self.last.insert(
                    topic,
                    Pushed {
                        entries,
                        subscribers,
                    },
                );
            }
        }
        pushed
    }
}
