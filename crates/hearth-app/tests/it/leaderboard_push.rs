//! The `leaderboard` pushes ([`LeaderboardPusher`]) on the in-process hub and boards: what a
//! tick reads, what it delivers, and to whom. Ticks are driven by hand, except in the last
//! case, which runs the pusher's own loop on a short period.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use hearth_app::leaderboards::{
    Board, Entry, InProcessLeaderboards, LeaderboardError, LeaderboardPusher, Leaderboards, Period,
    SettledScore, Snapshot,
};
use hearth_realtime::{Delivery, Hub, InProcessHub, Subscriber};
use serde_json::{Value, json};
use time::OffsetDateTime;
use uuid::Uuid;

/// The in-process boards, counting what is read and failing `biggest_win` on demand.
#[derive(Default)]
struct Watched {
    inner: InProcessLeaderboards,
    reads: Mutex<Vec<(Board, Period)>>,
    fail_biggest_win: AtomicBool,
}

impl Watched {
    fn reads(&self) -> Vec<(Board, Period)> {
        std::mem::take(&mut *self.reads.lock().unwrap())
    }
}

#[async_trait]
impl Leaderboards for Watched {
    async fn record(&self, round: &SettledScore) -> Result<(), LeaderboardError> {
        self.inner.record(round).await
    }

    async fn top(
        &self,
        board: Board,
        period: Period,
        at: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Entry>, LeaderboardError> {
        self.reads.lock().unwrap().push((board, period));
        if board == Board::BiggestWin && self.fail_biggest_win.load(Ordering::Relaxed) {
            return Err(LeaderboardError::NoSuchPeriod);
        }
        self.inner.top(board, period, at, limit).await
    }

    async fn replace(&self, snapshot: Snapshot) -> Result<(), LeaderboardError> {
        self.inner.replace(snapshot).await
    }

    fn backend(&self) -> &'static str {
        "watched"
    }
}

struct Setup {
    hub: InProcessHub,
    boards: Arc<Watched>,
    pusher: LeaderboardPusher,
    at: OffsetDateTime,
}

fn setup() -> Setup {
    let hub = InProcessHub::new();
    let boards = Arc::new(Watched::default());
    let pusher = LeaderboardPusher::new(Arc::new(hub.clone()), boards.clone());
    Setup {
        hub,
        boards,
        pusher,
        at: OffsetDateTime::now_utc(),
    }
}

fn subscribed(hub: &InProcessHub, topic: &str) -> Subscriber {
    let sub = hub.subscriber(16);
    sub.subscribe(topic);
    sub
}

async fn play(
    boards: &dyn Leaderboards,
    username: &str,
    win: i64,
    balance: i64,
    at: OffsetDateTime,
) {
    let round = SettledScore {
        user_id: Uuid::now_v7(),
        username: username.to_owned(),
        bet: 10,
        win,
        balance,
        at,
    };
    boards.record(&round).await.unwrap();
}

async fn push(sub: &mut Subscriber) -> Value {
    match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
        Ok(Some(Delivery::Message { payload, .. })) => serde_json::from_str(&payload).unwrap(),
        other => panic!("expected a push, got {other:?}"),
    }
}

async fn nothing(sub: &mut Subscriber) {
    if let Ok(delivery) = tokio::time::timeout(Duration::from_millis(100), sub.recv()).await {
        panic!("expected nothing, got {delivery:?}");
    }
}

#[tokio::test]
async fn two_changes_between_ticks_give_one_push_and_an_unchanged_board_none() {
    let Setup {
        hub,
        boards,
        mut pusher,
        at,
    } = setup();
    let mut sub = subscribed(&hub, "leaderboard:balance:all_time");
    play(boards.as_ref(), "ann", 0, 990, at).await;
    play(boards.as_ref(), "bob", 50, 1_040, at).await;

    assert_eq!(pusher.tick(at).await, 1);

    let message = push(&mut sub).await;
    let entries: Vec<Value> = message["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| json!([entry["rank"], entry["username"], entry["score"]]))
        .collect();
    assert_eq!(message["type"], "leaderboard");
    assert_eq!(message["board"], "balance");
    assert_eq!(message["period"], "all_time");
    assert_eq!(entries, [json!([1, "bob", 1_040]), json!([2, "ann", 990])]);
    assert!(message["entries"][0]["user_id"].is_string(), "{message}");
    nothing(&mut sub).await;

    assert_eq!(pusher.tick(at).await, 0);
    nothing(&mut sub).await;

    play(boards.as_ref(), "ann", 100, 1_090, at).await;
    assert_eq!(pusher.tick(at).await, 1);
    assert_eq!(push(&mut sub).await["entries"][0]["username"], "ann");
}

#[tokio::test]
async fn only_boards_with_local_subscribers_are_read() {
    let Setup {
        hub,
        boards,
        mut pusher,
        at,
    } = setup();
    play(boards.as_ref(), "ann", 50, 1_040, at).await;

    assert_eq!(pusher.tick(at).await, 0);
    assert_eq!(boards.reads(), []);

    let mut sub = subscribed(&hub, "leaderboard:net_won:weekly");
    assert_eq!(pusher.tick(at).await, 1);
    assert_eq!(boards.reads(), [(Board::NetWon, Period::Weekly)]);
    assert_eq!(push(&mut sub).await["period"], "weekly");
}

#[tokio::test]
async fn an_empty_board_is_not_pushed() {
    let Setup {
        hub,
        mut pusher,
        at,
        ..
    } = setup();
    let mut sub = subscribed(&hub, "leaderboard:biggest_win:daily");

    assert_eq!(pusher.tick(at).await, 0);
    nothing(&mut sub).await;
}

#[tokio::test]
async fn a_new_subscriber_gets_the_current_top_at_the_next_tick() {
    let Setup {
        hub,
        boards,
        mut pusher,
        at,
    } = setup();
    play(boards.as_ref(), "ann", 50, 1_040, at).await;
    let mut first = subscribed(&hub, "leaderboard:biggest_win:daily");
    assert_eq!(pusher.tick(at).await, 1);
    push(&mut first).await;

    // Joining a topic that already has subscribers: the same top is sent again.
    let mut second = subscribed(&hub, "leaderboard:biggest_win:daily");
    assert_eq!(pusher.tick(at).await, 1);
    assert_eq!(push(&mut second).await["entries"][0]["score"], 50);
    assert_eq!(push(&mut first).await["entries"][0]["score"], 50);

    // Once everyone left, the topic is forgotten: a newcomer gets it at the next tick.
    drop((first, second));
    assert_eq!(pusher.tick(at).await, 0);
    let mut third = subscribed(&hub, "leaderboard:biggest_win:daily");
    assert_eq!(pusher.tick(at).await, 1);
    assert_eq!(push(&mut third).await["entries"][0]["username"], "ann");
}

#[tokio::test]
async fn a_board_that_cannot_be_read_is_skipped_and_the_others_still_go_out() {
    let Setup {
        hub,
        boards,
        mut pusher,
        at,
    } = setup();
    play(boards.as_ref(), "ann", 50, 1_040, at).await;
    boards.fail_biggest_win.store(true, Ordering::Relaxed);
    let mut failing = subscribed(&hub, "leaderboard:biggest_win:all_time");
    let mut working = subscribed(&hub, "leaderboard:balance:all_time");

    assert_eq!(pusher.tick(at).await, 1);
    assert_eq!(push(&mut working).await["board"], "balance");
    nothing(&mut failing).await;

    boards.fail_biggest_win.store(false, Ordering::Relaxed);
    assert_eq!(pusher.tick(at).await, 1);
    assert_eq!(push(&mut failing).await["board"], "biggest_win");
}

#[tokio::test]
async fn run_pushes_on_its_own_ticks_and_stops_on_shutdown() {
    let Setup {
        hub,
        boards,
        pusher,
        at,
    } = setup();
    let mut sub = subscribed(&hub, "leaderboard:balance:all_time");
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pusher.run(Duration::from_millis(20), async move {
        let _ = stopping.await;
    }));

    play(boards.as_ref(), "ann", 0, 990, at).await;
    assert_eq!(push(&mut sub).await["entries"][0]["score"], 990);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(1), task)
        .await
        .expect("the pusher stops on shutdown")
        .unwrap();
    play(boards.as_ref(), "bob", 0, 2_000, at).await;
    nothing(&mut sub).await;
}
