//! AI chat conversations: owned by their user (others see nothing and write nothing), messages
//! stored in order with their usage, paged oldest first, and the recent ones for context.

use hearth_storage::{ChatRole, Cursor, NewChatMessage, StorageError};
use hearth_test_support::{TestDb, backend_suite, new_user};
use uuid::Uuid;

backend_suite!(
    a_conversation_is_found_only_by_its_owner,
    messages_are_stored_in_order_with_their_usage,
    another_users_conversation_cannot_be_written_or_read,
    pages_run_oldest_first_and_the_cursor_continues_them,
    recent_messages_are_the_last_ones_oldest_first,
    an_exchange_is_stored_whole_or_not_at_all,
);

async fn user(t: &TestDb, name: &str) -> Uuid {
    t.db.create_user(new_user(name, 0)).await.unwrap().id
}

fn answer(text: &str, cost: u64) -> NewChatMessage {
    NewChatMessage {
        role: ChatRole::Assistant,
        content: text.to_owned(),
        provider: Some("local".to_owned()),
        model: Some("hearth-local".to_owned()),
        input_tokens: 12,
        output_tokens: 5,
        cost_micros: cost,
    }
}

async fn a_conversation_is_found_only_by_its_owner(t: &TestDb) {
    let (alice, bob) = (user(t, "alice").await, user(t, "bob").await);
    let conversation = t.db.create_conversation(alice).await.unwrap();
    assert_eq!(conversation.user_id, alice);
    assert_eq!(
        t.db.conversation(alice, conversation.id).await.unwrap(),
        Some(conversation.clone())
    );
    assert_eq!(t.db.conversation(bob, conversation.id).await.unwrap(), None);
    assert_eq!(
        t.db.conversation(alice, Uuid::now_v7()).await.unwrap(),
        None
    );
}

async fn messages_are_stored_in_order_with_their_usage(t: &TestDb) {
    let alice = user(t, "alice").await;
    let c = t.db.create_conversation(alice).await.unwrap();
    let stored =
        t.db.append_chat_messages(
            alice,
            c.id,
            &[NewChatMessage::user("What is 2 + 2?"), answer("4.", 1_234)],
        )
        .await
        .unwrap();
    assert_eq!(stored.len(), 2);
    assert!(stored[0].id < stored[1].id);
    assert_eq!(stored[0].role, ChatRole::User);
    assert_eq!(stored[0].content, "What is 2 + 2?");
    assert_eq!(
        (stored[0].provider.as_deref(), stored[0].cost_micros),
        (None, 0)
    );
    assert_eq!(stored[1].role, ChatRole::Assistant);
    assert_eq!(stored[1].provider.as_deref(), Some("local"));
    assert_eq!(stored[1].model.as_deref(), Some("hearth-local"));
    assert_eq!((stored[1].input_tokens, stored[1].output_tokens), (12, 5));
    assert_eq!(stored[1].cost_micros, 1_234);
    assert_eq!(stored[1].conversation_id, c.id);
    let page = t.db.chat_messages(alice, c.id, None, 10).await.unwrap();
    assert_eq!(page.items, stored);
    assert_eq!(page.next_cursor, None);
}

async fn another_users_conversation_cannot_be_written_or_read(t: &TestDb) {
    let (alice, mallory) = (user(t, "alice").await, user(t, "mallory").await);
    let c = t.db.create_conversation(alice).await.unwrap();
    t.db.append_chat_messages(alice, c.id, &[NewChatMessage::user("secret")])
        .await
        .unwrap();
    assert!(matches!(
        t.db.append_chat_messages(mallory, c.id, &[NewChatMessage::user("hi")])
            .await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        t.db.chat_messages(mallory, c.id, None, 10).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        t.db.recent_chat_messages(mallory, c.id, 10).await,
        Err(StorageError::NotFound)
    ));
    let page = t.db.chat_messages(alice, c.id, None, 10).await.unwrap();
    assert_eq!(page.items.len(), 1, "nothing was written by the other user");
}

async fn pages_run_oldest_first_and_the_cursor_continues_them(t: &TestDb) {
    let alice = user(t, "alice").await;
    let c = t.db.create_conversation(alice).await.unwrap();
    let other = t.db.create_conversation(alice).await.unwrap();
    for i in 0..5 {
        t.db.append_chat_messages(alice, c.id, &[NewChatMessage::user(format!("m{i}"))])
            .await
            .unwrap();
        t.db.append_chat_messages(alice, other.id, &[NewChatMessage::user("elsewhere")])
            .await
            .unwrap();
    }
    let first = t.db.chat_messages(alice, c.id, None, 2).await.unwrap();
    let texts = |items: &[hearth_storage::ChatMessage]| {
        items.iter().map(|m| m.content.clone()).collect::<Vec<_>>()
    };
    assert_eq!(texts(&first.items), ["m0", "m1"]);
    let cursor = first.next_cursor.unwrap();
    let cursor = Cursor::decode(&cursor.encode()).unwrap();
    let second =
        t.db.chat_messages(alice, c.id, Some(cursor), 2)
            .await
            .unwrap();
    assert_eq!(texts(&second.items), ["m2", "m3"]);
    let third =
        t.db.chat_messages(alice, c.id, second.next_cursor, 2)
            .await
            .unwrap();
    assert_eq!(texts(&third.items), ["m4"]);
    assert_eq!(third.next_cursor, None);
    // The page size is clamped.
    let all = t.db.chat_messages(alice, c.id, None, 0).await.unwrap();
    assert_eq!(all.items.len(), 1);
}

async fn recent_messages_are_the_last_ones_oldest_first(t: &TestDb) {
    let alice = user(t, "alice").await;
    let c = t.db.create_conversation(alice).await.unwrap();
    for i in 0..6 {
        t.db.append_chat_messages(alice, c.id, &[NewChatMessage::user(format!("m{i}"))])
            .await
            .unwrap();
    }
    let recent = t.db.recent_chat_messages(alice, c.id, 3).await.unwrap();
    let texts: Vec<_> = recent.iter().map(|m| m.content.as_str()).collect();
    assert_eq!(texts, ["m3", "m4", "m5"]);
    assert!(
        t.db.recent_chat_messages(alice, c.id, 0)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn an_exchange_is_stored_whole_or_not_at_all(t: &TestDb) {
    let alice = user(t, "alice").await;
    let c = t.db.create_conversation(alice).await.unwrap();
    // The second message breaks a CHECK (empty content): the first must not stay behind.
    let result =
        t.db.append_chat_messages(
            alice,
            c.id,
            &[NewChatMessage::user("question"), answer("", 1)],
        )
        .await;
    assert!(result.is_err());
    let page = t.db.chat_messages(alice, c.id, None, 10).await.unwrap();
    assert!(page.items.is_empty(), "{:?}", page.items);
}
