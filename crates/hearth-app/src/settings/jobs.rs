//! The `jobs`, `email` and `backup` sections: the worker's job runtime and its schedules, how
//! e-mail leaves, and where backups go.

use std::path::PathBuf;
use std::time::Duration;

use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;

/// The `jobs` section (`HEARTH__JOBS__…`), read by `hearth-worker`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsSettings {
    /// `LEASE_SECS`: how long a claim holds a job; renewed while it runs, so only a dead
    /// worker's jobs pass to another after this long.
    pub lease_secs: u64,
    /// `BATCH`: jobs claimed at once and run concurrently by one worker.
    pub batch: u32,
    /// `POLL_MS`: the pause after finding nothing due.
    pub poll_ms: u64,
    /// `SHUTDOWN_GRACE_SECS`: after SIGTERM, how long jobs in hand may take before they are
    /// released to another worker.
    pub shutdown_grace_secs: u64,
    /// `BACKOFF_BASE_SECS`: the delay after a first failure (doubling, with jitter).
    pub backoff_base_secs: u64,
    /// `BACKOFF_MAX_SECS`: the longest delay between attempts.
    pub backoff_max_secs: u64,
    /// `RECONCILE_SCHEDULE`: cron (UTC) for ledger reconciliation.
    pub reconcile_schedule: String,
    /// `CLEANUP_SCHEDULE`: cron for deleting expired idempotency keys, revocations and old
    /// schedule slots.
    pub cleanup_schedule: String,
    /// `LEADERBOARD_SCHEDULE`: cron for rebuilding the shared (Redis) leaderboards; unused in
    /// embedded mode, where each gateway keeps its own.
    pub leaderboard_schedule: String,
}

impl Default for JobsSettings {
    fn default() -> Self {
        Self {
            lease_secs: 60,
            batch: 4,
            poll_ms: 1000,
            shutdown_grace_secs: 10,
            backoff_base_secs: 5,
            backoff_max_secs: 3600,
            reconcile_schedule: "*/5 * * * *".to_owned(),
            cleanup_schedule: "17 * * * *".to_owned(),
            leaderboard_schedule: "*/5 * * * *".to_owned(),
        }
    }
}

impl JobsSettings {
    /// The runtime's settings.
    pub fn runner(&self) -> hearth_jobs::RunnerSettings {
        hearth_jobs::RunnerSettings {
            lease: Duration::from_secs(self.lease_secs.max(1)),
            batch: self.batch.max(1),
            idle_poll: Duration::from_millis(self.poll_ms.max(1)),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs),
            backoff: hearth_jobs::Backoff {
                base: Duration::from_secs(self.backoff_base_secs),
                max: Duration::from_secs(self.backoff_max_secs.max(self.backoff_base_secs)),
            },
            stats_every: Duration::from_secs(15),
        }
    }

    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.lease_secs < 3 {
            problems.push("jobs.lease_secs must be at least 3".to_owned());
        }
        if self.batch == 0 || self.batch > 256 {
            problems.push("jobs.batch must be between 1 and 256".to_owned());
        }
        if self.poll_ms == 0 {
            problems.push("jobs.poll_ms must be at least 1".to_owned());
        }
        if self.backoff_max_secs < self.backoff_base_secs {
            problems
                .push("jobs.backoff_max_secs must not be below jobs.backoff_base_secs".to_owned());
        }
        for (key, expression) in [
            ("reconcile_schedule", &self.reconcile_schedule),
            ("cleanup_schedule", &self.cleanup_schedule),
            ("leaderboard_schedule", &self.leaderboard_schedule),
        ] {
            if let Err(error) = hearth_jobs::Scheduled::new(key, expression, key) {
                problems.push(format!("jobs.{key}: {}", error.reason));
            }
        }
        problems
    }
}

/// The `email` section (`HEARTH__EMAIL__…`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailSettings {
    /// `SMTP_URL`: where mail is sent, with credentials: `smtps://user:pass@host:465` (TLS
    /// from the first byte), `smtp://user:pass@host:587?tls=required` (STARTTLS, refused
    /// without it) or `smtp://host:25` (plain, for a local relay). Unset: mail is written to
    /// files under `dir` instead; an empty value counts as unset.
    #[serde(deserialize_with = "super::optional_secret")]
    pub smtp_url: Option<SecretString>,
    /// `FROM`: the sender, `Name <address>` or an address.
    pub from: String,
    /// `DIR`: where mail is written when `smtp_url` is unset, one `.eml` file per message.
    pub dir: PathBuf,
    /// `PUBLIC_URL`: the base of links in mail (the e-mail verification link).
    pub public_url: String,
    /// `TIMEOUT_SECS`: one SMTP conversation's limit.
    pub timeout_secs: u64,
    /// `VERIFICATION_TTL_SECS`: how long the welcome mail's verification link works.
    pub verification_ttl_secs: u64,
    /// `LOGIN_ALERTS`: whether a login from an address the account has not used before
    /// mails the account holder.
    pub login_alerts: bool,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Hearth <no-reply@hearth.localhost>".to_owned(),
            dir: PathBuf::from("./data/mail"),
            public_url: "http://127.0.0.1:8080".to_owned(),
            timeout_secs: 10,
            verification_ttl_secs: 7 * 24 * 3600,
            login_alerts: true,
        }
    }
}

impl EmailSettings {
    pub(crate) fn problems(&self, production: bool) -> Vec<String> {
        let mut problems = Vec::new();
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            problems.push(format!("email.from {:?} is not a mailbox", self.from));
        }
        if self.verification_ttl_secs == 0 {
            problems.push("email.verification_ttl_secs must be at least 1".to_owned());
        }
        if self.timeout_secs == 0 {
            problems.push("email.timeout_secs must be at least 1".to_owned());
        }
        if let Some(url) = &self.smtp_url {
            let url = url.expose_secret();
            let tls = url.starts_with("smtps://") || url.contains("tls=required");
            if !url.starts_with("smtp://") && !url.starts_with("smtps://") {
                // The URL may hold a password: name the key, never the value.
                problems.push("email.smtp_url must start with smtp:// or smtps://".to_owned());
            } else if production && !tls {
                problems.push(
                    "email.smtp_url (HEARTH__EMAIL__SMTP_URL) sends without TLS; use smtps:// or \
                     ?tls=required in production"
                        .to_owned(),
                );
            }
        }
        problems
    }
}

/// The `backup` section (`HEARTH__BACKUP__…`), read by `hearth-worker`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupSettings {
    /// `DIR`: where backups are written (`hearth-<UTC time>.dump` on PostgreSQL, `.sqlite3` on
    /// SQLite). Shared storage when workers run on several hosts.
    pub dir: PathBuf,
    /// `SCHEDULE`: cron (UTC) for backups; empty turns scheduled backups off.
    pub schedule: String,
    /// `KEEP`: how many backups are kept; older ones are deleted after each verified backup.
    pub keep: usize,
}

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/backups"),
            schedule: "30 3 * * *".to_owned(),
            keep: 7,
        }
    }
}

impl BackupSettings {
    pub(crate) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.keep == 0 {
            problems.push("backup.keep must be at least 1".to_owned());
        }
        if !self.schedule.trim().is_empty()
            && let Err(error) = hearth_jobs::Scheduled::new("backup", &self.schedule, "backup")
        {
            problems.push(format!("backup.schedule: {}", error.reason));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use crate::Settings;

    fn load(pairs: &[(&str, &str)]) -> Result<Settings, crate::settings::SettingsError> {
        Settings::load_from_map(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<HashMap<_, _>>(),
        )
    }

    #[test]
    fn the_jobs_email_and_backup_sections_read_every_key() {
        let s = load(&[
            ("HEARTH__JOBS__LEASE_SECS", "30"),
            ("HEARTH__JOBS__BATCH", "8"),
            ("HEARTH__JOBS__RECONCILE_SCHEDULE", "0 * * * *"),
            ("HEARTH__EMAIL__SMTP_URL", "smtp://127.0.0.1:2525"),
            ("HEARTH__EMAIL__FROM", "Ops <ops@example.com>"),
            ("HEARTH__EMAIL__LOGIN_ALERTS", "false"),
            ("HEARTH__BACKUP__KEEP", "3"),
            ("HEARTH__BACKUP__SCHEDULE", ""),
        ])
        .unwrap();
        assert_eq!((s.jobs.lease_secs, s.jobs.batch), (30, 8));
        assert_eq!(s.jobs.reconcile_schedule, "0 * * * *");
        assert!(s.email.smtp_url.is_some());
        assert!(!s.email.login_alerts);
        assert_eq!((s.backup.keep, s.backup.schedule.as_str()), (3, ""));
        assert_eq!(s.jobs.runner().batch, 8);
    }

    #[test]
    fn bad_schedules_senders_and_counts_are_refused_with_their_keys() {
        let error = load(&[
            ("HEARTH__JOBS__CLEANUP_SCHEDULE", "every hour"),
            ("HEARTH__BACKUP__SCHEDULE", "99 * * * *"),
            ("HEARTH__BACKUP__KEEP", "0"),
            ("HEARTH__EMAIL__FROM", "not a mailbox"),
            ("HEARTH__EMAIL__SMTP_URL", "http://mail.example"),
        ])
        .unwrap_err()
        .to_string();
        for key in [
            "jobs.cleanup_schedule",
            "backup.schedule",
            "backup.keep",
            "email.from",
            "email.smtp_url",
        ] {
            assert!(error.contains(key), "{key} in {error}");
        }
    }

    #[test]
    fn production_refuses_smtp_without_tls_and_never_prints_the_url() {
        let base = [
            ("HEARTH__ENVIRONMENT", "production"),
            (
                "HEARTH__AUTH__JWT_SECRET",
                "a-production-secret-that-is-long-enough-0123",
            ),
            ("HEARTH__DATABASE__URL", "postgres://db/hearth"),
        ];
        let mut plain = base.to_vec();
        plain.push(("HEARTH__EMAIL__SMTP_URL", "smtp://user:hunter2@mail:25")); // secrets-scan: allow (made-up test vector)
        let error = load(&plain).unwrap_err().to_string();
        assert!(error.contains("without TLS"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        for tls in [
            "smtps://user:hunter2@mail:465", // secrets-scan: allow (made-up test vector)
            "smtp://user:hunter2@mail:587?tls=required", // secrets-scan: allow (made-up test vector)
        ] {
            let mut good = base.to_vec();
            good.push(("HEARTH__EMAIL__SMTP_URL", tls));
            if let Err(error) = load(&good) {
                assert!(!error.to_string().contains("email.smtp_url"), "{error}");
            }
        }
    }

    #[test]
    fn an_empty_smtp_url_means_mail_goes_to_files() {
        // What `HEARTH__EMAIL__SMTP_URL: ${HEARTH_SMTP_URL:-}` gives in deploy/docker-compose.yml.
        for empty in ["", "  "] {
            let settings = load(&[("HEARTH__EMAIL__SMTP_URL", empty)]).unwrap();
            assert!(settings.email.smtp_url.is_none(), "{empty:?}");
        }
        let settings = load(&[("HEARTH__EMAIL__SMTP_URL", "smtp://relay:25")]).unwrap();
        assert_eq!(
            settings
                .email
                .smtp_url
                .as_ref()
                .map(|url| secrecy::ExposeSecret::expose_secret(url).to_owned()),
            Some("smtp://relay:25".to_owned())
        );
    }
}
