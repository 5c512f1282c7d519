//! The campaign manager over real HTTP: who may do what on every route (a game master, a
//! player, a stranger), keyset pages with inserts in between, the rich text sanitiser against
//! an XSS corpus, `If-Match`/`If-None-Match` (412, 428, 304) and a race of two updates, bad
//! input naming the field, the limits, the read cache (in process and Redis) and the
//! `campaign.changed` push to a member's socket.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt as _;
use hearth_test_support::{REDIS_URL_VAR, TestDb, service_url, sqlite_db};
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestApp, problem, spawn_app, spawn_app_with};

/// A request with a JSON body and extra headers.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Response {
    let mut request = app.request(method, path, Some(token));
    if let Some(body) = body {
        request = request.json(body);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn ok_json(response: Response, status: StatusCode) -> Value {
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

async fn create_campaign(app: &TestApp, token: &str, name: &str) -> Value {
    let body = json!({"name": name, "description": "<p>Welcome</p>"});
    ok_json(
        app.post("/v1/campaigns", Some(token), &body).await,
        StatusCode::CREATED,
    )
    .await
}

async fn add_member(app: &TestApp, gm: &str, campaign: &str, username: &str, role: &str) {
    let body = json!({"username": username, "role": role});
    let path = format!("/v1/campaigns/{campaign}/members");
    ok_json(app.post(&path, Some(gm), &body).await, StatusCode::CREATED).await;
}

/// A bodies that create a record of each kind, with the path segment.
fn child_bodies() -> [(&'static str, Value); 4] {
    [
        (
            "sessions",
            json!({"title": "Session zero", "status": "planned", "scheduled_at": "2026-12-24T18:00:00Z", "notes": "<p>bring dice</p>"}),
        ),
        (
            "npcs",
            json!({"name": "Bram", "description": "<em>gruff</em>", "tags": ["smith"], "stats": {"hp": 12}}),
        ),
        (
            "maps",
            json!({"name": "Village", "image_url": "https://maps.example.com/v.png", "grid_size": 40, "markers": [{"x": 1, "y": 2}]}),
        ),
        (
            "timeline",
            json!({"in_game_date": "1st of Frostfall", "title": "The storm", "body": "<p>It rained.</p>"}),
        ),
    ]
}

struct Table {
    app: TestApp,
    gm: String,
    player: String,
    stranger: String,
    campaign: String,
}

/// A campaign owned by `Keeper`, with `Pawn` as a player and `Outsider` a stranger.
async fn table(t: &TestDb) -> Table {
    let app = spawn_app(t).await;
    let gm = app.player("Keeper").await;
    let player = app.player("Pawn").await;
    let stranger = app.player("Outsider").await;
    let campaign = create_campaign(&app, &gm, "The Long Night").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    add_member(&app, &gm, &campaign, "pawn", "player").await;
    Table {
        app,
        gm,
        player,
        stranger,
        campaign,
    }
}

async fn status(response: Response) -> StatusCode {
    response.status()
}

#[tokio::test]
async fn a_game_master_writes_a_player_reads_and_a_stranger_sees_nothing_on_every_route() {
    let t = sqlite_db().await;
    let Table {
        app,
        gm,
        player,
        stranger,
        campaign,
    } = table(&t).await;
    let c = format!("/v1/campaigns/{campaign}");

    // The campaign itself.
    for (token, want) in [
        (&gm, StatusCode::OK),
        (&player, StatusCode::OK),
        (&stranger, StatusCode::NOT_FOUND),
    ] {
        assert_eq!(status(app.get(&c, Some(token)).await).await, want);
        let members = format!("{c}/members");
        assert_eq!(status(app.get(&members, Some(token)).await).await, want);
    }
    let read: Value = app.get(&c, Some(&player)).await.json().await.unwrap();
    assert_eq!(read["role"], "player");
    let patch = json!({"name": "Renamed"});
    for (token, want) in [
        (&stranger, StatusCode::NOT_FOUND),
        (&player, StatusCode::FORBIDDEN),
        (&gm, StatusCode::OK),
    ] {
        let response = send(
            &app,
            Method::PATCH,
            &c,
            token,
            Some(&patch),
            &[("if-match", "*")],
        )
        .await;
        assert_eq!(response.status(), want);
        if want != StatusCode::OK {
            problem(response, want).await;
        }
    }
    // Members: only game masters add or remove others.
    app.player("Newcomer").await;
    let members = format!("{c}/members");
    let newcomer = json!({"username": "newcomer", "role": "player"});
    assert_eq!(
        status(app.post(&members, Some(&stranger), &newcomer).await).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(app.post(&members, Some(&player), &newcomer).await).await,
        StatusCode::FORBIDDEN
    );
    let added = ok_json(
        app.post(&members, Some(&gm), &newcomer).await,
        StatusCode::CREATED,
    )
    .await;
    let newcomer_id = added["user_id"].as_str().unwrap().to_owned();
    let remove = format!("{members}/{newcomer_id}");
    assert_eq!(
        status(send(&app, Method::DELETE, &remove, &stranger, None, &[]).await).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(send(&app, Method::DELETE, &remove, &player, None, &[]).await).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(send(&app, Method::DELETE, &remove, &gm, None, &[]).await).await,
        StatusCode::NO_CONTENT
    );

    // Every kind of child.
    for (kind, body) in child_bodies() {
        let list = format!("{c}/{kind}");
        for (token, want) in [
            (&stranger, StatusCode::NOT_FOUND),
            (&player, StatusCode::FORBIDDEN),
        ] {
            assert_eq!(
                status(app.post(&list, Some(token), &body).await).await,
                want,
                "{kind}"
            );
        }
        let created = ok_json(app.post(&list, Some(&gm), &body).await, StatusCode::CREATED).await;
        let one = format!("{list}/{}", created["id"].as_str().unwrap());
        for (token, want) in [
            (&gm, StatusCode::OK),
            (&player, StatusCode::OK),
            (&stranger, StatusCode::NOT_FOUND),
        ] {
            assert_eq!(
                status(app.get(&list, Some(token)).await).await,
                want,
                "{kind}"
            );
            assert_eq!(
                status(app.get(&one, Some(token)).await).await,
                want,
                "{kind}"
            );
        }
        for (token, want) in [
            (&stranger, StatusCode::NOT_FOUND),
            (&player, StatusCode::FORBIDDEN),
            (&gm, StatusCode::OK),
        ] {
            let response = send(
                &app,
                Method::PATCH,
                &one,
                token,
                Some(&json!({})),
                &[("if-match", "\"1\"")],
            )
            .await;
            assert_eq!(response.status(), want, "{kind}");
        }
        for (token, want) in [
            (&stranger, StatusCode::NOT_FOUND),
            (&player, StatusCode::FORBIDDEN),
            (&gm, StatusCode::NO_CONTENT),
        ] {
            assert_eq!(
                status(send(&app, Method::DELETE, &one, token, None, &[]).await).await,
                want,
                "{kind}"
            );
        }
        assert_eq!(
            status(app.get(&one, Some(&gm)).await).await,
            StatusCode::NOT_FOUND
        );
    }

    // A `gm_only` record does not exist for players.
    let secret = ok_json(
        app.post(
            &format!("{c}/npcs"),
            Some(&gm),
            &json!({"name": "The Traitor", "gm_only": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let secret_path = format!("{c}/npcs/{}", secret["id"].as_str().unwrap());
    problem(
        app.get(&secret_path, Some(&player)).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    let page: Value = app
        .get(&format!("{c}/npcs"), Some(&player))
        .await
        .json()
        .await
        .unwrap();
    assert!(page["items"].as_array().unwrap().is_empty(), "{page}");
    let page: Value = app
        .get(&format!("{c}/npcs"), Some(&gm))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);

    // Ids that are not UUIDs are simply not found.
    problem(
        app.get("/v1/campaigns/not-a-uuid", Some(&gm)).await,
        StatusCode::NOT_FOUND,
    )
    .await;

    // Only the owner deletes the campaign, and everything in it goes.
    assert_eq!(
        status(send(&app, Method::DELETE, &c, &stranger, None, &[]).await).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(send(&app, Method::DELETE, &c, &player, None, &[]).await).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(send(&app, Method::DELETE, &c, &gm, None, &[]).await).await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        status(app.get(&c, Some(&gm)).await).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status(app.get(&secret_path, Some(&gm)).await).await,
        StatusCode::NOT_FOUND
    );
    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn a_second_game_master_writes_but_only_the_owner_deletes_and_the_owner_stays() {
    let t = sqlite_db().await;
    let Table {
        app,
        gm,
        player,
        campaign,
        ..
    } = table(&t).await;
    let c = format!("/v1/campaigns/{campaign}");
    add_member(&app, &gm, &campaign, "pawn", "gm").await;
    let co_gm = player;
    ok_json(
        app.post(&format!("{c}/npcs"), Some(&co_gm), &json!({"name": "Ally"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    problem(
        send(&app, Method::DELETE, &c, &co_gm, None, &[]).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    // The owner can be neither demoted nor removed.
    let body = problem(
        app.post(
            &format!("{c}/members"),
            Some(&co_gm),
            &json!({"username": "keeper", "role": "player"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "username");
    let owner: Value = app.get(&c, Some(&gm)).await.json().await.unwrap();
    let remove = format!("{c}/members/{}", owner["owner_id"].as_str().unwrap());
    problem(
        send(&app, Method::DELETE, &remove, &co_gm, None, &[]).await,
        StatusCode::CONFLICT,
    )
    .await;
    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn pages_with_inserts_in_between_have_no_duplicates_and_no_gaps() {
    let t = sqlite_db().await;
    let Table {
        app,
        gm,
        player,
        campaign,
        ..
    } = table(&t).await;
    let list = format!("/v1/campaigns/{campaign}/timeline");
    let mut created = Vec::new();
    for i in 0..7 {
        let body = json!({"in_game_date": format!("Day {i}"), "title": format!("E{i}")});
        let entry = ok_json(app.post(&list, Some(&gm), &body).await, StatusCode::CREATED).await;
        created.push(entry["id"].as_str().unwrap().to_owned());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut inserted = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("{list}?limit=3&cursor={c}"),
            None => format!("{list}?limit=3"),
        };
        let page = ok_json(app.get(&path, Some(&player)).await, StatusCode::OK).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 3);
        seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        // A record added between two pages (positions go last) is served on a later one.
        if inserted < 3 && !page["next_cursor"].is_null() {
            let body = json!({"in_game_date": "Later", "title": format!("L{inserted}")});
            let entry = ok_json(app.post(&list, Some(&gm), &body).await, StatusCode::CREATED).await;
            created.push(entry["id"].as_str().unwrap().to_owned());
            inserted += 1;
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a record served twice");
    assert_eq!(seen, created, "every record, in order");

    // The list of campaigns pages the same way.
    for i in 0..4 {
        create_campaign(&app, &player, &format!("Own {i}")).await;
    }
    let mut ids = HashSet::new();
    let mut path = "/v1/campaigns?limit=2".to_owned();
    loop {
        let page = ok_json(app.get(&path, Some(&player)).await, StatusCode::OK).await;
        for item in page["items"].as_array().unwrap() {
            assert!(ids.insert(item["id"].as_str().unwrap().to_owned()));
        }
        match page["next_cursor"].as_str() {
            Some(next) => path = format!("/v1/campaigns?limit=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(ids.len(), 5, "four owned and one joined");
    app.stop().await.unwrap();
    t.cleanup().await;
}

/// Markup that must not survive: scripts, event handlers, `javascript:` and `data:` URLs,
/// frames and forms, in the spellings browsers forgive.
const XSS_CORPUS: &[&str] = &[
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<body onload=alert(1)>",
    "<a href=\"javascript:alert(1)\">x</a>",
    "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
    "<a href=\"java&#x09;script:alert(1)\">x</a>",
    "<a href=\"&#106;avascript:alert(1)\">x</a>",
    "<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>",
    "<iframe src=\"https://evil.example\"></iframe>",
    "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
    "<p style=\"background:url(javascript:alert(1))\">x</p>",
    "<div onmouseover=\"alert(1)\">hover</div>",
    "<scr<script>ipt>alert(1)</script>",
    "<<script>script>alert(1)<</script>/script>",
    "<form action=\"https://evil.example\"><input type=submit></form>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<object data=\"javascript:alert(1)\"></object>",
    "<embed src=\"javascript:alert(1)\">",
    "<details open ontoggle=alert(1)>",
    "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
    "<style>@import 'https://evil.example/x.css';</style>",
    "<p>fine</p><!-- <script>alert(1)</script> -->",
    "\"><script>alert(1)</script>",
    "<a href=\"https://ok.example\" onclick=\"alert(1)\">ok</a>",
];

fn assert_clean(html: &str, input: &str) {
    let lower = html.to_lowercase();
    for bad in [
        "<script",
        "javascript:",
        "data:",
        "<iframe",
        "<svg",
        "<img",
        "<form",
        "<object",
        "<embed",
        "<style",
        "<meta",
        "style=",
        "srcdoc",
        "<!--",
    ] {
        assert!(
            !lower.contains(bad),
            "{bad:?} survived in {html:?} (from {input:?})"
        );
    }
    // No event handler attribute anywhere: ` on…=` inside a tag.
    let mut rest = lower.as_str();
    while let Some(start) = rest.find('<') {
        let end = rest[start..].find('>').map_or(rest.len(), |e| start + e);
        let tag = &rest[start..end];
        assert!(
            !tag.split_whitespace()
                .skip(1)
                .any(|attr| attr.starts_with("on")),
            "an event handler survived in {html:?} (from {input:?})"
        );
        rest = &rest[end..];
    }
}

#[tokio::test]
async fn rich_text_is_sanitised_on_the_way_in_against_an_xss_corpus() {
    let t = sqlite_db().await;
    let Table {
        app,
        gm,
        player,
        campaign,
        ..
    } = table(&t).await;
    let c = format!("/v1/campaigns/{campaign}");
    for (i, attack) in XSS_CORPUS.iter().enumerate() {
        let text = format!("<p>Safe {i}</p>{attack}");
        let npc = ok_json(
            app.post(
                &format!("{c}/npcs"),
                Some(&gm),
                &json!({"name": format!("N{i}"), "description": text}),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        let stored = npc["description"].as_str().unwrap_or("");
        assert_clean(stored, attack);
        assert!(stored.contains(&format!("<p>Safe {i}</p>")), "{stored}");
        // As the player reads it back.
        let path = format!("{c}/npcs/{}", npc["id"].as_str().unwrap());
        let read = ok_json(app.get(&path, Some(&player)).await, StatusCode::OK).await;
        assert_clean(read["description"].as_str().unwrap_or(""), attack);
    }
    // Every rich text field goes through the same policy.
    let attack = "<p>ok</p><img src=x onerror=alert(1)><a href=\"javascript:alert(1)\">x</a>";
    let session = ok_json(
        app.post(
            &format!("{c}/sessions"),
            Some(&gm),
            &json!({"title": "S", "notes": attack}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_clean(session["notes"].as_str().unwrap(), attack);
    let entry = ok_json(
        app.post(
            &format!("{c}/timeline"),
            Some(&gm),
            &json!({"in_game_date": "d", "title": "T", "body": attack}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_clean(entry["body"].as_str().unwrap(), attack);
    let updated = ok_json(
        send(
            &app,
            Method::PATCH,
            &c,
            &gm,
            Some(&json!({"description": attack})),
            &[("if-match", "*")],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_clean(updated["description"].as_str().unwrap(), attack);
    // Safe links keep their target and gain rel.
    let link = ok_json(
        app.post(
            &format!("{c}/npcs"),
            Some(&gm),
            &json!({"name": "L", "description": "<a href=\"https://wiki.example/bram\">wiki</a>"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let html = link["description"].as_str().unwrap();
    assert!(
        html.contains("href=\"https://wiki.example/bram\""),
        "{html}"
    );
    assert!(
        html.contains("rel=\"noopener noreferrer nofollow\""),
        "{html}"
    );
    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn updates_need_if_match_and_reads_honour_if_none_match() {
    let t = sqlite_db().await;
    let Table {
        app,
        gm,
        player,
        campaign,
        ..
    } = table(&t).await;
    let c = format!("/v1/campaigns/{campaign}");
    let created = ok_json(
        app.post(
            &format!("{c}/maps"),
            Some(&gm),
            &json!({"name": "M", "image_url": "https://x.example/m.png"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let map = format!("{c}/maps/{}", created["id"].as_str().unwrap());

    let read = app.get(&map, Some(&player)).await;
    assert_eq!(read.headers()["etag"], "\"1\"");
    let again = send(
        &app,
        Method::GET,
        &map,
        &player,
        None,
        &[("if-none-match", "\"1\"")],
    )
    .await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(again.headers()["etag"], "\"1\"");

    let body = problem(
        send(
            &app,
            Method::PATCH,
            &map,
            &gm,
            Some(&json!({"grid_size": 20})),
            &[],
        )
        .await,
        StatusCode::PRECONDITION_REQUIRED,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("If-Match"));
    let updated = send(
        &app,
        Method::PATCH,
        &map,
        &gm,
        Some(&json!({"grid_size": 20})),
        &[("if-match", "\"1\"")],
    )
    .await;
    assert_eq!(updated.status(), StatusCode::OK);
    assert_eq!(updated.headers()["etag"], "\"2\"");
    let updated: Value = updated.json().await.unwrap();
    assert_eq!(
        (updated["grid_size"].as_i64(), updated["name"].as_str()),
        (Some(20), Some("M"))
    );
    problem(
        send(
            &app,
            Method::PATCH,
            &map,
            &gm,
            Some(&json!({"grid_size": 30})),
            &[("if-match", "\"1\"")],
        )
        .await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    problem(
        send(
            &app,
            Method::PATCH,
            &map,
            &gm,
            Some(&json!({"grid_size": 30})),
            &[("if-match", "garbage")],
        )
        .await,
        StatusCode::PRECONDITION_FAILED,
    )
    .await;
    // The old ETag no longer matches: the read is full again.
    let fresh = send(
        &app,
        Method::GET,
        &map,
        &player,
        None,
        &[("if-none-match", "\"1\"")],
    )
    .await;
    assert_eq!(fresh.status(), StatusCode::OK);
    let fresh: Value = fresh.json().await.unwrap();
    assert_eq!(
        fresh["grid_size"], 20,
        "the cache was invalidated by the write"
    );

    // The campaign and the timeline too: a PATCH moves an entry.
    let campaign_read = app.get(&c, Some(&gm)).await;
    let tag = campaign_read.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(
        send(&app, Method::GET, &c, &gm, None, &[("if-none-match", &tag)])
            .await
            .status(),
        StatusCode::NOT_MODIFIED
    );
    let tl = format!("{c}/timeline");
    let first = ok_json(
        app.post(
            &tl,
            Some(&gm),
            &json!({"in_game_date": "d1", "title": "First"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let second = ok_json(
        app.post(
            &tl,
            Some(&gm),
            &json!({"in_game_date": "d2", "title": "Second"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let moved = format!("{tl}/{}", first["id"].as_str().unwrap());
    ok_json(
        send(
            &app,
            Method::PATCH,
            &moved,
            &gm,
            Some(&json!({"position": 99})),
            &[("if-match", "\"1\"")],
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let page = ok_json(app.get(&tl, Some(&player)).await, StatusCode::OK).await;
    let order: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(order, vec![second["id"].clone(), first["id"].clone()]);
    app.stop().await.unwrap();
    t.cleanup().await;
}

async fn two_concurrent_updates_with_one_etag_one_wins_one_gets_412(t: &TestDb) {
    let app = spawn_app(t).await;
    let gm = app.player("Racer").await;
    let campaign = create_campaign(&app, &gm, "Race").await;
    let c = format!("/v1/campaigns/{}", campaign["id"].as_str().unwrap());
    let npc = ok_json(
        app.post(
            &format!("{c}/npcs"),
            Some(&gm),
            &json!({"name": "Contested"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    for path in [
        c.clone(),
        format!("{c}/npcs/{}", npc["id"].as_str().unwrap()),
    ] {
        let (first, second) = (json!({"name": "One"}), json!({"name": "Two"}));
        let one = send(
            &app,
            Method::PATCH,
            &path,
            &gm,
            Some(&first),
            &[("if-match", "\"1\"")],
        );
        let two = send(
            &app,
            Method::PATCH,
            &path,
            &gm,
            Some(&second),
            &[("if-match", "\"1\"")],
        );
        let (one, two) = tokio::join!(one, two);
        let mut statuses = [one.status(), two.status()];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::OK, StatusCode::PRECONDITION_FAILED],
            "{path}"
        );
        let now: Value = app.get(&path, Some(&gm)).await.json().await.unwrap();
        assert_eq!(now["version"], 2);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn two_concurrent_updates_with_one_etag_one_wins_one_gets_412_on_sqlite() {
    let t = sqlite_db().await;
    two_concurrent_updates_with_one_etag_one_wins_one_gets_412(&t).await;
    t.cleanup().await;
}

#[tokio::test]
async fn two_concurrent_updates_with_one_etag_one_wins_one_gets_412_on_postgres() {
    let Some(t) = hearth_test_support::postgres_db().await else {
        return;
    };
    two_concurrent_updates_with_one_etag_one_wins_one_gets_412(&t).await;
    t.cleanup().await;
}

#[tokio::test]
async fn bad_input_is_a_422_naming_the_field() {
    let t = sqlite_db().await;
    let Table {
        app, gm, campaign, ..
    } = table(&t).await;
    let c = format!("/v1/campaigns/{campaign}");
    let cases: Vec<(String, Value, &str)> = vec![
        (
            "/v1/campaigns".into(),
            json!({"name": "x".repeat(256)}),
            "name",
        ),
        ("/v1/campaigns".into(), json!({"name": "   "}), "name"),
        ("/v1/campaigns".into(), json!({}), "name"),
        ("/v1/campaigns".into(), json!({"name": 7}), "name"),
        (
            "/v1/campaigns".into(),
            json!({"name": "ok", "owner_id": "x"}),
            "owner_id",
        ),
        (
            "/v1/campaigns".into(),
            json!({"name": "ok", "description": ["x"]}),
            "description",
        ),
        (
            format!("{c}/members"),
            json!({"username": "pawn", "role": "admin"}),
            "role",
        ),
        (
            format!("{c}/members"),
            json!({"username": "nobody_here", "role": "player"}),
            "username",
        ),
        (
            format!("{c}/members"),
            json!({"role": "player"}),
            "username",
        ),
        (
            format!("{c}/sessions"),
            json!({"title": "S", "status": "done"}),
            "status",
        ),
        (
            format!("{c}/sessions"),
            json!({"title": "S", "number": 0}),
            "number",
        ),
        (
            format!("{c}/sessions"),
            json!({"title": "S", "scheduled_at": "tomorrow"}),
            "scheduled_at",
        ),
        (
            format!("{c}/sessions"),
            json!({"status": "planned"}),
            "title",
        ),
        (
            format!("{c}/npcs"),
            json!({"name": "N", "stats": [1, 2]}),
            "stats",
        ),
        (
            format!("{c}/npcs"),
            json!({"name": "N", "stats": {"blob": "x".repeat(17 * 1024)}}),
            "stats",
        ),
        (
            format!("{c}/npcs"),
            json!({"name": "N", "gm_only": "yes"}),
            "gm_only",
        ),
        (
            format!("{c}/npcs"),
            json!({"name": "N", "tags": (0..33).map(|i| format!("t{i}")).collect::<Vec<_>>()}),
            "tags",
        ),
        (format!("{c}/npcs"), json!({"name": "N", "hp": 3}), "hp"),
        (
            format!("{c}/maps"),
            json!({"name": "M", "image_url": "http://x.example/m.png"}),
            "image_url",
        ),
        (
            format!("{c}/maps"),
            json!({"name": "M", "image_url": "javascript:alert(1)"}),
            "image_url",
        ),
        (
            format!("{c}/maps"),
            json!({"name": "M", "image_url": "https://x.example/m.png", "grid_size": "big"}),
            "grid_size",
        ),
        (
            format!("{c}/maps"),
            json!({"name": "M", "image_url": "https://x.example/m.png", "grid_size": 0}),
            "grid_size",
        ),
        (
            format!("{c}/maps"),
            json!({"name": "M", "image_url": "https://x.example/m.png", "markers": {"x": 1}}),
            "markers",
        ),
        (
            format!("{c}/timeline"),
            json!({"title": "T", "in_game_date": "d".repeat(101)}),
            "in_game_date",
        ),
        (
            format!("{c}/timeline"),
            json!({"title": "T", "in_game_date": "d", "position": 1.5}),
            "position",
        ),
    ];
    for (path, body, field) in cases {
        let response = app.post(&path, Some(&gm), &body).await;
        let refused = problem(response, StatusCode::UNPROCESSABLE_ENTITY).await;
        assert_eq!(
            refused["errors"][0]["field"], field,
            "{path} {body}: {refused}"
        );
    }
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=x", "limit"),
        ("cursor=bogus", "cursor"),
        ("sort=name", "sort"),
    ] {
        let refused = problem(
            app.get(&format!("{c}/npcs?{query}"), Some(&gm)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{query}");
        let refused = problem(
            app.get(&format!("/v1/campaigns?{query}"), Some(&gm)).await,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        assert_eq!(refused["errors"][0]["field"], field, "{query}");
    }
    // A PATCH is checked the same way, and a taken session number is a conflict naming it.
    let body = problem(
        send(
            &app,
            Method::PATCH,
            &c,
            &gm,
            Some(&json!({"name": ""})),
            &[("if-match", "*")],
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "name");
    ok_json(
        app.post(
            &format!("{c}/sessions"),
            Some(&gm),
            &json!({"title": "One", "number": 1}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let body = problem(
        app.post(
            &format!("{c}/sessions"),
            Some(&gm),
            &json!({"title": "Dup", "number": 1}),
        )
        .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert_eq!(body["errors"][0]["field"], "number");
    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn limits_per_user_and_per_campaign_come_from_settings() {
    let t = sqlite_db().await;
    let app = spawn_app_with(&t, |s| {
        s.campaigns.max_campaigns_per_user = 1;
        s.campaigns.max_children_per_campaign = 2;
    })
    .await;
    let gm = app.player("Thrifty").await;
    let campaign = create_campaign(&app, &gm, "Only one").await;
    problem(
        app.post("/v1/campaigns", Some(&gm), &json!({"name": "Two"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    let npcs = format!("/v1/campaigns/{}/npcs", campaign["id"].as_str().unwrap());
    for _ in 0..2 {
        ok_json(
            app.post(&npcs, Some(&gm), &json!({"name": "N"})).await,
            StatusCode::CREATED,
        )
        .await;
    }
    problem(
        app.post(&npcs, Some(&gm), &json!({"name": "N"})).await,
        StatusCode::CONFLICT,
    )
    .await;
    app.stop().await.unwrap();
    t.cleanup().await;
}

/// The value of a counter on `/metrics` (0 when absent).
async fn counter(app: &TestApp, name: &str) -> f64 {
    let text = app.get("/metrics", None).await.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn the_cache_serves_repeats_never_crosses_views_and_forgets_on_write(app: &TestApp) {
    let gm = app.player("Cacher").await;
    let player = app.player("Reader").await;
    let campaign = create_campaign(app, &gm, "Cached").await;
    let id = campaign["id"].as_str().unwrap();
    add_member(app, &gm, id, "reader", "player").await;
    let npcs = format!("/v1/campaigns/{id}/npcs");
    ok_json(
        app.post(&npcs, Some(&gm), &json!({"name": "Public"})).await,
        StatusCode::CREATED,
    )
    .await;
    ok_json(
        app.post(
            &npcs,
            Some(&gm),
            &json!({"name": "Secret", "gm_only": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    let hits = counter(app, "hearth_campaign_cache_hits_total").await;
    let misses = counter(app, "hearth_campaign_cache_misses_total").await;
    let gm_page = ok_json(app.get(&npcs, Some(&gm)).await, StatusCode::OK).await;
    assert_eq!(gm_page["items"].as_array().unwrap().len(), 2);
    let gm_again = ok_json(app.get(&npcs, Some(&gm)).await, StatusCode::OK).await;
    assert_eq!(gm_again, gm_page);
    // The game master's page is cached; the player's is another page.
    let player_page = ok_json(app.get(&npcs, Some(&player)).await, StatusCode::OK).await;
    let names: Vec<_> = player_page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("Public")]);
    let player_again = ok_json(app.get(&npcs, Some(&player)).await, StatusCode::OK).await;
    assert_eq!(player_again, player_page);
    assert!(counter(app, "hearth_campaign_cache_hits_total").await >= hits + 2.0);
    assert!(counter(app, "hearth_campaign_cache_misses_total").await >= misses + 2.0);

    // A write invalidates both views.
    ok_json(
        app.post(&npcs, Some(&gm), &json!({"name": "Newcomer"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let after = ok_json(app.get(&npcs, Some(&player)).await, StatusCode::OK).await;
    assert_eq!(after["items"].as_array().unwrap().len(), 2);
    let after = ok_json(app.get(&npcs, Some(&gm)).await, StatusCode::OK).await;
    assert_eq!(after["items"].as_array().unwrap().len(), 3);
    // A removed member is a stranger at once, cache or not.
    let me: Value = app.get("/v1/me", Some(&player)).await.json().await.unwrap();
    let remove = format!("/v1/campaigns/{id}/members/{}", me["id"].as_str().unwrap());
    assert_eq!(
        send(app, Method::DELETE, &remove, &gm, None, &[])
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    problem(app.get(&npcs, Some(&player)).await, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn the_in_process_cache_serves_repeats_never_crosses_views_and_forgets_on_write() {
    let t = sqlite_db().await;
    let app = spawn_app(&t).await;
    assert_eq!(app.state.campaigns.cache_backend(), Some("memory"));
    the_cache_serves_repeats_never_crosses_views_and_forgets_on_write(&app).await;
    app.stop().await.unwrap();
    t.cleanup().await;
}

#[tokio::test]
async fn the_redis_cache_serves_repeats_never_crosses_views_and_forgets_on_write() {
    let Some(redis) = service_url(REDIS_URL_VAR, "Redis") else {
        return;
    };
    let t = sqlite_db().await;
    let prefix = format!("hearth-test:{}:", uuid::Uuid::new_v4().simple());
    let app = spawn_app_with(&t, |s| {
        s.redis.url = Some(secrecy::SecretString::from(redis.clone()));
        s.redis.key_prefix = prefix.clone();
    })
    .await;
    assert_eq!(app.state.campaigns.cache_backend(), Some("redis"));
    the_cache_serves_repeats_never_crosses_views_and_forgets_on_write(&app).await;
    app.stop().await.unwrap();
    t.cleanup().await;
}

/// The next `campaign.changed` push on a socket, skipping anything else.
async fn next_change(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Value {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a push in time")
            .expect("the socket is open")
            .expect("a frame");
        if let Message::Text(text) = next {
            let value: Value = serde_json::from_str(&text).unwrap();
            // The table's set-up adds members, and their pushes leave on a task after the
            // answer, so one may still arrive after the socket has authenticated.
            if value["type"] == "campaign.changed" && value["kind"] != "member" {
                return value;
            }
        }
    }
}

#[tokio::test]
async fn changes_are_pushed_to_members_sockets_and_gm_only_ones_to_game_masters_only() {
    use futures_util::SinkExt as _;
    let t = sqlite_db().await;
    let Table {
        app,
        gm,
        player,
        campaign,
        ..
    } = table(&t).await;
    let mut sockets = Vec::new();
    for token in [&gm, &player] {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", app.addr))
            .await
            .unwrap();
        socket
            .send(Message::text(
                json!({"type": "auth", "token": token}).to_string(),
            ))
            .await
            .unwrap();
        let Some(Ok(Message::Text(answer))) = socket.next().await else {
            panic!("no answer to auth");
        };
        assert!(answer.contains("authenticated"), "{answer}");
        sockets.push(socket);
    }
    let c = format!("/v1/campaigns/{campaign}");
    let secret = ok_json(
        app.post(
            &format!("{c}/npcs"),
            Some(&gm),
            &json!({"name": "Hidden", "gm_only": true}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let open = ok_json(
        app.post(
            &format!("{c}/maps"),
            Some(&gm),
            &json!({"name": "Open", "image_url": "https://x.example/o.png"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;

    let gm_first = next_change(&mut sockets[0]).await;
    assert_eq!(
        gm_first,
        json!({"type": "campaign.changed", "campaign_id": campaign, "kind": "npc", "id": secret["id"]})
    );
    assert_eq!(next_change(&mut sockets[0]).await["id"], open["id"]);
    // The player's first push is the map: the gm_only NPC was never announced to them.
    let player_first = next_change(&mut sockets[1]).await;
    assert_eq!(
        player_first,
        json!({"type": "campaign.changed", "campaign_id": campaign, "kind": "map", "id": open["id"]})
    );
    // A stranger's socket hears nothing; an update of the campaign reaches everyone.
    send(
        &app,
        Method::PATCH,
        &c,
        &gm,
        Some(&json!({"name": "Pushed"})),
        &[("if-match", "*")],
    )
    .await;
    for socket in &mut sockets {
        let change = next_change(socket).await;
        assert_eq!(
            (change["kind"].as_str(), change["id"].as_str()),
            (Some("campaign"), Some(campaign.as_str()))
        );
    }
    app.stop().await.unwrap();
    t.cleanup().await;
}
