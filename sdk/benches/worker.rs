//! Worker-side benchmark (a bench binary, not a test), in one run:
//!
//! 1. the store's batch append of M 1 KiB events versus a raw multi-row INSERT of the same rows
//!    through sqlx into a scratch table of the same shape (target ≥ 0.8×), alternating rounds;
//! 2. the end-to-end rate emit → committed through the Pub/Sub emulator (a worker in this
//!    process, MariaDB);
//! 3. end-to-end latency (occurred_at → row created_at) p50/p99 at a fixed offered rate.
//!
//! ```sh
//! scripts/services start --fresh && eval "$(scripts/services env)"
//! cargo bench -p suitex-events --bench worker            # M=50000, 20000 end to end, 500/s for 20 s
//! cargo bench -p suitex-events --bench worker -- --rows 100000 --rounds 5
//! ```

use serde_json::json;
use sqlx::QueryBuilder;
use std::time::{Duration, Instant};
use suitex_events::worker::WorkerOptions;
use suitex_events::store::{EventStore, MAX_ROWS_PER_INSERT};
use suitex_events::{Emitter, Event};
use suitex_test_support::bench::{median, percentile};
use suitex_test_support::*;

/// Worker benchmark (see the file's docs).
#[derive(clap::Parser)]
struct Args {
    /// Rows per append round.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Events of the end-to-end run.
    #[arg(long, default_value_t = 20_000)]
    e2e_events: usize,
    /// Offered load of the latency run, events/s.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Length of the latency run, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn events(n: usize, tag: &str) -> Vec<Event> {
    let filler = "x".repeat(1024 - 60);
    (0..n)
        .map(|i| {
            Event::builder()
                .account_id(7)
                .aggregate("customer", format!("{tag}-{}", i % 1000))
                .event_type("customer.updated")
                .payload(json!({"seq": i, "filler": filler}))
                .build()
                .unwrap()
        })
        .collect()
}

/// The baseline: the same rows, a plain multi-row INSERT per 500 rows, nothing else.
async fn raw_insert(store: &EventStore, events: &[Event]) {
    for chunk in events.chunks(MAX_ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<sqlx::MySql>::new(
            "INSERT INTO scratch (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, metadata, occurred_at) ",
        );
        q.push_values(chunk, |mut b, e| {
            let payload = match e.payload() {
                suitex_events::envelope::Payload::Inline(v) => serde_json::to_string(v).unwrap(),
                _ => unreachable!(),
            };
            let at = e.occurred_at();
            b.push_bind(e.account_id())
                .push_bind(e.event_id().to_string())
                .push_bind(e.aggregate_type())
                .push_bind(e.aggregate_id())
                .push_bind(e.event_type())
                .push_bind(payload)
                .push_bind(None::<String>)
                .push_bind(time::PrimitiveDateTime::new(at.date(), at.time()));
        });
        q.build().execute(store.pool()).await.unwrap();
    }
}

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    println!(
        "worker benchmark: append {} rows x {} rounds; {} events end to end; {} events/s for {} s",
        a.rows, a.rounds, a.e2e_events, a.rate, a.seconds
    );

    // 1. Batch append vs raw INSERT.
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let db = TestDb::new("bench_append").await;
        db.store.execute("CREATE TABLE scratch LIKE event_store").await.unwrap();
        let batch = events(a.rows, &format!("r{round}"));
        let started = Instant::now();
        raw_insert(&db.store, &batch).await;
        let r = a.rows as f64 / started.elapsed().as_secs_f64();
        let started = Instant::now();
        for chunk in batch.chunks(MAX_ROWS_PER_INSERT) {
            db.store.append(chunk).await.unwrap();
        }
        let o = a.rows as f64 / started.elapsed().as_secs_f64();
        assert_eq!(db.rows().await, a.rows as u64);
        println!("  round {}: store append {o:>8.0} rows/s   raw INSERT {r:>8.0} rows/s", round + 1);
        ours.push(o);
        raw.push(r);
    }
    let (o, r) = (median(ours), median(raw));
    println!(
        "append (median): store {o:.0} rows/s, raw multi-row INSERT {r:.0} rows/s, ratio {:.2} (target >= 0.80)",
        o / r
    );

    // 2. End-to-end rate emit -> committed.
    let config = emulator_config("bench-e2e").build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let db = TestDb::new("bench_e2e").await;
    let options = WorkerOptions { batch_wait: Duration::from_millis(5), ..WorkerOptions::default() };
    let worker = RunningWorker::start(&config, &db.settings, options.clone()).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let batch = events(a.e2e_events, "e2e");
    let started = Instant::now();
    for chunk in batch.chunks(1000) {
        for r in emitter.emit_events(chunk.to_vec()).await.unwrap() {
            r.unwrap();
        }
    }
    let emitted_in = started.elapsed();
    while db.rows().await < a.e2e_events as u64 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    println!(
        "end to end: {} events emitted in {:.2} s, all committed after {:.2} s: {:.0} events/s",
        a.e2e_events,
        emitted_in.as_secs_f64(),
        took.as_secs_f64(),
        a.e2e_events as f64 / took.as_secs_f64()
    );
    worker.stop().await;

    // 3. Latency at a fixed offered rate.
    let config = emulator_config("bench-lat").build().unwrap();
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[]).await;
    let db = TestDb::new("bench_lat").await;
    let worker = RunningWorker::start(&config, &db.settings, options).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let total = a.rate * a.seconds;
    let interval = Duration::from_secs_f64(1.0 / a.rate as f64);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        ticker.tick().await;
        let emitter = emitter.clone();
        let e = Event::builder()
            .account_id(9)
            .aggregate("customer", format!("L-{}", i % 200))
            .event_type("customer.updated")
            .payload(json!({"seq": i, "filler": "y".repeat(900)}))
            .build()
            .unwrap();
        tasks.push(tokio::spawn(async move { emitter.emit_event(e).await.unwrap() }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    while db.rows().await < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    let mut lat: Vec<f64> = sqlx::query_scalar::<_, i64>(
        "SELECT TIMESTAMPDIFF(MICROSECOND, occurred_at, created_at) FROM event_store",
    )
    .fetch_all(db.store.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|us| us as f64 / 1000.0)
    .collect();
    lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "latency emit -> committed at {} events/s offered ({} events): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        a.rate,
        lat.len(),
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        lat.last().unwrap()
    );
}
