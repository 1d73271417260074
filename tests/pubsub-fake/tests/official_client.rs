//! The fake driven by the official `google-cloud-pubsub` client (and, for the administrative
//! calls the Rust client only makes over REST, by the generated gRPC stubs) — never by the
//! fake's own code paths.

use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::{Publisher, Subscriber};
use google_cloud_pubsub::error::PublishError;
use google_cloud_pubsub::model::Message;
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1 as pb;
use googleapis_tonic_google_pubsub_v1::google::pubsub::v1::subscriber_client::SubscriberClient;
use pubsub_fake::{DeadLetterPolicy, PubSubFake, Subscription};
use std::collections::HashMap;
use std::time::Duration;
use tonic::Code;

const TOPIC: &str = "projects/p/topics/events.raw";
const DLQ: &str = "projects/p/topics/events.dlq";
const SUB: &str = "projects/p/subscriptions/events.raw-sub";
const DLQ_SUB: &str = "projects/p/subscriptions/events.dlq-sub";

async fn publisher(fake: &PubSubFake, topic: &str) -> Publisher {
    Publisher::builder(topic)
        .with_endpoint(fake.endpoint())
        .with_credentials(anonymous::Builder::new().build())
        .set_delay_threshold(Duration::from_millis(1))
        .build()
        .await
        .unwrap()
}

async fn subscriber(fake: &PubSubFake) -> Subscriber {
    Subscriber::builder()
        .with_endpoint(fake.endpoint())
        .with_credentials(anonymous::Builder::new().build())
        .build()
        .await
        .unwrap()
}

async fn grpc_subscriber(fake: &PubSubFake) -> SubscriberClient<tonic::transport::Channel> {
    let channel = tonic::transport::Endpoint::from_shared(fake.endpoint()).unwrap().connect().await.unwrap();
    SubscriberClient::new(channel)
}

fn ordered_sub(name: &str, topic: &str) -> Subscription {
    Subscription {
        name: name.into(),
        topic: topic.into(),
        enable_message_ordering: true,
        ack_deadline_seconds: 10,
        ..Default::default()
    }
}

/// `events.raw-sub` as production has it: ordered, dead-lettering to `events.dlq` after 5.
async fn events_raw_sub_as_in_production() -> PubSubFake {
    let fake = pubsub_fake::start().await;
    fake.create_topic(TOPIC).unwrap();
    fake.create_topic(DLQ).unwrap();
    fake.create_subscription(Subscription {
        dead_letter_policy: Some(DeadLetterPolicy {
            dead_letter_topic: DLQ.into(),
            max_delivery_attempts: 5,
        }),
        ..ordered_sub(SUB, TOPIC)
    })
    .unwrap();
    fake
}

fn msg(key: &str, data: String) -> Message {
    Message::new().set_data(data).set_ordering_key(key)
}

async fn wait_for(condition: impl Fn() -> bool, what: &str) {
    for _ in 0..200 {
        if condition() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

fn text(m: &Message) -> String {
    String::from_utf8(m.data.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_delivery_per_key_survives_nacks() {
    let fake = pubsub_fake::start().await;
    // This subscriber nacks and acks as it goes, one message at a time: the strict mode of
    // one outstanding message per key makes the order it sees exact.
    fake.set_max_outstanding_per_key(Some(1));
    fake.create_topic(TOPIC).unwrap();
    fake.create_subscription(ordered_sub(SUB, TOPIC)).unwrap();
    let publisher = publisher(&fake, TOPIC).await;
    let mut pending = Vec::new();
    for seq in 0..10 {
        for key in ["k1", "k2", "k3"] {
            pending.push(publisher.publish(msg(key, format!("{key}:{seq}"))));
        }
    }
    for p in pending {
        p.await.unwrap();
    }

    let subscriber = subscriber(&fake).await;
    let mut stream = subscriber.subscribe(SUB).build();
    let mut deliveries: HashMap<String, Vec<u32>> = HashMap::new();
    let mut acked = 0;
    while acked < 30 {
        let (m, h) = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .expect("messages keep arriving")
            .unwrap()
            .unwrap();
        let seq: u32 = text(&m).split(':').nth(1).unwrap().parse().unwrap();
        let seen = deliveries.entry(m.ordering_key.clone()).or_default();
        // Nack seq 3 and 7 the first time they arrive.
        let first_time = !seen.contains(&seq);
        seen.push(seq);
        if (seq == 3 || seq == 7) && first_time {
            h.nack();
        } else {
            h.ack();
            acked += 1;
        }
    }
    for key in ["k1", "k2", "k3"] {
        assert_eq!(
            deliveries[key],
            vec![0, 1, 2, 3, 3, 4, 5, 6, 7, 7, 8, 9],
            "key {key}: a nacked message is redelivered before anything after it"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_after_exactly_five_attempts_on_an_ordered_subscription_then_the_key_moves_on() {
    let fake = events_raw_sub_as_in_production().await;
    fake.create_subscription(ordered_sub(DLQ_SUB, DLQ)).unwrap();
    fake.set_max_outstanding_per_key(Some(1));

    let publisher = publisher(&fake, TOPIC).await;
    let ids: Vec<_> = ["poison", "good-1", "good-2"]
        .into_iter()
        .map(|d| publisher.publish(msg("acct:agg:1", d.to_string()).set_attributes([("origin", "test")])))
        .collect();
    let mut published = Vec::new();
    for id in ids {
        published.push(id.await.unwrap());
    }

    let subscriber = subscriber(&fake).await;
    let mut stream = subscriber.subscribe(SUB).build();
    let mut log = Vec::new();
    while !log.iter().any(|(d, _)| d == "good-2") {
        let (m, h) =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap().unwrap();
        let attempt = h.delivery_attempt().expect("a dead-letter policy sets delivery_attempt");
        log.push((text(&m), attempt));
        if text(&m) == "poison" {
            h.nack();
        } else {
            h.ack();
        }
    }
    assert_eq!(
        log,
        vec![
            ("poison".to_string(), 1),
            ("poison".to_string(), 2),
            ("poison".to_string(), 3),
            ("poison".to_string(), 4),
            ("poison".to_string(), 5),
            ("good-1".to_string(), 1),
            ("good-2".to_string(), 1),
        ],
        "five attempts, then the key continues in order"
    );

    let mut dlq = subscriber.subscribe(DLQ_SUB).build();
    let (m, h) = tokio::time::timeout(Duration::from_secs(20), dlq.next()).await.unwrap().unwrap().unwrap();
    h.ack();
    assert_eq!(text(&m), "poison");
    assert_eq!(m.ordering_key, "acct:agg:1");
    assert_eq!(m.attributes["origin"], "test");
    assert_eq!(m.attributes["CloudPubSubDeadLetterSourceDeliveryCount"], "5");
    assert_eq!(m.attributes["CloudPubSubDeadLetterSourceSubscription"], "events.raw-sub");
    assert_eq!(m.attributes["CloudPubSubDeadLetterSourceSubscriptionProject"], "p");
    let publish_time = &m.attributes["CloudPubSubDeadLetterSourceTopicPublishTime"];
    assert!(publish_time.ends_with('Z') && publish_time.len() == 27, "{publish_time}");
    // The client sends acks in the background; the subscription drains once they land.
    wait_for(|| fake.backlog(SUB) == 0, "events.raw-sub drained").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_messages_of_a_key_are_outstanding_at_once_and_a_nack_is_redelivered_first() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(TOPIC).unwrap();
    fake.create_subscription(ordered_sub(SUB, TOPIC)).unwrap();
    let publisher = publisher(&fake, TOPIC).await;
    for seq in 0..3 {
        publisher.publish(msg("k", format!("k:{seq}"))).await.unwrap();
    }
    let subscriber = subscriber(&fake).await;
    let mut stream = subscriber.subscribe(SUB).build();
    // All three are handed out before any is settled, as the real service does.
    let mut held = Vec::new();
    for _ in 0..3 {
        let (m, h) =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap().unwrap();
        held.push((text(&m), h));
    }
    assert_eq!(held.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(), ["k:0", "k:1", "k:2"]);
    // Nack the first and the last two: the first comes back first, then the others, in order.
    let mut held = held.into_iter();
    for (_, h) in held.by_ref() {
        h.nack();
    }
    let mut again = Vec::new();
    for _ in 0..3 {
        let (m, h) =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap().unwrap();
        again.push(text(&m));
        h.ack();
    }
    assert_eq!(again, ["k:0", "k:1", "k:2"]);
    wait_for(|| fake.backlog(SUB) == 0, "the subscription drained").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_over_the_limits_are_rejected_with_invalid_argument() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(TOPIC).unwrap();
    let publisher = publisher(&fake, TOPIC).await;
    let too_many: Vec<(String, String)> = (0..101).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let cases = [
        ("101 attributes", Message::new().set_data("x").set_attributes(too_many), "attribute_count"),
        (
            "257-byte attribute key",
            Message::new().set_data("x").set_attributes([("k".repeat(257), "v")]),
            "attribute_key_size",
        ),
        (
            "1025-byte attribute value",
            Message::new().set_data("x").set_attributes([("k", "v".repeat(1025))]),
            "attribute_value_size",
        ),
        (
            "1025-byte ordering key",
            Message::new().set_data("x").set_ordering_key("o".repeat(1025)),
            "ordering_key_size",
        ),
        ("10 MB + 1 request", Message::new().set_data(vec![b'x'; 10_000_001]), "request_size"),
        ("empty message", Message::new(), "empty"),
    ];
    for (name, m, mentions) in cases {
        let err = publisher.publish(m).await.expect_err(name);
        let PublishError::Rpc(e) = &err else { panic!("{name}: {err:?}") };
        let status = e.status().unwrap_or_else(|| panic!("{name}: no status in {e:?}"));
        assert_eq!(status.code, google_cloud_gax::error::rpc::Code::InvalidArgument, "{name}: {status:?}");
        assert!(status.message.contains(mentions), "{name}: {}", status.message);
    }
    // At the limits, everything is accepted.
    let at_limit: Vec<(String, String)> =
        (0..100).map(|i| (format!("{i:0>256}"), "v".repeat(1024))).collect();
    publisher
        .publish(Message::new().set_data("x").set_attributes(at_limit).set_ordering_key("o".repeat(1024)))
        .await
        .expect("messages at the limits are accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_policy_is_validated_and_defaulted() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(TOPIC).unwrap();
    fake.create_topic(DLQ).unwrap();
    let mut client = grpc_subscriber(&fake).await;
    let with_attempts = |name: &str, n: i32| pb::Subscription {
        name: format!("projects/p/subscriptions/{name}"),
        topic: TOPIC.into(),
        dead_letter_policy: Some(pb::DeadLetterPolicy {
            dead_letter_topic: DLQ.into(),
            max_delivery_attempts: n,
        }),
        ..Default::default()
    };
    for bad in [4, 101, -1] {
        let err = client.create_subscription(with_attempts("bad-sub", bad)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "max_delivery_attempts {bad}");
    }
    let created = client.create_subscription(with_attempts("zero-sub", 0)).await.unwrap().into_inner();
    assert_eq!(created.dead_letter_policy.unwrap().max_delivery_attempts, 5);
    assert_eq!(created.ack_deadline_seconds, 10);
    let got = client
        .get_subscription(pb::GetSubscriptionRequest {
            subscription: "projects/p/subscriptions/zero-sub".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.dead_letter_policy.unwrap().max_delivery_attempts, 5);
    let missing_topic = pb::Subscription {
        dead_letter_policy: Some(pb::DeadLetterPolicy {
            dead_letter_topic: "projects/p/topics/nope".into(),
            max_delivery_attempts: 5,
        }),
        ..with_attempts("dl-missing", 5)
    };
    assert_eq!(client.create_subscription(missing_topic).await.unwrap_err().code(), Code::NotFound);
    let again = client.create_subscription(with_attempts("zero-sub", 5)).await.unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_ack_deadline_counts_as_a_delivery_attempt() {
    let fake = events_raw_sub_as_in_production().await;
    publisher(&fake, TOPIC).await.publish(msg("k", "slow".into())).await.unwrap();
    let mut client = grpc_subscriber(&fake).await;
    let pull = |client: &mut SubscriberClient<tonic::transport::Channel>| {
        let mut client = client.clone();
        async move {
            client
                .pull(pb::PullRequest { subscription: SUB.into(), max_messages: 10, ..Default::default() })
                .await
                .unwrap()
                .into_inner()
                .received_messages
        }
    };
    let first = pull(&mut client).await;
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].delivery_attempt, 1);
    // Not acked: while the 10 s lease runs, nothing is delivered.
    assert!(pull(&mut client).await.is_empty());
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut second = Vec::new();
    for _ in 0..5 {
        second = pull(&mut client).await;
        if !second.is_empty() {
            break;
        }
    }
    assert_eq!(second.len(), 1, "redelivered after the deadline expired");
    assert_eq!(second[0].delivery_attempt, 2);
    // The first ack id is stale; acking it does not remove the message.
    client
        .acknowledge(pb::AcknowledgeRequest {
            subscription: SUB.into(),
            ack_ids: vec![first[0].ack_id.clone()],
        })
        .await
        .unwrap();
    assert_eq!(fake.backlog(SUB), 1, "a stale ack id acknowledges nothing");
    client
        .acknowledge(pb::AcknowledgeRequest {
            subscription: SUB.into(),
            ack_ids: vec![second[0].ack_id.clone()],
        })
        .await
        .unwrap();
    assert_eq!(fake.backlog(SUB), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_streaming_pull_is_reopened_by_the_client_and_nothing_is_lost() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(TOPIC).unwrap();
    fake.create_subscription(ordered_sub(SUB, TOPIC)).unwrap();
    let publisher = publisher(&fake, TOPIC).await;
    for i in 0..5 {
        publisher.publish(msg("k", format!("before-{i}"))).await.unwrap();
    }
    let subscriber = subscriber(&fake).await;
    let mut stream = subscriber.subscribe(SUB).build();
    let mut got = Vec::new();
    while got.len() < 5 {
        let (m, h) =
            tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap().unwrap();
        h.ack();
        got.push(text(&m));
    }
    assert_eq!(fake.end_streaming_pulls(SUB, Code::Unavailable), 1);
    for i in 0..5 {
        publisher.publish(msg("k", format!("after-{i}"))).await.unwrap();
    }
    while got.len() < 10 {
        let (m, h) =
            tokio::time::timeout(Duration::from_secs(30), stream.next()).await.unwrap().unwrap().unwrap();
        h.ack();
        got.push(text(&m));
    }
    let expected: Vec<String> =
        (0..5).map(|i| format!("before-{i}")).chain((0..5).map(|i| format!("after-{i}"))).collect();
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_publish_failure_pauses_the_ordering_key_in_the_official_client() {
    let fake = pubsub_fake::start().await;
    fake.create_topic(TOPIC).unwrap();
    let publisher = publisher(&fake, TOPIC).await;
    // FAILED_PRECONDITION is not retried by the client, so the failure reaches the key.
    fake.fail_next_publishes(TOPIC, 1, Code::FailedPrecondition);
    let first = publisher.publish(msg("acct:agg:1", "one".into())).await.unwrap_err();
    assert!(matches!(first, PublishError::Rpc(_)), "{first:?}");
    let second = publisher.publish(msg("acct:agg:1", "two".into())).await.unwrap_err();
    assert!(matches!(second, PublishError::OrderingKeyPaused), "{second:?}");
    // Other keys are unaffected; the paused key works again once resumed.
    publisher.publish(msg("acct:agg:2", "other".into())).await.unwrap();
    publisher.resume_publish("acct:agg:1");
    publisher.publish(msg("acct:agg:1", "three".into())).await.unwrap();
}
