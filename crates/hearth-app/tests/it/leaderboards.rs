//! Leaderboards: one suite run on the in-process store and on Redis (when
//! `HEARTH_TEST_REDIS_URL` is set), and the rebuild from both databases.

use hearth_app::leaderboards::{
    Board, Entry, InProcessLeaderboards, LeaderboardError, Leaderboards, MAX_LIMIT, Period, Scored,
    SettledScore, Snapshot, rebuild,
};
use hearth_domain::fairness::FairRng;
use hearth_domain::games::{GameError, slots};
use hearth_storage::leaderboard::connect_source;
use hearth_storage::{Database, RoundPlay, RoundRequest, SettledRound};
use hearth_test_support::{TestDb, backend_suite, new_user};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// Monday of ISO week 2026-W47.
const MON: OffsetDateTime = datetime!(2026-11-16 10:00 UTC);
/// Sunday of the same week.
const SUN: OffsetDateTime = datetime!(2026-11-22 20:00 UTC);
/// Monday of the next week, 2026-W48.
const NEXT_MON: OffsetDateTime = datetime!(2026-11-23 09:00 UTC);

/// Instantiates `async fn name(boards: &dyn Leaderboards)` for the in-process store and Redis.
macro_rules! store_suite {
    ($($name:ident),+ $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $name() {
                    let boards = hearth_app::leaderboards::InProcessLeaderboards::new();
                    super::$name(&boards).await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(store) = super::redis_store::TestStore::new() else { return };
                    let boards = store.boards.clone();
                    // Run in a task so the keys are removed even when the test panics.
                    let outcome = tokio::spawn(async move { super::$name(&boards).await }).await;
                    store.cleanup().await;
                    if let Err(failure) = outcome {
                        std::panic::resume_unwind(failure.into_panic());
                    }
                }
            )+
        }
    };
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

fn name(n: u128) -> String {
    format!("player{n:x}")
}

fn round(user: u128, bet: i64, win: i64, balance: i64, at: OffsetDateTime) -> SettledScore {
    SettledScore {
        user_id: id(user),
        username: name(user),
        bet,
        win,
        balance,
        at,
    }
}

async fn record_all(boards: &dyn Leaderboards, rounds: &[SettledScore]) {
    for round in rounds {
        boards.record(round).await.unwrap();
    }
}

/// `(user, score)` of a page, after checking its ranks run 1, 2, … and its names.
async fn page(
    boards: &dyn Leaderboards,
    board: Board,
    period: Period,
    at: OffsetDateTime,
    limit: u32,
) -> Vec<(u128, i64)> {
    let entries = boards.top(board, period, at, limit).await.unwrap();
    check_ranks(&entries);
    entries
        .iter()
        .map(|e| {
            assert_eq!(e.username, name(e.user_id.as_u128()), "{e:?}");
            (e.user_id.as_u128(), e.score)
        })
        .collect()
}

fn check_ranks(entries: &[Entry]) {
    let ranks: Vec<u32> = entries.iter().map(|e| e.rank).collect();
    let expected: Vec<u32> = (1..).take(entries.len()).collect();
    assert_eq!(ranks, expected);
}

async fn pages_rank_highest_first_and_honour_the_limit(boards: &dyn Leaderboards) {
    record_all(
        boards,
        &[
            round(1, 10, 0, 500, SUN),
            round(2, 10, 0, 900, SUN),
            round(3, 10, 0, 100, SUN),
            round(4, 10, 0, 700, SUN),
        ],
    )
    .await;
    let all = Period::AllTime;
    assert_eq!(
        page(boards, Board::Balance, all, SUN, 3).await,
        [(2, 900), (4, 700), (1, 500)]
    );
    assert_eq!(page(boards, Board::Balance, all, SUN, 10).await.len(), 4);
    assert_eq!(page(boards, Board::Balance, all, SUN, 0).await, []);
    // The balance is set, not added: the latest round's balance stands.
    boards.record(&round(3, 10, 0, 1_000, SUN)).await.unwrap();
    assert_eq!(
        page(boards, Board::Balance, all, SUN, 1).await,
        [(3, 1_000)]
    );
    // Nobody won anything, so nobody is on the biggest-win board.
    assert_eq!(page(boards, Board::BiggestWin, all, SUN, 10).await, []);
    // A period nothing was recorded in is empty.
    assert_eq!(
        page(boards, Board::NetWon, Period::Daily, NEXT_MON, 10).await,
        []
    );
}

async fn pages_hold_at_most_max_limit_entries(boards: &dyn Leaderboards) {
    let rounds: Vec<_> = (1..=105).map(|n| round(n, 1, 0, 10, SUN)).collect();
    record_all(boards, &rounds).await;
    let top = page(boards, Board::Balance, Period::AllTime, SUN, 1_000).await;
    assert_eq!(top.len(), usize::try_from(MAX_LIMIT).unwrap());
}

async fn biggest_win_keeps_the_largest_payout(boards: &dyn Leaderboards) {
    record_all(
        boards,
        &[
            round(1, 10, 300, 1_290, SUN),
            round(2, 10, 200, 1_190, SUN),
            // Smaller later wins and losses do not lower it.
            round(1, 10, 50, 1_330, SUN),
            round(1, 10, 0, 1_320, SUN),
        ],
    )
    .await;
    for period in Period::ALL {
        assert_eq!(
            page(boards, Board::BiggestWin, period, SUN, 10).await,
            [(1, 300), (2, 200)],
            "{period}"
        );
    }
    // A bigger one raises it.
    boards.record(&round(2, 10, 400, 1_580, SUN)).await.unwrap();
    assert_eq!(
        page(boards, Board::BiggestWin, Period::Daily, SUN, 10).await,
        [(2, 400), (1, 300)]
    );
}

async fn net_won_accumulates_and_can_be_negative(boards: &dyn Leaderboards) {
    record_all(
        boards,
        &[
            round(1, 10, 0, 990, SUN),
            round(2, 10, 25, 1_015, SUN),
            round(1, 10, 0, 980, SUN),
            round(2, 10, 0, 1_005, SUN),
            round(1, 10, 0, 970, SUN),
            round(3, 10, 10, 1_000, SUN),
        ],
    )
    .await;
    for period in Period::ALL {
        assert_eq!(
            page(boards, Board::NetWon, period, SUN, 10).await,
            [(2, 5), (3, 0), (1, -30)],
            "{period}"
        );
    }
}

async fn days_weeks_and_all_time_are_separate(boards: &dyn Leaderboards) {
    use Board::{BiggestWin, NetWon};
    use Period::{AllTime, Daily, Weekly};

    boards.record(&round(1, 10, 100, 1_090, MON)).await.unwrap();
    for period in Period::ALL {
        assert_eq!(page(boards, BiggestWin, period, MON, 10).await, [(1, 100)]);
        assert_eq!(page(boards, NetWon, period, MON, 10).await, [(1, 90)]);
    }

    // Sunday: another day of the same ISO week.
    boards.record(&round(2, 10, 60, 1_050, SUN)).await.unwrap();
    boards.record(&round(1, 10, 0, 1_080, SUN)).await.unwrap();
    assert_eq!(page(boards, BiggestWin, Daily, SUN, 10).await, [(2, 60)]);
    assert_eq!(
        page(boards, NetWon, Daily, SUN, 10).await,
        [(2, 50), (1, -10)]
    );
    for at in [MON, SUN] {
        assert_eq!(
            page(boards, BiggestWin, Weekly, at, 10).await,
            [(1, 100), (2, 60)]
        );
        assert_eq!(
            page(boards, NetWon, Weekly, at, 10).await,
            [(1, 80), (2, 50)]
        );
    }

    // The next Monday starts a new day and a new week; all time goes on.
    boards
        .record(&round(2, 20, 0, 1_030, NEXT_MON))
        .await
        .unwrap();
    for period in [Daily, Weekly] {
        assert_eq!(page(boards, BiggestWin, period, NEXT_MON, 10).await, []);
        assert_eq!(page(boards, NetWon, period, NEXT_MON, 10).await, [(2, -20)]);
    }
    for at in [MON, NEXT_MON] {
        assert_eq!(
            page(boards, BiggestWin, AllTime, at, 10).await,
            [(1, 100), (2, 60)]
        );
        assert_eq!(
            page(boards, NetWon, AllTime, at, 10).await,
            [(1, 80), (2, 30)]
        );
    }
}

async fn balance_exists_for_all_time_only(boards: &dyn Leaderboards) {
    boards.record(&round(1, 10, 0, 990, SUN)).await.unwrap();
    for period in [Period::Daily, Period::Weekly] {
        assert!(matches!(
            boards.top(Board::Balance, period, SUN, 10).await,
            Err(LeaderboardError::NoSuchPeriod)
        ));
    }
    // A snapshot holding such a board is refused before anything changes.
    let mut snapshot = Snapshot::new(SUN);
    snapshot
        .boards
        .insert((Board::Balance, Period::AllTime), vec![]);
    snapshot
        .boards
        .insert((Board::Balance, Period::Weekly), vec![]);
    assert!(matches!(
        boards.replace(snapshot).await,
        Err(LeaderboardError::NoSuchPeriod)
    ));
    assert_eq!(
        page(boards, Board::Balance, Period::AllTime, SUN, 10).await,
        [(1, 990)]
    );
}

async fn ties_are_ordered_by_user_id_descending(boards: &dyn Leaderboards) {
    // Recorded in ascending id order; ids chosen so that both the high and the low bytes
    // decide somewhere (`…0001` < `…000a` < `…0010` < `…00ff` < `0100…`).
    let ids = [0x1, 0xa, 0x10, 0xff, 1 << 120];
    for n in ids {
        boards.record(&round(n, 10, 10, 500, SUN)).await.unwrap();
    }
    boards.record(&round(0x2, 10, 20, 510, SUN)).await.unwrap();
    let tied = [(1 << 120), 0xff, 0x10, 0xa, 0x1];

    let expected: Vec<(u128, i64)> = tied.iter().map(|n| (*n, 500)).collect();
    let mut balance = vec![(0x2, 510)];
    balance.extend(expected);
    assert_eq!(
        page(boards, Board::Balance, Period::AllTime, SUN, 10).await,
        balance
    );
    let mut biggest = vec![(0x2, 20)];
    biggest.extend(tied.iter().map(|n| (*n, 10)));
    assert_eq!(
        page(boards, Board::BiggestWin, Period::Daily, SUN, 10).await,
        biggest
    );
    let mut net = vec![(0x2, 10)];
    net.extend(tied.iter().map(|n| (*n, 0)));
    assert_eq!(
        page(boards, Board::NetWon, Period::Weekly, SUN, 10).await,
        net
    );
    // The limit cuts inside the tie at the same place.
    assert_eq!(
        page(boards, Board::NetWon, Period::Weekly, SUN, 3).await,
        net[..3]
    );
}

async fn replace_swaps_in_a_whole_snapshot(boards: &dyn Leaderboards) {
    record_all(
        boards,
        &[
            round(1, 10, 50, 1_040, SUN),
            round(2, 10, 30, 1_020, SUN),
            round(3, 10, 0, 990, SUN),
        ],
    )
    .await;
    let scored = |n: u128, score: i64| Scored {
        user_id: id(n),
        username: name(n),
        score,
    };
    let mut snapshot = Snapshot::new(SUN);
    snapshot.boards.insert(
        (Board::Balance, Period::AllTime),
        vec![scored(1, 10), scored(4, 1_000)],
    );
    snapshot
        .boards
        .insert((Board::BiggestWin, Period::Daily), vec![scored(5, 77)]);
    // An empty board clears the live one.
    snapshot
        .boards
        .insert((Board::NetWon, Period::Daily), vec![]);
    assert_eq!(snapshot.len(), 3);
    boards.replace(snapshot).await.unwrap();

    // Covered boards are exactly the snapshot: users 2 and 3 are gone, user 1 lowered.
    assert_eq!(
        page(boards, Board::Balance, Period::AllTime, SUN, 10).await,
        [(4, 1_000), (1, 10)]
    );
    assert_eq!(
        page(boards, Board::BiggestWin, Period::Daily, SUN, 10).await,
        [(5, 77)]
    );
    assert_eq!(
        page(boards, Board::NetWon, Period::Daily, SUN, 10).await,
        []
    );
    // Boards the snapshot does not cover are untouched.
    assert_eq!(
        page(boards, Board::BiggestWin, Period::Weekly, SUN, 10).await,
        [(1, 50), (2, 30)]
    );
    assert_eq!(
        page(boards, Board::NetWon, Period::AllTime, SUN, 10).await,
        [(1, 40), (2, 20), (3, -10)]
    );
    // Recording goes on from the snapshot.
    boards.record(&round(5, 10, 60, 1_050, SUN)).await.unwrap();
    boards.record(&round(6, 10, 90, 1_080, SUN)).await.unwrap();
    assert_eq!(
        page(boards, Board::BiggestWin, Period::Daily, SUN, 10).await,
        [(6, 90), (5, 77)]
    );
    assert_eq!(
        page(boards, Board::NetWon, Period::Daily, SUN, 10).await,
        [(6, 80), (5, 50)]
    );
    // An empty snapshot changes nothing.
    boards.replace(Snapshot::new(SUN)).await.unwrap();
    assert_eq!(
        page(boards, Board::Balance, Period::AllTime, SUN, 10).await,
        [(6, 1_080), (5, 1_050), (4, 1_000), (1, 10)]
    );
}

async fn the_latest_username_is_shown(boards: &dyn Leaderboards) {
    let mut renamed = round(1, 10, 0, 990, SUN);
    renamed.username = "old-name".into();
    boards.record(&renamed).await.unwrap();
    renamed.username = "new-name".into();
    boards.record(&renamed).await.unwrap();
    let top = boards
        .top(Board::Balance, Period::AllTime, SUN, 10)
        .await
        .unwrap();
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].username, "new-name");
}

store_suite!(
    pages_rank_highest_first_and_honour_the_limit,
    pages_hold_at_most_max_limit_entries,
    biggest_win_keeps_the_largest_payout,
    net_won_accumulates_and_can_be_negative,
    days_weeks_and_all_time_are_separate,
    balance_exists_for_all_time_only,
    ties_are_ordered_by_user_id_descending,
    replace_swaps_in_a_whole_snapshot,
    the_latest_username_is_shown,
);

#[tokio::test]
async fn in_process_keeps_only_the_current_day_and_week() {
    let boards = InProcessLeaderboards::new();
    boards.record(&round(1, 10, 100, 1_090, MON)).await.unwrap();
    boards.record(&round(2, 10, 60, 1_050, SUN)).await.unwrap();
    // Monday's board was dropped when Sunday's started; the week is the same.
    assert_eq!(
        page(&boards, Board::BiggestWin, Period::Daily, MON, 10).await,
        []
    );
    assert_eq!(
        page(&boards, Board::BiggestWin, Period::Weekly, MON, 10).await,
        [(1, 100), (2, 60)]
    );
    boards
        .record(&round(3, 10, 30, 1_020, NEXT_MON))
        .await
        .unwrap();
    assert_eq!(
        page(&boards, Board::BiggestWin, Period::Weekly, SUN, 10).await,
        []
    );
    // A late round of a dropped period counts for all time only.
    boards.record(&round(4, 10, 500, 1_490, SUN)).await.unwrap();
    assert_eq!(
        page(&boards, Board::BiggestWin, Period::Daily, SUN, 10).await,
        []
    );
    assert_eq!(
        page(&boards, Board::BiggestWin, Period::Daily, NEXT_MON, 10).await,
        [(3, 30)]
    );
    assert_eq!(
        page(&boards, Board::BiggestWin, Period::AllTime, NEXT_MON, 1).await,
        [(4, 500)]
    );
    // So does a stale snapshot.
    let mut stale = Snapshot::new(SUN);
    stale.boards.insert(
        (Board::BiggestWin, Period::Daily),
        vec![Scored {
            user_id: id(9),
            username: name(9),
            score: 9,
        }],
    );
    boards.replace(stale).await.unwrap();
    assert_eq!(
        page(&boards, Board::BiggestWin, Period::Daily, NEXT_MON, 10).await,
        [(3, 30)]
    );
    assert_eq!(boards.backend(), "in_process");
}

mod redis_store {
    use hearth_app::leaderboards::{Board, Leaderboards, Period, RedisLeaderboards};
    use hearth_test_support::{REDIS_URL_VAR, service_url};

    use super::{MON, SUN, page, round};

    /// A store under a random prefix on the shared test Redis.
    pub(super) struct TestStore {
        pub(super) boards: RedisLeaderboards,
        url: String,
    }

    impl TestStore {
        /// `None` (after saying so) when no Redis is configured.
        pub(super) fn new() -> Option<Self> {
            let url = service_url(REDIS_URL_VAR, "Redis")?;
            let prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
            let boards = RedisLeaderboards::new(url.as_str(), prefix).expect("a valid Redis URL");
            Some(Self { boards, url })
        }

        pub(super) async fn connection(&self) -> redis::aio::MultiplexedConnection {
            redis::Client::open(self.url.as_str())
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap_or_else(|e| panic!("{REDIS_URL_VAR} is set but Redis is unreachable: {e}"))
        }

        /// Every key under the prefix.
        pub(super) async fn keys(&self) -> Vec<String> {
            let mut conn = self.connection().await;
            let mut keys = Vec::new();
            let mut cursor = 0u64;
            loop {
                let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(format!("{}*", self.boards.prefix()))
                    .arg("COUNT")
                    .arg(1_000)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                keys.extend(batch);
                if next == 0 {
                    keys.sort();
                    return keys;
                }
                cursor = next;
            }
        }

        pub(super) async fn cleanup(&self) {
            let keys = self.keys().await;
            if !keys.is_empty() {
                let mut conn = self.connection().await;
                redis::cmd("DEL")
                    .arg(keys)
                    .query_async::<()>(&mut conn)
                    .await
                    .unwrap();
            }
        }

        async fn ttl(&self, key: &str) -> i64 {
            redis::cmd("TTL")
                .arg(key)
                .query_async(&mut self.connection().await)
                .await
                .unwrap()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis_keys_names_and_expiry() {
        let Some(store) = TestStore::new() else {
            return;
        };
        let boards = &store.boards;
        boards.record(&round(1, 10, 50, 1_040, SUN)).await.unwrap();
        let p = boards.prefix().to_owned();
        let expected = [
            format!("{p}lb:balance:all_time:all"),
            format!("{p}lb:biggest_win:all_time:all"),
            format!("{p}lb:biggest_win:daily:2026-11-22"),
            format!("{p}lb:biggest_win:weekly:2026-W47"),
            format!("{p}lb:names"),
            format!("{p}lb:net_won:all_time:all"),
            format!("{p}lb:net_won:daily:2026-11-22"),
            format!("{p}lb:net_won:weekly:2026-W47"),
        ];
        assert_eq!(store.keys().await, expected);
        assert_eq!(
            boards.board_key(Board::NetWon, Period::Daily, "2026-11-22"),
            expected[6]
        );
        assert_eq!(boards.names_key(), expected[4]);

        let check_ttls = || async {
            for key in &expected {
                let ttl = store.ttl(key).await;
                if key.contains(":daily:") {
                    assert!((172_000..=172_800).contains(&ttl), "{key}: {ttl}");
                } else if key.contains(":weekly:") {
                    assert!((1_209_000..=1_209_600).contains(&ttl), "{key}: {ttl}");
                } else {
                    assert_eq!(ttl, -1, "{key}");
                }
            }
        };
        check_ttls().await;

        // After a rebuild: the live keys keep their own expiry (not the staging one) and no
        // staging key is left behind.
        let mut snapshot = hearth_app::leaderboards::Snapshot::new(SUN);
        for (board, period) in [
            (Board::Balance, Period::AllTime),
            (Board::BiggestWin, Period::Daily),
            (Board::BiggestWin, Period::Weekly),
            (Board::BiggestWin, Period::AllTime),
            (Board::NetWon, Period::Daily),
            (Board::NetWon, Period::Weekly),
            (Board::NetWon, Period::AllTime),
        ] {
            snapshot.boards.insert(
                (board, period),
                vec![hearth_app::leaderboards::Scored {
                    user_id: super::id(1),
                    username: super::name(1),
                    score: 7,
                }],
            );
        }
        boards.replace(snapshot).await.unwrap();
        assert_eq!(store.keys().await, expected);
        check_ttls().await;

        // Unlike the in-process store, Redis keeps the previous day readable until it expires.
        boards.record(&round(2, 10, 20, 1_010, MON)).await.unwrap();
        assert_eq!(
            page(boards, Board::BiggestWin, Period::Daily, SUN, 10).await,
            [(1, 7)]
        );
        assert_eq!(
            page(boards, Board::BiggestWin, Period::Daily, MON, 10).await,
            [(2, 20)]
        );
        assert_eq!(boards.backend(), "redis");
        store.cleanup().await;
        assert!(store.keys().await.is_empty());
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable() {
        // Nothing listens on port 1; the store connects lazily, so only the call fails.
        let boards = RedisLeaderboards::new("redis://127.0.0.1:1", "x:").unwrap();
        let failed = boards.record(&round(1, 10, 0, 990, SUN)).await;
        assert!(
            matches!(
                failed,
                Err(hearth_app::leaderboards::LeaderboardError::Unavailable(_))
            ),
            "{failed:?}"
        );
        assert!(RedisLeaderboards::new("not a url", "x:").is_err());
    }
}

// The rebuild, from both databases.

fn slots_play(bet: i64) -> impl Fn(&mut FairRng<'_>) -> Result<RoundPlay, GameError> + Send + Sync {
    move |rng| {
        let outcome = slots::spin(rng, bet)?;
        Ok(RoundPlay {
            win: outcome.win,
            detail: serde_json::json!({ "stops": outcome.stops }),
            state: None,
        })
    }
}

async fn spin(db: &dyn Database, user: Uuid, bet: i64) -> SettledRound {
    let play = slots_play(bet);
    db.play_round(RoundRequest {
        user_id: user,
        round_id: Uuid::now_v7(),
        game: "slots",
        bet,
        play: &play,
        idempotency: None,
    })
    .await
    .unwrap()
    .value
}

/// Sorted as the boards sort: score, then user id, both descending.
fn ranked(mut rows: Vec<Scored>) -> Vec<Scored> {
    rows.sort_by_key(|r| std::cmp::Reverse((r.score, r.user_id)));
    rows
}

async fn a_rebuild_computes_every_board_from_the_rounds(t: &TestDb) {
    let db = t.db.as_ref();
    // Everyone shares one server and client seed, so different bets and round counts keep
    // the players apart. Dave never plays.
    let mut players = Vec::new();
    let mut rounds = Vec::new();
    for (username, bet, count) in [
        ("Alice", 10, 8),
        ("Bob", 20, 12),
        ("Carol", 5, 20),
        ("Dave", 1, 0),
    ] {
        let user = db.create_user(new_user(username, 1_000)).await.unwrap();
        for _ in 0..count {
            rounds.push((user.id, username, spin(db, user.id, bet).await));
        }
        players.push(user);
    }
    let at = OffsetDateTime::now_utc();
    assert!(rounds.iter().any(|(_, _, r)| r.win > 0), "no round paid");

    let mut expected = std::collections::BTreeMap::new();
    let mut balances = Vec::new();
    for user in &players {
        let balance = db.wallet(user.id).await.unwrap().balance;
        balances.push(Scored {
            user_id: user.id,
            username: user.username.clone(),
            score: balance,
        });
    }
    expected.insert((Board::Balance, Period::AllTime), ranked(balances));
    for period in Period::ALL {
        // The rounds in the period holding `at` (robust to a run that crosses midnight).
        let inside: Vec<_> = rounds
            .iter()
            .filter(|(_, _, r)| period.id(r.created_at) == period.id(at))
            .collect();
        let (mut biggest, mut net) = (Vec::<Scored>::new(), Vec::<Scored>::new());
        for user in &players {
            let mine: Vec<_> = inside.iter().filter(|(id, _, _)| *id == user.id).collect();
            if mine.is_empty() {
                continue;
            }
            let scored = |score| Scored {
                user_id: user.id,
                username: user.username.clone(),
                score,
            };
            let max = mine.iter().map(|(_, _, r)| r.win).max().unwrap_or(0);
            if max > 0 {
                biggest.push(scored(max));
            }
            net.push(scored(mine.iter().map(|(_, _, r)| r.win - r.bet).sum()));
        }
        expected.insert((Board::BiggestWin, period), ranked(biggest));
        expected.insert((Board::NetWon, period), ranked(net));
    }

    let source = connect_source(&t.settings).await.unwrap();
    let snapshot = source.leaderboard_snapshot(at, 10).await.unwrap();
    assert_eq!(snapshot.at, at);
    assert_eq!(snapshot.boards, expected);

    // The limit applies per board, keeping the top.
    let top_two = source.leaderboard_snapshot(at, 2).await.unwrap();
    for (key, rows) in &expected {
        let cut = &rows[..rows.len().min(2)];
        assert_eq!(top_two.boards[key], cut, "{key:?}");
    }

    // Rebuilt boards serve exactly the database's ranking...
    let rebuilt = InProcessLeaderboards::new();
    let written = rebuild(source.as_ref(), &rebuilt, at, 10).await.unwrap();
    assert_eq!(written, snapshot.len());
    // ...and agree with boards fed round by round.
    let live = InProcessLeaderboards::new();
    for (user_id, username, settled) in &rounds {
        let score = settled.score(*user_id, *username).expect("settled");
        live.record(&score).await.unwrap();
    }
    for ((board, period), rows) in &expected {
        let top = rebuilt.top(*board, *period, at, MAX_LIMIT).await.unwrap();
        check_ranks(&top);
        let served: Vec<Scored> = top
            .into_iter()
            .map(|e| Scored {
                user_id: e.user_id,
                username: e.username,
                score: e.score,
            })
            .collect();
        assert_eq!(&served, rows, "{board} {period}");
        if *board != Board::Balance {
            let fed = live.top(*board, *period, at, MAX_LIMIT).await.unwrap();
            let fed: Vec<_> = fed.into_iter().map(|e| (e.user_id, e.score)).collect();
            let want: Vec<_> = rows.iter().map(|r| (r.user_id, r.score)).collect();
            assert_eq!(fed, want, "live {board} {period}");
        }
    }
}

backend_suite!(a_rebuild_computes_every_board_from_the_rounds);
