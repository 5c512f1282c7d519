//! The password policy and bcrypt hashing off the async threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::OnceCell;

/// bcrypt reads at most this many bytes; longer passwords are refused, never truncated.
pub const MAX_PASSWORD_BYTES: usize = 72;
/// The shortest password accepted.
pub const MIN_PASSWORD_BYTES: usize = 8;

/// A password refused by the policy, with its strength score and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("password does not meet the policy: {}", feedback.join("; "))]
pub struct PasswordPolicyError {
    /// Strength from 0 (none) to 100, from length, character diversity and estimated entropy.
    pub score: u8,
    /// One human-readable line per unmet rule.
    pub feedback: Vec<String>,
}

/// Checks a password against the policy: 8–72 bytes with an upper-case letter, a lower-case
/// letter, a digit and a special character.
///
/// # Errors
/// [`PasswordPolicyError`] listing every unmet rule, with the password's strength score.
pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let mut feedback = Vec::new();
    let len = password.len();
    if len < MIN_PASSWORD_BYTES {
        feedback.push(format!("use at least {MIN_PASSWORD_BYTES} characters"));
    }
    if len > MAX_PASSWORD_BYTES {
        feedback.push(format!(
            "use at most {MAX_PASSWORD_BYTES} bytes (bcrypt ignores the rest)"
        ));
    }
    let classes = CharClasses::of(password);
    if !classes.upper {
        feedback.push("add an upper-case letter".to_owned());
    }
    if !classes.lower {
        feedback.push("add a lower-case letter".to_owned());
    }
    if !classes.digit {
        feedback.push("add a digit".to_owned());
    }
    if !classes.special {
        feedback.push("add a special character such as ! ? # or %".to_owned());
    }
    if feedback.is_empty() {
        Ok(())
    } else {
        Err(PasswordPolicyError {
            score: strength(password),
            feedback,
        })
    }
}

#[derive(Debug, Default)]
struct CharClasses {
    upper: bool,
    lower: bool,
    digit: bool,
    special: bool,
}

impl CharClasses {
    fn of(password: &str) -> Self {
        let mut classes = Self::default();
        for c in password.chars() {
            match c {
                'A'..='Z' => classes.upper = true,
                'a'..='z' => classes.lower = true,
                '0'..='9' => classes.digit = true,
                _ => classes.special = true,
            }
        }
        classes
    }

    fn pool_size(&self) -> u32 {
        [
            (self.upper, 26),
            (self.lower, 26),
            (self.digit, 10),
            (self.special, 33),
        ]
        .iter()
        .filter(|(present, _)| *present)
        .map(|(_, size)| size)
        .sum()
    }

    fn count(&self) -> u32 {
        [self.upper, self.lower, self.digit, self.special]
            .iter()
            .filter(|c| **c)
            .count() as u32
    }
}

/// A strength score from 0 to 100.
///
/// Half comes from estimated entropy (length × log2 of the character pool, capped at 80 bits,
/// with repeated characters counted once), a quarter from length (capped at 16), a quarter from
/// the number of character classes used.
pub fn strength(password: &str) -> u8 {
    let classes = CharClasses::of(password);
    let mut distinct: Vec<char> = password.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let pool = classes.pool_size().max(1) as f64;
    let entropy_bits = distinct.len() as f64 * pool.log2();
    let entropy_part = (entropy_bits / 80.0).min(1.0) * 50.0;
    let length_part = (password.chars().count() as f64 / 16.0).min(1.0) * 25.0;
    let diversity_part = f64::from(classes.count()) / 4.0 * 25.0;
    (entropy_part + length_part + diversity_part).round() as u8
}

/// Errors from hashing.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The password is longer than bcrypt can read.
    #[error("password is longer than {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
    /// bcrypt itself failed (a malformed stored hash, an invalid cost).
    #[error("bcrypt failed")]
    Bcrypt(#[from] bcrypt::BcryptError),
    /// The hashing thread panicked, or the pool is gone.
    #[error("the hashing task did not complete")]
    Lost,
}

/// Hashes and verifies passwords with bcrypt on its own threads, never the async ones.
///
/// `max_concurrent` threads do the hashing, so a login storm queues instead of taking every
/// CPU. On Linux they run at a lower scheduling priority (nice 10): they use all the CPU that
/// is spare, but a request thread that wakes up runs first, so health probes and other
/// requests stay fast while logins saturate the cores. Cloning is cheap; clones share the
/// threads, which end when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PasswordHasher {
    cost: u32,
    pool: Arc<HashPool>,
    /// A hash of a random password, verified against when the account does not exist so that
    /// unknown users take as long as wrong passwords. Computed on first use.
    dummy: Arc<OnceCell<String>>,
    /// bcrypt verifications run so far, shared by every clone: what the lockout bounds is
    /// observable, and tests count it instead of trusting timing.
    verified: Arc<VerifyCounters>,
}

#[derive(Debug, Default)]
struct VerifyCounters {
    stored: AtomicU64,
    dummy: AtomicU64,
}

/// How many bcrypt verifications a [`PasswordHasher`] (and its clones) has run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Verifications {
    /// Against an account's stored hash: passwords actually checked.
    pub stored: u64,
    /// Against the dummy hash (an unknown account, or an attempt the lockout withheld).
    pub dummy: u64,
}

impl PasswordHasher {
    /// A hasher with the given bcrypt cost and at most `max_concurrent` hashes at once.
    pub fn new(cost: u32, max_concurrent: usize) -> Self {
        Self {
            cost,
            pool: Arc::new(HashPool::new(max_concurrent.max(1))),
            dummy: Arc::new(OnceCell::new()),
            verified: Arc::default(),
        }
    }

    /// The bcrypt verifications run so far by this hasher and its clones.
    pub fn verifications(&self) -> Verifications {
        Verifications {
            stored: self.verified.stored.load(Ordering::Relaxed),
            dummy: self.verified.dummy.load(Ordering::Relaxed),
        }
    }

    /// Hashes a password.
    ///
    /// # Errors
    /// [`HashError::TooLong`] past 72 bytes; [`HashError::Bcrypt`] for an invalid cost.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        if password.expose_secret().len() > MAX_PASSWORD_BYTES {
            return Err(HashError::TooLong);
        }
        let cost = self.cost;
        self.run(move || bcrypt::hash(password.expose_secret(), cost).map_err(HashError::from))
            .await
    }

    /// Verifies a password against a stored hash, or against a dummy hash when there is none,
    /// so that both cases cost the same.
    ///
    /// Returns `false` for a wrong password, a missing account or an over-long password.
    ///
    /// # Errors
    /// [`HashError::Bcrypt`] when the stored hash is malformed.
    pub async fn verify(
        &self,
        password: SecretString,
        stored_hash: Option<String>,
    ) -> Result<bool, HashError> {
        let (hash, real) = match stored_hash {
            Some(hash) => (hash, true),
            None => (self.dummy_hash().await?, false),
        };
        let too_long = password.expose_secret().len() > MAX_PASSWORD_BYTES;
        let counter = if real {
            &self.verified.stored
        } else {
            &self.verified.dummy
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let matched = self
            .run(move || {
                // bcrypt would read only the first 72 bytes; an over-long password is spent
                // against the hash anyway so that refusing it costs as much as a wrong one.
                let candidate = &password.expose_secret().as_bytes()
                    [..password.expose_secret().len().min(MAX_PASSWORD_BYTES)];
                bcrypt::verify(candidate, &hash).map_err(HashError::from)
            })
            .await?;
        Ok(matched && real && !too_long)
    }

    async fn dummy_hash(&self) -> Result<String, HashError> {
        self.dummy
            .get_or_try_init(|| async {
                let random: [u8; 24] = rand::random();
                let password: String = random.iter().map(|b| format!("{b:02x}")).collect();
                let cost = self.cost;
                self.run(move || bcrypt::hash(password, cost).map_err(HashError::from))
                    .await
            })
            .await
            .cloned()
    }

    async fn run<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce() -> Result<T, HashError> + Send + 'static,
        T: Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let span = tracing::Span::current();
        self.pool.submit(Box::new(move || {
            let _ = done.send(span.in_scope(work));
        }))?;
        result.await.map_err(|_| HashError::Lost)?
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads and their queue.
#[derive(Debug)]
struct HashPool {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl HashPool {
    fn new(threads: usize) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..threads {
            let queue = Arc::clone(&queue);
            let spawned = std::thread::Builder::new()
                .name(format!("hearth-bcrypt-{n}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { break };
                        // A panicking job loses its own answer (the caller sees `Lost`), not
                        // the thread.
                        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    }
                });
            if let Err(error) = spawned {
                tracing::error!(%error, "could not start a password hashing thread");
            }
        }
        Self { jobs }
    }

    fn submit(&self, job: Job) -> Result<(), HashError> {
        self.jobs.send(job).map_err(|_| HashError::Lost)
    }
}

/// Nice 10 for the calling thread (on Linux the nice value is per thread). Elsewhere it would
/// apply to the whole process, so it is left alone.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::process::setpriority_process(None, 10) {
        tracing::debug!(%error, "could not lower the hashing thread's priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn a_password_meeting_every_rule_passes() {
        assert_eq!(check_policy("Tr0ub4dor&3"), Ok(()));
    }

    #[test]
    fn a_weak_password_gets_every_unmet_rule_and_a_low_score() {
        let error = check_policy("abc").unwrap_err();
        assert_eq!(error.feedback.len(), 4, "{:?}", error.feedback);
        assert!(error.score < 40, "score {}", error.score);
    }

    #[test]
    fn stronger_passwords_score_higher() {
        assert!(strength("aaaaaaaa") < strength("abcdefgh"));
        assert!(strength("abcdefgh") < strength("abcDEF12"));
        assert!(strength("abcDEF12") < strength("abcDEF12!?xyzUVW"));
        assert!(strength("abcDEF12!?xyzUVW#%rst") <= 100);
    }

    #[test]
    fn the_72_byte_edge_is_exact() {
        let base = "Aa1!";
        let of_len = |n: usize| format!("{base}{}", "x".repeat(n - base.len()));
        assert_eq!(check_policy(&of_len(71)), Ok(()));
        assert_eq!(check_policy(&of_len(72)), Ok(()));
        assert!(check_policy(&of_len(73)).is_err());
    }

    #[tokio::test]
    async fn hashes_verify_and_wrong_passwords_do_not() {
        let hasher = PasswordHasher::new(4, 2);
        let hash = hasher.hash(secret("Correct-horse-1")).await.unwrap();
        assert!(
            hasher
                .verify(secret("Correct-horse-1"), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !hasher
                .verify(secret("Correct-horse-2"), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_72_byte_password_hashes_and_verifies_and_73_is_refused() {
        let hasher = PasswordHasher::new(4, 2);
        let p72 = format!("Aa1!{}", "y".repeat(68));
        let hash = hasher.hash(secret(&p72)).await.unwrap();
        assert!(
            hasher
                .verify(secret(&p72), Some(hash.clone()))
                .await
                .unwrap()
        );
        // A 73-byte password sharing the first 72 bytes must not pass as the 72-byte one.
        let p73 = format!("{p72}z");
        assert!(matches!(
            hasher.hash(secret(&p73)).await,
            Err(HashError::TooLong)
        ));
        assert!(!hasher.verify(secret(&p73), Some(hash)).await.unwrap());
    }

    #[tokio::test]
    async fn an_unknown_account_never_verifies() {
        let hasher = PasswordHasher::new(4, 1);
        assert!(!hasher.verify(secret("anything"), None).await.unwrap());
    }
}
