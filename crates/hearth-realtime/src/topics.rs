//! Topic names. A topic is a plain string; these are the ones Hearth publishes on.

use uuid::Uuid;

/// One user's private topic (`user:<id>`): `wallet` pushes after each ledger movement. Only
/// that user's sockets may subscribe (the transport subscribes them itself).
pub fn user(id: &Uuid) -> String {
    format!("user:{id}")
}

/// Big wins, for everyone who asks (`{"type":"big_win",…}`).
pub const BIG_WINS: &str = "big_wins";

/// One leaderboard's top entries (`leaderboard:<board>:<period>`).
pub fn leaderboard(board: &str, period: &str) -> String {
    format!("leaderboard:{board}:{period}")
}

/// Messages for the transports themselves, never forwarded to clients: revocations
/// ([`crate::control::Revoked`]), on which every gateway closes the sockets concerned.
pub const CONTROL: &str = "control";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_have_their_documented_names() {
        let id = Uuid::from_u128(0x1234);
        assert_eq!(user(&id), "user:00000000-0000-0000-0000-000000001234");
        assert_eq!(
            leaderboard("biggest_win", "2026-W47"),
            "leaderboard:biggest_win:2026-W47"
        );
        assert_eq!(BIG_WINS, "big_wins");
        assert_eq!(CONTROL, "control");
    }
}
