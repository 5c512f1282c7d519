//! Life sessions: the lives this process drives, their ticks, saves, leases, pushes and the
//! AI lines of their conversations.
//!
//! # Layout
//! - [`Lives`]: the session manager. One tokio task (the driver) ticks every life this process
//!   holds, every [`DRIVE_EVERY`], each as many days as its speed owes since the last pass; the
//!   engine takes about 1.5 µs a day, so one task keeps up with thousands of lives at the top
//!   speed (docs/benchmarks.md, "Life simulation engine"). The table of lives sits behind one
//!   mutex that the driver, commands and AI answers take briefly; nothing awaits while holding
//!   it: database writes, hub publishes and AI calls run after it is released.
//! - [`messages`]: [`Command`] (the socket's `life.*` messages), [`LifeSnapshot`] (the
//!   `life.state` push and `GET /v1/life`) and the pushes' JSON.
//! - [`metric_names`]: the `hearth_life_*` metrics.
//!
//! # One driver per life
//! A life is driven by the process holding its lease in the database
//! ([`hearth_storage::LifeRepository`]). Every save renews the lease and every
//! `lease_secs / 3` the driver renews all of its leases in one statement; a life whose lease
//! another process took is dropped from memory without a save. A process that has a socket of
//! the user but not the life forwards commands to the driver on the hub's `life` topic, tells
//! it the player is present, and claims the life once its lease lapses (the driver died), so
//! another gateway takes over within a lease period.
//!
//! # Saves
//! A changed life is saved every `save_interval_secs`, and at once on pause, stop, the end of
//! the life and when a socket of its player closes; an idle life (no socket and no command for
//! `idle_timeout_secs`) and every life at shutdown are saved and released. State is the
//! engine's versioned JSON ([`hearth_life::Life::to_json`]).
//!
//! # What it does not do
//! No sockets and no HTTP: pushes are published on the user's hub topic, whichever gateway
//! holds the sockets. Ticks between the last save and a crash are lost; the next driver
//! replays from the saved day (the same seeds, so the same days, unless answers differ).

pub mod messages;
pub mod metric_names;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hearth_ai::{Message, Role};
use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_life::{Catalogue, ConversationRequest, Happening, Life, LifeError};
use hearth_realtime::{Delivery, Hub, topics};
use hearth_storage::{
    Cursor, Database, LifeRecord, LifeSave, LifeStatus, Page, StorageError, life::LEASED,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc};
use uuid::Uuid;

pub use hearth_life::{Answer, HistoryEntry};
pub use messages::{
    Command, DEFAULT_TICKS_PER_MINUTE, LifeSnapshot, MAX_TICKS_PER_MINUTE, MIN_TICKS_PER_MINUTE,
    Question,
};

use crate::ai::Ai;
use crate::settings::LifeSettings;

/// How often the driver passes over the lives.
pub const DRIVE_EVERY: Duration = Duration::from_millis(50);

/// The hub topic gateways use among themselves for lives: forwarded commands and presence.
/// Sockets never subscribe to it.
pub const TOPIC: &str = "life";

/// The most ticks one life lives in one pass: a pass late by seconds (a stalled process)
/// catches up over several passes rather than in one long one.
const MAX_TICKS_PER_PASS: f64 = 500.0;

/// AI calls for conversation lines in flight at once, per process.
const MAX_CONCURRENT_LINES: usize = 32;

/// The largest page of `GET /v1/life/history`.
pub const MAX_HISTORY_PAGE: u32 = 200;

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum LifeCommandError {
    /// There is no life to act on.
    #[error("there is no life; send life.start first")]
    NoLife,
    /// The life is over.
    #[error("the life is over; send life.start or life.restart")]
    Ended,
    /// A field is out of range.
    #[error("{field} {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The engine refused (an unknown question, a wrong kind of answer, a text too long).
    #[error(transparent)]
    Life(#[from] LifeError),
    /// Storage failed.
    #[error("the life could not be loaded or saved")]
    Storage(#[from] StorageError),
    /// A saved life does not load into this catalogue.
    #[error("the saved life could not be read")]
    State(#[from] hearth_life::StateError),
}

impl LifeCommandError {
    /// Whether the player's command was at fault (rather than the server).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Storage(_) | Self::State(_))
    }
}

/// Why a life could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LifeReadError {
    /// Storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A saved life does not load into this catalogue.
    #[error(transparent)]
    State(#[from] hearth_life::StateError),
    /// The life does not belong to this catalogue.
    #[error(transparent)]
    Life(#[from] LifeError),
}

/// Messages among gateways on [`TOPIC`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Peer {
    /// A command for whoever drives `user`'s life.
    Command { user: Uuid, command: Command },
    /// These users have sockets on the sender: their lives are not idle.
    Present { users: Vec<Uuid> },
}

/// One life this process drives.
struct Live {
    life: Life,
    generation: u32,
    status: LifeStatus,
    ticks_per_minute: u32,
    /// Days owed by the speed and not lived yet (a fraction of one, between passes).
    owed: f64,
    last_pass: Instant,
    /// Changes since creation; `saved` is the version last written.
    version: u64,
    saved: u64,
    last_save: Instant,
    /// A save is in flight: the next waits for it, so saves land in order.
    saving: bool,
    /// Save at the next pass, whatever the interval.
    save_soon: bool,
    /// `life.state` is due (throttled by `state_push_millis`).
    state_due: bool,
    /// `life.state` at the next pass, whatever the throttle.
    state_now: bool,
    last_state: Instant,
    /// The last sign of the player: a socket, a command, a peer's presence.
    seen: Instant,
    /// When this process took the life (leases renewed before it may not list it yet).
    adopted: Instant,
    /// Conversations whose line has been asked for.
    asking: HashSet<u64>,
    /// Ask for the lines of the conversations open when the life was loaded.
    reask: bool,
}

impl Live {
    fn new(life: Life, record: &LifeRecord, now: Instant) -> Self {
        Self {
            life,
            generation: record.generation,
            status: record.status,
            ticks_per_minute: record.ticks_per_minute,
            owed: 0.0,
            last_pass: now,
            version: 0,
            saved: 0,
            last_save: now,
            saving: false,
            save_soon: false,
            state_due: false,
            state_now: true,
            last_state: now,
            seen: now,
            adopted: now,
            asking: HashSet::new(),
            reask: true,
        }
    }

    fn changed(&mut self) {
        self.version += 1;
        self.state_due = true;
    }

    fn snapshot(&self, catalogue: &Catalogue) -> Result<LifeSnapshot, LifeError> {
        Ok(LifeSnapshot::new(
            self.life.view(catalogue)?,
            self.status,
            self.ticks_per_minute,
            self.generation,
        ))
    }
}

#[derive(Default)]
struct Table {
    lives: HashMap<Uuid, Live>,
    /// Sockets of each user open on this process (whoever drives the life).
    sockets: HashMap<Uuid, u32>,
    /// Set by [`Lives::shutdown`]: nothing is adopted any more.
    closed: bool,
}

/// A save to write once the table is released.
struct SaveJob {
    save: LifeSave,
    generation: u32,
    version: u64,
}

/// A conversation line to ask the AI for.
struct Ask {
    user: Uuid,
    generation: u32,
    request: ConversationRequest,
    age_years: u32,
}

/// What a pass or a command leaves to do after the table is released.
#[derive(Default)]
struct Work {
    pushes: Vec<(Uuid, String)>,
    saves: Vec<SaveJob>,
    releases: Vec<LifeSave>,
    asks: Vec<Ask>,
}

impl Work {
    fn push(&mut self, user: Uuid, json: String) {
        self.pushes.push((user, json));
    }
}

/// The life simulation's session manager (see the [module docs](self)). Cheap to clone.
#[derive(Clone)]
pub struct Lives(Arc<Inner>);

struct Inner {
    /// This process's id: the `owner` of the leases it holds.
    owner: Uuid,
    db: Arc<dyn Database>,
    hub: Arc<dyn Hub>,
    ai: Ai,
    catalogue: Arc<Catalogue>,
    settings: LifeSettings,
    table: Mutex<Table>,
    /// Bounds the AI calls in flight, so a burst of conversations cannot open thousands.
    lines: Semaphore,
    /// Pushes for the publisher task, in order: the driver never waits on the hub.
    pushes: mpsc::Sender<(Uuid, String)>,
}

impl std::fmt::Debug for Lives {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lives")
            .field("owner", &self.0.owner)
            .finish_non_exhaustive()
    }
}

fn unix_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Lives {
    /// The manager over its parts; starts its driver and its peer listener on the current
    /// tokio runtime. They stop when the last clone of the manager is dropped.
    pub fn new(
        db: Arc<dyn Database>,
        hub: Arc<dyn Hub>,
        ai: Ai,
        catalogue: Arc<Catalogue>,
        settings: LifeSettings,
    ) -> Self {
        metric_names::describe();
        let peers = hub.subscriber(1024);
        peers.subscribe(TOPIC);
        let (pushes, queue) = mpsc::channel(PUSH_QUEUE);
        let lease = Duration::from_secs(settings.lease_secs.max(1));
        let publisher = hub.clone();
        let inner = Arc::new(Inner {
            owner: Uuid::new_v4(),
            db,
            hub,
            ai,
            catalogue,
            settings,
            table: Mutex::new(Table::default()),
            lines: Semaphore::new(MAX_CONCURRENT_LINES),
            pushes,
        });
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(drive(Arc::downgrade(&inner)));
                runtime.spawn(keep(Arc::downgrade(&inner), lease));
                runtime.spawn(listen(Arc::downgrade(&inner), peers));
                runtime.spawn(publish(publisher, queue));
            }
            Err(_) => tracing::error!("no tokio runtime: lives will not tick"),
        }
        Self(inner)
    }

    /// This process's owner id in the leases.
    pub fn owner(&self) -> Uuid {
        self.0.owner
    }

    /// The catalogue lives are simulated from.
    pub fn catalogue(&self) -> &Catalogue {
        &self.0.catalogue
    }

    /// How many lives this process drives.
    pub fn live(&self) -> usize {
        self.0.lock().lives.len()
    }

    /// Carries out `command` for `user`: here when this process drives the life (or can take
    /// it), otherwise forwarded to the process that does, which publishes the outcome (and
    /// any refusal, as an `error` push) on the user's topic.
    ///
    /// # Errors
    /// [`LifeCommandError`]: a refusal of the command, or a storage failure.
    pub async fn command(&self, user: Uuid, command: Command) -> Result<(), LifeCommandError> {
        if let Command::Speed { ticks_per_minute } = command
            && !(MIN_TICKS_PER_MINUTE..=MAX_TICKS_PER_MINUTE).contains(&ticks_per_minute)
        {
            return Err(LifeCommandError::Invalid {
                field: "ticks_per_minute",
                message: format!(
                    "must be between {MIN_TICKS_PER_MINUTE} and {MAX_TICKS_PER_MINUTE}"
                ),
            });
        }
        if let Some(outcome) = self.0.apply_local(user, &command) {
            return self.0.finish(user, outcome).await;
        }
        // Not driven here: take the life if its lease is free, else hand the command over.
        let now = unix_millis();
        let lease = now + millis(self.0.lease());
        match self.0.db.claim_life(user, self.0.owner, now, lease).await? {
            Some(record) => {
                self.0.adopt(record)?;
                match self.0.apply_local(user, &command) {
                    Some(outcome) => self.0.finish(user, outcome).await,
                    None => Err(LifeCommandError::NoLife),
                }
            }
            None => {
                let starts = matches!(command, Command::Start | Command::Restart);
                match (starts, self.0.db.life(user).await?) {
                    (true, None) => self.0.create(user).await,
                    (false, None) => Err(LifeCommandError::NoLife),
                    (_, Some(_)) => {
                        self.0.publish_peer(&Peer::Command { user, command }).await;
                        Ok(())
                    }
                }
            }
        }
    }

    /// A socket of `user` authenticated on this process: the life is kept alive, driven here
    /// when its lease is free, and `life.state` is pushed.
    pub fn attach(&self, user: Uuid) {
        let inner = self.0.clone();
        {
            let mut table = inner.lock();
            *table.sockets.entry(user).or_default() += 1;
            if let Some(live) = table.lives.get_mut(&user) {
                live.seen = Instant::now();
                live.state_now = true;
                return;
            }
        }
        tokio::spawn(async move {
            if let Err(error) = inner.take_or_show(user).await {
                tracing::warn!(%error, %user, "could not load a life for a socket");
            }
        });
    }

    /// A socket of `user` closed on this process: the life is saved at the next pass.
    pub fn detach(&self, user: Uuid) {
        let mut table = self.0.lock();
        if let Some(count) = table.sockets.get_mut(&user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.sockets.remove(&user);
            }
        }
        if let Some(live) = table.lives.get_mut(&user) {
            live.seen = Instant::now();
            live.save_soon = true;
        }
    }

    /// The user's life as they see it: this process's copy when it drives the life, the last
    /// save otherwise. `None` when they have none.
    ///
    /// # Errors
    /// When storage fails or the saved life does not load.
    pub async fn snapshot(&self, user: Uuid) -> Result<Option<LifeSnapshot>, LifeReadError> {
        if let Some(live) = self.0.lock().lives.get(&user) {
            return Ok(Some(live.snapshot(&self.0.catalogue)?));
        }
        let Some(record) = self.0.db.life(user).await? else {
            return Ok(None);
        };
        let life = Life::from_json(&record.state, &self.0.catalogue)?;
        Ok(Some(LifeSnapshot::new(
            life.view(&self.0.catalogue)?,
            record.status,
            record.ticks_per_minute,
            record.generation,
        )))
    }

    /// One page of the life's history, oldest first: the entries after `after` (the cursor
    /// counts the entries served), at most `limit`. `None` when the user has no life.
    ///
    /// # Errors
    /// As [`snapshot`](Self::snapshot).
    pub async fn history(
        &self,
        user: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Option<Page<HistoryEntry>>, LifeReadError> {
        let local = self
            .0
            .lock()
            .lives
            .get(&user)
            .map(|live| live.life.history(&self.0.catalogue))
            .transpose()?;
        let entries = match local {
            Some(entries) => entries,
            None => {
                let Some(record) = self.0.db.life(user).await? else {
                    return Ok(None);
                };
                Life::from_json(&record.state, &self.0.catalogue)?.history(&self.0.catalogue)?
            }
        };
        let start = after.map_or(0, |c| usize::try_from(c.id()).unwrap_or(usize::MAX));
        let limit = usize::try_from(limit.clamp(1, MAX_HISTORY_PAGE)).unwrap_or(1);
        let items: Vec<HistoryEntry> = entries.into_iter().skip(start).take(limit + 1).collect();
        let more = items.len() > limit;
        let items: Vec<HistoryEntry> = items.into_iter().take(limit).collect();
        let served = start.saturating_add(items.len());
        let next_cursor = more
            .then(|| i64::try_from(served).ok().map(Cursor::after_id))
            .flatten();
        Ok(Some(Page { items, next_cursor }))
    }

    /// Saves and releases every life this process drives, and adopts no more: the last step
    /// before the process exits. Waits for the writes.
    pub async fn shutdown(&self) {
        let lives: Vec<(Uuid, Live)> = {
            let mut table = self.0.lock();
            table.closed = true;
            table.lives.drain().collect()
        };
        let mut releases = Vec::with_capacity(lives.len());
        for (user, live) in lives {
            match self.0.release_of(user, &live) {
                Ok(save) => releases.push(save),
                Err(error) => tracing::error!(%error, %user, "a life could not be encoded"),
            }
        }
        let count = releases.len();
        let mut writes = tokio::task::JoinSet::new();
        for save in releases {
            let inner = self.0.clone();
            writes.spawn(async move { inner.write_release(save).await });
        }
        while writes.join_next().await.is_some() {}
        tracing::info!(lives = count, "lives saved and released");
    }
}

/// What a local command did, for [`Inner::finish`].
enum Outcome {
    /// Done; these pushes and saves follow.
    Done(Work),
    /// A new life is wanted (start after the end, restart).
    Create,
    /// Refused.
    Refused(LifeCommandError),
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lease(&self) -> Duration {
        Duration::from_secs(self.settings.lease_secs.max(1))
    }

    /// Applies `command` to a life driven here; `None` when it is not.
    fn apply_local(&self, user: Uuid, command: &Command) -> Option<Outcome> {
        let mut table = self.lock();
        let live = table.lives.get_mut(&user)?;
        let now = Instant::now();
        live.seen = now;
        let mut work = Work::default();
        let ended = live.status == LifeStatus::Ended;
        let outcome = match command {
            Command::Start if ended => Outcome::Create,
            Command::Start => {
                live.state_now = true;
                Outcome::Done(work)
            }
            Command::Restart => Outcome::Create,
            _ if ended => Outcome::Refused(LifeCommandError::Ended),
            Command::Stop => {
                live.status = LifeStatus::Ended;
                live.changed();
                live.save_soon = true;
                live.state_now = true;
                work.push(user, messages::ended(live.life.age_days(), "stopped"));
                Outcome::Done(work)
            }
            Command::Pause => {
                if live.status != LifeStatus::Paused {
                    live.status = LifeStatus::Paused;
                    live.changed();
                    live.save_soon = true;
                }
                live.state_now = true;
                Outcome::Done(work)
            }
            Command::Resume => {
                if live.status != LifeStatus::Running {
                    live.status = LifeStatus::Running;
                    live.owed = 0.0;
                    live.last_pass = now;
                    live.changed();
                }
                live.state_now = true;
                Outcome::Done(work)
            }
            Command::Speed { ticks_per_minute } => {
                live.ticks_per_minute = *ticks_per_minute;
                live.changed();
                live.state_now = true;
                Outcome::Done(work)
            }
            Command::Answer {
                question_id,
                answer,
            } => match live.life.answer(&self.catalogue, question_id, answer) {
                Ok(report) => {
                    let day = live.life.age_days();
                    work.push(user, messages::answer(day, &report));
                    if let Some(end) = &report.ended {
                        live.status = LifeStatus::Ended;
                        live.save_soon = true;
                        work.push(user, messages::ended(end.day, &end.cause));
                    }
                    live.changed();
                    live.state_now = true;
                    Outcome::Done(work)
                }
                Err(error) => Outcome::Refused(error.into()),
            },
        };
        Some(outcome)
    }

    async fn finish(
        self: &Arc<Self>,
        user: Uuid,
        outcome: Outcome,
    ) -> Result<(), LifeCommandError> {
        match outcome {
            Outcome::Done(work) => {
                self.run(work);
                Ok(())
            }
            Outcome::Create => self.create(user).await,
            Outcome::Refused(error) => Err(error),
        }
    }

    /// Writes a newborn life for `user` (replacing the old one, if any) and drives it here.
    async fn create(&self, user: Uuid) -> Result<(), LifeCommandError> {
        let mut seed = [0_u8; 32];
        seed[..16].copy_from_slice(Uuid::new_v4().as_bytes());
        seed[16..].copy_from_slice(Uuid::new_v4().as_bytes());
        let client = ClientSeed::parse(&user.simple().to_string()).map_err(|e| {
            LifeCommandError::Invalid {
                field: "user",
                message: e.to_string(),
            }
        })?;
        let life = Life::new(&self.catalogue, ServerSeed::from_bytes(seed), client);
        let speed = self
            .lock()
            .lives
            .get(&user)
            .map_or(DEFAULT_TICKS_PER_MINUTE, |live| live.ticks_per_minute);
        let now = unix_millis();
        let save = LifeSave {
            user_id: user,
            owner: self.owner,
            status: LifeStatus::Running,
            ticks_per_minute: speed,
            day: 0,
            state: life.to_json(&self.catalogue)?,
            lease_until: Some(now + millis(self.lease())),
        };
        match self.db.create_life(save, now).await {
            Ok(record) => {
                let mut table = self.lock();
                let mut live = Live::new(life, &record, Instant::now());
                live.saved = live.version;
                table.lives.insert(user, live);
                Ok(())
            }
            Err(StorageError::Conflict { constraint }) if constraint == LEASED => {
                // Another process drives the life: it restarts it.
                self.publish_peer(&Peer::Command {
                    user,
                    command: Command::Restart,
                })
                .await;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Drives a claimed life here (unless it already is); asks for the lines of its open
    /// conversations.
    fn adopt(&self, record: LifeRecord) -> Result<(), LifeCommandError> {
        let life = Life::from_json(&record.state, &self.catalogue)?;
        let mut table = self.lock();
        if table.closed {
            return Ok(());
        }
        table.lives.entry(record.user_id).or_insert_with(|| {
            tracing::debug!(user = %record.user_id, day = record.day, "life adopted");
            Live::new(life, &record, Instant::now())
        });
        Ok(())
    }

    /// For a socket that just authenticated: drive the life here when it can, else push the
    /// last saved state.
    async fn take_or_show(&self, user: Uuid) -> Result<(), LifeReadError> {
        let now = unix_millis();
        let lease = now + millis(self.lease());
        if let Some(record) = self.db.claim_life(user, self.owner, now, lease).await? {
            if let Err(error) = self.adopt(record) {
                tracing::warn!(%error, %user, "a saved life does not load");
            }
            return Ok(());
        }
        let Some(record) = self.db.life(user).await? else {
            return Ok(());
        };
        let life = Life::from_json(&record.state, &self.catalogue)?;
        let snapshot = LifeSnapshot::new(
            life.view(&self.catalogue)?,
            record.status,
            record.ticks_per_minute,
            record.generation,
        );
        self.publish(user, messages::state(&snapshot));
        Ok(())
    }

    fn save_of(&self, user: Uuid, live: &Live, keep: bool) -> Result<LifeSave, LifeCommandError> {
        Ok(LifeSave {
            user_id: user,
            owner: self.owner,
            status: live.status,
            ticks_per_minute: live.ticks_per_minute,
            day: live.life.age_days(),
            state: live.life.to_json(&self.catalogue)?,
            lease_until: keep.then(|| unix_millis() + millis(self.lease())),
        })
    }

    fn release_of(&self, user: Uuid, live: &Live) -> Result<LifeSave, LifeCommandError> {
        self.save_of(user, live, false)
    }

    /// One pass of the driver over every life.
    fn pass(&self, now: Instant) -> Work {
        let mut work = Work::default();
        let mut table = self.lock();
        let Table { lives, sockets, .. } = &mut *table;
        let save_every = Duration::from_secs(self.settings.save_interval_secs.max(1));
        let idle_after = Duration::from_secs(self.settings.idle_timeout_secs.max(1));
        let state_every = Duration::from_millis(self.settings.state_push_millis);
        let mut ticks: u64 = 0;
        let mut pending: usize = 0;
        let mut idle = Vec::new();
        for (&user, live) in lives.iter_mut() {
            if sockets.contains_key(&user) {
                live.seen = now;
            }
            if live.status == LifeStatus::Running {
                let elapsed = now.saturating_duration_since(live.last_pass).as_secs_f64();
                live.owed = (live.owed + elapsed * f64::from(live.ticks_per_minute) / 60.0)
                    .min(MAX_TICKS_PER_PASS);
                while live.owed >= 1.0 && live.status == LifeStatus::Running {
                    live.owed -= 1.0;
                    ticks += 1;
                    self.tick(user, live, &mut work);
                }
            }
            live.last_pass = now;
            pending += live.life.pending(&self.catalogue).count();
            if live.reask {
                // Adopted with conversations open (their lines were being fetched when the
                // last driver stopped): ask again.
                live.reask = false;
                if let Ok(view) = live.life.view(&self.catalogue) {
                    for request in view.conversations {
                        if live.asking.insert(request.id) {
                            work.asks.push(Ask {
                                user,
                                generation: live.generation,
                                request,
                                age_years: live.life.age_years(),
                            });
                        }
                    }
                }
            }
            let dirty = live.version != live.saved;
            if !live.saving
                && ((dirty && now.saturating_duration_since(live.last_save) >= save_every)
                    || live.save_soon)
            {
                match self.save_of(user, live, true) {
                    Ok(save) => {
                        live.saving = true;
                        live.save_soon = false;
                        live.last_save = now;
                        work.saves.push(SaveJob {
                            save,
                            generation: live.generation,
                            version: live.version,
                        });
                    }
                    Err(error) => tracing::error!(%error, %user, "a life could not be encoded"),
                }
            }
            if live.state_now
                || (live.state_due && now.saturating_duration_since(live.last_state) >= state_every)
            {
                match live.snapshot(&self.catalogue) {
                    Ok(snapshot) => work.push(user, messages::state(&snapshot)),
                    Err(error) => tracing::error!(%error, %user, "a life could not be shown"),
                }
                live.state_now = false;
                live.state_due = false;
                live.last_state = now;
            }
            if !live.saving && now.saturating_duration_since(live.seen) >= idle_after {
                idle.push(user);
            }
        }
        for user in idle {
            if let Some(live) = lives.remove(&user) {
                match self.release_of(user, &live) {
                    Ok(save) => work.releases.push(save),
                    Err(error) => tracing::error!(%error, %user, "a life could not be encoded"),
                }
            }
        }
        metrics::counter!(metric_names::TICKS).increment(ticks);
        #[allow(clippy::cast_precision_loss)]
        {
            metrics::gauge!(metric_names::LIVE).set(lives.len() as f64);
            metrics::gauge!(metric_names::QUESTIONS_PENDING).set(pending as f64);
        }
        work
    }

    /// One day of one life, and what it says.
    fn tick(&self, user: Uuid, live: &mut Live, work: &mut Work) {
        let report = match live.life.tick(&self.catalogue) {
            Ok(report) => report,
            Err(LifeError::Ended { .. } | LifeError::TooOld) => {
                live.status = LifeStatus::Ended;
                live.changed();
                live.save_soon = true;
                return;
            }
            Err(error) => {
                tracing::error!(%error, %user, "a life could not tick; paused");
                live.status = LifeStatus::Paused;
                live.changed();
                return;
            }
        };
        live.changed();
        for happening in report.happenings {
            match happening {
                Happening::Event {
                    event,
                    category,
                    priority,
                    description,
                    question,
                    conversation,
                } => {
                    metrics::counter!(metric_names::EVENTS, "category" => category.clone())
                        .increment(1);
                    work.push(
                        user,
                        messages::event(report.day, &event, &category, priority, &description),
                    );
                    if let Some(question) = question {
                        work.push(user, messages::question(report.day, (*question).into()));
                    }
                    if let Some(request) = conversation
                        && live.asking.insert(request.id)
                    {
                        work.asks.push(Ask {
                            user,
                            generation: live.generation,
                            request: *request,
                            age_years: live.life.age_years(),
                        });
                    }
                }
                Happening::Ended { cause } => {
                    live.status = LifeStatus::Ended;
                    live.save_soon = true;
                    live.state_now = true;
                    work.push(user, messages::ended(report.day, &cause));
                }
            }
        }
    }

    /// Queues the pushes, starts the saves, releases and AI calls; waits for none of them.
    fn run(self: &Arc<Self>, work: Work) {
        for (user, json) in work.pushes {
            self.publish(user, json);
        }
        for release in work.releases {
            let inner = self.clone();
            tokio::spawn(async move { inner.write_release(release).await });
        }
        for job in work.saves {
            let inner = self.clone();
            tokio::spawn(async move { inner.write_save(job).await });
        }
        for ask in work.asks {
            self.start_line(ask);
        }
    }

    /// Queues a push on the user's topic.
    fn publish(&self, user: Uuid, json: String) {
        if self.pushes.try_send((user, json)).is_err() {
            metrics::counter!(metric_names::PUSHES_DROPPED).increment(1);
        }
    }

    async fn publish_peer(&self, peer: &Peer) {
        match serde_json::to_string(peer) {
            Ok(json) => {
                if let Err(error) = self.hub.publish(TOPIC, &json).await {
                    tracing::warn!(%error, "a life message to other gateways was not published");
                }
            }
            Err(error) => tracing::error!(%error, "a life message could not be encoded"),
        }
    }

    async fn write_save(&self, job: SaveJob) {
        let user = job.save.user_id;
        let started = Instant::now();
        let result = self.db.save_life(job.save, unix_millis()).await;
        metrics::histogram!(metric_names::SAVE_SECONDS).record(started.elapsed().as_secs_f64());
        let mut table = self.lock();
        let Some(live) = table
            .lives
            .get_mut(&user)
            .filter(|live| live.generation == job.generation)
        else {
            return;
        };
        live.saving = false;
        match result {
            Ok(true) => live.saved = live.saved.max(job.version),
            Ok(false) => {
                tracing::warn!(%user, "another process took this life over; dropped here");
                table.lives.remove(&user);
            }
            Err(error) => {
                tracing::warn!(%error, %user, "a life could not be saved; retrying");
            }
        }
    }

    async fn write_release(&self, save: LifeSave) {
        let user = save.user_id;
        let started = Instant::now();
        let result = self.db.save_life(save, unix_millis()).await;
        metrics::histogram!(metric_names::SAVE_SECONDS).record(started.elapsed().as_secs_f64());
        match result {
            Ok(true) => tracing::debug!(%user, "life saved and released"),
            Ok(false) => tracing::warn!(%user, "a released life had been taken over already"),
            Err(error) => {
                tracing::warn!(%error, %user, "a life could not be saved on release; its lease lapses");
            }
        }
    }

    /// Asks the AI for a character's line, off the driver; the line (or the catalogue's
    /// fallback) is recorded when it comes.
    fn start_line(self: &Arc<Self>, ask: Ask) {
        let inner = self.clone();
        tokio::spawn(async move {
            let Ok(_permit) = inner.lines.acquire().await else {
                return;
            };
            let request = &ask.request;
            let messages = vec![
                Message::new(
                    Role::System,
                    format!(
                        "You are {}, a character in a life simulation. {} Answer in character, \
                         in one or two sentences, speaking to the player, who is {} years old.",
                        request.name, request.persona, ask.age_years
                    ),
                ),
                Message::new(Role::User, request.topic.clone()),
            ];
            let reply = inner.ai.reply_or_fallback(ask.user, messages).await;
            let text = reply.fallback.is_none().then_some(reply.text);
            inner
                .record_line(
                    ask.user,
                    ask.generation,
                    &request.event,
                    request.id,
                    text.as_deref(),
                )
                .await;
        });
    }

    async fn record_line(
        &self,
        user: Uuid,
        generation: u32,
        event: &str,
        id: u64,
        text: Option<&str>,
    ) {
        let push = {
            let mut table = self.lock();
            let Some(live) = table.lives.get_mut(&user) else {
                return;
            };
            if live.generation != generation {
                return;
            }
            live.asking.remove(&id);
            match live.life.resolve_conversation(&self.catalogue, id, text) {
                Ok(line) => {
                    live.changed();
                    Some(messages::line(live.life.age_days(), event, &line))
                }
                Err(error) => {
                    tracing::debug!(%error, %user, "a conversation line came too late");
                    None
                }
            }
        };
        if let Some(json) = push {
            self.publish(user, json);
        }
    }

    /// Renews the leases held; drops the lives another process took; claims the lives of
    /// users with sockets here whose driver's lease lapsed, and tells the drivers of the
    /// others that their players are present.
    async fn housekeep(self: &Arc<Self>) {
        let started = Instant::now();
        let now = unix_millis();
        let lease = now + millis(self.lease());
        // A process that drives no life (the worker, an idle gateway) writes nothing.
        let holds_any = !self.lock().lives.is_empty();
        let renewed = if holds_any {
            self.db.renew_life_leases(self.owner, lease).await
        } else {
            Ok(Vec::new())
        };
        match renewed {
            Ok(held) => {
                let held: HashSet<Uuid> = held.into_iter().collect();
                let mut table = self.lock();
                table.lives.retain(|user, live| {
                    let keep = held.contains(user) || live.adopted >= started;
                    if !keep {
                        tracing::warn!(%user, "another process took this life over; dropped here");
                    }
                    keep
                });
            }
            Err(error) => tracing::warn!(%error, "life leases could not be renewed"),
        }
        let remote: Vec<Uuid> = {
            let table = self.lock();
            if table.closed {
                return;
            }
            table
                .sockets
                .keys()
                .filter(|user| !table.lives.contains_key(user))
                .copied()
                .collect()
        };
        if remote.is_empty() {
            return;
        }
        let mut present = Vec::new();
        for user in remote {
            match self.db.claim_life(user, self.owner, now, lease).await {
                Ok(Some(record)) => {
                    if let Err(error) = self.adopt(record) {
                        tracing::warn!(%error, %user, "a saved life does not load");
                    }
                }
                Ok(None) => present.push(user),
                Err(error) => tracing::warn!(%error, %user, "a life could not be claimed"),
            }
        }
        if !present.is_empty() {
            self.publish_peer(&Peer::Present { users: present }).await;
        }
    }

    /// A message from another gateway.
    async fn on_peer(self: &Arc<Self>, payload: &str) {
        let Ok(peer) = serde_json::from_str::<Peer>(payload) else {
            tracing::debug!("an unreadable life message from another gateway");
            return;
        };
        match peer {
            Peer::Present { users } => {
                let now = Instant::now();
                let mut table = self.lock();
                for user in users {
                    if let Some(live) = table.lives.get_mut(&user) {
                        live.seen = now;
                    }
                }
            }
            Peer::Command { user, command } => {
                let Some(outcome) = self.apply_local(user, &command) else {
                    return;
                };
                if let Err(error) = self.finish(user, outcome).await {
                    let code = if error.is_client_error() {
                        "invalid_message"
                    } else {
                        "unavailable"
                    };
                    self.publish(user, messages::error(code, &error.to_string()));
                }
            }
        }
    }
}

/// Pushes waiting for the publisher; a full queue drops pushes (counted), never waits.
const PUSH_QUEUE: usize = 65_536;

/// The driver: one pass over every life each [`DRIVE_EVERY`], until the manager is dropped
/// or shut down.
async fn drive(inner: Weak<Inner>) {
    let mut every = tokio::time::interval(DRIVE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.lock().closed {
            return;
        }
        let work = inner.pass(Instant::now());
        inner.run(work);
    }
}

/// Lease renewal, take-overs and presence, every `lease_secs / 3`.
async fn keep(inner: Weak<Inner>, lease: Duration) {
    let mut every = tokio::time::interval((lease / 3).max(Duration::from_millis(100)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        if inner.lock().closed {
            return;
        }
        inner.housekeep().await;
    }
}

/// Publishes pushes in the order they were queued.
async fn publish(hub: Arc<dyn Hub>, mut queue: mpsc::Receiver<(Uuid, String)>) {
    while let Some((user, json)) = queue.recv().await {
        if let Err(error) = hub.publish(&topics::user(&user), &json).await {
            tracing::debug!(%error, %user, "a life push was not published");
        }
    }
}

/// Reads the other gateways' messages on [`TOPIC`].
async fn listen(inner: Weak<Inner>, mut peers: hearth_realtime::Subscriber) {
    loop {
        match peers.recv().await {
            None => return,
            Some(Delivery::Message { payload, .. }) => {
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                inner.on_peer(&payload).await;
            }
            Some(Delivery::Lagged) => {
                // Messages were lost (commands among them); carry on with a new subscription.
                tracing::warn!("life messages from other gateways were dropped");
                let Some(inner) = inner.upgrade() else {
                    return;
                };
                peers = inner.hub.subscriber(1024);
                peers.subscribe(TOPIC);
            }
        }
    }
}
