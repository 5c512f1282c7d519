//! AI chat conversations on SQLite. Appends run in a `BEGIN IMMEDIATE` transaction, so an
//! exchange's two messages are stored together and never interleave with another's.

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::SqliteDatabase;
use crate::conversations::{
    ChatMessage, ChatMessageRow, Conversation, ConversationRepository, MAX_MESSAGE_PAGE,
    NewChatMessage, column, message_page, oldest_first,
};
use crate::{Cursor, Page, StorageError};

const INSERT_MESSAGE: &str = "INSERT INTO ai_messages (conversation_id, role, content, provider, \
     model, input_tokens, output_tokens, cost_micros, created_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) \
     RETURNING id, conversation_id, role, content, provider, model, input_tokens, output_tokens, \
     cost_micros, created_at";
const MESSAGES_AFTER: &str = "SELECT id, conversation_id, role, content, provider, model, \
     input_tokens, output_tokens, cost_micros, created_at FROM ai_messages \
     WHERE conversation_id = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
const LAST_MESSAGES: &str = "SELECT id, conversation_id, role, content, provider, model, \
     input_tokens, output_tokens, cost_micros, created_at FROM ai_messages \
     WHERE conversation_id = ?1 ORDER BY id DESC LIMIT ?2";
const OWNED: &str = "SELECT id FROM ai_conversations WHERE id = ?1 AND user_id = ?2";

#[derive(sqlx::FromRow)]
struct ConversationRow {
    id: Uuid,
    user_id: Uuid,
    created_at: OffsetDateTime,
}

impl From<ConversationRow> for Conversation {
    fn from(row: ConversationRow) -> Self {
        Self {
            id: row.id,
            user_id: row.user_id,
            created_at: row.created_at,
        }
    }
}

impl SqliteDatabase {
    async fn owns(&self, user: Uuid, conversation: Uuid) -> Result<(), StorageError> {
        let found: Option<Uuid> = sqlx::query_scalar(OWNED)
            .bind(conversation)
            .bind(user)
            .fetch_optional(&mut *self.readers.get().await?)
            .await?;
        found.map(|_| ()).ok_or(StorageError::NotFound)
    }
}

#[async_trait]
impl ConversationRepository for SqliteDatabase {
    #[tracing::instrument(skip_all, fields(user_id = %user), err)]
    async fn create_conversation(&self, user: Uuid) -> Result<Conversation, StorageError> {
        let row: ConversationRow = sqlx::query_as(
            "INSERT INTO ai_conversations (id, user_id, created_at) VALUES (?1, ?2, ?3) \
             RETURNING id, user_id, created_at",
        )
        .bind(Uuid::now_v7())
        .bind(user)
        .bind(OffsetDateTime::now_utc())
        .fetch_one(&self.pool)
        .await?;
        Ok(row.into())
    }

    #[tracing::instrument(skip_all, fields(user_id = %user, conversation_id = %conversation), err)]
    async fn conversation(
        &self,
        user: Uuid,
        conversation: Uuid,
    ) -> Result<Option<Conversation>, StorageError> {
        let row: Option<ConversationRow> = sqlx::query_as(
            "SELECT id, user_id, created_at FROM ai_conversations WHERE id = ?1 AND user_id = ?2",
        )
        .bind(conversation)
        .bind(user)
        .fetch_optional(&mut *self.readers.get().await?)
        .await?;
        Ok(row.map(Conversation::from))
    }

    #[tracing::instrument(skip_all, fields(user_id = %user, conversation_id = %conversation), err)]
    async fn append_chat_messages(
        &self,
        user: Uuid,
        conversation: Uuid,
        messages: &[NewChatMessage],
    ) -> Result<Vec<ChatMessage>, StorageError> {
        let mut tx = self.begin_write().await?;
        let found: Option<Uuid> = sqlx::query_scalar(OWNED)
            .bind(conversation)
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
        found.ok_or(StorageError::NotFound)?;
        let now = OffsetDateTime::now_utc();
        let mut stored = Vec::with_capacity(messages.len());
        for message in messages {
            let row: ChatMessageRow = sqlx::query_as(INSERT_MESSAGE)
                .bind(conversation)
                .bind(message.role.as_str())
                .bind(&message.content)
                .bind(message.provider.as_deref())
                .bind(message.model.as_deref())
                .bind(column(message.input_tokens))
                .bind(column(message.output_tokens))
                .bind(column(message.cost_micros))
                .bind(now)
                .fetch_one(&mut *tx)
                .await?;
            stored.push(ChatMessage::try_from(row)?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    #[tracing::instrument(skip_all, fields(user_id = %user, conversation_id = %conversation), err)]
    async fn chat_messages(
        &self,
        user: Uuid,
        conversation: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<Page<ChatMessage>, StorageError> {
        let limit = limit.clamp(1, MAX_MESSAGE_PAGE);
        self.owns(user, conversation).await?;
        let rows: Vec<ChatMessageRow> = sqlx::query_as(MESSAGES_AFTER)
            .bind(conversation)
            .bind(after.map_or(0, Cursor::id))
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *self.readers.get().await?)
            .await?;
        message_page(rows, limit)
    }

    #[tracing::instrument(skip_all, fields(user_id = %user, conversation_id = %conversation), err)]
    async fn recent_chat_messages(
        &self,
        user: Uuid,
        conversation: Uuid,
        limit: u32,
    ) -> Result<Vec<ChatMessage>, StorageError> {
        self.owns(user, conversation).await?;
        let rows: Vec<ChatMessageRow> = sqlx::query_as(LAST_MESSAGES)
            .bind(conversation)
            .bind(i64::from(limit))
            .fetch_all(&mut *self.readers.get().await?)
            .await?;
        oldest_first(rows)
    }
}
