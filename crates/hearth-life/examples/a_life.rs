//! Lives one life from the starter catalogue and prints its story.
//!
//! Usage: `cargo run -p hearth-life --example a_life [CLIENT_SEED]` (default `example`).
//! Questions are answered with their first choice, or a sentence for free text; conversations
//! get their fallback line, as when no AI provider answers. The same client seed always prints
//! the same life.

#![allow(clippy::print_stdout)]

use std::process::ExitCode;

use hearth_domain::fairness::{ClientSeed, ServerSeed};
use hearth_life::{Answer, AnswerForm, Catalogue, Happening, Life};

fn main() -> ExitCode {
    let client = std::env::args().nth(1).unwrap_or_else(|| "example".into());
    let catalogue = match Catalogue::starter() {
        Ok(catalogue) => catalogue,
        Err(err) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };
    let Ok(client) = ClientSeed::parse(&client) else {
        eprintln!("the client seed must be 1 to 64 printable ASCII characters without ':'");
        return ExitCode::FAILURE;
    };
    let mut life = Life::new(&catalogue, ServerSeed::from_bytes([1; 32]), client);
    while life.ended().is_none() {
        let report = match life.tick(&catalogue) {
            Ok(report) => report,
            Err(err) => {
                eprintln!("{err}");
                return ExitCode::FAILURE;
            }
        };
        let age = report.day / 365;
        for happening in report.happenings {
            match happening {
                Happening::Event {
                    event,
                    description,
                    question,
                    conversation,
                    ..
                } => {
                    println!("age {age:>3}: {description}");
                    if let Some(question) = question {
                        let answer = match &question.answer_with {
                            AnswerForm::Choices(choices) => {
                                println!("         {} -> {}", question.prompt, choices[0].label);
                                Answer::Choice(choices[0].id.clone())
                            }
                            AnswerForm::FreeText { .. } => {
                                let text = "Thank you, Mum and Dad. I work hard.";
                                println!("         {} -> \"{text}\"", question.prompt);
                                Answer::Text(text.into())
                            }
                        };
                        if let Err(err) = life.answer(&catalogue, &event, &answer) {
                            eprintln!("{err}");
                            return ExitCode::FAILURE;
                        }
                    }
                    if let Some(conversation) = conversation {
                        match life.resolve_conversation(&catalogue, conversation.id, None) {
                            Ok(line) => println!("         {}", line.text),
                            Err(err) => {
                                eprintln!("{err}");
                                return ExitCode::FAILURE;
                            }
                        }
                    }
                }
                Happening::Ended { cause } => println!("age {age:>3}: the end ({cause})"),
            }
        }
    }
    let stats = life.stats();
    println!(
        "final stats: health {}, happiness {}, smarts {}, looks {}, money {}",
        stats.health, stats.happiness, stats.smarts, stats.looks, stats.money
    );
    ExitCode::SUCCESS
}
