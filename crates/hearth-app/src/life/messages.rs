//! What players send to a life and what they are told: [`Command`], the pushes' JSON, and
//! [`LifeSnapshot`] (the `life.state` push and `GET /v1/life`).

use hearth_life::{AnswerForm, ConversationRequest, Ending, LifeView, Line, QuestionView, Stats};
use hearth_storage::LifeStatus;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The fewest ticks per minute a life may run at.
pub const MIN_TICKS_PER_MINUTE: u32 = 1;
/// The most ticks per minute a life may run at.
pub const MAX_TICKS_PER_MINUTE: u32 = 5_000;
/// The speed of a new life.
pub const DEFAULT_TICKS_PER_MINUTE: u32 = 60;

/// What a player asks of their life (the socket's `life.*` messages). Serialisable, because a
/// gateway that does not drive the life forwards it to the one that does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// Starts a life when there is none (or the last one is over); otherwise only sends
    /// `life.state`.
    Start,
    /// Ends the life for good (`life.ended` with the cause `stopped`).
    Stop,
    /// Stops the ticks until `resume`; the life is saved.
    Pause,
    /// Ticks again after `pause`.
    Resume,
    /// Replaces the life with a newborn one.
    Restart,
    /// Sets the speed.
    Speed {
        /// 1 to 5,000.
        ticks_per_minute: u32,
    },
    /// Answers a waiting question.
    Answer {
        /// The question's id (the name of the event that asked).
        question_id: String,
        /// The choice or the text.
        answer: hearth_life::Answer,
    },
}

impl Command {
    /// The socket message's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start => "life.start",
            Self::Stop => "life.stop",
            Self::Pause => "life.pause",
            Self::Resume => "life.resume",
            Self::Restart => "life.restart",
            Self::Speed { .. } => "life.speed",
            Self::Answer { .. } => "life.answer",
        }
    }
}

/// A question as players see it: [`QuestionView`] with the id answers name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Question {
    /// What `life.answer` names: the event that asked.
    pub question_id: String,
    /// The question.
    pub prompt: String,
    /// The day it was asked.
    pub asked_day: u32,
    /// Choices, or free text with its limit.
    pub answer_with: AnswerForm,
}

impl From<QuestionView> for Question {
    fn from(view: QuestionView) -> Self {
        Self {
            question_id: view.event,
            prompt: view.prompt,
            asked_day: view.asked_day,
            answer_with: view.answer_with,
        }
    }
}

/// A life as its player sees it: the session (status, speed, generation) and the engine's
/// view (no seeds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LifeSnapshot {
    /// `running`, `paused` or `ended`.
    pub status: LifeStatus,
    /// The speed.
    pub ticks_per_minute: u32,
    /// 1 for the first life, one more per restart.
    pub generation: u32,
    /// Days lived.
    pub age_days: u32,
    /// Whole years lived.
    pub age_years: u32,
    /// The stats.
    pub stats: Stats,
    /// Known characters.
    pub relationships: Vec<hearth_life::RelationshipView>,
    /// Questions waiting for an answer, oldest first.
    pub questions: Vec<Question>,
    /// Conversations waiting for their line.
    pub conversations: Vec<ConversationRequest>,
    /// How it ended, once it has.
    pub ended: Option<Ending>,
}

impl LifeSnapshot {
    /// The snapshot of `view` in this session.
    pub fn new(view: LifeView, status: LifeStatus, ticks_per_minute: u32, generation: u32) -> Self {
        Self {
            status,
            ticks_per_minute,
            generation,
            age_days: view.age_days,
            age_years: view.age_years,
            stats: view.stats,
            relationships: view.relationships,
            questions: view.questions.into_iter().map(Question::from).collect(),
            conversations: view.conversations,
            ended: view.ended,
        }
    }
}

fn encode(value: &serde_json::Value) -> String {
    value.to_string()
}

/// `{"type":"life.state", …snapshot}`.
pub(crate) fn state(snapshot: &LifeSnapshot) -> String {
    let mut value = serde_json::to_value(snapshot).unwrap_or_else(|_| json!({}));
    if let Some(object) = value.as_object_mut() {
        object.insert("type".to_owned(), json!("life.state"));
    }
    encode(&value)
}

/// `life.event` for an event that fired.
pub(crate) fn event(
    day: u32,
    event: &str,
    category: &str,
    priority: hearth_life::Priority,
    description: &str,
) -> String {
    encode(&json!({
        "type": "life.event",
        "kind": "event",
        "day": day,
        "event": event,
        "category": category,
        "priority": priority,
        "description": description,
    }))
}

/// `life.event` for a character's line in a conversation.
pub(crate) fn line(day: u32, event: &str, line: &Line) -> String {
    encode(&json!({
        "type": "life.event",
        "kind": "line",
        "day": day,
        "event": event,
        "conversation": line.conversation,
        "character": line.character,
        "name": line.name,
        "text": line.text,
        "fallback": line.fallback,
    }))
}

/// `life.event` for an answer taken.
pub(crate) fn answer(day: u32, report: &hearth_life::AnswerReport) -> String {
    encode(&json!({
        "type": "life.event",
        "kind": "answer",
        "day": day,
        "event": report.event,
        "choice": report.choice,
        "text": report.text,
    }))
}

/// `life.question`.
pub(crate) fn question(day: u32, question: Question) -> String {
    encode(&json!({
        "type": "life.question",
        "day": day,
        "question_id": question.question_id,
        "prompt": question.prompt,
        "asked_day": question.asked_day,
        "answer_with": question.answer_with,
    }))
}

/// `life.ended`.
pub(crate) fn ended(day: u32, cause: &str) -> String {
    encode(&json!({ "type": "life.ended", "day": day, "cause": cause }))
}

/// The socket's `error` message, for a command a driving gateway refused on behalf of a
/// socket on another gateway.
pub(crate) fn error(code: &str, message: &str) -> String {
    encode(&json!({ "type": "error", "code": code, "message": message }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_travel_as_tagged_json() {
        let command = Command::Answer {
            question_id: "exams".to_owned(),
            answer: hearth_life::Answer::Choice("study_hard".to_owned()),
        };
        let text = serde_json::to_string(&command).unwrap();
        assert_eq!(
            text,
            r#"{"command":"answer","question_id":"exams","answer":{"choice":"study_hard"}}"#
        );
        assert_eq!(serde_json::from_str::<Command>(&text).unwrap(), command);
        assert_eq!(
            serde_json::from_str::<Command>(r#"{"command":"speed","ticks_per_minute":7}"#).unwrap(),
            Command::Speed {
                ticks_per_minute: 7
            }
        );
    }

    #[test]
    fn pushes_carry_their_type() {
        let pushed: serde_json::Value = serde_json::from_str(&ended(3, "stopped")).unwrap();
        assert_eq!(
            pushed,
            json!({"type": "life.ended", "day": 3, "cause": "stopped"})
        );
        let pushed: serde_json::Value =
            serde_json::from_str(&error("invalid_message", "no")).unwrap();
        assert_eq!(pushed["type"], "error");
    }
}
