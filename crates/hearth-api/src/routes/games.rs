//! Game rounds.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use hearth_domain::fairness::FairRng;
use hearth_domain::games::{dice, roulette, slots};
use hearth_observability::metrics::names;
use hearth_storage::{Played, RoundPlay, RoundRequest, SettledRound};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::ApiError;
use crate::extract::{ApiJson, AuthUser};
use crate::idempotency::{IDEMPOTENT_REPLAYED, IdempotencyKey};
use crate::state::AppState;

/// `POST /v1/games/slots/spin`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpinRequest {
    bet: i64,
}

/// A settled round as every game route answers it.
#[derive(Serialize)]
pub(crate) struct RoundResponse {
    round_id: uuid::Uuid,
    game: String,
    bet: i64,
    win: i64,
    balance: i64,
    /// The game's outcome fields (for slots: reels, stops, multiplier), flattened in.
    #[serde(flatten)]
    detail: serde_json::Map<String, Value>,
    server_seed_hash: String,
    client_seed: String,
    nonce: u64,
    #[serde(with = "time::serde::rfc3339")]
    created_at: time::OffsetDateTime,
}

impl From<SettledRound> for RoundResponse {
    fn from(round: SettledRound) -> Self {
        let detail = match round.detail {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        Self {
            round_id: round.round_id,
            game: round.game,
            bet: round.bet,
            win: round.win,
            balance: round.balance,
            detail,
            server_seed_hash: round.server_seed_hash,
            client_seed: round.client_seed,
            nonce: round.nonce,
            created_at: round.created_at,
        }
    }
}

/// Spins the slots: debits the bet, credits the win, in one transaction.
#[tracing::instrument(skip_all, fields(bet = request.bet), err(level = "debug"))]
pub(crate) async fn spin_slots(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<SpinRequest>,
) -> Result<Response, ApiError> {
    let idempotency = key.for_request("POST /v1/games/slots/spin", &request)?;
    let allowed = &state.settings.games.slots.bets;
    if !allowed.contains(&request.bet) {
        let list = allowed
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        return Err(ApiError::field("bet", format!("must be one of {list}")));
    }
    let play = |rng: &mut hearth_domain::fairness::FairRng<'_>| {
        let outcome = slots::spin(rng, request.bet)?;
        Ok(RoundPlay {
            win: outcome.win,
            detail: serde_json::json!({
                "reels": outcome.reels,
                "stops": outcome.stops,
                "multiplier": outcome.multiplier,
            }),
        })
    };
    let round = state
        .db
        .play_round(RoundRequest {
            user_id: claims.sub,
            round_id: uuid::Uuid::now_v7(),
            game: "slots",
            bet: request.bet,
            play: &play,
            idempotency,
        })
        .await?;
    Ok(round_response(round))
}

/// The response for a played round; a replay carries `Idempotent-Replayed: true` and is not
/// counted again in the metrics.
pub(crate) fn round_response(played: Played<SettledRound>) -> Response {
    if played.replayed {
        let mut response = Json(RoundResponse::from(played.value)).into_response();
        response.headers_mut().insert(
            IDEMPOTENT_REPLAYED.clone(),
            HeaderValue::from_static("true"),
        );
        return response;
    }
    record_round(&played.value);
    Json(RoundResponse::from(played.value)).into_response()
}

fn record_round(round: &SettledRound) {
    let game = round.game.clone();
    metrics::counter!(names::GAME_ROUNDS, "game" => game.clone()).increment(1);
    metrics::counter!(names::GAME_WAGERED, "game" => game.clone())
        .increment(u64::try_from(round.bet).unwrap_or(0));
    metrics::counter!(names::GAME_PAID, "game" => game)
        .increment(u64::try_from(round.win).unwrap_or(0));
}

/// `POST /v1/games/dice/roll`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiceRollRequest {
    bet: i64,
    /// In hundredths: 5000 means 50.00.
    target: u32,
    direction: dice::Direction,
}

/// Rolls the dice: win when the roll lands on the chosen side of the target.
#[tracing::instrument(skip_all, fields(bet = request.bet), err(level = "debug"))]
pub(crate) async fn roll_dice(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<DiceRollRequest>,
) -> Result<Response, ApiError> {
    let settings = &state.settings.games.dice;
    if !(settings.min_bet..=settings.max_bet).contains(&request.bet) {
        let message = format!(
            "must be between {} and {}",
            settings.min_bet, settings.max_bet
        );
        return Err(ApiError::field("bet", message));
    }
    let edge = dice::HouseEdge::from_basis_points(settings.house_edge_bp)
        .map_err(|e| ApiError::internal(anyhow::anyhow!("house edge setting: {e}")))?;
    let dice_request = dice::DiceRequest {
        amount: request.bet,
        direction: request.direction,
        target: request.target,
    };
    let bet = dice::DiceBet::new(&dice_request, edge).map_err(|error| {
        let field = match error {
            dice::DiceError::TargetOutOfRange { .. } | dice::DiceError::MultiplierTooLow { .. } => {
                "target"
            }
            _ => "bet",
        };
        ApiError::field(field, error.to_string())
    })?;
    let idempotency = key.for_request("POST /v1/games/dice/roll", &request)?;
    let play = |rng: &mut FairRng<'_>| {
        let outcome = dice::roll(rng, &bet);
        Ok(RoundPlay {
            win: outcome.payout,
            detail: to_detail(&outcome),
        })
    };
    let round = state
        .db
        .play_round(RoundRequest {
            user_id: claims.sub,
            round_id: uuid::Uuid::now_v7(),
            game: "dice",
            bet: request.bet,
            play: &play,
            idempotency,
        })
        .await?;
    Ok(round_response(round))
}

/// `POST /v1/games/roulette/spin`.
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouletteSpinRequest {
    bets: Vec<roulette::BetRequest>,
}

/// Spins a European wheel for one or more bets.
#[tracing::instrument(skip_all, fields(bets = request.bets.len()), err(level = "debug"))]
pub(crate) async fn spin_roulette(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<RouletteSpinRequest>,
) -> Result<Response, ApiError> {
    let settings = &state.settings.games.roulette;
    let bets = roulette::Bets::validate(&request.bets).map_err(|error| match &error {
        roulette::RouletteError::InvalidBet { index, problem } => {
            ApiError::field(format!("bets[{index}]"), problem.to_string())
        }
        _ => ApiError::field("bets", error.to_string()),
    })?;
    if let Some((index, _)) = request
        .bets
        .iter()
        .enumerate()
        .find(|(_, bet)| bet.amount < settings.min_bet)
    {
        let message = format!("amount must be at least {}", settings.min_bet);
        return Err(ApiError::field(format!("bets[{index}].amount"), message));
    }
    let total = bets.total_stake();
    if total > settings.max_total_bet {
        let message = format!("the total stake {total} exceeds {}", settings.max_total_bet);
        return Err(ApiError::field("bets", message));
    }
    let idempotency = key.for_request("POST /v1/games/roulette/spin", &request)?;
    let play = |rng: &mut FairRng<'_>| {
        let outcome = roulette::spin(rng, &bets);
        Ok(RoundPlay {
            win: outcome.total_payout,
            detail: to_detail(&outcome),
        })
    };
    let round = state
        .db
        .play_round(RoundRequest {
            user_id: claims.sub,
            round_id: uuid::Uuid::now_v7(),
            game: "roulette",
            bet: total,
            play: &play,
            idempotency,
        })
        .await?;
    Ok(round_response(round))
}

/// A game's outcome as the round's stored and returned detail.
fn to_detail(outcome: &impl Serialize) -> Value {
    // Outcomes are plain structs of numbers, strings and enums: serialising cannot fail.
    serde_json::to_value(outcome).unwrap_or(Value::Null)
}
