//! Backups on PostgreSQL: `pg_dump --format=custom` of this database (or of its schema, when
//! it is not `public`), restored with `pg_restore` into a scratch database that is reconciled
//! and dropped. The password reaches the tools through `PGPASSWORD`, never their arguments.

use std::path::Path;
use std::process::Stdio;

use async_trait::async_trait;
use secrecy::ExposeSecret as _;
use sqlx::postgres::PgPoolOptions;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresDatabase;
use super::rounds::DrawCache;
use crate::WalletRepository as _;
use crate::backup::{BackupError, BackupReport, BackupRepository, file_name, verified};

#[async_trait]
impl BackupRepository for PostgresDatabase {
    #[tracing::instrument(skip_all, err)]
    async fn backup(&self, dir: &Path, now: OffsetDateTime) -> Result<BackupReport, BackupError> {
        tokio::fs::create_dir_all(dir).await?;
        let path = dir.join(file_name(now, "dump"));
        let partial = dir.join(format!(".{}.partial", file_name(now, "dump")));
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&self.pool)
            .await?;
        let result = async {
            let mut dump = vec![
                "--format=custom".to_owned(),
                "--no-owner".to_owned(),
                format!("--file={}", partial.display()),
            ];
            if schema != "public" {
                dump.push(format!("--schema={schema}"));
            }
            self.tool("pg_dump", &dump, None).await?;
            let restored = self.verify_copy(&partial, &schema).await?;
            tokio::fs::rename(&partial, &path).await?;
            let bytes = tokio::fs::metadata(&path).await?.len();
            Ok(BackupReport {
                path: path.clone(),
                bytes,
                restored,
            })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&partial).await;
        }
        result
    }
}

impl PostgresDatabase {
    /// Runs `program` with `args` against this server (`database` or this pool's database),
    /// connection parameters in the environment.
    async fn tool(
        &self,
        program: &'static str,
        args: &[String],
        database: Option<&str>,
    ) -> Result<(), BackupError> {
        let options = self.pool.connect_options();
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env("PGHOST", options.get_host())
            .env("PGPORT", options.get_port().to_string())
            .env("PGUSER", options.get_username())
            .env(
                "PGDATABASE",
                database.or(options.get_database()).unwrap_or("postgres"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(password) = &self.password {
            command.env("PGPASSWORD", password.expose_secret());
        }
        let output = command.output().await.map_err(|e| BackupError::Tool {
            tool: program,
            status: "not started".to_owned(),
            detail: e.to_string(),
        })?;
        if output.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: String = stderr.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
        Err(BackupError::Tool {
            tool: program,
            status: output.status.to_string(),
            detail: tail,
        })
    }

    /// Restores the dump into a fresh scratch database, reconciles it, and drops it.
    async fn verify_copy(
        &self,
        dump: &Path,
        schema: &str,
    ) -> Result<crate::Reconciliation, BackupError> {
        // Generated from a UUID, never from input: safe to splice into the statement.
        let scratch = format!("hearth_verify_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "CREATE DATABASE \"{scratch}\""
        )))
        .execute(&self.pool)
        .await?;
        let result = async {
            self.tool(
                "pg_restore",
                &[
                    "--no-owner".to_owned(),
                    "--exit-on-error".to_owned(),
                    format!("--dbname={scratch}"),
                    dump.display().to_string(),
                ],
                Some(&scratch),
            )
            .await?;
            let options = (*self.pool.connect_options())
                .clone()
                .database(&scratch)
                .options([("search_path", schema)]);
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await?;
            let copy = PostgresDatabase {
                pool,
                draws: std::sync::Arc::new(DrawCache::new(1)),
                password: None,
            };
            let restored = copy.reconcile().await;
            copy.pool.close().await;
            let restored = restored?;
            verified(&restored)?;
            Ok(restored)
        }
        .await;
        let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"
        )))
        .execute(&self.pool)
        .await;
        if let Err(error) = dropped {
            tracing::warn!(%error, database = %scratch, "scratch database not dropped");
        }
        result
    }
}

/// The password in a `postgres://user:password@host/…` URL, percent-decoded.
pub(super) fn password_from_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let userinfo = authority.rsplit_once('@')?.0;
    let password = userinfo.split_once(':')?.1;
    Some(percent_decode(password))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_read_from_the_url_and_decoded() {
        assert_eq!(
            password_from_url("postgres://hearth:s%40cret@db:5432/hearth?sslmode=require"), // secrets-scan: allow (made-up test vector)
            Some("s@cret".to_owned())
        );
        assert_eq!(
            password_from_url("postgres://postgres@127.0.0.1:5432/test"),
            None
        );
        assert_eq!(password_from_url("postgres://db/hearth"), None);
    }
}
