//! Bounded-time fuzzing, with proptest, of the decoders that read untrusted bytes: JSON bodies
//! into every request type, query cursors and WebSocket client messages. They run with the
//! unit tests (a few hundred cases each, a few seconds in all): none may panic, and a refused
//! body names the field it refuses.
//!
//! Tokens are fuzzed where they are parsed, in `hearth-auth`'s `token` tests.

use proptest::prelude::*;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::extract::body::parse_json;
use crate::routes::{ai, auth, email, fairness, games};

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::from),
        "\\PC{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{1,10}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// The property names the OpenAPI document gives a request schema: what a client is told the
/// body may hold.
fn documented_fields(schema: &str) -> Vec<String> {
    static DOC: std::sync::LazyLock<Value> =
        std::sync::LazyLock::new(|| serde_json::to_value(crate::openapi::document()).unwrap());
    DOC["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("{schema} has no properties in the document"))
        .keys()
        .cloned()
        .collect()
}

/// An object mixing documented fields and unknown ones, with values of any type.
fn body_for(fields: Vec<String>) -> impl Strategy<Value = Map<String, Value>> {
    let key = prop_oneof![
        3 => prop::sample::select(fields),
        1 => "[a-z_]{1,10}",
    ];
    prop::collection::btree_map(key, json(), 0..5).prop_map(|m| m.into_iter().collect())
}

/// Parses `bytes` as `T`; on a refusal, checks it is a 400 or a 422 naming a field that is
/// documented or that the body actually holds.
fn check<T: DeserializeOwned>(bytes: &[u8], documented: &[String]) {
    let present: Vec<String> = serde_json::from_slice::<Map<String, Value>>(bytes)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    match parse_json::<T>(bytes) {
        Ok(_) | Err(ApiError::BadRequest(_)) => {}
        Err(ApiError::Validation(errors, _)) => {
            assert_eq!(errors.len(), 1, "{errors:?}");
            let field = &errors[0].field;
            let root = field
                .split(['.', '['])
                .next()
                .unwrap_or_default()
                .to_owned();
            let is_object = bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
            assert!(
                documented.contains(&root)
                    || present.contains(&root)
                    || (!is_object && field.is_empty()),
                "the refusal names `{field}`, which is neither documented ({documented:?}) nor sent ({present:?})"
            );
            assert!(!errors[0].message.is_empty());
        }
        Err(other) => panic!("a body parse answered {other:?}"),
    }
}

macro_rules! fuzz_body {
    ($name:ident, $type:ty, $schema:literal) => {
        proptest! {
            #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]
            #[test]
            fn $name(
                body in body_for(documented_fields($schema)),
                raw in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                let documented = documented_fields($schema);
                check::<$type>(&serde_json::to_vec(&body).unwrap(), &documented);
                check::<$type>(&raw, &documented);
            }
        }
    };
}

fuzz_body!(register_bodies, auth::RegisterRequest, "RegisterRequest");
fuzz_body!(login_bodies, auth::LoginRequest, "LoginRequest");
fuzz_body!(refresh_bodies, auth::RefreshRequest, "RefreshRequest");
fuzz_body!(logout_bodies, auth::LogoutRequest, "LogoutRequest");
fuzz_body!(
    change_password_bodies,
    auth::ChangePasswordRequest,
    "ChangePasswordRequest"
);
fuzz_body!(reset_bodies, auth::ResetRequest, "ResetRequest");
fuzz_body!(
    confirm_reset_bodies,
    auth::ConfirmResetRequest,
    "ConfirmResetRequest"
);
fuzz_body!(
    enroll_totp_bodies,
    auth::EnrollTotpRequest,
    "EnrollTotpRequest"
);
fuzz_body!(
    confirm_totp_bodies,
    auth::ConfirmTotpRequest,
    "ConfirmTotpRequest"
);
fuzz_body!(
    password_and_code_bodies,
    auth::PasswordAndCodeRequest,
    "PasswordAndCodeRequest"
);
fuzz_body!(
    verify_email_bodies,
    email::VerifyEmailRequest,
    "VerifyEmailRequest"
);
fuzz_body!(
    client_seed_bodies,
    fairness::ClientSeedRequest,
    "ClientSeedRequest"
);
fuzz_body!(spin_bodies, games::SpinRequest, "SpinRequest");
fuzz_body!(dice_bodies, games::DiceRollRequest, "DiceRollRequest");
fuzz_body!(
    roulette_bodies,
    games::RouletteSpinRequest,
    "RouletteSpinRequest"
);
fuzz_body!(
    blackjack_start_bodies,
    games::BlackjackStartRequest,
    "BlackjackStartRequest"
);
fuzz_body!(
    blackjack_action_bodies,
    games::BlackjackActionRequest,
    "BlackjackActionRequest"
);
fuzz_body!(ai_message_bodies, ai::SendBody, "SendBody");
fuzz_body!(
    campaign_bodies,
    hearth_app::campaigns::input::CampaignInput,
    "CampaignInput"
);
fuzz_body!(
    member_bodies,
    hearth_app::campaigns::input::MemberInput,
    "MemberInput"
);
fuzz_body!(
    session_bodies,
    hearth_app::campaigns::input::SessionInput,
    "SessionInput"
);
fuzz_body!(
    npc_bodies,
    hearth_app::campaigns::input::NpcInput,
    "NpcInput"
);
fuzz_body!(
    map_bodies,
    hearth_app::campaigns::input::MapInput,
    "MapInput"
);
fuzz_body!(
    timeline_bodies,
    hearth_app::campaigns::input::TimelineInput,
    "TimelineInput"
);

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// Ledger cursors: anything decodes or is refused, never panics; issued ones round-trip.
    #[test]
    fn ledger_cursors(text in "\\PC{0,40}", base64 in "[A-Za-z0-9_-]{0,40}", id in 1_i64..) {
        let _ = hearth_storage::Cursor::decode(&text);
        let _ = hearth_storage::Cursor::decode(&base64);
        let cursor = hearth_storage::Cursor::after_id(id);
        prop_assert_eq!(hearth_storage::Cursor::decode(&cursor.encode()).map(|c| c.id()), Ok(id));
    }

    /// Keyset cursors (campaign pages), the same way.
    #[test]
    fn keyset_cursors(text in "\\PC{0,200}", base64 in "[A-Za-z0-9_-]{0,160}", key: i64, id: u128) {
        use hearth_storage::campaign::KeyCursor;
        let _ = KeyCursor::decode(&text);
        let _ = KeyCursor::decode(&base64);
        let cursor = KeyCursor { key, id: uuid::Uuid::from_u128(id) };
        prop_assert_eq!(KeyCursor::decode(&cursor.encode()), Ok(cursor));
    }

    /// WebSocket client messages: arbitrary text, and objects with a `type` the server knows
    /// and any other members, are read or refused without a panic.
    #[test]
    fn websocket_messages(
        text in "\\PC{0,64}",
        kind in prop::sample::select(vec!["auth", "ping", "subscribe", "unsubscribe", "other"]),
        members in prop::collection::btree_map("[a-z]{1,8}", json(), 0..3),
    ) {
        let _ = crate::ws::message::parse(&text);
        let mut object: Map<String, Value> = members.into_iter().collect();
        object.insert("type".to_owned(), Value::from(kind));
        let text = Value::Object(object).to_string();
        match crate::ws::message::parse(&text) {
            Ok(message) => prop_assert_eq!(message.kind(), kind),
            Err(crate::ws::message::Unreadable::UnknownType) => prop_assert_eq!(kind, "other"),
            Err(crate::ws::message::Unreadable::Invalid(why)) => prop_assert!(!why.is_empty()),
        }
    }

    /// Subscription topics are checked by name: any text is allowed or not, without a panic.
    #[test]
    fn websocket_topics(topic in "\\PC{0,48}") {
        let _ = crate::ws::message::topic_allowed(&topic);
    }
}
