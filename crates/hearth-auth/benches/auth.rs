//! Criterion benchmarks of the per-request and per-login costs:
//! - `verify/hs256`: signature and claims only;
//! - `authenticate/in_process`: verify + the in-process revocation check (the embedded path);
//! - `authenticate/redis`: verify + one Redis `MGET` (skipped without `HEARTH_TEST_REDIS_URL`);
//! - `authenticate/redis_lookup`: verify + `lookup`, the one `MGET` (with the "filled"
//!   sentinel) that the gateway's durable revocations send per request;
//! - `bcrypt/hash_cost_N`: one hash at the configured cost (`HEARTH_BENCH_BCRYPT_COST`, 12 by
//!   default), which bounds the login rate per core.

#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "benchmarks fail loudly on what should not happen"
)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use futures_util::FutureExt;
use hearth_auth::{
    AuthSettings, Authenticator, InProcessRevocations, RedisRevocations, RevocationStore as _,
    Role, TokenService, TokenType,
};
use uuid::Uuid;

fn tokens(c: &mut Criterion) {
    let service = TokenService::new(&AuthSettings::default());
    let pair = service
        .issue_pair(Uuid::now_v7(), "bench", Role::Player)
        .unwrap();
    c.bench_function("verify/hs256", |b| {
        b.iter(|| {
            service
                .verify(black_box(&pair.access_token), TokenType::Access)
                .unwrap()
        });
    });

    let revocations = Arc::new(InProcessRevocations::new());
    let auth = Authenticator::new(service.clone(), revocations);
    // Some revoked entries, so the lookups are not into an empty map.
    for _ in 0..1_000 {
        auth.revocations()
            .revoke_token(Uuid::now_v7(), u64::MAX / 2)
            .now_or_never()
            .unwrap()
            .unwrap();
    }
    c.bench_function("authenticate/in_process", |b| {
        b.iter(|| {
            auth.authenticate(black_box(&pair.access_token), TokenType::Access)
                .now_or_never()
                .expect("the in-process store never suspends")
                .unwrap()
        });
    });

    let Ok(url) = std::env::var("HEARTH_TEST_REDIS_URL") else {
        eprintln!("SKIPPED: authenticate/redis (set HEARTH_TEST_REDIS_URL)");
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = runtime.block_on(async {
        redis::aio::ConnectionManager::new(redis::Client::open(url).unwrap())
            .await
            .unwrap()
    });
    let store = RedisRevocations::new(conn, "hearth-bench:");
    let redis_auth = Authenticator::new(service.clone(), Arc::new(store.clone()));
    c.bench_function("authenticate/redis", |b| {
        b.to_async(&runtime).iter(|| async {
            redis_auth
                .authenticate(black_box(&pair.access_token), TokenType::Access)
                .await
                .unwrap()
        });
    });
    c.bench_function("authenticate/redis_lookup", |b| {
        b.to_async(&runtime).iter(|| async {
            let claims = service
                .verify(black_box(&pair.access_token), TokenType::Access)
                .unwrap();
            store.lookup(&claims).await.unwrap()
        });
    });
}

fn bcrypt_cost(c: &mut Criterion) {
    let cost = std::env::var("HEARTH_BENCH_BCRYPT_COST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    let mut group = c.benchmark_group("bcrypt");
    group.sample_size(10);
    group.bench_function(format!("hash_cost_{cost}"), |b| {
        b.iter(|| bcrypt::hash(black_box("Correct-Horse-9"), cost).unwrap());
    });
    group.finish();
}

criterion_group!(benches, tokens, bcrypt_cost);
criterion_main!(benches);
