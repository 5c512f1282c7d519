use hearth_domain::games::GameError;

/// Errors from every repository method.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The row asked for does not exist.
    #[error("not found")]
    NotFound,
    /// A unique constraint refused the write; `constraint` names it (e.g. `users_email_key`).
    #[error("conflict on {constraint}")]
    Conflict {
        /// The constraint (or, on SQLite, the column list) that refused the write.
        constraint: String,
    },
    /// The wallet cannot cover the amount.
    #[error("insufficient balance: needed {needed}, available {available}")]
    InsufficientBalance {
        /// Coins the operation needs.
        needed: i64,
        /// Coins in the wallet.
        available: i64,
    },
    /// The idempotency key was already used with a different request.
    #[error("the idempotency key was used for a different request")]
    IdempotencyMismatch,
    /// The game rules refused the round.
    #[error("the game refused the round")]
    Game(#[from] GameError),
    /// The database could not be reached in time (pool exhausted, connection refused).
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A stored value could not be read back (a bug or a manual edit).
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// The URL names no supported backend.
    #[error("unsupported database URL scheme {scheme:?} (use sqlite: or postgres:)")]
    UnsupportedUrl {
        /// The scheme found.
        scheme: String,
    },
    /// Migrations failed.
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Any other database error.
    #[error("database error")]
    Other(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => Self::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable(error)
            }
            sqlx::Error::Database(db) if db.is_unique_violation() => {
                let constraint = match db.constraint() {
                    Some(name) => name.to_owned(),
                    // SQLite does not report the constraint; its message names the columns or
                    // index: "UNIQUE constraint failed: users.email".
                    None => sqlite_constraint_name(db.message()),
                };
                Self::Conflict { constraint }
            }
            _ => Self::Other(error),
        }
    }
}

impl From<uuid::Error> for StorageError {
    fn from(error: uuid::Error) -> Self {
        Self::Corrupt(error.to_string())
    }
}

/// SQLite names the columns (or an expression index) a unique constraint covers, not the
/// constraint; this maps them to the PostgreSQL constraint names so callers see one spelling.
fn sqlite_constraint_name(message: &str) -> String {
    let what = message
        .rsplit_once("failed: ")
        .map_or(message, |(_, what)| what);
    let name = match what {
        "users.email" => "users_email_key",
        "index 'users_username_lower_key'" => "users_username_lower_key",
        "users.id" => "users_pkey",
        "game_rounds.user_id, game_rounds.game" => "game_rounds_one_open_per_game",
        "idempotency_keys.user_id, idempotency_keys.key" => "idempotency_keys_pkey",
        other => other,
    };
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::sqlite_constraint_name;

    #[test]
    fn sqlite_messages_map_to_postgres_constraint_names() {
        assert_eq!(
            sqlite_constraint_name("UNIQUE constraint failed: users.email"),
            "users_email_key"
        );
        assert_eq!(
            sqlite_constraint_name(
                "UNIQUE constraint failed: game_rounds.user_id, game_rounds.game"
            ),
            "game_rounds_one_open_per_game"
        );
        assert_eq!(
            sqlite_constraint_name("UNIQUE constraint failed: t.x"),
            "t.x"
        );
    }
}
