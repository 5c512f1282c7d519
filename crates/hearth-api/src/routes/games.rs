//! Game rounds.

use axum::Json;
use axum::extract::Path;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use hearth_domain::fairness::FairRng;
use hearth_domain::games::{GameError, blackjack, dice, roulette, slots};
use hearth_storage::{
    ActRequest, Played, RoundPlay, RoundRequest, SettledRound, Step, StorageError,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::extract::{ApiJson, AuthUser};
use crate::idempotency::{IDEMPOTENT_REPLAYED, IdempotencyKey};
use crate::state::AppState;

/// `POST /v1/games/slots/spin`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SpinRequest {
    bet: i64,
}

/// A settled round as every game route answers it.
#[derive(Serialize)]
pub(crate) struct RoundResponse {
    round_id: uuid::Uuid,
    /// `settled`, or `open` for a blackjack hand waiting for an action.
    status: String,
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
            status: round.status,
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
#[utoipa::path(
    post, path = "/v1/games/slots/spin", tag = "games", security(("bearer" = []), ("cookie" = [])),
    request_body = SpinRequest,
    responses(
        (status = 200, description = "The settled round.", body = crate::openapi::schemas::Round),
    )
)]
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
            state: None,
        })
    };
    play_new_round(&state, &claims, "slots", request.bet, &play, idempotency).await
}

/// Plays a single-request round and answers it.
async fn play_new_round(
    state: &AppState,
    claims: &hearth_auth::Claims,
    game: &'static str,
    bet: i64,
    play: &hearth_storage::model::PlayFn<'_>,
    idempotency: Option<hearth_storage::Idempotency>,
) -> Result<Response, ApiError> {
    let request = RoundRequest {
        user_id: claims.sub,
        round_id: uuid::Uuid::now_v7(),
        game,
        bet,
        play,
        idempotency,
    };
    let round = state.rounds.play(&claims.name, request).await?;
    Ok(round_response(round))
}

/// The response for a played round; a replay carries `Idempotent-Replayed: true` and is not
/// counted again in the metrics.
pub(crate) fn round_response(played: Played<SettledRound>) -> Response {
    let mut response = Json(RoundResponse::from(played.value)).into_response();
    if played.replayed {
        let marker = HeaderValue::from_static("true");
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED.clone(), marker);
    }
    response
}

/// `POST /v1/games/dice/roll`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DiceRollRequest {
    bet: i64,
    /// In hundredths: 5000 means 50.00.
    target: u32,
    #[schema(value_type = String, pattern = "^(over|under)$")]
    direction: dice::Direction,
}

/// Rolls the dice: win when the roll lands on the chosen side of the target.
#[tracing::instrument(skip_all, fields(bet = request.bet), err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/games/dice/roll", tag = "games", security(("bearer" = []), ("cookie" = [])),
    request_body = DiceRollRequest,
    responses(
        (status = 200, description = "The settled round.", body = crate::openapi::schemas::Round),
    )
)]
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
            state: None,
        })
    };
    play_new_round(&state, &claims, "dice", request.bet, &play, idempotency).await
}

/// `POST /v1/games/roulette/spin`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouletteSpinRequest {
    #[schema(value_type = Vec<crate::openapi::schemas::RouletteBet>, min_items = 1)]
    bets: Vec<roulette::BetRequest>,
}

/// Spins a European wheel for one or more bets.
#[tracing::instrument(skip_all, fields(bets = request.bets.len()), err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/games/roulette/spin", tag = "games", security(("bearer" = []), ("cookie" = [])),
    request_body = RouletteSpinRequest,
    responses(
        (status = 200, description = "The settled round.", body = crate::openapi::schemas::Round),
    )
)]
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
            state: None,
        })
    };
    play_new_round(&state, &claims, "roulette", total, &play, idempotency).await
}

/// A game's outcome as the round's stored and returned detail.
fn to_detail(outcome: &impl Serialize) -> Value {
    // Outcomes are plain structs of numbers, strings and enums: serialising cannot fail.
    serde_json::to_value(outcome).unwrap_or(Value::Null)
}

/// `POST /v1/games/blackjack`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlackjackStartRequest {
    bet: i64,
}

/// `POST /v1/games/blackjack/{round_id}/action`.
#[derive(Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlackjackActionRequest {
    #[schema(value_type = String, pattern = "^(hit|stand|double)$")]
    action: blackjack::Action,
}

/// What a blackjack hand stores and returns: the whole hand (shoe included) stays on the
/// server while it is open; the player sees their view, with the hole card hidden.
fn hand_progress(hand: &blackjack::Hand) -> Result<(Value, Option<Value>, i64), GameError> {
    if hand.is_over() {
        Ok((json!({ "hand": hand.full_view() }), None, hand.payout()))
    } else {
        let state = serde_json::to_value(hand).map_err(|_| GameError::CorruptState)?;
        Ok((json!({ "hand": hand.player_view() }), Some(state), 0))
    }
}

/// Deals a hand: the bet is debited now; naturals settle at once, other hands stay open.
#[tracing::instrument(skip_all, fields(bet = request.bet), err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/games/blackjack", tag = "games", security(("bearer" = []), ("cookie" = [])),
    request_body = BlackjackStartRequest,
    responses(
        (status = 200, description = "An open hand, or a settled natural.", body = crate::openapi::schemas::Round),
        (status = 409, description = "A hand is already open."),
    )
)]
pub(crate) async fn start_blackjack(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<BlackjackStartRequest>,
) -> Result<Response, ApiError> {
    let settings = &state.settings.games.blackjack;
    if !(settings.min_bet..=settings.max_bet).contains(&request.bet) || request.bet % 2 != 0 {
        let message = format!(
            "must be an even number between {} and {}",
            settings.min_bet, settings.max_bet
        );
        return Err(ApiError::field("bet", message));
    }
    let idempotency = key.for_request("POST /v1/games/blackjack", &request)?;
    let play = |rng: &mut FairRng<'_>| {
        let hand = blackjack::Hand::deal(rng, request.bet)?;
        let (detail, state, win) = hand_progress(&hand)?;
        Ok(RoundPlay { win, detail, state })
    };
    let round = state
        .rounds
        .play(
            &claims.name,
            RoundRequest {
                user_id: claims.sub,
                round_id: uuid::Uuid::now_v7(),
                game: "blackjack",
                bet: request.bet,
                play: &play,
                idempotency,
            },
        )
        .await
        .map_err(|error| match error {
            StorageError::Conflict { constraint } if constraint.contains("one_open") => {
                ApiError::Conflict("finish your open blackjack hand first".into(), None)
            }
            other => other.into(),
        })?;
    Ok(round_response(round))
}

/// Hits, stands or doubles on an open hand; a double debits the extra stake.
#[tracing::instrument(skip_all, fields(round_id = %round_id), err(level = "debug"))]
#[utoipa::path(
    post, path = "/v1/games/blackjack/{round_id}/action", tag = "games", security(("bearer" = []), ("cookie" = [])),
    params(("round_id" = String, Path, description = "The hand's round id.")),
    request_body = BlackjackActionRequest,
    responses(
        (status = 200, description = "The hand after the action.", body = crate::openapi::schemas::Round),
        (status = 404, description = "No such hand (or another user's)."),
        (status = 409, description = "The hand is over, or does not allow this action now."),
    )
)]
pub(crate) async fn act_blackjack(
    State(state): State<AppState>,
    AuthUser(claims): AuthUser,
    Path(round_id): Path<String>,
    key: IdempotencyKey,
    ApiJson(request): ApiJson<BlackjackActionRequest>,
) -> Result<Response, ApiError> {
    const MISSING: ApiError = ApiError::NotFound("no such blackjack hand");
    let round_id = uuid::Uuid::parse_str(&round_id).map_err(|_| MISSING)?;
    let route = format!("POST /v1/games/blackjack/{round_id}/action");
    let idempotency = key.for_request(&route, &request)?;
    let step = |stored: Value| {
        let mut hand: blackjack::Hand =
            serde_json::from_value(stored).map_err(|_| GameError::CorruptState)?;
        let extra_stake = hand.extra_stake(request.action)?;
        hand.apply(request.action)?;
        let (detail, state, win) = hand_progress(&hand)?;
        Ok(Step {
            extra_stake,
            state,
            win,
            detail,
        })
    };
    let round = state
        .rounds
        .act(
            &claims.name,
            ActRequest {
                user_id: claims.sub,
                round_id,
                game: "blackjack",
                step: &step,
                idempotency,
            },
        )
        .await
        .map_err(|error| match error {
            StorageError::NotFound => MISSING,
            StorageError::Conflict { .. } => ApiError::Conflict("this hand is over".into(), None),
            StorageError::Game(GameError::IllegalAction(illegal)) => {
                ApiError::Conflict(illegal.to_string(), None)
            }
            other => other.into(),
        })?;
    Ok(round_response(round))
}
