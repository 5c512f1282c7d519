//! The `ai` settings section (`HEARTH__AI__*`).
//!
//! Providers are numbered in the environment, `HEARTH__AI__PROVIDERS__<N>__NAME` and so on,
//! and tried in the order of their numbers (gaps are allowed). A TOML file may give them as an
//! array of tables (`[[ai.providers]]`) instead. With no provider configured, the embedded
//! [`LocalProvider`](crate::LocalProvider) answers.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::breaker::BreakerConfig;
use crate::retry::RetryPolicy;

/// The base URL that names the embedded local provider instead of an HTTP endpoint.
pub const LOCAL_BASE_URL: &str = "local";

/// The `ai` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AiSettings {
    /// `HEARTH__AI__PROVIDERS__<N>__*`: the providers, tried in order. Empty: the local one.
    #[serde(deserialize_with = "numbered_providers")]
    pub providers: Vec<ProviderSettings>,
    /// `HEARTH__AI__DEADLINE_SECS`: the most one call may take, every provider, retry and
    /// backoff included (the application caps it below its request timeout). Default 25.
    pub deadline_secs: u64,
    /// `HEARTH__AI__MAX_ATTEMPTS`: attempts per provider (1 = no retry). Default 3.
    pub max_attempts: u32,
    /// `HEARTH__AI__BACKOFF_BASE_MS`: the first retry waits up to this long; each further one
    /// up to twice as long as the one before (full jitter). Default 200.
    pub backoff_base_ms: u64,
    /// `HEARTH__AI__BACKOFF_MAX_MS`: the longest wait between two attempts, and the longest
    /// `Retry-After` honoured; a provider asking for more is left for the next one. Default 5000.
    pub backoff_max_ms: u64,
    /// `HEARTH__AI__MAX_OUTPUT_TOKENS`: `max_tokens` sent with every call, and so the output
    /// side of the worst-case cost reserved before it. Default 512.
    pub max_output_tokens: u32,
    /// `HEARTH__AI__HISTORY_MESSAGES`: earlier messages of a conversation sent as context.
    /// Default 20.
    pub history_messages: u32,
    /// `HEARTH__AI__SYSTEM_PROMPT`: the system message opening every chat call.
    pub system_prompt: String,
    /// `HEARTH__AI__FALLBACK_LINE`: what an in-game character says when no provider answers or
    /// a budget is spent.
    pub fallback_line: String,
    /// `HEARTH__AI__BREAKER__*`: the circuit breaker of each provider.
    pub breaker: BreakerSettings,
}

impl Default for AiSettings {
    fn default() -> Self {
        Self {
            providers: Vec::new(),
            deadline_secs: 25,
            max_attempts: 3,
            backoff_base_ms: 200,
            backoff_max_ms: 5_000,
            max_output_tokens: 512,
            history_messages: 20,
            system_prompt: "You are a patient, concise tutor. Answer in plain text.".to_owned(),
            fallback_line: "Hmm, let me think about that and get back to you later.".to_owned(),
            breaker: BreakerSettings::default(),
        }
    }
}

/// One provider: an OpenAI-compatible chat-completions endpoint, or the local one.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// `…__NAME`: labels metrics, logs and `/health/details`; unique.
    pub name: String,
    /// `…__BASE_URL`: `https://api.openai.com/v1` (`/chat/completions` is appended), or
    /// `local` for the embedded provider.
    pub base_url: String,
    /// `…__API_KEY`: sent as a bearer token; secret, never logged.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// `…__MODEL`: the `model` of each request.
    #[serde(default)]
    pub model: String,
    /// `…__TIMEOUT_SECS`: the most one attempt may take (for a stream: until its first byte,
    /// then between two chunks). Default 20.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    20
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderSettings")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("model", &self.model)
            .field("timeout_secs", &self.timeout_secs)
            .finish()
    }
}

impl ProviderSettings {
    /// Whether this entry names the embedded local provider.
    pub fn is_local(&self) -> bool {
        self.base_url.trim().eq_ignore_ascii_case(LOCAL_BASE_URL)
    }

    /// The timeout of one attempt.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }
}

/// The `ai.breaker` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerSettings {
    /// `HEARTH__AI__BREAKER__FAILURES`: failures within the window that open it. Default 5.
    pub failures: u32,
    /// `HEARTH__AI__BREAKER__WINDOW_SECS`: how far back failures count. Default 60.
    pub window_secs: u64,
    /// `HEARTH__AI__BREAKER__COOLDOWN_SECS`: how long it stays open before one probe call.
    /// Default 30.
    pub cooldown_secs: u64,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures: 5,
            window_secs: 60,
            cooldown_secs: 30,
        }
    }
}

impl BreakerSettings {
    /// The breaker's configuration.
    pub fn config(&self) -> BreakerConfig {
        BreakerConfig {
            failures: self.failures.max(1),
            window: Duration::from_secs(self.window_secs),
            cooldown: Duration::from_secs(self.cooldown_secs),
        }
    }
}

impl AiSettings {
    /// The per-call deadline.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs(self.deadline_secs)
    }

    /// The retry policy these settings describe.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            max_attempts: self.max_attempts.max(1),
            base_delay: Duration::from_millis(self.backoff_base_ms),
            max_delay: Duration::from_millis(self.backoff_max_ms),
        }
    }

    /// Every problem with these settings, one sentence each; `production` adds the checks
    /// that only matter there (HTTPS to every remote provider).
    pub fn problems(&self, production: bool) -> Vec<String> {
        let mut problems = Vec::new();
        for (key, value) in [
            ("deadline_secs", self.deadline_secs),
            ("max_attempts", u64::from(self.max_attempts)),
            ("max_output_tokens", u64::from(self.max_output_tokens)),
            ("breaker.failures", u64::from(self.breaker.failures)),
            ("breaker.window_secs", self.breaker.window_secs),
            ("breaker.cooldown_secs", self.breaker.cooldown_secs),
        ] {
            if value == 0 {
                problems.push(format!("ai.{key} must be at least 1"));
            }
        }
        if self.backoff_base_ms > self.backoff_max_ms {
            problems.push("ai.backoff_base_ms must not exceed ai.backoff_max_ms".to_owned());
        }
        if self.history_messages > 200 {
            problems.push("ai.history_messages must be at most 200".to_owned());
        }
        if self.fallback_line.trim().is_empty() {
            problems.push("ai.fallback_line must not be empty".to_owned());
        }
        let mut names = std::collections::HashSet::new();
        for (index, p) in self.providers.iter().enumerate() {
            let at = format!("ai.providers.{index}");
            let name_ok = !p.name.is_empty()
                && p.name.len() <= 64
                && p.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !name_ok {
                problems.push(format!(
                    "{at}.name must be 1 to 64 letters, digits, '-', '_' or '.'"
                ));
            } else if !names.insert(p.name.clone()) {
                problems.push(format!("{at}.name {:?} is used twice", p.name));
            }
            if p.timeout_secs == 0 {
                problems.push(format!("{at}.timeout_secs must be at least 1"));
            }
            if p.is_local() {
                continue;
            }
            match crate::provider::Endpoint::parse(&p.base_url) {
                Ok(endpoint) => {
                    if production && !endpoint.is_https() && !endpoint.is_loopback() {
                        problems.push(format!(
                            "{at}.base_url is plain http to a remote host; use https (the API key would travel in clear)"
                        ));
                    }
                }
                Err(reason) => problems.push(format!("{at}.base_url {reason}")),
            }
            if p.model.trim().is_empty() {
                problems.push(format!("{at}.model must be set"));
            }
        }
        problems
    }
}

/// Providers as a list, or as a map numbered from the environment (`PROVIDERS__0__NAME`).
fn numbered_providers<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<ProviderSettings>, D::Error> {
    struct Numbered;

    impl<'de> Visitor<'de> for Numbered {
        type Value = Vec<ProviderSettings>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of providers, or providers numbered 0, 1, 2…")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut providers = Vec::new();
            while let Some(provider) = seq.next_element()? {
                providers.push(provider);
            }
            Ok(providers)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut numbered = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                let index: u32 = key.trim().parse().map_err(|_| {
                    de::Error::custom(format!(
                        "provider key {key:?} must be a number (HEARTH__AI__PROVIDERS__0__NAME)"
                    ))
                })?;
                let provider: ProviderSettings = map.next_value()?;
                numbered.insert(index, provider);
            }
            Ok(numbered.into_values().collect())
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Vec::new())
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            if v.trim().is_empty() {
                Ok(Vec::new())
            } else {
                Err(E::custom(
                    "providers are configured per field: HEARTH__AI__PROVIDERS__0__NAME and so on",
                ))
            }
        }
    }

    deserializer.deserialize_any(Numbered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str, base_url: &str) -> ProviderSettings {
        ProviderSettings {
            name: name.to_owned(),
            base_url: base_url.to_owned(),
            api_key: Some(SecretString::from("sk-canary-canary".to_owned())),
            model: "gpt-test".to_owned(),
            timeout_secs: 20,
        }
    }

    #[test]
    fn the_defaults_are_usable_and_use_the_local_provider() {
        let settings = AiSettings::default();
        assert!(settings.providers.is_empty());
        assert!(settings.problems(true).is_empty());
        assert_eq!(settings.retry().max_attempts, 3);
    }

    #[test]
    fn the_api_key_never_appears_in_debug_output() {
        let settings = AiSettings {
            providers: vec![provider("openai", "https://api.openai.com/v1")],
            ..AiSettings::default()
        };
        let printed = format!("{settings:?}");
        assert!(!printed.contains("canary"), "{printed}");
        assert!(printed.contains("REDACTED"));
    }

    #[test]
    fn problems_name_each_bad_provider_field() {
        let settings = AiSettings {
            providers: vec![
                provider("a", "ftp://example.com"),
                provider("a", "http://api.example.com/v1"),
                ProviderSettings {
                    model: String::new(),
                    ..provider("b b", "https://api.example.com")
                },
                provider("local", "local"),
            ],
            ..AiSettings::default()
        };
        let problems = settings.problems(true).join("\n");
        assert!(problems.contains("ai.providers.0.base_url"), "{problems}");
        assert!(problems.contains("used twice"), "{problems}");
        assert!(
            problems.contains("ai.providers.1.base_url is plain http"),
            "{problems}"
        );
        assert!(problems.contains("ai.providers.2.name"), "{problems}");
        assert!(problems.contains("ai.providers.2.model"), "{problems}");
        assert!(!problems.contains("ai.providers.3"), "{problems}");
        // Development allows plain http (a local test server).
        assert!(!settings.problems(false).join("\n").contains("plain http"));
        let loopback = AiSettings {
            providers: vec![provider("dev", "http://127.0.0.1:8000/v1")],
            ..AiSettings::default()
        };
        assert!(loopback.problems(true).is_empty());
    }
}
