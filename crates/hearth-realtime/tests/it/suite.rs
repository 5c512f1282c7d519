//! Hub behaviours, written once and run on the in-process hub and on Redis. Each case gets
//! two hubs, `a` and `b`: in process they are clones of one hub; on Redis they are two hubs
//! with one prefix, two gateways, so a publish on `a` must reach subscribers made on `b`.

use hearth_realtime::{Delivery, Hub};

use crate::support::{message, next, nothing};

/// Instantiates `async fn name(a: &dyn Hub, b: &dyn Hub)` for both backends.
macro_rules! hub_suite {
    ($($name:ident),+ $(,)?) => {
        mod in_process {
            $(
                #[tokio::test]
                async fn $name() {
                    let hub = hearth_realtime::InProcessHub::new();
                    super::$name(&hub, &hub.clone()).await;
                }
            )+
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(url) = crate::support::redis_url() else { return };
                    // A prefix of its own: no other test's messages reach this one.
                    let prefix = crate::support::unique_prefix();
                    let a = crate::support::redis_hub(&url, &prefix).await;
                    let b = crate::support::redis_hub(&url, &prefix).await;
                    super::$name(&a, &b).await;
                }
            )+
        }
    };
}

hub_suite!(
    a_subscriber_receives_what_is_published_on_its_topic_until_it_unsubscribes,
    one_subscriber_on_several_topics_gets_each_topic_and_no_other,
    every_subscriber_of_a_topic_gets_every_message_in_publish_order,
    a_slow_subscriber_gets_lagged_once_while_the_others_keep_receiving,
    subscribing_twice_delivers_once,
    a_dropped_subscriber_leaves_its_topics,
    a_local_delivery_reaches_this_processs_subscribers_only,
);

async fn a_subscriber_receives_what_is_published_on_its_topic_until_it_unsubscribes(
    a: &dyn Hub,
    b: &dyn Hub,
) {
    let mut sub = b.subscriber(16);
    sub.subscribe("big_wins");
    a.publish("big_wins", r#"{"n":1}"#).await.unwrap();
    assert_eq!(
        message(&mut sub).await,
        ("big_wins".to_owned(), r#"{"n":1}"#.to_owned())
    );

    sub.unsubscribe("big_wins");
    a.publish("big_wins", r#"{"n":2}"#).await.unwrap();
    nothing(&mut sub).await;

    sub.subscribe("big_wins");
    a.publish("big_wins", r#"{"n":3}"#).await.unwrap();
    assert_eq!(message(&mut sub).await.1, r#"{"n":3}"#);
}

async fn one_subscriber_on_several_topics_gets_each_topic_and_no_other(a: &dyn Hub, b: &dyn Hub) {
    let mut sub = b.subscriber(16);
    sub.subscribe("user:1");
    sub.subscribe("leaderboard:balance:all");
    a.publish("user:2", "other user").await.unwrap();
    a.publish("user:1", "mine").await.unwrap();
    a.publish("big_wins", "not subscribed").await.unwrap();
    a.publish("leaderboard:balance:all", "board").await.unwrap();
    // What was published on other topics in between never arrives: the next messages are
    // exactly the two subscribed ones, in order (one connection carries all topics).
    assert_eq!(message(&mut sub).await, ("user:1".into(), "mine".into()));
    assert_eq!(
        message(&mut sub).await,
        ("leaderboard:balance:all".into(), "board".into())
    );
    nothing(&mut sub).await;
}

async fn every_subscriber_of_a_topic_gets_every_message_in_publish_order(a: &dyn Hub, b: &dyn Hub) {
    let mut subs: Vec<_> = (0..3)
        .map(|i| {
            // Subscribers on both hubs: local and remote delivery alike.
            let hub = if i == 0 { a } else { b };
            let sub = hub.subscriber(200);
            sub.subscribe("big_wins");
            sub
        })
        .collect();
    for n in 0..100 {
        a.publish("big_wins", &n.to_string()).await.unwrap();
    }
    for sub in &mut subs {
        for n in 0..100 {
            assert_eq!(message(sub).await.1, n.to_string());
        }
        nothing(sub).await;
    }
}

async fn a_slow_subscriber_gets_lagged_once_while_the_others_keep_receiving(
    a: &dyn Hub,
    b: &dyn Hub,
) {
    let mut slow = b.subscriber(2);
    let mut fast = b.subscriber(64);
    slow.subscribe("big_wins");
    fast.subscribe("big_wins");
    for n in 0..5 {
        a.publish("big_wins", &n.to_string()).await.unwrap();
    }
    // The fast one gets all five: the slow one never held the publisher back.
    for n in 0..5 {
        assert_eq!(message(&mut fast).await.1, n.to_string());
    }
    // The slow one's queue overflowed at the third message: `Lagged`, once, then nothing.
    assert!(matches!(next(&mut slow).await, Some(Delivery::Lagged)));
    assert!(next(&mut slow).await.is_none(), "nothing after Lagged");
    assert!(next(&mut slow).await.is_none(), "still nothing");

    // Later publishes still reach the fast one, and the slow one's subscribe is refused.
    slow.subscribe("user:9");
    a.publish("big_wins", "after").await.unwrap();
    a.publish("user:9", "after").await.unwrap();
    assert_eq!(message(&mut fast).await.1, "after");
    assert!(next(&mut slow).await.is_none());
}

async fn subscribing_twice_delivers_once(a: &dyn Hub, b: &dyn Hub) {
    let mut sub = b.subscriber(16);
    sub.subscribe("control");
    sub.subscribe("control");
    a.publish("control", "once").await.unwrap();
    assert_eq!(message(&mut sub).await.1, "once");
    nothing(&mut sub).await;
    // One unsubscribe undoes both.
    sub.unsubscribe("control");
    a.publish("control", "gone").await.unwrap();
    nothing(&mut sub).await;
}

async fn a_dropped_subscriber_leaves_its_topics(a: &dyn Hub, b: &dyn Hub) {
    let gone = b.subscriber(1);
    gone.subscribe("big_wins");
    drop(gone);
    let mut kept = b.subscriber(16);
    kept.subscribe("big_wins");
    // Were the dropped one still registered, its closed queue would be skipped silently;
    // nothing here may panic or stall, and the live one receives.
    for n in 0..3 {
        a.publish("big_wins", &n.to_string()).await.unwrap();
    }
    for n in 0..3 {
        assert_eq!(message(&mut kept).await.1, n.to_string());
    }
}

async fn a_local_delivery_reaches_this_processs_subscribers_only(a: &dyn Hub, b: &dyn Hub) {
    let topic = "leaderboard:net_won:daily";
    let mut here = a.subscriber(16);
    here.subscribe(topic);
    let mut there = b.subscriber(16);
    there.subscribe(topic);
    let mut elsewhere = a.subscriber(16);
    elsewhere.subscribe("leaderboard:balance:all_time");
    // On Redis `b` is another gateway; in process it is the same hub as `a`.
    let gateways = if a.backend() == "redis" { 2 } else { 1 };
    let local = if gateways == 2 { 1 } else { 2 };

    assert_eq!(a.local_subscribers(topic), local);
    assert_eq!(a.deliver_local(topic, "top"), local);

    assert_eq!(
        message(&mut here).await,
        (topic.to_owned(), "top".to_owned())
    );
    if gateways == 2 {
        nothing(&mut there).await;
    } else {
        assert_eq!(message(&mut there).await.1, "top");
    }
    nothing(&mut elsewhere).await;

    drop(here);
    drop(there);
    assert_eq!(a.local_subscribers(topic), 0);
    assert_eq!(a.deliver_local(topic, "nobody"), 0);
}

/// In process only: what a subscriber sees when the hub itself is dropped, and the registry's
/// bookkeeping (Redis's is the same registry).
mod in_process_only {
    use hearth_realtime::{Hub, InProcessHub};

    #[tokio::test]
    async fn recv_answers_none_once_the_hub_is_gone() {
        let hub = InProcessHub::new();
        let mut sub = hub.subscriber(4);
        sub.subscribe("big_wins");
        hub.publish("big_wins", "last").await.unwrap();
        drop(hub);
        // What was queued still arrives, then the end.
        assert_eq!(crate::support::message(&mut sub).await.1, "last");
        assert!(crate::support::next(&mut sub).await.is_none());
    }

    #[tokio::test]
    async fn unsubscribing_dropping_and_lagging_leave_no_subscriber_behind() {
        let hub = InProcessHub::new();
        let one = hub.subscriber(1);
        let two = hub.subscriber(1);
        one.subscribe("big_wins");
        two.subscribe("big_wins");
        two.subscribe("control");
        assert_eq!(hub.subscribers("big_wins"), 2);
        one.unsubscribe("big_wins");
        assert_eq!(hub.subscribers("big_wins"), 1);
        drop(two);
        assert_eq!(hub.subscribers("big_wins"), 0);
        assert_eq!(hub.subscribers("control"), 0);

        let slow = hub.subscriber(1);
        slow.subscribe("big_wins");
        hub.publish("big_wins", "1").await.unwrap();
        assert_eq!(hub.subscribers("big_wins"), 1);
        hub.publish("big_wins", "2").await.unwrap();
        assert_eq!(hub.subscribers("big_wins"), 0, "the lagged one was dropped");
        drop(slow);
    }

    #[tokio::test]
    async fn ten_thousand_subscribers_each_get_a_broadcast() {
        let hub = InProcessHub::new();
        let mut subs: Vec<_> = (0..10_000).map(|_| hub.subscriber(4)).collect();
        for sub in &subs {
            sub.subscribe("big_wins");
        }
        hub.publish("big_wins", "all").await.unwrap();
        for sub in &mut subs {
            match sub.recv().await {
                Some(hearth_realtime::Delivery::Message { payload, .. }) => {
                    assert_eq!(&*payload, "all");
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
