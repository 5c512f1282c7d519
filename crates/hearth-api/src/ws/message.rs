//! The WebSocket's messages: the closed set a client may send, what the server answers, and
//! the topics a client may subscribe to by name.

use hearth_app::leaderboards::{Board, Period};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Every message a client may send. `deny_unknown_fields`: a field the server does not know
/// is an error, not something silently ignored.
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub(crate) enum ClientMessage {
    /// The first message of a socket not authenticated by its cookie.
    Auth {
        /// An access token, as the `Authorization` header would carry it.
        token: String,
    },
    /// Answered with `pong`. A struct variant, so that unknown fields are refused here too.
    Ping {},
    /// Adds topics to the socket.
    Subscribe {
        /// `big_wins` or `leaderboard:<board>:<period>`.
        topics: Vec<String>,
    },
    /// Removes topics from the socket.
    Unsubscribe {
        /// As for `subscribe`.
        topics: Vec<String>,
    },
    /// Starts a life (or shows the current one).
    #[serde(rename = "life.start")]
    LifeStart {},
    /// Ends the life for good.
    #[serde(rename = "life.stop")]
    LifeStop {},
    /// Pauses the life.
    #[serde(rename = "life.pause")]
    LifePause {},
    /// Resumes a paused life.
    #[serde(rename = "life.resume")]
    LifeResume {},
    /// Replaces the life with a newborn one.
    #[serde(rename = "life.restart")]
    LifeRestart {},
    /// Sets the life's speed.
    #[serde(rename = "life.speed")]
    LifeSpeed {
        /// 1 to 5,000.
        ticks_per_minute: u32,
    },
    /// Answers a waiting question: exactly one of `choice` and `text`.
    #[serde(rename = "life.answer")]
    LifeAnswer {
        /// The question's id, as `life.question` gave it.
        question_id: String,
        /// A choice's id, for a choice question.
        #[serde(default)]
        choice: Option<String>,
        /// The answer, for a free-text question (at most 10,000 characters).
        #[serde(default)]
        text: Option<String>,
    },
}

/// The `type`s of [`ClientMessage`], to tell an unknown type from a malformed known one.
const KNOWN_TYPES: [&str; 11] = [
    "auth",
    "ping",
    "subscribe",
    "unsubscribe",
    "life.start",
    "life.stop",
    "life.pause",
    "life.resume",
    "life.restart",
    "life.speed",
    "life.answer",
];

impl ClientMessage {
    /// The metric label of the message.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::Ping {} => "ping",
            Self::Subscribe { .. } => "subscribe",
            Self::Unsubscribe { .. } => "unsubscribe",
            Self::LifeStart {} => "life.start",
            Self::LifeStop {} => "life.stop",
            Self::LifePause {} => "life.pause",
            Self::LifeResume {} => "life.resume",
            Self::LifeRestart {} => "life.restart",
            Self::LifeSpeed { .. } => "life.speed",
            Self::LifeAnswer { .. } => "life.answer",
        }
    }

    /// The life command this message asks for; `None` for messages that are not `life.*`.
    /// `Some(Err(detail))` for a `life.answer` without exactly one of `choice` and `text`.
    pub(crate) fn life_command(&self) -> Option<Result<hearth_app::life::Command, String>> {
        use hearth_app::life::Command;
        Some(Ok(match self {
            Self::LifeStart {} => Command::Start,
            Self::LifeStop {} => Command::Stop,
            Self::LifePause {} => Command::Pause,
            Self::LifeResume {} => Command::Resume,
            Self::LifeRestart {} => Command::Restart,
            Self::LifeSpeed { ticks_per_minute } => Command::Speed {
                ticks_per_minute: *ticks_per_minute,
            },
            Self::LifeAnswer {
                question_id,
                choice,
                text,
            } => {
                let answer = match (choice, text) {
                    (Some(choice), None) => hearth_app::life::Answer::Choice(choice.clone()),
                    (None, Some(text)) => hearth_app::life::Answer::Text(text.clone()),
                    _ => {
                        return Some(Err(
                            "life.answer takes exactly one of choice and text".to_owned()
                        ));
                    }
                };
                Command::Answer {
                    question_id: question_id.clone(),
                    answer,
                }
            }
            _ => return None,
        }))
    }
}

/// Why a text message was not a [`ClientMessage`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unreadable {
    /// A JSON object whose `type` is a string the server does not know.
    UnknownType,
    /// Anything else: not JSON, not an object, no `type`, a missing or unknown field.
    Invalid(String),
}

/// Reads one text message. Only a failure parses the text a second time, to say why.
pub(crate) fn parse(text: &str) -> Result<ClientMessage, Unreadable> {
    // serde takes an internally tagged enum from an array too (`["ping"]`); a message is an
    // object.
    if !text.trim_start().starts_with('{') {
        return Err(Unreadable::Invalid("a message is a JSON object".to_owned()));
    }
    serde_json::from_str(text).map_err(|error| {
        let kind = serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|value| value.get("type")?.as_str().map(str::to_owned));
        match kind {
            Some(kind) if !KNOWN_TYPES.contains(&kind.as_str()) => Unreadable::UnknownType,
            _ => Unreadable::Invalid(error.to_string()),
        }
    })
}

/// Whether a client may name `topic` in `subscribe`: `big_wins`, or
/// `leaderboard:<board>:<period>` for a board that exists for that period. A user's own
/// `user:<id>` topic is never named: every authenticated socket has it.
pub(crate) fn topic_allowed(topic: &str) -> bool {
    if topic == "big_wins" {
        return true;
    }
    let Some((board, period)) = topic
        .strip_prefix("leaderboard:")
        .and_then(|rest| rest.split_once(':'))
    else {
        return false;
    };
    match (board.parse::<Board>(), period.parse::<Period>()) {
        (Ok(board), Ok(period)) => board.has_period(period),
        _ => false,
    }
}

/// What the server answers. Pushes from the hub are built by their publishers: `wallet` and
/// `big_win` in `hearth_app::rounds`, `leaderboard` in `hearth_app::leaderboards`, and
/// `campaign.changed` in `hearth_app::campaigns`.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum ServerMessage<'a> {
    /// The socket is authenticated as `user_id`.
    Authenticated {
        /// The token's subject.
        user_id: Uuid,
    },
    /// The answer to `ping`.
    Pong,
    /// A message the server would not take; the socket stays open.
    Error {
        /// `invalid_message`, `unknown_type`, `rate_limited`, or `unavailable` (a life
        /// command the server could not carry out; retry).
        code: &'static str,
        /// For people, not programs.
        message: &'a str,
        /// With `rate_limited`: whole seconds until a message would be taken.
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
}

impl ServerMessage<'_> {
    /// The metric label of the message.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Authenticated { .. } => "authenticated",
            Self::Pong => "pong",
            Self::Error { .. } => "error",
        }
    }

    /// The message as JSON text.
    pub(crate) fn encode(&self) -> String {
        // These values have string keys and no maps, so serialising cannot fail; should it
        // ever, the client still gets a well-formed error rather than nothing.
        serde_json::to_string(self).unwrap_or_else(|error| {
            tracing::error!(%error, "could not encode a WebSocket message");
            String::from(r#"{"type":"error","code":"internal","message":"internal error"}"#)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_messages_parse_and_unknown_fields_are_refused() {
        assert_eq!(parse(r#"{"type":"ping"}"#), Ok(ClientMessage::Ping {}));
        assert_eq!(
            parse(r#"{"type":"auth","token":"t"}"#),
            Ok(ClientMessage::Auth { token: "t".into() })
        );
        assert!(matches!(
            parse(r#"{"type":"ping","extra":1}"#),
            Err(Unreadable::Invalid(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"subscribe","topics":["big_wins"],"x":true}"#),
            Err(Unreadable::Invalid(_))
        ));
    }

    #[test]
    fn life_messages_parse_into_commands_and_refuse_unknown_fields() {
        use hearth_app::life::Command;
        let command = |text: &str| parse(text).unwrap().life_command().unwrap();
        assert_eq!(command(r#"{"type":"life.start"}"#), Ok(Command::Start));
        assert_eq!(
            command(r#"{"type":"life.speed","ticks_per_minute":5000}"#),
            Ok(Command::Speed {
                ticks_per_minute: 5000
            })
        );
        assert_eq!(
            command(r#"{"type":"life.answer","question_id":"exams","choice":"skip"}"#),
            Ok(Command::Answer {
                question_id: "exams".into(),
                answer: hearth_app::life::Answer::Choice("skip".into())
            })
        );
        assert!(
            command(r#"{"type":"life.answer","question_id":"exams","choice":"a","text":"b"}"#)
                .is_err()
        );
        assert!(command(r#"{"type":"life.answer","question_id":"exams"}"#).is_err());
        assert!(matches!(
            parse(r#"{"type":"life.pause","now":true}"#),
            Err(Unreadable::Invalid(_))
        ));
        assert!(matches!(
            parse(r#"{"type":"life.speed","ticks_per_minute":-1}"#),
            Err(Unreadable::Invalid(_))
        ));
        assert_eq!(
            parse(r#"{"type":"life.fly"}"#),
            Err(Unreadable::UnknownType)
        );
        assert!(
            parse(r#"{"type":"ping"}"#)
                .unwrap()
                .life_command()
                .is_none()
        );
    }

    #[test]
    fn an_unknown_type_is_told_apart_from_malformed_json() {
        assert_eq!(parse(r#"{"type":"dance"}"#), Err(Unreadable::UnknownType));
        assert!(matches!(parse("{not json"), Err(Unreadable::Invalid(_))));
        assert!(matches!(
            parse(r#"{"kind":"ping"}"#),
            Err(Unreadable::Invalid(_))
        ));
        assert!(matches!(
            parse(r#"{"type":7}"#),
            Err(Unreadable::Invalid(_))
        ));
        assert!(matches!(parse(r#"["ping"]"#), Err(Unreadable::Invalid(_))));
        assert!(matches!(
            parse(r#"{"type":"subscribe"}"#),
            Err(Unreadable::Invalid(_))
        ));
    }

    #[test]
    fn only_big_wins_and_existing_leaderboards_are_topics() {
        assert!(topic_allowed("big_wins"));
        assert!(topic_allowed("leaderboard:net_won:daily"));
        assert!(topic_allowed("leaderboard:balance:all_time"));
        assert!(!topic_allowed("leaderboard:balance:daily"));
        assert!(!topic_allowed("leaderboard:net_won"));
        assert!(!topic_allowed("leaderboard:nope:daily"));
        assert!(!topic_allowed("leaderboard:net_won:daily:x"));
        assert!(!topic_allowed("user:0190f1c2-0000-7000-8000-000000000000"));
        assert!(!topic_allowed("big_wins "));
    }

    #[test]
    fn server_messages_have_the_documented_shape() {
        let error = ServerMessage::Error {
            code: "rate_limited",
            message: "slow down",
            retry_after: Some(2),
        };
        assert_eq!(
            error.encode(),
            r#"{"type":"error","code":"rate_limited","message":"slow down","retry_after":2}"#
        );
        assert_eq!(ServerMessage::Pong.encode(), r#"{"type":"pong"}"#);
    }
}
