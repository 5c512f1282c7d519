//! Every campaign list query reads an index, not the table: the plans PostgreSQL chooses for
//! them at 100 000 rows per kind of child (spread over 50 campaigns, half `gm_only`), after
//! `ANALYZE`. PostgreSQL only: SQLite's planner has no statistics to be misled by.

use hearth_storage::campaign::LIST_STATEMENTS;
use hearth_test_support::{new_user, postgres_db};
use secrecy::ExposeSecret as _;
use sqlx::{AssertSqlSafe, Connection as _, PgConnection, Row as _};
use uuid::Uuid;

/// The id of the `n`th seeded campaign.
const CAMPAIGN_ID: &str = "('00000000-0000-7000-8000-' || lpad(to_hex(1 + g % 50), 12, '0'))::uuid";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_list_query_scans_a_table_of_children_at_100k_rows() {
    let Some(t) = postgres_db().await else { return };
    let owner = t.db.create_user(new_user("Seeder", 0)).await.unwrap().id;
    let mut conn = PgConnection::connect(t.settings.url.expose_secret())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO campaigns (id, owner_id, name, created_at, updated_at) \
         SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, $1, 'C' || g, \
         now(), now() FROM generate_series(1, 50) g",
    )
    .bind(owner)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO campaign_members (campaign_id, user_id, role, added_at) \
         SELECT id, owner_id, 'gm', now() FROM campaigns",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for seed in [
        format!(
            "INSERT INTO campaign_npcs (id, campaign_id, name, gm_only, created_at, updated_at) \
         SELECT gen_random_uuid(), {CAMPAIGN_ID}, 'N' || g, g % 2 = 0, now(), now() \
         FROM generate_series(1, 100000) g"
        ),
        format!(
            "INSERT INTO campaign_maps (id, campaign_id, name, image_url, grid_size, gm_only, \
         created_at, updated_at) SELECT gen_random_uuid(), {CAMPAIGN_ID}, 'M' || g, \
         'https://x.example/m.png', 50, g % 2 = 0, now(), now() FROM generate_series(1, 100000) g"
        ),
        format!(
            "INSERT INTO campaign_sessions (id, campaign_id, number, title, status, created_at, \
         updated_at) SELECT gen_random_uuid(), {CAMPAIGN_ID}, g / 50 + 1, 'S' || g, 'planned', \
         now(), now() FROM generate_series(1, 100000) g"
        ),
        format!(
            "INSERT INTO campaign_timeline (id, campaign_id, in_game_date, title, position, \
         created_at, updated_at) SELECT gen_random_uuid(), {CAMPAIGN_ID}, 'd', 'T' || g, g, \
         now(), now() FROM generate_series(1, 100000) g"
        ),
        "ANALYZE".to_owned(),
    ] {
        sqlx::query(AssertSqlSafe(seed))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let campaign: Uuid = "00000000-0000-7000-8000-000000000002".parse().unwrap();
    for (name, statement) in LIST_STATEMENTS {
        let explain = AssertSqlSafe(format!("EXPLAIN {statement}"));
        // A middle page: the cursor halfway through the campaign's rows.
        let query = sqlx::query(explain);
        let query = match name {
            "campaigns" => query.bind(owner).bind(Uuid::nil()).bind(21_i64),
            "sessions" => query.bind(campaign).bind(1_000_i64).bind(21_i64),
            "timeline" => query
                .bind(campaign)
                .bind(50_000_i64)
                .bind(Uuid::nil())
                .bind(21_i64),
            _ => query.bind(campaign).bind(Uuid::nil()).bind(21_i64),
        };
        let plan: Vec<String> = query
            .fetch_all(&mut conn)
            .await
            .unwrap()
            .iter()
            .map(|row| row.get::<String, _>(0))
            .collect();
        let plan = plan.join("\n");
        // 50 campaigns are too few for a plan to matter; the children are what grows.
        if name != "campaigns" {
            assert!(!plan.contains("Seq Scan"), "{name} scans a table:\n{plan}");
            assert!(plan.contains("Index"), "{name} reads no index:\n{plan}");
            assert!(
                !plan.contains("Sort"),
                "{name} sorts instead of reading in index order:\n{plan}"
            );
        }
    }
    conn.close().await.unwrap();
    t.cleanup().await;
}
