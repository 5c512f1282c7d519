//! `hearth-gateway verify-round`: re-derives a round offline from what
//! `GET /v1/fairness/rounds/{round_id}` returned, once the server seed is revealed.

use anyhow::{Context as _, bail, ensure};
use hearth_domain::fairness::{ClientSeed, FairRng, RandomSource, ServerSeed};
use hearth_domain::games::{blackjack, dice, roulette, slots};
use serde_json::{Value, json};

/// What was checked, for the report.
pub(crate) struct Verified {
    pub(crate) game: String,
    pub(crate) summary: String,
}

/// Re-derives the round and compares it with the record.
///
/// # Errors
/// A readable reason when the record is incomplete, the seed does not match its commitment,
/// or the outcome differs.
pub(crate) fn verify(record: &Value) -> anyhow::Result<Verified> {
    let text = |field: &str| {
        record[field]
            .as_str()
            .with_context(|| format!("the record has no {field:?}"))
    };
    let game = text("game")?.to_owned();
    let Some(seed_hex) = record["server_seed"].as_str() else {
        bail!(
            "the server seed is not revealed yet: rotate your seed (POST /v1/fairness/rotate), then fetch the round again"
        );
    };
    let seed = ServerSeed::from_hex(seed_hex).context("server_seed is not 64 hex digits")?;
    ensure!(
        seed.matches_commitment(text("server_seed_hash")?),
        "the revealed server seed does not hash to the commitment published before play"
    );
    let client = ClientSeed::parse(text("client_seed")?).context("client_seed is invalid")?;
    let nonce = record["nonce"]
        .as_u64()
        .context("the record has no nonce")?;
    let win = record["win"].as_i64().context("the record has no win")?;
    let detail = &record["detail"];
    let mut rng = FairRng::new(&seed, &client, nonce);

    let summary = match game.as_str() {
        "slots" => {
            let bet = record["bet"].as_i64().context("the record has no bet")?;
            let outcome = slots::spin(&mut rng, bet)?;
            ensure!(
                json!(outcome.reels) == detail["reels"],
                "the reels differ: derived {:?}",
                outcome.reels
            );
            ensure!(
                outcome.win == win,
                "the win differs: derived {}, recorded {win}",
                outcome.win
            );
            format!(
                "reels {:?}, multiplier {}, win {win}",
                outcome.reels, outcome.multiplier
            )
        }
        "dice" => {
            let roll = rng.below(dice::ROLLS);
            ensure!(
                json!(roll) == detail["roll"],
                "the roll differs: derived {roll}"
            );
            let multiplier = detail["multiplier"].as_i64().context("no multiplier")?;
            let amount = detail["amount"].as_i64().context("no amount")?;
            let direction: dice::Direction = serde_json::from_value(detail["direction"].clone())?;
            let target = u32::try_from(detail["target"].as_u64().context("no target")?)?;
            let won = direction.wins(roll, target);
            let payout = if won { amount * multiplier / 10_000 } else { 0 };
            ensure!(
                payout == win,
                "the payout differs: derived {payout}, recorded {win}"
            );
            format!("roll {roll} ({direction} {target}), payout {payout}")
        }
        "roulette" => {
            let requests: Vec<roulette::BetRequest> = detail["bets"]
                .as_array()
                .context("no bets")?
                .iter()
                .map(|bet| {
                    let mut request = json!({ "kind": bet["kind"], "amount": bet["amount"] });
                    // Outside bets carry no numbers.
                    if !bet["numbers"].is_null() {
                        request["numbers"] = bet["numbers"].clone();
                    }
                    serde_json::from_value(request)
                })
                .collect::<Result<_, _>>()?;
            let bets = roulette::Bets::validate(&requests)?;
            let outcome = roulette::spin(&mut rng, &bets);
            ensure!(
                json!(outcome.pocket) == detail["pocket"],
                "the pocket differs: derived {}",
                outcome.pocket
            );
            ensure!(
                outcome.total_payout == win,
                "the payout differs: derived {}",
                outcome.total_payout
            );
            format!("pocket {}, payout {win}", outcome.pocket)
        }
        "blackjack" => {
            let hand_record = &detail["hand"];
            let bet = hand_record["bet"].as_i64().context("no hand bet")?;
            let actions: Vec<blackjack::Action> =
                serde_json::from_value(hand_record["actions"].clone())?;
            let mut hand = blackjack::Hand::deal(&mut rng, bet)?;
            for action in &actions {
                hand.apply(*action)?;
            }
            ensure!(
                json!(hand.full_view()) == *hand_record,
                "the cards differ from the recorded hand"
            );
            ensure!(
                hand.payout() == win,
                "the payout differs: derived {}",
                hand.payout()
            );
            format!(
                "{} actions, status {:?}, payout {win}",
                actions.len(),
                hand.status()
            )
        }
        other => bail!("unknown game {other:?}"),
    };
    Ok(Verified { game, summary })
}
