//! A life: its state, one tick (one in-game day), answers to questions, and the lines of
//! conversations the caller resolves.
//!
//! # A tick
//!
//! [`Life::tick`] advances the life by one day (`age_days + 1 = d`), then walks the catalogue's
//! events in priority order (highest first, ties in file order) and fires each that is
//! eligible, until [`Catalogue::max_events_per_day`] have fired or the life ends. An event is
//! eligible when:
//!
//! 1. it is not waiting for an answer itself;
//! 2. it has never fired (once-only), or its cooldown has passed since it last fired;
//! 3. every event it requires has fired, and none of the events it depends on, directly or
//!    through others, is waiting for an answer (an unanswered question pauses its own thread:
//!    the events downstream of it, nothing else);
//! 4. no event it conflicts with has ever fired;
//! 5. its condition holds for the state as it is now (events fired earlier the same day
//!    included);
//! 6. its chance, when below 1, is met: one draw `below(1_000_000) < chance × 1_000_000` from
//!    the day's random stream.
//!
//! The day's random stream is [`FairRng::new(server, client, d)`](FairRng): the life's seeds
//! with the day as nonce. It is created only when a chance is drawn, and draws happen in
//! evaluation order, so the seeds alone replay every tick of a life.
//!
//! When a life ends, its unanswered questions are withdrawn; it ticks no more and takes no
//! answers.
//!
//! Firing records the event in the history, applies its effect, and, unless the effect ended
//! the life, asks its question (the event then waits for [`Life::answer`]) and opens its
//! conversation (the caller gets the character's line from wherever it likes and records it
//! with [`Life::resolve_conversation`]; the life does not wait for it).

use std::collections::BTreeMap;

use hearth_domain::fairness::{ClientSeed, FairRng, RandomSource, ServerSeed};
use serde::{Deserialize, Serialize};

use crate::catalogue::{CHANCE_SCALE, Catalogue, Event, Form, Priority, Question, Repeat};
use crate::condition::Stat;
use crate::effect::Effect;
use crate::text::{MAX_ANSWER_CHARS, MAX_LINE_CHARS, strip_markup, truncate_chars};

/// Days in an in-game year.
pub const DAYS_PER_YEAR: u32 = 365;

/// A life's stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// 0 to 100; at 0 the life ends.
    pub health: i32,
    /// 0 to 100.
    pub happiness: i32,
    /// 0 to 100.
    pub smarts: i32,
    /// 0 to 100.
    pub looks: i32,
    /// In-game money, 0 or more.
    pub money: i64,
}

/// How and when a life ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ending {
    /// The day it ended.
    pub day: u32,
    /// Why: an event's `end_life` text, or [`HEALTH_CAUSE`](crate::effect::HEALTH_CAUSE).
    pub cause: String,
}

/// One line of a life's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryEntry {
    /// An event fired.
    Event {
        /// The day.
        day: u32,
        /// The event's name.
        event: String,
    },
    /// A question was answered.
    Answer {
        /// The day of the answer.
        day: u32,
        /// The event that asked.
        event: String,
        /// The choice picked, for a choice question.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        choice: Option<String>,
        /// The answer with markup stripped, for a free-text question.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// A character said a line in a conversation.
    Line {
        /// The day the line was recorded.
        day: u32,
        /// The conversation's id.
        conversation: u64,
        /// The event that opened the conversation.
        event: String,
        /// The character's id.
        character: String,
        /// What they said.
        text: String,
        /// Whether it was the catalogue's fallback line.
        fallback: bool,
    },
    /// The life ended.
    Ended {
        /// The day.
        day: u32,
        /// Why.
        cause: String,
    },
}

/// Something that happened in a tick.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Happening {
    /// An event fired.
    Event {
        /// Its name.
        event: String,
        /// Its category.
        category: String,
        /// Its priority.
        priority: Priority,
        /// Its text.
        description: String,
        /// The question it asks, now waiting for [`Life::answer`]. (Boxed, like the
        /// conversation: most events have neither, and a tick's list stays small.)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        question: Option<Box<QuestionView>>,
        /// The conversation it opens, for the caller to resolve.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        conversation: Option<Box<ConversationRequest>>,
    },
    /// The life ended.
    Ended {
        /// Why.
        cause: String,
    },
}

/// What one tick did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TickReport {
    /// The day the tick was (the life's age in days after it).
    pub day: u32,
    /// What happened, in order: events in the order they fired, then the end, if any.
    pub happenings: Vec<Happening>,
}

/// A question waiting for an answer, as a player sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionView {
    /// The event that asks; answers name it.
    pub event: String,
    /// The question.
    pub prompt: String,
    /// The day it was asked.
    pub asked_day: u32,
    /// How to answer.
    pub answer_with: AnswerForm,
}

/// How a question is answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnswerForm {
    /// One of these choices ([`Answer::Choice`] with its id).
    Choices(Vec<ChoiceView>),
    /// Free text ([`Answer::Text`]) of at most `max_chars` characters.
    FreeText {
        /// [`MAX_ANSWER_CHARS`].
        max_chars: usize,
    },
}

/// One choice of a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceView {
    /// What an answer names.
    pub id: String,
    /// What the player reads.
    pub label: String,
}

/// A conversation an event opened: who speaks and about what, for the caller to voice
/// (an AI provider) or to answer with `fallback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversationRequest {
    /// Unique within the life; [`Life::resolve_conversation`] takes it.
    pub id: u64,
    /// The event that opened it.
    pub event: String,
    /// The character's id.
    pub character: String,
    /// The character's name.
    pub name: String,
    /// The character's persona, from the catalogue.
    pub persona: String,
    /// What the conversation is about, from the catalogue.
    pub topic: String,
    /// The line the character says when no provider answers or the budget is spent.
    pub fallback: String,
}

/// A player's answer to a question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// The id of one of the question's choices.
    Choice(String),
    /// Free text, at most [`MAX_ANSWER_CHARS`] characters; markup is stripped.
    Text(String),
}

/// What an answer did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerReport {
    /// The event that asked.
    pub event: String,
    /// The choice picked, for a choice question.
    pub choice: Option<String>,
    /// The answer with markup stripped, for a free-text question.
    pub text: Option<String>,
    /// For free text: the index of the first rule whose keyword matched, or `None` when the
    /// question's `otherwise` effect applied.
    pub rule: Option<usize>,
    /// Set when the answer's effect ended the life.
    pub ended: Option<Ending>,
}

/// A character's line, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// The conversation.
    pub conversation: u64,
    /// The character's id.
    pub character: String,
    /// The character's name.
    pub name: String,
    /// The line, markup stripped and cut to [`MAX_LINE_CHARS`].
    pub text: String,
    /// Whether it is the catalogue's fallback line.
    pub fallback: bool,
}

/// A known character and how close they are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RelationshipView {
    /// The character's id.
    pub character: String,
    /// The character's name.
    pub name: String,
    /// 0 to 100.
    pub closeness: u8,
}

/// What a player may see of a life: no seeds, no internal counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LifeView {
    /// Days lived.
    pub age_days: u32,
    /// Whole years lived.
    pub age_years: u32,
    /// The stats.
    pub stats: Stats,
    /// Known characters, in catalogue order.
    pub relationships: Vec<RelationshipView>,
    /// Questions waiting for an answer, oldest first.
    pub questions: Vec<QuestionView>,
    /// Conversations not resolved yet, oldest first.
    pub conversations: Vec<ConversationRequest>,
    /// Set once the life is over.
    pub ended: Option<Ending>,
}

/// Why a life could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifeError {
    /// The catalogue passed in is not the one the life was created or loaded with.
    #[error("this life was created with another catalogue")]
    WrongCatalogue,
    /// The life is over.
    #[error("the life ended on day {day}")]
    Ended {
        /// The day it ended.
        day: u32,
    },
    /// The day counter cannot go further.
    #[error("the life has lived as many days as it can")]
    TooOld,
    /// No question from this event is waiting.
    #[error("no question from `{event}` is waiting for an answer")]
    NoSuchQuestion {
        /// The event named.
        event: String,
    },
    /// The question wants a choice, not text.
    #[error("`{event}` asks for one of its choices")]
    ExpectedChoice {
        /// The event.
        event: String,
    },
    /// The question wants text, not a choice.
    #[error("`{event}` asks for free text")]
    ExpectedText {
        /// The event.
        event: String,
    },
    /// The choice is not one the question offers.
    #[error("`{choice}` is not a choice of `{event}`")]
    UnknownChoice {
        /// The event.
        event: String,
        /// The choice given.
        choice: String,
    },
    /// A free-text answer is too long.
    #[error("an answer may have at most {max} characters, this one has {actual}")]
    TooLong {
        /// [`MAX_ANSWER_CHARS`].
        max: usize,
        /// The answer's length in characters.
        actual: usize,
    },
    /// No open conversation has this id.
    #[error("no conversation {id} is open")]
    NoSuchConversation {
        /// The id given.
        id: u64,
    },
}

/// One history entry as kept in memory: catalogue indices instead of names, and the rare
/// kinds boxed, so that the common one (an event fired) takes 16 bytes and no allocation.
/// [`Life::history`] turns them into [`HistoryEntry`]s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Event { day: u32, event: u32 },
    Answer(Box<AnswerEntry>),
    Line(Box<LineEntry>),
    Ended(Box<Ending>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AnswerEntry {
    pub(crate) day: u32,
    pub(crate) event: u32,
    /// Index into the question's choices.
    pub(crate) choice: Option<u32>,
    pub(crate) text: Option<Box<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LineEntry {
    pub(crate) day: u32,
    pub(crate) conversation: u64,
    /// The event that opened the conversation: its spec names the character and the fallback.
    pub(crate) event: u32,
    /// `None` for the fallback line, which stays in the catalogue.
    pub(crate) text: Option<Box<str>>,
}

/// A catalogue index as stored in history entries. Catalogues never hold 2^32 events.
pub(crate) fn index32(index: usize) -> u32 {
    u32::try_from(index).unwrap_or(u32::MAX)
}

impl Entry {
    /// The public form, names resolved through `catalogue`.
    pub(crate) fn to_public(&self, catalogue: &Catalogue) -> HistoryEntry {
        let name = |i: u32| catalogue.event_name(i as usize).to_owned();
        match self {
            Self::Event { day, event } => HistoryEntry::Event {
                day: *day,
                event: name(*event),
            },
            Self::Answer(a) => HistoryEntry::Answer {
                day: a.day,
                event: name(a.event),
                choice: a.choice.and_then(|c| {
                    let question = catalogue.events.get(a.event as usize)?.question.as_ref()?;
                    match &question.form {
                        Form::Choices(choices) => choices.get(c as usize).map(|c| c.id.clone()),
                        Form::FreeText { .. } => None,
                    }
                }),
                text: a.text.as_deref().map(str::to_owned),
            },
            Self::Line(l) => {
                let spec = catalogue
                    .events
                    .get(l.event as usize)
                    .and_then(|e| e.conversation.as_ref());
                HistoryEntry::Line {
                    day: l.day,
                    conversation: l.conversation,
                    event: name(l.event),
                    character: spec
                        .and_then(|s| catalogue.character(s.character))
                        .map(|c| c.id.clone())
                        .unwrap_or_default(),
                    text: match &l.text {
                        Some(text) => text.to_string(),
                        None => spec.map(|s| s.fallback.clone()).unwrap_or_default(),
                    },
                    fallback: l.text.is_none(),
                }
            }
            Self::Ended(end) => HistoryEntry::Ended {
                day: end.day,
                cause: end.cause.clone(),
            },
        }
    }
}

/// Per-event counters, indexed like the catalogue's events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EventState {
    pub(crate) times: u32,
    pub(crate) last_day: u32,
    pub(crate) pending: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub(crate) event: usize,
    pub(crate) asked_day: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OpenConversation {
    pub(crate) id: u64,
    pub(crate) event: usize,
    pub(crate) opened_day: u32,
}

/// Everything about a life except its seeds, with names resolved to catalogue indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) day: u32,
    pub(crate) stats: Stats,
    /// One bit per catalogue flag.
    pub(crate) flags: Vec<u64>,
    /// Per catalogue character: `None` when not known.
    pub(crate) closeness: Vec<Option<u8>>,
    pub(crate) events: Vec<EventState>,
    pub(crate) pending: Vec<Pending>,
    pub(crate) conversations: Vec<OpenConversation>,
    pub(crate) next_conversation: u64,
    pub(crate) history: Vec<Entry>,
    pub(crate) ended: Option<Ending>,
}

impl State {
    pub(crate) fn stat(&self, stat: Stat) -> i64 {
        match stat {
            Stat::Health => i64::from(self.stats.health),
            Stat::Happiness => i64::from(self.stats.happiness),
            Stat::Smarts => i64::from(self.stats.smarts),
            Stat::Looks => i64::from(self.stats.looks),
            Stat::Money => self.stats.money,
            Stat::AgeYears => i64::from(self.day / DAYS_PER_YEAR),
            Stat::AgeDays => i64::from(self.day),
        }
    }

    pub(crate) fn flag(&self, flag: usize) -> bool {
        self.flags
            .get(flag / 64)
            .is_some_and(|word| word & (1 << (flag % 64)) != 0)
    }

    pub(crate) fn set_flag(&mut self, flag: usize, on: bool) {
        if let Some(word) = self.flags.get_mut(flag / 64) {
            if on {
                *word |= 1 << (flag % 64);
            } else {
                *word &= !(1 << (flag % 64));
            }
        }
    }

    fn eligible(&self, event: &Event, index: usize, day: u32) -> bool {
        let Some(own) = self.events.get(index) else {
            return false;
        };
        if own.pending {
            return false;
        }
        if own.times > 0 {
            match event.repeat {
                Repeat::Once => return false,
                Repeat::Cooldown { days } if day.saturating_sub(own.last_day) < days => {
                    return false;
                }
                Repeat::Cooldown { .. } => {}
            }
        }
        let times = |i: usize| self.events.get(i).map_or(0, |e| e.times);
        if event.requires.iter().any(|&d| times(d) == 0)
            || event
                .ancestors
                .iter()
                .any(|&a| self.events.get(a).is_some_and(|e| e.pending))
            || event.conflicts.iter().any(|&c| times(c) > 0)
        {
            return false;
        }
        event.condition.as_ref().is_none_or(|c| c.holds(self))
    }

    fn fire(
        &mut self,
        catalogue: &Catalogue,
        index: usize,
        day: u32,
        happenings: &mut Vec<Happening>,
    ) {
        let Some(event) = catalogue.events.get(index) else {
            return;
        };
        if let Some(own) = self.events.get_mut(index) {
            own.times = own.times.saturating_add(1);
            own.last_day = day;
        }
        self.history.push(Entry::Event {
            day,
            event: index32(index),
        });
        let ending = event.effect.apply(self);
        let question = match (&ending, &event.question) {
            (None, Some(question)) => {
                if let Some(own) = self.events.get_mut(index) {
                    own.pending = true;
                }
                self.pending.push(Pending {
                    event: index,
                    asked_day: day,
                });
                Some(Box::new(question_view(event, question, day)))
            }
            _ => None,
        };
        let conversation = event.conversation.as_ref().map(|_| {
            let open = OpenConversation {
                id: self.next_conversation,
                event: index,
                opened_day: day,
            };
            self.next_conversation = self.next_conversation.saturating_add(1);
            self.conversations.push(open);
            Box::new(conversation_request(catalogue, open))
        });
        happenings.push(Happening::Event {
            event: event.name.clone(),
            category: catalogue.category_of(event).to_owned(),
            priority: event.priority,
            description: event.description.clone(),
            question,
            conversation,
        });
        if let Some(cause) = ending {
            self.end(day, cause, Some(happenings));
        }
    }

    fn end(&mut self, day: u32, cause: String, happenings: Option<&mut Vec<Happening>>) {
        self.history.push(Entry::Ended(Box::new(Ending {
            day,
            cause: cause.clone(),
        })));
        if let Some(happenings) = happenings {
            happenings.push(Happening::Ended {
                cause: cause.clone(),
            });
        }
        self.ended = Some(Ending { day, cause });
        // Nobody can answer for a life that is over: its questions are withdrawn. Open
        // conversations stay, so the caller can still record the character's line.
        for pending in self.pending.drain(..) {
            if let Some(own) = self.events.get_mut(pending.event) {
                own.pending = false;
            }
        }
    }
}

fn question_view(event: &Event, question: &Question, asked_day: u32) -> QuestionView {
    QuestionView {
        event: event.name.clone(),
        prompt: question.prompt.clone(),
        asked_day,
        answer_with: match &question.form {
            Form::Choices(choices) => AnswerForm::Choices(
                choices
                    .iter()
                    .map(|c| ChoiceView {
                        id: c.id.clone(),
                        label: c.label.clone(),
                    })
                    .collect(),
            ),
            Form::FreeText { .. } => AnswerForm::FreeText {
                max_chars: MAX_ANSWER_CHARS,
            },
        },
    }
}

fn conversation_request(catalogue: &Catalogue, open: OpenConversation) -> ConversationRequest {
    let event = catalogue.events.get(open.event);
    let spec = event.and_then(|e| e.conversation.as_ref());
    let character = spec.and_then(|s| catalogue.character(s.character));
    ConversationRequest {
        id: open.id,
        event: event.map(|e| e.name.clone()).unwrap_or_default(),
        character: character.map(|c| c.id.clone()).unwrap_or_default(),
        name: character.map(|c| c.name.clone()).unwrap_or_default(),
        persona: character.map(|c| c.persona.clone()).unwrap_or_default(),
        topic: spec.map(|s| s.topic.clone()).unwrap_or_default(),
        fallback: spec.map(|s| s.fallback.clone()).unwrap_or_default(),
    }
}

/// The first rule with a keyword that starts some word of `text` (case-insensitive), else
/// `otherwise`.
fn free_text_effect<'a>(
    rules: &'a [(Vec<String>, Effect)],
    otherwise: &'a Effect,
    text: &str,
) -> (Option<usize>, &'a Effect) {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    rules
        .iter()
        .position(|(keywords, _)| {
            keywords
                .iter()
                .any(|k| words.iter().any(|w| w.starts_with(k.as_str())))
        })
        .and_then(|i| rules.get(i).map(|(_, effect)| (Some(i), effect)))
        .unwrap_or((None, otherwise))
}

/// The seeds a life draws its days from.
#[derive(Clone)]
pub(crate) struct Seeds {
    pub(crate) server: ServerSeed,
    pub(crate) client: ClientSeed,
}

/// One simulated life. Create it with [`Life::new`], advance it with [`Life::tick`], save it
/// with [`Life::to_json`] and load it with [`Life::from_json`].
///
/// A life holds indices into the catalogue it was created or loaded with, and refuses
/// ([`LifeError::WrongCatalogue`]) to run against any other; a saved life names its events,
/// flags and characters, so it loads into an edited catalogue that still has them.
///
/// ```
/// use hearth_domain::fairness::{ClientSeed, ServerSeed};
/// use hearth_life::{Answer, AnswerForm, Catalogue, Happening, Life};
///
/// let catalogue = Catalogue::starter()?;
/// let server = ServerSeed::from_bytes([7; 32]);
/// let client = ClientSeed::parse("player-1")?;
/// let mut life = Life::new(&catalogue, server.clone(), client.clone());
/// for _ in 0..20 * 365 {
///     let report = life.tick(&catalogue)?;
///     for happening in &report.happenings {
///         if let Happening::Event { question: Some(q), .. } = happening {
///             // Answer every question at once with its first choice, or a few words.
///             let answer = match &q.answer_with {
///                 AnswerForm::Choices(choices) => Answer::Choice(choices[0].id.clone()),
///                 AnswerForm::FreeText { .. } => Answer::Text("<b>Thank</b> you".into()),
///             };
///             life.answer(&catalogue, &q.event, &answer)?;
///         }
///     }
/// }
/// assert_eq!(life.age_years(), 20);
///
/// // The same seeds replay the same life; a saved life carries on where it stopped.
/// let saved = life.to_json(&catalogue)?;
/// let restored = Life::from_json(&saved, &catalogue)?;
/// assert_eq!(restored.to_json(&catalogue)?, saved);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Life {
    pub(crate) fingerprint: u64,
    pub(crate) seeds: Seeds,
    pub(crate) state: State,
}

impl std::fmt::Debug for Life {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The server seed stays out of logs, as in `ServerSeed`'s own `Debug`.
        f.debug_struct("Life")
            .field("client_seed", &self.seeds.client.as_str())
            .field("day", &self.state.day)
            .field("stats", &self.state.stats)
            .field("ended", &self.state.ended)
            .finish_non_exhaustive()
    }
}

impl Life {
    /// A newborn life (day 0) with the catalogue's starting stats and relationships, drawing
    /// its days from `server` and `client`.
    #[must_use]
    pub fn new(catalogue: &Catalogue, server: ServerSeed, client: ClientSeed) -> Self {
        let mut closeness = vec![None; catalogue.characters.len()];
        for &(character, value) in &catalogue.start.relationships {
            if let Some(slot) = closeness.get_mut(character) {
                *slot = Some(value);
            }
        }
        Self {
            fingerprint: catalogue.fingerprint,
            seeds: Seeds { server, client },
            state: State {
                day: 0,
                stats: catalogue.start.stats,
                flags: vec![0; catalogue.flags.len().div_ceil(64)],
                closeness,
                events: vec![EventState::default(); catalogue.events.len()],
                pending: Vec::new(),
                conversations: Vec::new(),
                next_conversation: 0,
                history: Vec::new(),
                ended: None,
            },
        }
    }

    fn bound(&self, catalogue: &Catalogue) -> Result<(), LifeError> {
        if self.fingerprint == catalogue.fingerprint
            && self.state.events.len() == catalogue.events.len()
        {
            Ok(())
        } else {
            Err(LifeError::WrongCatalogue)
        }
    }

    /// Lives one more day (see the [module docs](self)).
    ///
    /// # Errors
    ///
    /// [`LifeError::WrongCatalogue`], [`LifeError::Ended`] once the life is over, and
    /// [`LifeError::TooOld`] past `u32::MAX` days.
    pub fn tick(&mut self, catalogue: &Catalogue) -> Result<TickReport, LifeError> {
        self.bound(catalogue)?;
        let Self { seeds, state, .. } = self;
        if let Some(end) = &state.ended {
            return Err(LifeError::Ended { day: end.day });
        }
        let day = state.day.checked_add(1).ok_or(LifeError::TooOld)?;
        state.day = day;
        let mut rng: Option<FairRng<'_>> = None;
        let mut happenings = Vec::new();
        let mut fired = 0;
        for &index in &catalogue.order {
            if fired >= catalogue.max_events_per_day {
                break;
            }
            let Some(event) = catalogue.events.get(index) else {
                continue;
            };
            if !state.eligible(event, index, day) {
                continue;
            }
            if event.chance_ppm < CHANCE_SCALE {
                let rng = rng.get_or_insert_with(|| {
                    FairRng::new(&seeds.server, &seeds.client, u64::from(day))
                });
                if rng.below(CHANCE_SCALE) >= event.chance_ppm {
                    continue;
                }
            }
            fired += 1;
            state.fire(catalogue, index, day, &mut happenings);
            if state.ended.is_some() {
                break;
            }
        }
        Ok(TickReport { day, happenings })
    }

    /// Answers the question `event` asked, applying the chosen effect. The event's thread
    /// resumes on the next tick.
    ///
    /// A free-text answer is refused above [`MAX_ANSWER_CHARS`] characters (counted before
    /// stripping), has its markup stripped, and picks the first rule with a keyword that
    /// starts one of its words (case-insensitive), or the question's `otherwise` effect.
    ///
    /// # Errors
    ///
    /// [`LifeError::WrongCatalogue`], [`LifeError::Ended`], [`LifeError::NoSuchQuestion`]
    /// when `event` has no question waiting, [`LifeError::ExpectedChoice`] /
    /// [`LifeError::ExpectedText`] for the wrong kind of answer,
    /// [`LifeError::UnknownChoice`], and [`LifeError::TooLong`].
    pub fn answer(
        &mut self,
        catalogue: &Catalogue,
        event: &str,
        answer: &Answer,
    ) -> Result<AnswerReport, LifeError> {
        self.bound(catalogue)?;
        let state = &mut self.state;
        if let Some(end) = &state.ended {
            return Err(LifeError::Ended { day: end.day });
        }
        let no_such = || LifeError::NoSuchQuestion {
            event: event.to_owned(),
        };
        let index = *catalogue.by_name.get(event).ok_or_else(no_such)?;
        if !state.events.get(index).is_some_and(|e| e.pending) {
            return Err(no_such());
        }
        let question = catalogue
            .events
            .get(index)
            .and_then(|e| e.question.as_ref())
            .ok_or_else(no_such)?;
        let (choice, text, rule, effect) = match (&question.form, answer) {
            (Form::Choices(choices), Answer::Choice(id)) => {
                let position = choices.iter().position(|c| c.id == *id).ok_or_else(|| {
                    LifeError::UnknownChoice {
                        event: event.to_owned(),
                        choice: id.clone(),
                    }
                })?;
                let effect = choices.get(position).map(|c| &c.effect);
                (Some(position), None, None, effect.ok_or_else(no_such)?)
            }
            (Form::FreeText { rules, otherwise }, Answer::Text(raw)) => {
                let actual = raw.chars().count();
                if actual > MAX_ANSWER_CHARS {
                    return Err(LifeError::TooLong {
                        max: MAX_ANSWER_CHARS,
                        actual,
                    });
                }
                let clean = strip_markup(raw);
                let (rule, effect) = free_text_effect(rules, otherwise, &clean);
                (None, Some(clean), rule, effect)
            }
            (Form::Choices(_), Answer::Text(_)) => {
                return Err(LifeError::ExpectedChoice {
                    event: event.to_owned(),
                });
            }
            (Form::FreeText { .. }, Answer::Choice(_)) => {
                return Err(LifeError::ExpectedText {
                    event: event.to_owned(),
                });
            }
        };
        state.pending.retain(|p| p.event != index);
        if let Some(own) = state.events.get_mut(index) {
            own.pending = false;
        }
        let day = state.day;
        state.history.push(Entry::Answer(Box::new(AnswerEntry {
            day,
            event: index32(index),
            choice: choice.map(index32),
            text: text.as_deref().map(Box::from),
        })));
        let ended = match effect.apply(state) {
            Some(cause) => {
                state.end(day, cause, None);
                state.ended.clone()
            }
            None => None,
        };
        Ok(AnswerReport {
            event: event.to_owned(),
            choice: choice.and(match answer {
                Answer::Choice(id) => Some(id.clone()),
                Answer::Text(_) => None,
            }),
            text,
            rule,
            ended,
        })
    }

    /// Records the character's line in an open conversation and closes it: `reply` with its
    /// markup stripped and cut to [`MAX_LINE_CHARS`] characters, or the catalogue's fallback
    /// line when `reply` is `None` (no provider answered, the budget is spent) or empty once
    /// stripped. Works after the life ended too: the character still has their say.
    ///
    /// # Errors
    ///
    /// [`LifeError::WrongCatalogue`] and [`LifeError::NoSuchConversation`].
    pub fn resolve_conversation(
        &mut self,
        catalogue: &Catalogue,
        id: u64,
        reply: Option<&str>,
    ) -> Result<Line, LifeError> {
        self.bound(catalogue)?;
        let state = &mut self.state;
        let position = state
            .conversations
            .iter()
            .position(|c| c.id == id)
            .ok_or(LifeError::NoSuchConversation { id })?;
        let open = state.conversations.remove(position);
        let request = conversation_request(catalogue, open);
        let spoken = reply
            .map(|r| truncate_chars(&strip_markup(r), MAX_LINE_CHARS).to_owned())
            .filter(|t| !t.is_empty());
        let (text, fallback) = match spoken {
            Some(text) => (text, false),
            None => (request.fallback, true),
        };
        state.history.push(Entry::Line(Box::new(LineEntry {
            day: state.day,
            conversation: id,
            event: index32(open.event),
            text: (!fallback).then(|| Box::from(text.as_str())),
        })));
        Ok(Line {
            conversation: id,
            character: request.character,
            name: request.name,
            text,
            fallback,
        })
    }

    /// Days lived.
    #[must_use]
    pub const fn age_days(&self) -> u32 {
        self.state.day
    }

    /// Whole years lived.
    #[must_use]
    pub const fn age_years(&self) -> u32 {
        self.state.day / DAYS_PER_YEAR
    }

    /// The stats.
    #[must_use]
    pub const fn stats(&self) -> &Stats {
        &self.state.stats
    }

    /// How the life ended, once it has.
    #[must_use]
    pub const fn ended(&self) -> Option<&Ending> {
        self.state.ended.as_ref()
    }

    /// The whole history, oldest first, with names from the catalogue. (In memory the
    /// history holds catalogue indices, 16 bytes for each event fired.)
    ///
    /// # Errors
    ///
    /// [`LifeError::WrongCatalogue`].
    pub fn history(&self, catalogue: &Catalogue) -> Result<Vec<HistoryEntry>, LifeError> {
        self.bound(catalogue)?;
        Ok(self
            .state
            .history
            .iter()
            .map(|e| e.to_public(catalogue))
            .collect())
    }

    /// How many entries the history has.
    #[must_use]
    pub fn history_len(&self) -> usize {
        self.state.history.len()
    }

    /// The client seed the life draws from.
    #[must_use]
    pub const fn client_seed(&self) -> &ClientSeed {
        &self.seeds.client
    }

    /// The names of the events whose questions wait for an answer, oldest first.
    pub fn pending<'a>(&'a self, catalogue: &'a Catalogue) -> impl Iterator<Item = &'a str> + 'a {
        self.state
            .pending
            .iter()
            .map(|p| catalogue.event_name(p.event))
    }

    /// How many times an event has fired (0 for an unknown name).
    #[must_use]
    pub fn times_fired(&self, catalogue: &Catalogue, event: &str) -> u32 {
        catalogue
            .by_name
            .get(event)
            .and_then(|&i| self.state.events.get(i))
            .map_or(0, |e| e.times)
    }

    /// Whether a flag is set (false for an unknown flag).
    #[must_use]
    pub fn flag(&self, catalogue: &Catalogue, flag: &str) -> bool {
        catalogue
            .flag_index(flag)
            .is_some_and(|i| self.state.flag(i))
    }

    /// A character's closeness, when the character is known.
    #[must_use]
    pub fn closeness(&self, catalogue: &Catalogue, character: &str) -> Option<u8> {
        catalogue
            .character_index(character)
            .and_then(|i| self.state.closeness.get(i).copied().flatten())
    }

    /// What the player may see.
    ///
    /// # Errors
    ///
    /// [`LifeError::WrongCatalogue`].
    pub fn view(&self, catalogue: &Catalogue) -> Result<LifeView, LifeError> {
        self.bound(catalogue)?;
        let state = &self.state;
        Ok(LifeView {
            age_days: state.day,
            age_years: self.age_years(),
            stats: state.stats,
            relationships: catalogue
                .characters
                .iter()
                .zip(&state.closeness)
                .filter_map(|(c, closeness)| {
                    closeness.map(|closeness| RelationshipView {
                        character: c.id.clone(),
                        name: c.name.clone(),
                        closeness,
                    })
                })
                .collect(),
            questions: state
                .pending
                .iter()
                .filter_map(|p| {
                    let event = catalogue.events.get(p.event)?;
                    Some(question_view(event, event.question.as_ref()?, p.asked_day))
                })
                .collect(),
            conversations: state
                .conversations
                .iter()
                .map(|c| conversation_request(catalogue, *c))
                .collect(),
            ended: state.ended.clone(),
        })
    }

    /// Per-event fired counts by name, for tests and tools.
    #[must_use]
    pub fn fired_counts(&self, catalogue: &Catalogue) -> BTreeMap<String, u32> {
        catalogue
            .events
            .iter()
            .zip(&self.state.events)
            .filter(|(_, s)| s.times > 0)
            .map(|(e, s)| (e.name.clone(), s.times))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn effect(happiness: i32) -> Effect {
        Effect {
            happiness,
            ..Effect::default()
        }
    }

    #[test]
    fn free_text_picks_the_first_matching_rule_by_word_prefix() {
        let rules = vec![
            (vec!["sorry".to_owned()], effect(1)),
            (vec!["thank".to_owned(), "grateful".to_owned()], effect(2)),
        ];
        let otherwise = effect(3);
        assert_eq!(
            free_text_effect(&rules, &otherwise, "THANKS a lot").0,
            Some(1)
        );
        assert_eq!(
            free_text_effect(&rules, &otherwise, "so sorry, thanks").0,
            Some(0)
        );
        // A keyword must start a word, not sit inside one.
        assert_eq!(free_text_effect(&rules, &otherwise, "unthankful").0, None);
        assert_eq!(free_text_effect(&rules, &otherwise, "").1, &otherwise);
    }
}
