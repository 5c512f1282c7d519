//! AI calls under the `ai` rule and the budgets, on both limit backends: concurrent calls never
//! overspend, failures release, the cost follows the reported usage, and the life simulation's
//! `reply_or_fallback` always has a line.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use hearth_ai::{
    AiClient, ChatRequest, Completion, CompletionStream, LocalProvider, Message, Provider,
    ProviderError, Role,
};
use hearth_app::ai::{Ai, AiCallError};
use hearth_limits::{
    BudgetError, BudgetSettings, Budgets, Limiter, RedisDownPolicy, RuleSettings, RuleTable,
    SystemClock,
};
use hearth_test_support::{REDIS_URL_VAR, TestDb, new_user, service_url};
use uuid::Uuid;

/// The local provider, 30 ms slower: concurrent calls then really overlap.
struct Slow(LocalProvider);

#[async_trait]
impl Provider for Slow {
    fn name(&self) -> &str {
        "slow-local"
    }
    fn model(&self) -> &str {
        self.0.model()
    }
    fn kind(&self) -> &'static str {
        "local"
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(5)
    }
    async fn complete(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Completion, ProviderError> {
        tokio::time::sleep(Duration::from_millis(30)).await;
        self.0.complete(request, timeout).await
    }
    async fn stream(
        &self,
        request: &ChatRequest,
        timeout: Duration,
    ) -> Result<Box<dyn CompletionStream>, ProviderError> {
        self.0.stream(request, timeout).await
    }
}

/// Where budgets (and the limiter) live.
enum Backend {
    InProcess,
    Redis(String),
}

impl Backend {
    /// The Redis backend when the suite runs, with a key prefix of this test's own.
    fn redis() -> Option<Self> {
        service_url(REDIS_URL_VAR, "Redis").map(Self::Redis)
    }

    async fn parts(&self, budgets: &BudgetSettings) -> (Limiter, Budgets) {
        match self {
            Self::InProcess => (Limiter::in_process(), Budgets::in_process(budgets)),
            Self::Redis(url) => {
                let prefix = format!("hearth:test:{}:", Uuid::now_v7().simple());
                let limiter = Limiter::builder()
                    .redis(url.as_str(), RedisDownPolicy::Refuse)
                    .key_prefix(format!("{prefix}rl:"))
                    .build()
                    .await
                    .unwrap();
                let budgets = Budgets::redis_with(
                    url.as_str(),
                    budgets,
                    RedisDownPolicy::Refuse,
                    &format!("{prefix}budget:"),
                    Arc::new(SystemClock::new()),
                )
                .await
                .unwrap();
                (limiter, budgets)
            }
        }
    }
}

fn generous() -> RuleTable {
    RuleTable {
        ai: RuleSettings {
            per_minute: Some(1_000_000),
            per_hour: None,
        },
        ..RuleTable::default()
    }
}

fn settings() -> hearth_ai::AiSettings {
    hearth_ai::AiSettings {
        max_output_tokens: 200,
        ..hearth_ai::AiSettings::default()
    }
}

async fn ai(
    t: &TestDb,
    backend: &Backend,
    client: AiClient,
    budgets: BudgetSettings,
    rules: RuleTable,
) -> Ai {
    let (limiter, store) = backend.parts(&budgets).await;
    Ai::new(
        client,
        limiter,
        &rules,
        store,
        budgets,
        settings(),
        t.db.clone(),
    )
}

fn question(text: &str) -> Vec<Message> {
    vec![
        Message::new(Role::System, "You are a tutor."),
        Message::new(Role::User, text),
    ]
}

async fn user(t: &TestDb, name: &str) -> Uuid {
    t.db.create_user(new_user(name, 0)).await.unwrap().id
}

macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {
        mod in_process {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = hearth_test_support::sqlite_db().await;
                    super::$name(&t, &super::Backend::InProcess).await;
                    t.cleanup().await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::Backend::redis() else { return };
                    let t = hearth_test_support::sqlite_db().await;
                    super::$name(&t, &backend).await;
                    t.cleanup().await;
                }
            )+
        }
    };
}

both_backends!(
    a_hundred_parallel_calls_never_overspend_the_users_daily_budget,
    a_hundred_parallel_calls_of_many_users_never_overspend_the_global_budget,
    the_settled_cost_is_the_reported_usage_at_the_table_prices,
    a_call_no_provider_answers_releases_its_reservation,
    the_ai_rule_limits_calls_per_user,
    reply_or_fallback_answers_or_says_the_fallback_line,
);

async fn a_hundred_parallel_calls_never_overspend_the_users_daily_budget(
    t: &TestDb,
    backend: &Backend,
) {
    let alice = user(t, "alice").await;
    let client = AiClient::builder()
        .provider(Slow(LocalProvider::default()))
        .build();
    // Room for about ten worst cases.
    let probe = ai(
        t,
        backend,
        client.clone(),
        BudgetSettings::default(),
        generous(),
    )
    .await;
    let reservation = probe.worst_case_cost(&question("What is recursion, really?"));
    let budget = BudgetSettings {
        user_daily: reservation * 10 + reservation / 2,
        ..BudgetSettings::default()
    };
    let ai = ai(t, backend, client, budget.clone(), generous()).await;

    let calls = (0..100).map(|_| {
        let ai = ai.clone();
        tokio::spawn(async move { ai.call(alice, question("What is recursion, really?")).await })
    });
    let results = futures_util::future::join_all(calls).await;

    let mut spent = 0;
    let (mut answered, mut refused) = (0, 0);
    for result in results {
        match result.unwrap() {
            Ok(charged) => {
                answered += 1;
                spent += charged.cost;
            }
            Err(AiCallError::Budget(BudgetError::UserExhausted { retry_after })) => {
                assert!(retry_after <= Duration::from_secs(24 * 3600));
                refused += 1;
            }
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(answered >= 10, "{answered} answered");
    assert!(refused > 0, "the budget must have refused some calls");
    assert!(
        spent <= budget.user_daily + reservation,
        "spent {spent} of {} (+ one reservation {reservation})",
        budget.user_daily
    );
    let usage = ai.usage(alice).await.unwrap();
    assert_eq!(
        usage.spent_today, spent,
        "every reservation settled or released"
    );
    assert_eq!(usage.daily_budget, budget.user_daily);
    assert_eq!(
        usage.remaining_today,
        budget.user_daily.saturating_sub(spent)
    );
}

async fn a_hundred_parallel_calls_of_many_users_never_overspend_the_global_budget(
    t: &TestDb,
    backend: &Backend,
) {
    let mut users = Vec::new();
    for i in 0..10 {
        users.push(user(t, &format!("user{i}")).await);
    }
    let client = AiClient::builder()
        .provider(Slow(LocalProvider::default()))
        .build();
    let probe = ai(
        t,
        backend,
        client.clone(),
        BudgetSettings::default(),
        generous(),
    )
    .await;
    let reservation = probe.worst_case_cost(&question("Explain closures"));
    let budget = BudgetSettings {
        global_hourly: reservation * 20,
        ..BudgetSettings::default()
    };
    let ai = ai(t, backend, client, budget.clone(), generous()).await;

    let calls = (0..100).map(|i| {
        let (ai, user) = (ai.clone(), users[i % users.len()]);
        tokio::spawn(async move { ai.call(user, question("Explain closures")).await })
    });
    let mut spent = 0;
    let mut refused = 0;
    for result in futures_util::future::join_all(calls).await {
        match result.unwrap() {
            Ok(charged) => spent += charged.cost,
            Err(AiCallError::Budget(BudgetError::GlobalExhausted { .. })) => refused += 1,
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(refused > 0);
    assert!(spent <= budget.global_hourly + reservation, "spent {spent}");
}

async fn the_settled_cost_is_the_reported_usage_at_the_table_prices(t: &TestDb, backend: &Backend) {
    let alice = user(t, "alice").await;
    let prices = BudgetSettings::default();
    let ai = ai(
        t,
        backend,
        AiClient::builder().build(),
        prices.clone(),
        generous(),
    )
    .await;

    let charged = ai.call(alice, question("Hello there")).await.unwrap();

    let usage = charged.completion.usage;
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    let expected = 2_000
        + (usage.input_tokens * 500).div_ceil(1000)
        + (usage.output_tokens * 1_500).div_ceil(1000);
    assert_eq!(charged.cost, expected);
    assert_eq!(ai.cost(usage), expected);
    assert!(charged.cost < ai.worst_case_cost(&question("Hello there")));
    assert_eq!(ai.usage(alice).await.unwrap().spent_today, expected);
}

async fn a_call_no_provider_answers_releases_its_reservation(t: &TestDb, backend: &Backend) {
    let alice = user(t, "alice").await;
    let nobody = AiClient::builder().local_when_empty(false).build();
    let ai = ai(t, backend, nobody, BudgetSettings::default(), generous()).await;

    let error = ai.call(alice, question("Anyone?")).await.unwrap_err();

    assert!(matches!(error, AiCallError::Provider(_)), "{error:?}");
    assert_eq!(ai.usage(alice).await.unwrap().spent_today, 0);
}

async fn the_ai_rule_limits_calls_per_user(t: &TestDb, backend: &Backend) {
    let (alice, bob) = (user(t, "alice").await, user(t, "bob").await);
    let rules = RuleTable {
        ai: RuleSettings {
            per_minute: Some(3),
            per_hour: None,
        },
        ..RuleTable::default()
    };
    let ai = ai(
        t,
        backend,
        AiClient::builder().build(),
        BudgetSettings::default(),
        rules,
    )
    .await;
    for _ in 0..3 {
        ai.call(alice, question("Hi")).await.unwrap();
    }

    let error = ai.call(alice, question("Hi")).await.unwrap_err();

    let AiCallError::RateLimited(decision) = error else {
        panic!("{error:?}")
    };
    assert_eq!(decision.rule, "ai.minute");
    assert!(decision.retry_after.is_some());
    ai.call(bob, question("Hi"))
        .await
        .expect("another user has their own quota");
    let spent = ai.usage(alice).await.unwrap().spent_today;
    assert!(spent > 0);
    assert!(ai.call(alice, question("Hi")).await.is_err());
    assert_eq!(
        ai.usage(alice).await.unwrap().spent_today,
        spent,
        "a refused call costs nothing"
    );
}

async fn reply_or_fallback_answers_or_says_the_fallback_line(t: &TestDb, backend: &Backend) {
    let villager = user(t, "villager").await;
    let ai_up = ai(
        t,
        backend,
        AiClient::builder().build(),
        BudgetSettings::default(),
        generous(),
    )
    .await;
    let reply = ai_up
        .reply_or_fallback(villager, question("Hello neighbour"))
        .await;
    assert_eq!(reply.fallback, None);
    assert_ne!(reply.text, settings().fallback_line);

    let nobody = AiClient::builder().local_when_empty(false).build();
    let ai_down = ai(t, backend, nobody, BudgetSettings::default(), generous()).await;
    let reply = ai_down
        .reply_or_fallback(villager, question("Hello neighbour"))
        .await;
    assert_eq!(reply.fallback, Some("unavailable"));
    assert_eq!(reply.text, settings().fallback_line);

    let broke = BudgetSettings {
        user_daily: 1,
        ..BudgetSettings::default()
    };
    let ai_broke = ai(t, backend, AiClient::builder().build(), broke, generous()).await;
    let reply = ai_broke
        .reply_or_fallback(villager, question("Hello neighbour"))
        .await;
    assert_eq!(reply.fallback, Some("user_budget"));
    assert_eq!(reply.text, settings().fallback_line);
}
