//! AI chat conversations and their messages: the trait, its rows, and what both backends
//! share.

use async_trait::async_trait;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::{Cursor, Page, StorageError};

/// A conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    /// Its id.
    pub id: Uuid,
    /// Its owner.
    pub user_id: Uuid,
    /// When it was started.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Who wrote a stored message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatRole {
    /// The user.
    User,
    /// The model.
    Assistant,
}

impl ChatRole {
    /// `user` or `assistant`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Assistant => "assistant",
        }
    }

    fn parse(text: &str) -> Result<Self, StorageError> {
        match text {
            "user" => Ok(Self::User),
            "assistant" => Ok(Self::Assistant),
            other => Err(StorageError::Corrupt(format!(
                "unknown chat role {other:?}"
            ))),
        }
    }
}

/// A message to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewChatMessage {
    /// Who wrote it.
    pub role: ChatRole,
    /// Its plain text (not empty).
    pub content: String,
    /// For an answer: the provider and model that gave it.
    pub provider: Option<String>,
    /// The model.
    pub model: Option<String>,
    /// Prompt tokens the answer took.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// What it cost, in budget micro-units.
    pub cost_micros: u64,
}

impl NewChatMessage {
    /// A user's message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: ChatRole::User,
            content: content.into(),
            provider: None,
            model: None,
            input_tokens: 0,
            output_tokens: 0,
            cost_micros: 0,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// Its number: increasing within the database, the keyset of pages.
    pub id: i64,
    /// Its conversation.
    pub conversation_id: Uuid,
    /// Who wrote it.
    pub role: ChatRole,
    /// Its plain text.
    pub content: String,
    /// For an answer: the provider that gave it.
    pub provider: Option<String>,
    /// For an answer: the model.
    pub model: Option<String>,
    /// Prompt tokens.
    pub input_tokens: u64,
    /// Completion tokens.
    pub output_tokens: u64,
    /// Cost in budget micro-units.
    pub cost_micros: u64,
    /// When it was stored.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The largest page of messages served.
pub const MAX_MESSAGE_PAGE: u32 = 100;

/// Conversations and messages. Every method names the user: a conversation of someone else is
/// treated as missing.
#[async_trait]
pub trait ConversationRepository: Send + Sync {
    /// Starts a conversation for `user`.
    ///
    /// # Errors
    /// When the write fails (an unknown user is a foreign-key refusal).
    async fn create_conversation(&self, user: Uuid) -> Result<Conversation, StorageError>;

    /// The conversation, if it exists and is `user`'s.
    ///
    /// # Errors
    /// When the query fails.
    async fn conversation(
        &self,
        user: Uuid,
        conversation: Uuid,
    ) -> Result<Option<Conversation>, StorageError>;

    /// Appends messages, in order, in one transaction (a question and its answer are stored
    /// together or not at all); returns them as stored.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when the conversation is not `user`'s (nothing is written).
    async fn append_chat_messages(
        &self,
        user: Uuid,
        conversation: Uuid,
        messages: &[NewChatMessage],
    ) -> Result<Vec<ChatMessage>, StorageError>;

    /// One page of messages, oldest first, after `after`; `limit` is clamped to
    /// 1..=[`MAX_MESSAGE_PAGE`].
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when the conversation is not `user`'s.
    async fn chat_messages(
        &self,
        user: Uuid,
        conversation: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<ChatMessage>, StorageError>;

    /// The last `limit` messages, oldest first: the context of the next call.
    ///
    /// # Errors
    /// [`StorageError::NotFound`] when the conversation is not `user`'s.
    async fn recent_chat_messages(
        &self,
        user: Uuid,
        conversation: Uuid,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StorageError>;
}

/// A message row, as both backends select it.
#[derive(sqlx::FromRow)]
pub(crate) struct ChatMessageRow {
    id: i64,
    conversation_id: Uuid,
    role: String,
    content: String,
    provider: Option<String>,
    model: Option<String>,
    input_tokens: i64,
    output_tokens: i64,
    cost_micros: i64,
    created_at: OffsetDateTime,
}

impl TryFrom<ChatMessageRow> for ChatMessage {
    type Error = StorageError;

    fn try_from(row: ChatMessageRow) -> Result<Self, StorageError> {
        let count = |v: i64| {
            u64::try_from(v).map_err(|_| StorageError::Corrupt(format!("negative count {v}")))
        };
        Ok(Self {
            id: row.id,
            conversation_id: row.conversation_id,
            role: ChatRole::parse(&row.role)?,
            content: row.content,
            provider: row.provider,
            model: row.model,
            input_tokens: count(row.input_tokens)?,
            output_tokens: count(row.output_tokens)?,
            cost_micros: count(row.cost_micros)?,
            created_at: row.created_at,
        })
    }
}

/// A count as the signed column stores it (saturating: no count comes near `i64::MAX`).
pub(crate) fn column(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Rows fetched with `limit + 1` as a page.
pub(crate) fn message_page(
    rows: Vec<ChatMessageRow>,
    limit: u32,
) -> Result<Page<ChatMessage>, StorageError> {
    let mut items = rows
        .into_iter()
        .map(ChatMessage::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    let next_cursor = if items.len() > limit as usize {
        items.truncate(limit as usize);
        items.last().map(|last| Cursor::after_id(last.id))
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Rows in any order as messages, oldest first.
pub(crate) fn oldest_first(rows: Vec<ChatMessageRow>) -> Result<Vec<ChatMessage>, StorageError> {
    let mut items = rows
        .into_iter()
        .map(ChatMessage::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    items.sort_by_key(|m| m.id);
    Ok(items)
}
