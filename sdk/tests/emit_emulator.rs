//! The emit path against the Pub/Sub emulator and fake-gcs-server.

use serde_json::{Value, json};
use sha2::Digest;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use suitex_events::config::Endpoint;
use suitex_events::envelope::Event;
use suitex_events::{Emitter, PayloadLocation};
use suitex_test_support::*;

fn event(account: u64, aggregate_id: &str, seq: u64, payload: Value) -> Event {
    Event::builder()
        .account_id(account)
        .aggregate("customer", aggregate_id)
        .event_type("customer.updated")
        .payload(json!({"seq": seq, "data": payload}))
        .build()
        .unwrap()
}

fn seq_of(m: &google_cloud_pubsub::model::Message) -> u64 {
    let v: Value = serde_json::from_slice(&m.data).unwrap();
    v["payload"]["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_events_over_twenty_aggregates_arrive_in_per_key_order() {
    // A tiny key budget forces many publisher generations: order must survive the switches.
    let config = emulator_config("order").max_ordering_keys(3).build().unwrap();
    let probe = provision_with_probe(&config).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();

    let mut tasks = Vec::new();
    for agg in 0..20u64 {
        let emitter = emitter.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 0..10u64 {
                let e = event(7, &format!("A-{agg}"), seq, json!("x"));
                let receipt = emitter.emit_event(e).await.expect("emit");
                assert_eq!(receipt.payload_location, PayloadLocation::Inline);
                assert!(!receipt.message_id.is_empty());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert!(emitter.publisher_generations_retired() > 0, "the key budget of 3 was never exceeded");

    let got = receive(&config, &probe, 200, Duration::from_secs(60)).await;
    assert_eq!(got.len(), 200, "received {} of 200 messages", got.len());
    let mut per_key: HashMap<String, Vec<u64>> = HashMap::new();
    for m in &got {
        assert!(m.ordering_key.starts_with("7:customer:A-"), "{}", m.ordering_key);
        per_key.entry(m.ordering_key.clone()).or_default().push(seq_of(m));
    }
    assert_eq!(per_key.len(), 20);
    for (key, seqs) in per_key {
        assert_eq!(seqs, (0..10).collect::<Vec<_>>(), "ordering key {key} arrived out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_published_in_order_with_envelope_and_attributes() {
    let config = emulator_config("batch").build().unwrap();
    let probe = provision_with_probe(&config).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let events: Vec<Event> = (0..30).map(|i| event(9, &format!("B-{}", i % 3), i, json!(i))).collect();
    let ids: Vec<_> = events.iter().map(|e| e.event_id()).collect();
    let results = emitter.emit_events(events.clone()).await.unwrap();
    for (r, id) in results.iter().zip(&ids) {
        assert_eq!(&r.as_ref().unwrap().event_id, id);
    }
    let got = receive(&config, &probe, 30, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 30);
    let by_id: HashMap<String, &google_cloud_pubsub::model::Message> =
        got.iter().map(|m| (attr(m, "event_id").to_string(), m)).collect();
    for e in &events {
        let m = by_id[&e.event_id().to_string()];
        assert_eq!(Event::decode(&m.data).unwrap(), *e, "the wire form round-trips");
        assert_eq!(m.ordering_key, e.ordering_key());
        assert_eq!(attr(m, "account_id"), "9");
        assert_eq!(attr(m, "aggregate_type"), "customer");
        assert_eq!(attr(m, "event_type"), "customer.updated");
        assert_eq!(attr(m, "schema_version"), "1");
        assert_eq!(attr(m, "payload_location"), "inline");
    }
    let mut per_key: HashMap<&str, Vec<u64>> = HashMap::new();
    for m in &got {
        per_key.entry(&m.ordering_key).or_default().push(seq_of(m));
    }
    for seqs in per_key.values() {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_payload_is_offloaded_and_its_object_matches_the_reference() {
    let config = emulator_config("offload").build().unwrap();
    let probe = provision_with_probe(&config).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let big = event(11, "BIG-1", 0, json!("é".repeat(200_000))); // ~400 KB of JSON
    let receipt = emitter.emit_event(big.clone()).await.unwrap();
    assert_eq!(receipt.payload_location, PayloadLocation::ClaimCheck);

    let got = receive(&config, &probe, 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(attr(m, "payload_location"), "gcs");
    let wire: Value = serde_json::from_slice(&m.data).unwrap();
    assert!(wire.get("payload").is_none(), "no inline payload: {wire}");
    let r = &wire["payload_ref"];
    let at = big.occurred_at();
    let sha = r["sha256"].as_str().unwrap();
    let expected_object = format!(
        "11/{:04}/{:02}/{:02}/{}/{sha}.json",
        at.year(),
        u8::from(at.month()),
        at.day(),
        big.event_id()
    );
    assert_eq!(r["bucket"], config.names().payload_bucket.as_str());
    assert_eq!(r["object"], expected_object.as_str());
    assert!(r["generation"].as_i64().unwrap() > 0);

    let bytes = download(&config.names().payload_bucket, &expected_object).await;
    assert_eq!(r["size"].as_u64().unwrap(), bytes.len() as u64);
    assert_eq!(r["sha256"].as_str().unwrap(), hex::encode(sha2::Sha256::digest(&bytes)));
    let Value::Object(_) = serde_json::from_slice::<Value>(&bytes).unwrap() else {
        panic!("payload is JSON")
    };
    assert_eq!(serde_json::from_slice::<Value>(&bytes).unwrap(), big.payload().to_value().unwrap());
    assert!(m.data.len() < 1024, "the message is small: {} bytes", m.data.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reemitting_an_event_reuses_its_object_and_a_different_payload_gets_its_own() {
    let config = emulator_config("reemit").offload_threshold(1024).build().unwrap();
    provision_with_probe(&config).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let first = event(12, "R-1", 0, json!("a".repeat(5000)));
    let once = emitter.emit_event(first.clone()).await.unwrap();
    let again = emitter.emit_event(first.clone()).await.expect("a retry of the same event succeeds");
    assert_eq!(again.payload_location, PayloadLocation::ClaimCheck);
    assert_eq!(once.event_id, again.event_id);
    let objects = list_objects(&config.names().payload_bucket, "12/").await;
    assert_eq!(objects.len(), 1, "the retry found its own object: {objects:?}");
    let bytes = download(&config.names().payload_bucket, &objects[0]).await;
    let sha = suitex_events::claim_check::sha256_hex(&bytes);
    assert_eq!(
        objects[0],
        suitex_events::claim_check::object_name(&first, &sha),
        "named for the event and its bytes"
    );

    // A reused event_id with another payload is no business of the bucket: it gets an object of
    // its own (never overwriting the first), and the event store refuses the reuse.
    let imposter = Event::builder()
        .event_id(first.event_id())
        .occurred_at(first.occurred_at())
        .account_id(12)
        .aggregate("customer", "R-1")
        .event_type("customer.updated")
        .payload(json!({"seq": 0, "data": "b".repeat(5000)}))
        .build()
        .unwrap();
    emitter.emit_event(imposter).await.unwrap();
    let objects = list_objects(&config.names().payload_bucket, "12/").await;
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert_eq!(
        download(&config.names().payload_bucket, objects.iter().find(|o| o.contains(&sha)).unwrap()).await,
        bytes,
        "the original object is intact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payload_over_the_hard_maximum_is_rejected_with_nothing_uploaded_or_published() {
    let config =
        emulator_config("toobig").offload_threshold(64 * 1024).max_payload(1024 * 1024).build().unwrap();
    let probe = provision_with_probe(&config).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let huge = event(13, "H-1", 0, json!("z".repeat(2 * 1024 * 1024)));
    let err = emitter.emit_event(huge).await.unwrap_err();
    assert!(err.is_validation());
    let v = err.as_validation().unwrap();
    assert_eq!(v.field(), "payload");
    assert!(
        v.to_string().starts_with("payload is 2097")
            && v.to_string().ends_with("bytes as JSON; the limit is 1048576"),
        "{v}"
    );

    // In a batch, one oversized payload refuses the whole batch before anything is sent.
    let ok = event(13, "H-1", 1, json!("fine"));
    let big = event(13, "H-1", 2, json!("z".repeat(2 * 1024 * 1024)));
    let err = emitter.emit_events(vec![ok, big]).await.unwrap_err();
    assert_eq!(err.as_validation().unwrap().field(), "events[1].payload");

    let sentinel = event(13, "H-1", 3, json!("sentinel"));
    let sentinel_id = sentinel.event_id().to_string();
    emitter.emit_event(sentinel).await.unwrap();
    let before = receive_until(&config, &probe, &[&sentinel_id], Duration::from_secs(30)).await;
    assert!(before.is_empty(), "published before the sentinel: {} messages", before.len());
    assert!(list_objects(&config.names().payload_bucket, "13/").await.is_empty(), "nothing uploaded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_pubsub_fails_with_a_clear_error_within_the_deadline() {
    // Port 1 on loopback: nobody listens.
    let config = suitex_events::Config::builder("suitex-local")
        .pubsub_endpoint(Endpoint::emulator("127.0.0.1:1"))
        .storage_endpoint(Endpoint::emulator("127.0.0.1:1"))
        .publish_deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let emitter = Emitter::connect(config).await.unwrap();
    let started = Instant::now();
    let err = emitter.emit_event(event(14, "U-1", 0, json!(1))).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_deadline_exceeded() || err.is_transient(), "{err}");
    assert!(err.is_publish(), "{err}");
    let text = err.to_string();
    assert!(text.contains("projects/suitex-local/topics/events.raw"), "{text}");
    // Functional contract, not a benchmark: the call returns once its deadline has passed.
    assert!(took < Duration::from_secs(8), "emit returned after {took:?}, deadline 2s");

    // The ordering key is not left paused: the next emit of the key fails the same clear way
    // rather than with "publishing is paused".
    let err = emitter.emit_event(event(14, "U-1", 1, json!(1))).await.unwrap_err();
    assert!(!err.to_string().contains("paused"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_that_never_answers_fails_at_the_deadline() {
    // A listener that completes TCP handshakes (kernel backlog) but never speaks HTTP/2.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let config = suitex_events::Config::builder("suitex-local")
        .pubsub_endpoint(Endpoint::emulator(&addr.to_string()))
        .storage_endpoint(Endpoint::emulator(&addr.to_string()))
        .publish_deadline(Duration::from_secs(2))
        .build()
        .unwrap();
    let emitter = Emitter::connect(config).await.unwrap();
    let started = Instant::now();
    let err = emitter.emit_event(event(15, "S-1", 0, json!(1))).await.unwrap_err();
    let took = started.elapsed();
    assert!(err.is_deadline_exceeded(), "{err}");
    assert_eq!(
        err.to_string(),
        "publishing to projects/suitex-local/topics/events.raw did not complete within 2s"
    );
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(8), "returned after {took:?}");
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_event_stops_later_events_of_its_key_but_not_other_keys() {
    // Pub/Sub works; Cloud Storage is unreachable, so the oversized event cannot be offloaded.
    let good = emulator_config("gap").build().unwrap();
    let probe = provision_with_probe(&good).await;
    let config = suitex_events::Config::builder("suitex-local")
        .pubsub_endpoint(Endpoint::emulator(&required_env("PUBSUB_EMULATOR_HOST")))
        .storage_endpoint(Endpoint::emulator("127.0.0.1:1"))
        .names(good.names().clone())
        .offload_threshold(1024)
        .publish_deadline(Duration::from_secs(5))
        .build()
        .unwrap();
    let emitter = Emitter::connect(config).await.unwrap();
    let a0 = event(16, "A", 0, json!("small"));
    let a1 = event(16, "A", 1, json!("z".repeat(4096)));
    let a2 = event(16, "A", 2, json!("small"));
    let b0 = event(16, "B", 0, json!("small"));
    let results = emitter.emit_events(vec![a0.clone(), a1, a2, b0.clone()]).await.unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let upload_err = results[1].as_ref().unwrap_err();
    // The storage client keeps retrying a refused connection, so the upload ends at the deadline.
    assert!(
        upload_err.to_string().contains(&format!("gs://{}", good.names().payload_bucket)),
        "{upload_err}"
    );
    let gap_err = results[2].as_ref().unwrap_err();
    assert!(
        matches!(gap_err, suitex_events::Error::EarlierEventFailed { ordering_key } if ordering_key == "16:customer:A"),
        "{gap_err}"
    );
    assert_eq!(
        gap_err.to_string(),
        "not sent: an earlier event of ordering key 16:customer:A in this call failed"
    );
    assert!(results[3].is_ok(), "{:?}", results[3]);

    let (sa, sb) = (event(16, "A", 3, json!("sentinel")), event(16, "B", 1, json!("sentinel")));
    let sentinels = [sa.event_id().to_string(), sb.event_id().to_string()];
    for r in emitter.emit_events(vec![sa, sb]).await.unwrap() {
        r.unwrap();
    }
    let sentinels: Vec<&str> = sentinels.iter().map(String::as_str).collect();
    let before = receive_until(&good, &probe, &sentinels, Duration::from_secs(30)).await;
    let mut ids: Vec<&str> = before.iter().map(|m| attr(m, "event_id")).collect();
    ids.sort();
    let mut expected = vec![a0.event_id().to_string(), b0.event_id().to_string()];
    expected.sort();
    assert_eq!(ids, expected, "only A0 and B0 were published before the sentinel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_only_storage_account_can_retry_an_oversized_emit() {
    // The web tier's storage role creates objects and cannot read them.
    let proxy = CreateOnlyStorage::start().await;
    let direct = emulator_config("createonly").offload_threshold(1024).build().unwrap();
    provision_with_probe(&direct).await;
    let config = emulator_config("createonly")
        .names(direct.names().clone())
        .offload_threshold(1024)
        .storage_endpoint(suitex_events::config::Endpoint::emulator(&proxy.host()))
        .build()
        .unwrap();
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let big = event(13, "C-1", 0, json!("c".repeat(5000)));
    let first = emitter.emit_event(big.clone()).await.unwrap();
    // A publish that timed out after the upload landed: the caller emits the same event again;
    // the object exists (412), and the name alone proves it holds these bytes.
    let retry = emitter.emit_event(big.clone()).await.expect("the retry succeeds without reading the object");
    assert_eq!(retry.payload_location, PayloadLocation::ClaimCheck);
    assert_eq!(first.event_id, retry.event_id);
    assert_eq!(list_objects(&config.names().payload_bucket, "13/").await.len(), 1);
    assert_eq!(proxy.refused_reads(), 0, "the emit never tried to read");
    // The proxy does refuse reads: an emitter that read the object to compare would have failed.
    let object = &list_objects(&config.names().payload_bucket, "13/").await[0];
    let status = reqwest::get(format!(
        "http://{}/storage/v1/b/{}/o/{}?alt=media",
        proxy.host(),
        config.names().payload_bucket,
        object.replace('/', "%2F")
    ))
    .await
    .unwrap()
    .status();
    assert_eq!(status, 403);
    assert_eq!(proxy.refused_reads(), 1);
}
