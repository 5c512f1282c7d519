//! Campaigns on both backends: creation with its owner as game master and the per-user limit,
//! members, versioned updates, the four kinds of children with their orders, `gm_only`
//! filtering and limits, keyset pages with inserts in between, and deletes that cascade.

use std::collections::HashSet;

use hearth_domain::campaign::{ChildKind, Role, SessionStatus};
use hearth_storage::StorageError;
use hearth_storage::campaign::{
    CAMPAIGN_LIMIT, CHILD_LIMIT, Campaign, ChildData, ChildQuery, KeyCursor, MapFields,
    NewCampaign, NpcFields, SESSION_NUMBER, STALE_VERSION, SessionFields, TimelineFields,
};
use hearth_test_support::{TestDb, backend_suite, new_user};
use serde_json::json;
use uuid::Uuid;

backend_suite!(
    a_new_campaign_has_its_owner_as_game_master_and_is_listed_for_them,
    the_campaign_limit_counts_owned_campaigns_only,
    members_are_added_by_username_changed_and_removed,
    updates_need_the_current_version,
    children_of_every_kind_are_created_read_updated_and_deleted,
    players_pages_skip_gm_only_children,
    sessions_are_numbered_uniquely_and_listed_by_number,
    timeline_entries_are_listed_by_position_and_can_move,
    pages_with_inserts_in_between_neither_repeat_nor_skip,
    a_child_is_found_only_under_its_own_campaign,
    the_child_limit_is_per_campaign_and_kind,
    deleting_a_campaign_deletes_its_members_and_children,
);

async fn user(t: &TestDb, name: &str) -> Uuid {
    t.db.create_user(new_user(name, 0)).await.unwrap().id
}

async fn campaign(t: &TestDb, owner: Uuid, name: &str) -> Campaign {
    t.db.create_campaign(
        NewCampaign {
            id: Uuid::now_v7(),
            owner_id: owner,
            name: name.into(),
            description: Some("<p>Intro</p>".into()),
        },
        100,
    )
    .await
    .unwrap()
}

fn npc(name: &str, gm_only: bool) -> ChildData {
    ChildData::Npc(NpcFields {
        name: name.into(),
        description: None,
        tags: vec!["elf".into()],
        stats: json!({"hp": 12}),
        gm_only,
    })
}

fn session(number: Option<i64>, title: &str) -> ChildData {
    ChildData::Session(SessionFields {
        number,
        title: title.into(),
        status: SessionStatus::Planned,
        scheduled_at: Some(time::macros::datetime!(2026-12-24 18:00 UTC)),
        notes: Some("<p>bring dice</p>".into()),
    })
}

fn entry(title: &str, position: Option<i64>) -> ChildData {
    ChildData::Timeline(TimelineFields {
        in_game_date: "1st of Frostfall".into(),
        title: title.into(),
        body: None,
        position,
    })
}

fn map(gm_only: bool) -> ChildData {
    ChildData::Map(MapFields {
        name: "Dungeon".into(),
        image_url: "https://maps.example.com/d.png".into(),
        grid_size: 32,
        markers: json!([{"x": 1, "y": 2}]),
        gm_only,
    })
}

async fn add(t: &TestDb, campaign: Uuid, data: ChildData) -> hearth_storage::campaign::Child {
    t.db.create_child(campaign, Uuid::now_v7(), &data, 1_000)
        .await
        .unwrap()
}

/// Every child of a kind, page by page, as a GM (`true`) or a player.
async fn all(t: &TestDb, campaign: Uuid, kind: ChildKind, gm: bool, limit: u32) -> Vec<Uuid> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let query = ChildQuery {
            kind,
            after,
            limit,
            include_gm_only: gm,
        };
        let page = t.db.children(campaign, query).await.unwrap();
        assert!(page.items.len() <= limit as usize);
        ids.extend(page.items.iter().map(|c| c.id));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => return ids,
        }
    }
}

async fn a_new_campaign_has_its_owner_as_game_master_and_is_listed_for_them(t: &TestDb) {
    let owner = user(t, "Gamemaster").await;
    let created = campaign(t, owner, "Curse of the Moon").await;
    assert_eq!(created.version, 1);
    assert_eq!(created.owner_id, owner);
    assert_eq!(created.description.as_deref(), Some("<p>Intro</p>"));
    assert_eq!(
        t.db.campaign(created.id).await.unwrap(),
        Some(created.clone())
    );
    assert_eq!(
        t.db.membership(created.id, owner).await.unwrap(),
        Some(Role::Gm)
    );
    let members = t.db.members(created.id).await.unwrap();
    assert_eq!(members.len(), 1);
    assert_eq!(
        (
            members[0].user_id,
            members[0].role,
            members[0].username.as_str()
        ),
        (owner, Role::Gm, "Gamemaster")
    );
    let page = t.db.campaigns_of(owner, None, 10).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].campaign, created);
    assert_eq!(page.items[0].role, Role::Gm);
    assert!(page.next_cursor.is_none());
    let stranger = user(t, "Stranger").await;
    assert_eq!(t.db.membership(created.id, stranger).await.unwrap(), None);
    assert!(
        t.db.campaigns_of(stranger, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn the_campaign_limit_counts_owned_campaigns_only(t: &TestDb) {
    let owner = user(t, "Owner").await;
    let other = user(t, "Other").await;
    let new = |owner| NewCampaign {
        id: Uuid::now_v7(),
        owner_id: owner,
        name: "C".into(),
        description: None,
    };
    t.db.create_campaign(new(owner), 2).await.unwrap();
    let joined = t.db.create_campaign(new(other), 2).await.unwrap();
    t.db.add_member(joined.id, "owner", Role::Player)
        .await
        .unwrap();
    t.db.create_campaign(new(owner), 2).await.unwrap();
    match t.db.create_campaign(new(owner), 2).await {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, CAMPAIGN_LIMIT),
        other => panic!("expected the limit, got {other:?}"),
    }
    assert_eq!(
        t.db.campaigns_of(owner, None, 10)
            .await
            .unwrap()
            .items
            .len(),
        3
    );
    assert!(matches!(
        t.db.create_campaign(new(Uuid::now_v7()), 2).await,
        Err(StorageError::NotFound)
    ));
}

async fn members_are_added_by_username_changed_and_removed(t: &TestDb) {
    let owner = user(t, "Keeper").await;
    let player = user(t, "Player_One").await;
    let c = campaign(t, owner, "Members").await;
    let added =
        t.db.add_member(c.id, " PLAYER_one ", Role::Player)
            .await
            .unwrap();
    assert_eq!((added.user_id, added.role), (player, Role::Player));
    assert_eq!(
        t.db.membership(c.id, player).await.unwrap(),
        Some(Role::Player)
    );
    let promoted = t.db.add_member(c.id, "player_one", Role::Gm).await.unwrap();
    assert_eq!(promoted.role, Role::Gm);
    assert_eq!(t.db.members(c.id).await.unwrap().len(), 2);
    assert!(matches!(
        t.db.add_member(c.id, "nobody", Role::Player).await,
        Err(StorageError::NotFound)
    ));
    assert!(matches!(
        t.db.add_member(Uuid::now_v7(), "player_one", Role::Player)
            .await,
        Err(StorageError::NotFound)
    ));
    assert!(t.db.remove_member(c.id, player).await.unwrap());
    assert!(!t.db.remove_member(c.id, player).await.unwrap());
    assert_eq!(t.db.membership(c.id, player).await.unwrap(), None);
}

async fn updates_need_the_current_version(t: &TestDb) {
    let owner = user(t, "Versioner").await;
    let c = campaign(t, owner, "Versions").await;
    let updated =
        t.db.update_campaign(c.id, 1, "Renamed", None)
            .await
            .unwrap();
    assert_eq!((updated.version, updated.name.as_str()), (2, "Renamed"));
    assert_eq!(updated.description, None);
    match t.db.update_campaign(c.id, 1, "Again", None).await {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, STALE_VERSION),
        other => panic!("expected a stale version, got {other:?}"),
    }
    assert!(matches!(
        t.db.update_campaign(Uuid::now_v7(), 1, "X", None).await,
        Err(StorageError::NotFound)
    ));

    let child = add(t, c.id, npc("Bram", false)).await;
    let changed =
        t.db.update_child(c.id, child.id, 1, &npc("Bram the Bold", true))
            .await
            .unwrap();
    assert_eq!(changed.version, 2);
    match t
        .db
        .update_child(c.id, child.id, 1, &npc("Late", false))
        .await
    {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, STALE_VERSION),
        other => panic!("expected a stale version, got {other:?}"),
    }
    assert!(matches!(
        t.db.update_child(c.id, Uuid::now_v7(), 1, &npc("X", false))
            .await,
        Err(StorageError::NotFound)
    ));
}

async fn children_of_every_kind_are_created_read_updated_and_deleted(t: &TestDb) {
    let owner = user(t, "Crafter").await;
    let c = campaign(t, owner, "Kinds").await;
    for data in [
        session(None, "Zero"),
        npc("Nim", true),
        map(false),
        entry("Dawn", None),
    ] {
        let kind = data.kind();
        let created = add(t, c.id, data.clone()).await;
        assert_eq!((created.campaign_id, created.version), (c.id, 1));
        let read = t.db.child(c.id, kind, created.id).await.unwrap().unwrap();
        assert_eq!(read, created);
        match (&data, &read.data) {
            (ChildData::Npc(want), ChildData::Npc(got)) => assert_eq!(want, got),
            (ChildData::Map(want), ChildData::Map(got)) => assert_eq!(want, got),
            (ChildData::Session(want), ChildData::Session(got)) => {
                assert_eq!(got.number, Some(1));
                assert_eq!(
                    (&want.title, want.status, want.scheduled_at),
                    (&got.title, got.status, got.scheduled_at)
                );
                assert_eq!(want.notes, got.notes);
            }
            (ChildData::Timeline(want), ChildData::Timeline(got)) => {
                assert_eq!(got.position, Some(1));
                assert_eq!(
                    (&want.title, &want.in_game_date),
                    (&got.title, &got.in_game_date)
                );
            }
            other => panic!("kind changed: {other:?}"),
        }
        let updated = t.db.update_child(c.id, created.id, 1, &data).await.unwrap();
        assert_eq!(updated.version, 2);
        assert!(t.db.delete_child(c.id, kind, created.id).await.unwrap());
        assert!(!t.db.delete_child(c.id, kind, created.id).await.unwrap());
        assert_eq!(t.db.child(c.id, kind, created.id).await.unwrap(), None);
    }
}

async fn players_pages_skip_gm_only_children(t: &TestDb) {
    let owner = user(t, "Hider").await;
    let c = campaign(t, owner, "Secrets").await;
    let mut visible = Vec::new();
    for i in 0..7 {
        let child = add(t, c.id, npc(&format!("N{i}"), i % 2 == 0)).await;
        if i % 2 != 0 {
            visible.push(child.id);
        }
        add(t, c.id, map(i % 3 == 0)).await;
    }
    assert_eq!(all(t, c.id, ChildKind::Npc, false, 2).await, visible);
    assert_eq!(all(t, c.id, ChildKind::Npc, true, 2).await.len(), 7);
    assert_eq!(all(t, c.id, ChildKind::Map, false, 3).await.len(), 4);
    assert_eq!(all(t, c.id, ChildKind::Map, true, 3).await.len(), 7);
}

async fn sessions_are_numbered_uniquely_and_listed_by_number(t: &TestDb) {
    let owner = user(t, "Numberer").await;
    let c = campaign(t, owner, "Sessions").await;
    let ten = add(t, c.id, session(Some(10), "Ten")).await;
    let next = add(t, c.id, session(None, "Eleven")).await;
    let two = add(t, c.id, session(Some(2), "Two")).await;
    match &next.data {
        ChildData::Session(s) => assert_eq!(s.number, Some(11)),
        other => panic!("{other:?}"),
    }
    match t
        .db
        .create_child(c.id, Uuid::now_v7(), &session(Some(10), "Dup"), 100)
        .await
    {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, SESSION_NUMBER),
        other => panic!("expected a number conflict, got {other:?}"),
    }
    match t
        .db
        .update_child(c.id, two.id, 1, &session(Some(10), "Dup"))
        .await
    {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, SESSION_NUMBER),
        other => panic!("expected a number conflict, got {other:?}"),
    }
    assert_eq!(
        all(t, c.id, ChildKind::Session, false, 1).await,
        vec![two.id, ten.id, next.id]
    );
    // Another campaign may reuse a number.
    let other = campaign(t, owner, "Other").await;
    add(t, other.id, session(Some(10), "Ten again")).await;
}

async fn timeline_entries_are_listed_by_position_and_can_move(t: &TestDb) {
    let owner = user(t, "Chronicler").await;
    let c = campaign(t, owner, "Timeline").await;
    let a = add(t, c.id, entry("A", None)).await;
    let b = add(t, c.id, entry("B", None)).await;
    let first = add(t, c.id, entry("Before all", Some(-5))).await;
    let d = add(t, c.id, entry("D", None)).await;
    assert_eq!(
        all(t, c.id, ChildKind::Timeline, true, 2).await,
        vec![first.id, a.id, b.id, d.id]
    );
    // Move A after D.
    t.db.update_child(c.id, a.id, 1, &entry("A", Some(10)))
        .await
        .unwrap();
    // Same position as B: the id breaks the tie.
    t.db.update_child(c.id, first.id, 1, &entry("Before all", Some(2)))
        .await
        .unwrap();
    let mut tied = vec![b.id, first.id];
    tied.sort();
    let mut expected = tied;
    expected.extend([d.id, a.id]);
    assert_eq!(all(t, c.id, ChildKind::Timeline, true, 1).await, expected);
}

async fn pages_with_inserts_in_between_neither_repeat_nor_skip(t: &TestDb) {
    let owner = user(t, "Pager").await;
    let c = campaign(t, owner, "Pages").await;
    let mut expected = Vec::new();
    for i in 0..5 {
        expected.push(add(t, c.id, npc(&format!("N{i}"), false)).await.id);
    }
    let mut seen = Vec::new();
    let mut after: Option<KeyCursor> = None;
    loop {
        let page =
            t.db.children(
                c.id,
                ChildQuery {
                    kind: ChildKind::Npc,
                    after,
                    limit: 2,
                    include_gm_only: true,
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|c| c.id));
        // A new record between every two pages lands after the cursor: it is read later.
        if seen.len() < 12 {
            expected.push(add(t, c.id, npc("late", false)).await.id);
        }
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no record twice");
    assert_eq!(
        seen,
        expected[..seen.len()].to_vec(),
        "in order, without gaps"
    );

    // The same holds for the campaigns list.
    let mut ids = Vec::new();
    let mut after = None;
    for i in 0..4 {
        ids.push(campaign(t, owner, &format!("P{i}")).await.id);
    }
    ids.insert(0, c.id);
    let mut listed = Vec::new();
    loop {
        let page = t.db.campaigns_of(owner, after, 2).await.unwrap();
        listed.extend(page.items.iter().map(|m| m.campaign.id));
        match page.next_cursor {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(listed, ids);
}

async fn a_child_is_found_only_under_its_own_campaign(t: &TestDb) {
    let owner = user(t, "Splitter").await;
    let mine = campaign(t, owner, "Mine").await;
    let theirs = campaign(t, owner, "Theirs").await;
    let child = add(t, mine.id, npc("Only mine", false)).await;
    assert_eq!(
        t.db.child(theirs.id, ChildKind::Npc, child.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        t.db.child(mine.id, ChildKind::Map, child.id).await.unwrap(),
        None
    );
    assert!(matches!(
        t.db.update_child(theirs.id, child.id, 1, &npc("X", false))
            .await,
        Err(StorageError::NotFound)
    ));
    assert!(
        !t.db
            .delete_child(theirs.id, ChildKind::Npc, child.id)
            .await
            .unwrap()
    );
    assert!(
        t.db.child(mine.id, ChildKind::Npc, child.id)
            .await
            .unwrap()
            .is_some()
    );
}

async fn the_child_limit_is_per_campaign_and_kind(t: &TestDb) {
    let owner = user(t, "Limiter").await;
    let c = campaign(t, owner, "Small").await;
    for _ in 0..2 {
        t.db.create_child(c.id, Uuid::now_v7(), &npc("N", false), 2)
            .await
            .unwrap();
    }
    match t
        .db
        .create_child(c.id, Uuid::now_v7(), &npc("N", false), 2)
        .await
    {
        Err(StorageError::Conflict { constraint }) => assert_eq!(constraint, CHILD_LIMIT),
        other => panic!("expected the limit, got {other:?}"),
    }
    t.db.create_child(c.id, Uuid::now_v7(), &map(false), 2)
        .await
        .unwrap();
    assert!(matches!(
        t.db.create_child(Uuid::now_v7(), Uuid::now_v7(), &map(false), 2)
            .await,
        Err(StorageError::NotFound)
    ));
}

async fn deleting_a_campaign_deletes_its_members_and_children(t: &TestDb) {
    let owner = user(t, "Destroyer").await;
    let player = user(t, "Bystander").await;
    let c = campaign(t, owner, "Doomed").await;
    t.db.add_member(c.id, "bystander", Role::Player)
        .await
        .unwrap();
    let children = [
        add(t, c.id, session(None, "S")).await,
        add(t, c.id, npc("N", false)).await,
        add(t, c.id, map(true)).await,
        add(t, c.id, entry("E", None)).await,
    ];
    assert!(t.db.delete_campaign(c.id).await.unwrap());
    assert!(!t.db.delete_campaign(c.id).await.unwrap());
    assert_eq!(t.db.campaign(c.id).await.unwrap(), None);
    assert_eq!(t.db.membership(c.id, player).await.unwrap(), None);
    assert!(t.db.members(c.id).await.unwrap().is_empty());
    for child in children {
        let kind = child.data.kind();
        assert_eq!(t.db.child(c.id, kind, child.id).await.unwrap(), None);
    }
    assert!(
        t.db.campaigns_of(player, None, 10)
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
