//! Schemas of answers the handlers build as `serde_json::Value` (or from storage types that do
//! not depend on utoipa). They describe JSON only and are never constructed; the schema
//! fuzzer (`.ci/api-fuzz`) checks every answer against them, so a drift fails CI.
//!
//! Request types are not here: they derive `ToSchema` where they are defined.

#![allow(
    dead_code,
    reason = "these types describe JSON for the document and are never constructed"
)]

use utoipa::ToSchema;

/// An RFC 9457 problem: the body of every 4xx and 5xx. Extra members appear by kind: `errors`
/// on validation and conflicts, `password_strength` when a password is refused, `needed` and
/// `available` on `insufficient-balance`, `rule` on a rate limit, `totp_required`, `checks`.
#[derive(ToSchema)]
pub(crate) struct Problem {
    /// `urn:hearth:problem:<slug>`, stable: match on it.
    #[schema(example = "urn:hearth:problem:validation")]
    r#type: String,
    /// The status's reason phrase.
    #[schema(example = "Unprocessable Entity")]
    title: String,
    /// The HTTP status, repeated.
    #[schema(example = 422)]
    status: u16,
    /// For humans; generic on a 500.
    #[schema(example = "bet: must be between 1 and 10000")]
    detail: String,
    /// The request id (also in `x-request-id`); quote it when reporting a problem.
    request_id: String,
    /// One entry per invalid field (validation, and a taken username or e-mail).
    errors: Option<Vec<crate::error::FieldError>>,
}

/// An account (`POST /v1/auth/register`; `GET /v1/me` adds `email_verified`).
#[derive(ToSchema)]
pub(crate) struct Account {
    id: uuid::Uuid,
    #[schema(example = "alice")]
    username: String,
    #[schema(example = "alice@example.com")]
    email: String,
    /// `player` or `admin`.
    #[schema(example = "player")]
    role: String,
    /// RFC 3339, UTC.
    created_at: String,
    /// `GET /v1/me` only.
    email_verified: Option<bool>,
}

/// A token pair (`POST /v1/auth/login`, `POST /v1/auth/refresh`). In browser mode
/// (`cookies: true`) the tokens travel as `HttpOnly` cookies instead: the body has
/// `token_type: "Cookie"` and the `csrf_token`, and no tokens.
#[derive(ToSchema)]
pub(crate) struct TokenPair {
    /// Absent in browser mode.
    access_token: Option<String>,
    /// Absent in browser mode.
    refresh_token: Option<String>,
    /// `Bearer`, or `Cookie` in browser mode.
    #[schema(example = "Bearer")]
    token_type: String,
    /// Seconds the access token lives.
    #[schema(example = 900)]
    expires_in: u64,
    /// Seconds the refresh token lives.
    #[schema(example = 604800)]
    refresh_expires_in: u64,
    /// Browser mode only: send it as `X-CSRF-Token` on requests that change state.
    csrf_token: Option<String>,
}

/// The caller's wallet.
#[derive(ToSchema)]
pub(crate) struct Wallet {
    user_id: uuid::Uuid,
    /// Coins.
    #[schema(example = 1000)]
    balance: i64,
    #[schema(example = "coins")]
    currency: String,
    /// RFC 3339, UTC.
    updated_at: String,
}

/// A page of ledger entries, newest first.
#[derive(ToSchema)]
pub(crate) struct LedgerPage {
    /// Ledger entries: `id` (integer), `kind`, `amount` (signed), `balance_after`, and the
    /// round and game when a round made them.
    #[schema(value_type = Vec<Object>)]
    items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// Daily closing balances, oldest first (UTC days).
#[derive(ToSchema)]
pub(crate) struct History {
    #[schema(value_type = Vec<Object>)]
    days: Vec<serde_json::Value>,
}

/// A leaderboard.
#[derive(ToSchema)]
pub(crate) struct Leaderboard {
    /// `balance`, `biggest_win` or `net_won`.
    board: String,
    /// `daily`, `weekly` or `all_time`.
    period: String,
    /// The period's id, such as `2026-W47`.
    period_id: String,
    /// Ranked entries, best first.
    #[schema(value_type = Vec<Object>)]
    entries: Vec<serde_json::Value>,
}

/// A round as every game route answers it; the game's own fields (slots: reels, stops,
/// multiplier; dice: roll, target, direction; roulette: pocket and bets; blackjack: `hand`)
/// are members too.
#[derive(ToSchema)]
pub(crate) struct Round {
    round_id: uuid::Uuid,
    /// `settled`, or `open` for a blackjack hand waiting for an action.
    status: String,
    /// `slots`, `dice`, `roulette` or `blackjack`.
    game: String,
    bet: i64,
    win: i64,
    /// The balance after the round.
    balance: i64,
    /// The commitment to the server seed the round used.
    server_seed_hash: String,
    client_seed: String,
    nonce: u64,
    /// RFC 3339, UTC.
    created_at: String,
}

/// A new TOTP secret (`POST /v1/auth/totp/enroll`).
#[derive(ToSchema)]
pub(crate) struct TotpEnrollment {
    /// Base32.
    secret: String,
    /// For a QR code.
    otpauth_uri: String,
}

/// A new conversation (`POST /v1/ai/conversations`).
#[derive(ToSchema)]
pub(crate) struct Conversation {
    id: uuid::Uuid,
}

/// A page of a keyset-paged list.
#[derive(ToSchema)]
pub(crate) struct Page {
    #[schema(value_type = Vec<Object>)]
    items: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// One roulette bet: `{"kind": "red", "amount": 5}`.
#[derive(ToSchema)]
pub(crate) struct RouletteBet {
    /// `straight`, `split`, `street`, `corner`, `line`, `dozen`, `column`, `red`, `black`,
    /// `odd`, `even`, `low` or `high`.
    #[schema(example = "red")]
    kind: String,
    /// The pockets for inside bets, `1` to `3` for dozen and column, empty for outside bets.
    #[schema(value_type = Option<Vec<u8>>)]
    numbers: Vec<u8>,
    /// Coins staked on this bet.
    #[schema(example = 5)]
    amount: i64,
}
