//! The local provider: deterministic replies by rule, with token counts, no key and no
//! network, so everything runs on a laptop and tests know what the answer will be.

use std::time::Duration;

use async_trait::async_trait;

use crate::provider::{CompletionStream, Provider, ProviderError};
use crate::wire::{ChatRequest, Completion, Role, Usage, estimate_tokens};

/// Answers by rule from the last user message: a greeting is greeted, thanks acknowledged, a
/// question answered with a question back, anything else reflected. The same conversation
/// always gets the same reply. Usage is counted as about four characters a token.
#[derive(Debug, Clone)]
pub struct LocalProvider {
    name: String,
}

impl Default for LocalProvider {
    fn default() -> Self {
        Self::new("local")
    }
}

impl LocalProvider {
    /// The local provider, named `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The reply to a conversation.
    pub fn reply(request: &ChatRequest) -> String {
        let last = request
            .messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map_or("", |m| m.content.trim());
        let words: Vec<&str> = last.split_whitespace().collect();
        let lower = last.to_lowercase();
        let first = lower
            .split(|c: char| !c.is_alphanumeric())
            .find(|w| !w.is_empty())
            .unwrap_or("");
        let variant = fnv1a(last.as_bytes()) % 3;
        let topic = quote(&words, 8);
        let reply = if words.is_empty() {
            "I'm listening. What would you like to talk about?".to_owned()
        } else if matches!(first, "hello" | "hi" | "hey" | "greetings" | "howdy")
            || lower.starts_with("good morning")
            || lower.starts_with("good evening")
        {
            [
                "Hello! What would you like to learn about today?",
                "Hi there! What shall we work on?",
                "Hey! Good to see you. What's on your mind?",
            ][variant as usize]
                .to_owned()
        } else if lower.contains("thank") {
            "You're welcome! Anything else?".to_owned()
        } else if last.ends_with('?') {
            match variant {
                0 => format!(
                    "Good question: \"{topic}\". What do you already know about it? Let's start there."
                ),
                1 => format!(
                    "Let's think about \"{topic}\" step by step. What would be the first step?"
                ),
                _ => {
                    format!("\"{topic}\" is worth breaking down. Which part is least clear to you?")
                }
            }
        } else {
            match variant {
                0 => format!("I hear you: \"{topic}\". Tell me more."),
                1 => format!("Interesting: \"{topic}\". Why do you think that is?"),
                _ => format!("You said \"{topic}\". Can you give an example?"),
            }
        };
        // Bounded like a real model by max_tokens (about four characters a token).
        let budget = (request.max_tokens as usize).saturating_mul(4).max(4);
        if reply.chars().count() > budget {
            reply.chars().take(budget).collect()
        } else {
            reply
        }
    }

    fn usage(request: &ChatRequest, text: &str) -> Usage {
        crate::provider::estimated_usage(request, text)
    }
}

/// The first `n` words, with an ellipsis when there were more.
fn quote(words: &[&str], n: usize) -> String {
    let mut text = words.iter().take(n).copied().collect::<Vec<_>>().join(" ");
    text = text.trim_end_matches(['?', '.', '!']).to_owned();
    if words.len() > n {
        text.push('…');
    }
    text
}

/// FNV-1a: a fixed, tiny hash, so the choice of variant never changes between releases.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[async_trait]
impl Provider for LocalProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn model(&self) -> &str {
        "hearth-local"
    }

    fn kind(&self) -> &'static str {
        "local"
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(1)
    }

    async fn complete(
        &self,
        request: &ChatRequest,
        _timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        let text = Self::reply(request);
        Ok(Completion {
            usage: Self::usage(request, &text),
            usage_reported: true,
            text,
            provider: self.name.clone(),
            model: self.model().to_owned(),
        })
    }

    async fn stream(
        &self,
        request: &ChatRequest,
        _timeout: Duration,
    ) -> Result<Box<dyn CompletionStream>, ProviderError> {
        let text = Self::reply(request);
        let usage = Self::usage(request, &text);
        // Word by word, each piece keeping its following space, as models stream.
        let mut pieces: Vec<String> = text.split_inclusive(' ').map(str::to_owned).collect();
        pieces.reverse();
        Ok(Box::new(LocalStream {
            pieces,
            usage,
            output: estimate_tokens(&text),
        }))
    }
}

struct LocalStream {
    /// Remaining pieces, last first.
    pieces: Vec<String>,
    usage: Usage,
    output: u64,
}

#[async_trait]
impl CompletionStream for LocalStream {
    async fn next_delta(&mut self) -> Result<Option<String>, ProviderError> {
        Ok(self.pieces.pop())
    }

    fn usage(&self) -> Option<Usage> {
        self.pieces.is_empty().then_some(Usage {
            output_tokens: self.output,
            ..self.usage
        })
    }

    fn model(&self) -> &str {
        "hearth-local"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Message;

    fn ask(text: &str) -> ChatRequest {
        ChatRequest {
            messages: vec![
                Message::new(Role::System, "be nice"),
                Message::new(Role::User, text),
            ],
            max_tokens: 256,
        }
    }

    #[test]
    fn replies_follow_rules_and_are_deterministic() {
        assert!(LocalProvider::reply(&ask("Hello there")).starts_with('H'));
        assert_eq!(
            LocalProvider::reply(&ask("thanks a lot")),
            "You're welcome! Anything else?"
        );
        let question = LocalProvider::reply(&ask("What is a closure in Rust?"));
        assert!(question.contains("What is a closure in Rust"), "{question}");
        assert_eq!(
            question,
            LocalProvider::reply(&ask("What is a closure in Rust?"))
        );
        assert!(LocalProvider::reply(&ask("")).contains("listening"));
    }

    #[tokio::test]
    async fn the_stream_yields_the_same_text_and_usage_as_the_whole_answer() {
        let provider = LocalProvider::default();
        let request = ask("Explain ownership and borrowing to me please");
        let whole = provider
            .complete(&request, Duration::from_secs(1))
            .await
            .unwrap();
        assert!(whole.usage.input_tokens > 0 && whole.usage.output_tokens > 0);
        let mut stream = provider
            .stream(&request, Duration::from_secs(1))
            .await
            .unwrap();
        let mut text = String::new();
        let mut pieces = 0;
        while let Some(piece) = stream.next_delta().await.unwrap() {
            text.push_str(&piece);
            pieces += 1;
        }
        assert!(pieces > 3);
        assert_eq!(text, whole.text);
        assert_eq!(stream.usage(), Some(whole.usage));
    }

    #[test]
    fn replies_respect_max_tokens() {
        let mut request = ask("Tell me everything about the history of the Roman empire please");
        request.max_tokens = 2;
        assert!(LocalProvider::reply(&request).chars().count() <= 8);
    }
}
