//! Hearth's life simulation engine: a player's simulated life, one in-game day per tick,
//! driven by a catalogue of events that game teams write as data.
//!
//! # Layout
//!
//! - [`catalogue`]: the event registry. [`Catalogue::from_json`] loads and validates a
//!   catalogue file's contents (unknown names, dependency cycles, conflicts with a dependency,
//!   values out of range: every [`Problem`] at once); [`Catalogue::starter`] is the built-in
//!   starter catalogue (`catalogue/starter.json`: school, work, relationships, health and
//!   money).
//! - [`condition`]: the conditions an event's `when` is written in, over [`Stat`]s, flags,
//!   events that happened and characters.
//! - [`effect`]: what events and answers do: stat, money, flag and relationship changes, and
//!   the end of a life.
//! - [`life`]: [`Life`], its [`tick`](Life::tick) (returning a [`TickReport`] of
//!   [`Happening`]s), [`answer`](Life::answer) for questions, and
//!   [`resolve_conversation`](Life::resolve_conversation) for the lines of conversation events.
//! - [`record`]: saving and loading a life as versioned JSON ([`Life::to_json`],
//!   [`Life::from_json`]).
//! - [`text`]: the free-text limit and the markup stripper.
//!
//! # Determinism
//!
//! A life draws its randomness from the same provably fair stream as the games
//! ([`hearth_domain::fairness::FairRng`]): day `d` uses the life's server and client seeds
//! with nonce `d`. Nothing else is random, and nothing reads a clock, so the seeds and the
//! answers given replay a life exactly, tick by tick.
//!
//! # Example
//!
//! ```
//! use hearth_domain::fairness::{ClientSeed, ServerSeed};
//! use hearth_life::{Catalogue, Happening, Life};
//!
//! let catalogue = Catalogue::starter()?;
//! let mut life = Life::new(
//!     &catalogue,
//!     ServerSeed::from_bytes([7; 32]),
//!     ClientSeed::parse("player-1")?,
//! );
//! let mut fired = 0;
//! for _ in 0..10 * 365 {
//!     let report = life.tick(&catalogue)?;
//!     fired += report
//!         .happenings
//!         .iter()
//!         .filter(|h| matches!(h, Happening::Event { .. }))
//!         .count();
//! }
//! assert_eq!(life.age_years(), 10);
//! assert!(fired > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # What this crate does not do
//!
//! - No I/O: no files (the caller reads a catalogue file and passes its contents), no
//!   network, no database, no logging, no clock, no threads.
//! - No sessions: starting, pausing and the speed of a life, saving it and pushing what
//!   happened to a socket belong to the application layer.
//! - No AI: a conversation event yields a [`ConversationRequest`]; the caller fetches the
//!   character's line (or gives up) and records it with [`Life::resolve_conversation`].

pub mod catalogue;
pub mod condition;
pub mod effect;
pub mod life;
pub mod record;
pub mod text;

pub use catalogue::{Catalogue, CatalogueError, Character, Event, Priority, Problem, Repeat};
pub use condition::Stat;
pub use life::{
    Answer, AnswerForm, AnswerReport, ChoiceView, ConversationRequest, Ending, Happening,
    HistoryEntry, Life, LifeError, LifeView, Line, QuestionView, RelationshipView, Stats,
    TickReport,
};
pub use record::StateError;
