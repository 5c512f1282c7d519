//! Test support for Hearth: a fresh database per test, on either backend.
//!
//! A dev-dependency only. PostgreSQL suites read `HEARTH_TEST_DATABASE_URL`; each test gets its
//! own schema in that database, dropped by [`TestDb::cleanup`]. Redis suites read
//! `HEARTH_TEST_REDIS_URL` through [`service_url`]. Without the variable a test that needs the
//! service passes without running, and the test binary prints one line naming the skipped
//! suites ([`skip`]); under `CI=true` a missing service is a failure instead.
//!
//! [`backend_suite!`] writes a suite once and instantiates it for both backends.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support fail loudly on what should not happen"
)]

use std::sync::Arc;

use hearth_storage::{Database, DatabaseSettings};
use sqlx::{AssertSqlSafe, Connection, PgConnection};

pub mod private_redis;
pub mod skip;
pub mod tracing_interest;

pub use private_redis::PrivateRedis;
pub use skip::{in_ci, service_url, skip_suites};

/// The variable naming the PostgreSQL server for tests.
pub const DATABASE_URL_VAR: &str = "HEARTH_TEST_DATABASE_URL";
/// The variable naming the Redis server for tests.
pub const REDIS_URL_VAR: &str = "HEARTH_TEST_REDIS_URL";

/// A migrated database that belongs to one test.
pub struct TestDb {
    /// Settings that reach this database (hand them to an app under test).
    pub settings: DatabaseSettings,
    /// The open database.
    pub db: Arc<dyn Database>,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Deleted when dropped.
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres {
        admin_url: String,
        schema: String,
    },
}

impl TestDb {
    /// Closes the pool and removes the database (drops the schema, deletes the file).
    pub async fn cleanup(self) {
        self.db.close().await;
        if let Cleanup::Postgres { admin_url, schema } = self.cleanup
            && let Ok(mut conn) = PgConnection::connect(&admin_url).await
        {
            let sql = format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE");
            let _ = sqlx::query(AssertSqlSafe(sql)).execute(&mut conn).await;
        }
    }
}

/// A fresh SQLite database in a temporary directory, migrated.
///
/// # Panics
/// When the file cannot be created.
pub async fn sqlite_db() -> TestDb {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("hearth.db");
    let settings = DatabaseSettings {
        url: format!("sqlite://{}", path.display()).into(),
        max_connections: 8,
        ..DatabaseSettings::default()
    };
    let db = hearth_storage::connect(&settings)
        .await
        .expect("SQLite opens");
    db.migrate().await.expect("SQLite migrations apply");
    TestDb {
        settings,
        db,
        cleanup: Cleanup::Sqlite(dir),
    }
}

/// A fresh schema in the test PostgreSQL database, migrated; `None` when the suite skips.
///
/// # Panics
/// When the server named by [`DATABASE_URL_VAR`] cannot be reached.
pub async fn postgres_db() -> Option<TestDb> {
    let admin_url = service_url(DATABASE_URL_VAR, "PostgreSQL")?;
    let schema = format!("hearth_t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("{DATABASE_URL_VAR} is set but PostgreSQL is unreachable: {e}"));
    // The schema name is generated above from a UUID, never from input.
    sqlx::query(AssertSqlSafe(format!("CREATE SCHEMA \"{schema}\"")))
        .execute(&mut admin)
        .await
        .expect("CREATE SCHEMA");
    let separator = if admin_url.contains('?') { '&' } else { '?' };
    let settings = DatabaseSettings {
        url: format!("{admin_url}{separator}options[search_path]={schema}").into(),
        max_connections: 16,
        ..DatabaseSettings::default()
    };
    let db = hearth_storage::connect(&settings)
        .await
        .expect("PostgreSQL connects");
    db.migrate().await.expect("PostgreSQL migrations apply");
    Some(TestDb {
        settings,
        db,
        cleanup: Cleanup::Postgres { admin_url, schema },
    })
}

/// Instantiates async test functions `async fn name(db: &TestDb)` for SQLite and PostgreSQL.
///
/// ```ignore
/// async fn balances_start_at_zero(db: &TestDb) { /* … */ }
/// hearth_test_support::backend_suite!(balances_start_at_zero);
/// ```
#[macro_export]
macro_rules! backend_suite {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::sqlite_db().await;
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::postgres_db().await else { return };
                    super::$name(&db).await;
                    db.cleanup().await;
                }
            )+
        }
    };
}

impl TestDb {
    /// Runs one statement written in SQL both backends accept, outside the repositories:
    /// for tests that must break an invariant on purpose (tampering with a balance).
    ///
    /// # Errors
    /// The database's refusal, for tests that expect one.
    ///
    /// # Panics
    /// When the database cannot be reached.
    pub async fn execute_raw(&self, sql: &'static str) -> Result<u64, sqlx::Error> {
        use secrecy::ExposeSecret as _;
        use sqlx::Executor as _;
        let url = self.settings.url.expose_secret();
        if self.settings.is_sqlite() {
            let mut conn = sqlx::SqliteConnection::connect(url).await.expect("connect");
            Ok(conn.execute(sql).await?.rows_affected())
        } else {
            let mut conn = PgConnection::connect(url).await.expect("connect");
            Ok(conn.execute(sql).await?.rows_affected())
        }
    }
}

/// A valid new user with a fixed, known server seed (so tests can re-derive outcomes).
pub fn new_user(name: &str, starting_balance: i64) -> hearth_storage::NewUser {
    use hearth_domain::fairness::{ClientSeed, ServerSeed};
    hearth_storage::NewUser {
        id: uuid::Uuid::now_v7(),
        username: name.to_owned(),
        email: format!("{}@example.com", name.to_lowercase()),
        // Not a real bcrypt hash; storage treats it as opaque text.
        password_hash: "$2b$04$notarealhashnotarealhashnotarealhashnotarealhashnota".to_owned(),
        role: "player".to_owned(),
        starting_balance,
        server_seed: ServerSeed::from_bytes(*FIXED_SERVER_SEED),
        client_seed: ClientSeed::parse("test-client-seed").expect("a valid client seed"),
        welcome: None,
    }
}

/// The server seed [`new_user`] gives every user.
pub const FIXED_SERVER_SEED: &[u8; 32] = b"hearth-test-server-seed-32-bytes";

/// Inserts `count` NPCs (every second one `gm_only`) into a campaign on PostgreSQL in one
/// statement, then `ANALYZE`s: for benchmarks and plan tests at a scale the repository's
/// one-row inserts would take minutes to reach.
///
/// # Panics
/// When the database is SQLite or the statement fails.
pub async fn seed_npcs(t: &TestDb, campaign: uuid::Uuid, count: i64) {
    use secrecy::ExposeSecret as _;
    assert!(!t.settings.is_sqlite(), "seed_npcs is for PostgreSQL");
    let mut conn = PgConnection::connect(t.settings.url.expose_secret())
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO campaign_npcs (id, campaign_id, name, tags, stats, gm_only, created_at, \
         updated_at) SELECT gen_random_uuid(), $1, 'N' || g, '[\"crowd\"]', '{\"hp\": 1}', \
         g % 2 = 0, now(), now() FROM generate_series(1, $2) g",
    )
    .bind(campaign)
    .bind(count)
    .execute(&mut conn)
    .await
    .expect("seeding NPCs");
    sqlx::query("ANALYZE")
        .execute(&mut conn)
        .await
        .expect("ANALYZE");
    let _ = conn.close().await;
}
