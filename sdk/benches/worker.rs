//! Worker-side benchmark (a bench binary, not a test). Each section prints its figure beside a
//! baseline measured in the same run:
//!
//! 1. `append` — the store's batch append of M 1 KiB events vs a raw multi-row INSERT of the same
//!    rows through sqlx into a scratch table of the same shape (target ≥ 0.8×), alternating rounds.
//! 2. `fake` — on the in-process Pub/Sub fake (so the emulator's own latency does not hide the
//!    worker's), with the worker's *default* settings:
//!    * latency at a fixed offered rate: emit → committed row (the worker) beside emit →
//!      received by a bare official subscriber on the same topic, same events, same time — the
//!      floor; target: the worker adds ≤ 5 ms p50 and ≤ 15 ms p99;
//!    * full-load throughput: N events waiting on the subscription, stored by the worker with
//!      its defaults (take what is there) beside the previous default (wait up to 20 ms for a
//!      batch to fill) — no loss of throughput — and beside a raw multi-row INSERT of the same
//!      events (the database's ceiling).
//!    * the ledger's figures: emit → `events.merged` latency (the feeder), the worker against the
//!      lower of its two ceilings — the bare subscriber's drain and the raw multi-row INSERT
//!      (target ≥ 0.6×) — and against the same INSERTs into `event_store` itself, whose
//!      numbering and chaining trigger runs for every row (what the ledger leaves any writer),
//!      and whether the feeder keeps up at full load (the largest merged lag seen, and how long
//!      after the last commit the last row is on `events.merged`).
//! 3. `emulator` — the same latency and throughput through the official Pub/Sub emulator.
//! 4. `sequence` — what the ledger's order costs: raw multi-row INSERTs into `event_store` (its
//!    numbering trigger runs for every row) vs the same INSERTs into a table of the same shape
//!    without it, alternating rounds; and the floor, the same INSERTs into an `event_store` whose
//!    trigger does no more than any gapless commit-order numbering must (take the counter row).
//! 5. `chain` — what the hash chain costs: migration 0003's trigger against 0002's (numbering
//!    alone), by raw INSERTs, through `EventStore::append` and for the worker at full load
//!    (target ≤ 10 %); the floor, a trigger that adds the least a per-row chain can (one SHA-256
//!    of the previous hash and the payload, inside numbering's own statement); and `verify`'s rate
//!    beside a plain scan of the same rows.
//! 6. `parking` — what the parked-key check (one query per batch) costs the healthy path: the
//!    worker at full load on the fake with no key parked vs one key parked (target ≥ 0.95×),
//!    alternating rounds.
//! 7. `scale` — 1 vs 2 vs 4 workers on one subscription (the fake), total throughput: the
//!    counter row must not make more workers slower than one.
//! 8. `memory` — peak RSS of a `suitex-events worker` process storing K claim-checked events of
//!    S MiB each (default 200 × 30 MiB), beside the same process storing K events of 1 KiB;
//!    target: ≤ 3 × S + the 1 KiB figure.
//!
//! ```sh
//! scripts/services start --fresh && eval "$(scripts/services env)"
//! cargo bench -p suitex-events --features worker --bench worker                 # every section
//! cargo bench -p suitex-events --features worker --bench worker -- --only fake,memory
//! ```
//!
//! `RUST_LOG=suitex_events::worker=debug` adds each batch's resolve/append/publish times on stderr.
//!
//! The sections that run the worker in this process run it with the `suitex-events` binary's
//! allocator, mimalloc (the Pub/Sub fake and the bare subscriber, in this process too, use it as
//! well); `memory` measures the binary itself.

use google_cloud_auth::credentials::anonymous;
use google_cloud_pubsub::client::Subscriber;
use serde_json::json;
use sqlx::QueryBuilder;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use suitex_events::config::Config;
use suitex_events::consume::merged::MergedEvent;
use suitex_events::store::{EventStore, MAX_ROWS_PER_INSERT};
use suitex_events::worker::WorkerOptions;
use suitex_events::{Emitter, Event};
use suitex_test_support::bench::{median, percentile};
use suitex_test_support::*;
use time::OffsetDateTime;

/// The allocator of the `suitex-events` binary (sdk/src/main.rs), so that the worker measured in
/// this process allocates as the binary's does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BIN: &str = env!("CARGO_BIN_EXE_suitex-events");

/// Worker benchmark (see the file's docs).
#[derive(clap::Parser)]
struct Args {
    /// Sections to run: append, fake, emulator, sequence, chain, parking, scale, memory.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "append,fake,emulator,sequence,chain,parking,scale,memory"
    )]
    only: Vec<String>,
    /// Rows per append round.
    #[arg(long, default_value_t = 50_000)]
    rows: usize,
    /// Rounds of the append section (the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The batch wait of the comparison run at full load, milliseconds.
    #[arg(long, default_value_t = 20)]
    compare_wait_ms: u64,
    /// Events of the full-load runs.
    #[arg(long, default_value_t = 20_000)]
    load_events: usize,
    /// Offered load of the latency runs, events/s.
    #[arg(long, default_value_t = 500)]
    rate: u64,
    /// Length of the latency runs, seconds.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Events of the memory run.
    #[arg(long, default_value_t = 200)]
    memory_events: usize,
    /// Payload size of the memory run's large events, MiB.
    #[arg(long, default_value_t = 30)]
    memory_mib: usize,
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
async fn raw_insert(store: &EventStore, table: &str, events: &[Event]) {
    for chunk in events.chunks(MAX_ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<sqlx::MySql>::new(format!(
            "INSERT INTO {table} (account_id, event_id, aggregate_type, aggregate_id, event_type, payload, metadata, occurred_at) "
        ));
        q.push_values(chunk, |mut b, e| {
            let payload = e.payload().json_text().expect("inline payloads").into_owned();
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

/// Alternating rounds of [`raw_insert`]s of `a.rows` fresh events into each of `targets`
/// (label, store, table), each round's rows/s printed: the median µs per row of each target.
async fn insert_rounds(a: &Args, targets: &[(&str, &EventStore, &str)]) -> Vec<f64> {
    let mut per_row = vec![Vec::new(); targets.len()];
    for round in 0..a.rounds {
        let mut line = format!("  round {}:", round + 1);
        for (i, (label, store, table)) in targets.iter().enumerate() {
            let batch = events(a.rows, &format!("{i}-{round}"));
            let started = Instant::now();
            raw_insert(store, table, &batch).await;
            let secs = started.elapsed().as_secs_f64();
            line.push_str(&format!("   {label} {:>8.0} rows/s", a.rows as f64 / secs));
            per_row[i].push(secs * 1e6 / a.rows as f64);
        }
        println!("{line}");
    }
    per_row.into_iter().map(median).collect()
}

/// A table of `event_store`'s shape as migration 0001 made it — no `seq` or version keys and no
/// numbering trigger (CREATE TABLE … LIKE copies no trigger): the baseline of a plain INSERT.
async fn scratch_table(store: &EventStore) {
    store.execute("CREATE TABLE scratch LIKE event_store").await.unwrap();
    store
        .execute(
            "ALTER TABLE scratch DROP INDEX event_store_seq_unique, DROP INDEX event_store_aggregate_version_unique, \
             ADD INDEX scratch_aggregate (account_id, aggregate_type, aggregate_id)",
        )
        .await
        .unwrap();
}

async fn append_section(a: &Args) {
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let db = TestDb::new("bench_append").await;
        scratch_table(&db.store).await;
        let batch = events(a.rows, &format!("r{round}"));
        let started = Instant::now();
        raw_insert(&db.store, "scratch", &batch).await;
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
}

/// Milliseconds from each row's occurred_at to its commit (created_at), sorted.
async fn commit_latencies(db: &TestDb) -> Vec<f64> {
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
    lat
}

fn summary(lat: &[f64]) -> String {
    format!(
        "p50 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms",
        percentile(lat, 0.5),
        percentile(lat, 0.99),
        lat[lat.len() - 1]
    )
}

/// Emits `rate` events/s for `seconds` (each its own call, as web requests do), over 200 keys.
async fn offer(emitter: &Emitter, rate: u64, seconds: u64) -> u64 {
    let total = rate * seconds;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
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
    total
}

/// A bare official subscriber on `subscription` that acks at once and records, per event id,
/// milliseconds from the event's occurred_at to its receipt.
fn bare_subscriber(
    config: &Config,
    subscription: String,
) -> (Arc<Mutex<HashMap<String, f64>>>, tokio::task::JoinHandle<()>) {
    let seen: Arc<Mutex<HashMap<String, f64>>> = Default::default();
    let endpoint = match config.pubsub_endpoint() {
        suitex_events::config::Endpoint::Emulator(url) => url.clone(),
        suitex_events::config::Endpoint::Google => unreachable!("benchmarks run locally"),
    };
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let subscriber = Subscriber::builder()
                .with_endpoint(endpoint)
                .with_credentials(anonymous::Builder::new().build())
                .build()
                .await
                .unwrap();
            let mut stream = subscriber.subscribe(subscription).build();
            while let Some(Ok((m, h))) = stream.next().await {
                let now = OffsetDateTime::now_utc();
                h.ack();
                let event = Event::decode(&m.data)
                    .or_else(|_| MergedEvent::decode(&m.data).map(|merged| merged.event));
                if let Ok(e) = event {
                    let ms = (now - e.occurred_at()).as_seconds_f64() * 1000.0;
                    seen.lock().unwrap().insert(e.event_id().to_string(), ms);
                }
            }
        })
    };
    (seen, task)
}

async fn wait_rows(db: &TestDb, n: u64) {
    while db.rows().await < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How long a full-load drain may take before it is reported as stalled.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

/// Events/s of a drain of `n` that completed, or how far it got before [`DRAIN_LIMIT`].
enum Drain {
    Done(f64),
    Stalled(u64),
}

impl std::fmt::Display for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Drain::Done(rate) => write!(f, "{rate:.0} events/s"),
            Drain::Stalled(got) => write!(f, "STALLED at {got} after {} s", DRAIN_LIMIT.as_secs()),
        }
    }
}

/// Waits until `count()` reaches `n` (or [`DRAIN_LIMIT`] passes) and rates it from `started`.
async fn drain<F, Fut>(n: u64, started: Instant, mut count: F) -> Drain
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    loop {
        let got = count().await;
        if got >= n {
            return Drain::Done(n as f64 / started.elapsed().as_secs_f64());
        }
        if started.elapsed() > DRAIN_LIMIT {
            return Drain::Stalled(got);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Latency at the offered rate and full-load throughput, on `config`'s Pub/Sub, with the
/// worker's default settings; `floor_sub` is a second subscription on the raw topic for the bare
/// subscriber.
async fn pubsub_section(a: &Args, label: &str, config: &Config, floor_sub: &str, merged_sub: &str) {
    println!(
        "{label}: latency at {} events/s for {} s (worker defaults: {:?})",
        a.rate,
        a.seconds,
        WorkerOptions::default().batch_wait
    );
    let db = TestDb::new("bench_lat").await;
    let worker = RunningWorker::start(config, &db.settings, WorkerOptions::default()).await;
    let (floor, floor_task) = bare_subscriber(config, config.subscription_path(floor_sub));
    let (merged, merged_task) = bare_subscriber(config, config.subscription_path(merged_sub));
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await; // every receiver connected
    let total = offer(&emitter, a.rate, a.seconds).await;
    wait_rows(&db, total).await;
    while (floor.lock().unwrap().len() as u64) < total || (merged.lock().unwrap().len() as u64) < total {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    worker.stop().await;
    floor_task.abort();
    merged_task.abort();
    let mut merged_lat: Vec<f64> = merged.lock().unwrap().values().copied().collect();
    merged_lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let worker_lat = commit_latencies(&db).await;
    let mut floor_lat: Vec<f64> = floor.lock().unwrap().values().copied().collect();
    floor_lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!("  bare subscriber (the floor), received: {}", summary(&floor_lat));
    println!("  worker, committed:                    {}", summary(&worker_lat));
    println!("  events.merged (the feeder), received: {}", summary(&merged_lat));
    println!(
        "  the worker adds p50 {:+.1} ms (target <= 5), p99 {:+.1} ms (target <= 15)",
        percentile(&worker_lat, 0.5) - percentile(&floor_lat, 0.5),
        percentile(&worker_lat, 0.99) - percentile(&floor_lat, 0.99)
    );

    println!("{label}: full load, {} events waiting", a.load_events);
    let batch = events(a.load_events, "load");
    let default = full_load(config, &emitter, &batch, WorkerOptions::default()).await;
    // The floor for a drain: a bare official subscriber acking the same events as they come
    // (its subscription has held them since they were emitted).
    let floor = {
        let started = Instant::now();
        let (seen, task) = bare_subscriber(config, config.subscription_path(floor_sub));
        let ids: Vec<String> = batch.iter().map(|e| e.event_id().to_string()).collect();
        let rate = drain(ids.len() as u64, started, || {
            let got = ids.iter().filter(|id| seen.lock().unwrap().contains_key(*id)).count() as u64;
            async move { got }
        })
        .await;
        task.abort();
        rate
    };
    // The previous default: wait up to 20 ms for a batch to fill.
    let waiting =
        WorkerOptions { batch_wait: Duration::from_millis(a.compare_wait_ms), ..WorkerOptions::default() };
    let waited = full_load(config, &emitter, &events(a.load_events, "load-wait"), waiting).await;
    // The same with this worker's feeder off (another process would feed): what the feeder
    // takes from the worker on a machine whose cores the database shares.
    let alone = WorkerOptions { feed_merged: false, ..WorkerOptions::default() };
    let store_only = full_load(config, &emitter, &events(a.load_events, "load-alone"), alone).await;
    let db = TestDb::new("bench_ceiling").await;
    scratch_table(&db.store).await;
    let started = Instant::now();
    raw_insert(&db.store, "scratch", &batch).await;
    let r = a.load_events as f64 / started.elapsed().as_secs_f64();
    // The same INSERTs into event_store itself: its numbering and chaining trigger runs for
    // every row, as for any writer — the ceiling the ledger as specified leaves a worker.
    let started = Instant::now();
    raw_insert(&db.store, "event_store", &batch).await;
    let ledger = a.load_events as f64 / started.elapsed().as_secs_f64();
    println!(
        "  worker (defaults): {}; with a {} ms batch wait: {}; with its feeder off: {}",
        default.rate, a.compare_wait_ms, waited.rate, store_only.rate
    );
    println!("  bare subscriber draining the same events (the Pub/Sub floor): {floor}");
    if let (Drain::Done(d), Drain::Done(w)) = (&default.rate, &waited.rate) {
        println!(
            "  defaults / {} ms wait {:.2}; worker / raw multi-row INSERT ({r:.0} rows/s, the database's ceiling) {:.2}",
            a.compare_wait_ms,
            d / w,
            d / r
        );
        let lower = match floor {
            Drain::Done(f) => f.min(r),
            Drain::Stalled(_) => r,
        };
        println!(
            "  worker / the lower of its two ceilings ({lower:.0}/s): {:.2} (target >= 0.60)",
            d / lower
        );
        println!(
            "  worker / raw multi-row INSERT into event_store, its trigger included ({ledger:.0} rows/s, the ledger's own ceiling): {:.2}",
            d / ledger
        );
    }
    println!(
        "  feeder at full load: largest merged lag seen {} rows; the last row on events.merged {} after the last commit",
        default.max_merged_lag,
        default.merged_after.map_or("never (within the drain limit)".to_string(), |t| format!(
            "{:.0} ms",
            t.as_secs_f64() * 1000.0
        ))
    );
}

/// A full-load drain: the worker's rate, and how its feeder kept up.
struct Load {
    rate: Drain,
    /// The largest `suitex_events_merged_lag` seen while draining.
    max_merged_lag: i64,
    /// From the last commit until every row was on `events.merged` (by the feeder's position).
    merged_after: Option<Duration>,
}

/// A worker with `options` draining `batch`, emitted before it starts.
async fn full_load(config: &Config, emitter: &Emitter, batch: &[Event], options: WorkerOptions) -> Load {
    full_load_into(TestDb::new("bench_load").await, config, emitter, batch, options).await
}

/// [`full_load`] into a database prepared by the caller.
async fn full_load_into(
    db: TestDb,
    config: &Config,
    emitter: &Emitter,
    batch: &[Event],
    options: WorkerOptions,
) -> Load {
    for chunk in batch.chunks(1000) {
        for r in emitter.emit_events(chunk.to_vec()).await.unwrap() {
            r.unwrap();
        }
    }
    let started = Instant::now();
    let options_feed = options.feed_merged;
    let worker = RunningWorker::start(config, &db.settings, options).await;
    let metrics = worker.metrics.clone();
    let max_lag = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let sampler = tokio::spawn({
        let (metrics, max_lag) = (metrics.clone(), max_lag.clone());
        async move {
            loop {
                max_lag.fetch_max(metrics.merged_lag.get(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    });
    let rate = drain(batch.len() as u64, started, || db.rows()).await;
    let committed = Instant::now();
    let n = batch.len() as i64;
    let mut merged_after = None;
    // With its feeder off nothing of this worker's publishes: nothing to wait for.
    while options_feed && committed.elapsed() < DRAIN_LIMIT {
        if metrics.merged_seq.get() >= n {
            merged_after = Some(committed.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sampler.abort();
    worker.stop().await;
    Load { rate, max_merged_lag: max_lag.load(std::sync::atomic::Ordering::Relaxed), merged_after }
}

async fn fake_section(a: &Args) {
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "bench").await;
    let n = config.names();
    fake.create_subscription(pubsub_fake::Subscription {
        name: config.subscription_path("bench-floor"),
        topic: config.topic_path(&n.raw_topic),
        ack_deadline_seconds: 60,
        enable_message_ordering: true,
        ..Default::default()
    })
    .unwrap();
    pubsub_section(a, "Pub/Sub fake (in process)", &config, "bench-floor", "events.merged-sub").await;
}

async fn emulator_section(a: &Args) {
    let config = emulator_config("bench-emu").build().unwrap();
    // The emulator outlives a run: a floor subscription of this run's own.
    let floor = format!("bench-emu-floor-{}", unique());
    let merged = format!("bench-emu-merged-{}", unique());
    provision_for_tests(&config, Topology::UnorderedWithDeadLetters, &[&merged]).await;
    suitex_events::clients::subscription_admin(&config)
        .await
        .unwrap()
        .create_subscription()
        .set_name(config.subscription_path(&floor))
        .set_topic(config.raw_topic_path())
        .send()
        .await
        .unwrap();
    pubsub_section(a, "Pub/Sub emulator", &config, &floor, &merged).await;
}

/// What the ledger's numbering trigger costs per INSERT, beside the least any counter-row trigger
/// costs: the same rows into a table without a trigger, into `event_store` whose trigger only
/// takes the counter row and hands out the next `seq` (see [`COUNTER_ONLY`]), and into
/// `event_store` as the migrations leave it, alternating rounds.
async fn sequence_section(a: &Args) {
    let db = TestDb::new("bench_seq").await;
    scratch_table(&db.store).await;
    let floor = with_trigger("bench_seq_floor", COUNTER_ONLY).await;
    floor
        .store
        .execute(
            "ALTER TABLE event_store DROP INDEX event_store_aggregate_version_unique, \
             ADD INDEX floor_aggregate (account_id, aggregate_type, aggregate_id)",
        )
        .await
        .unwrap();
    let medians = insert_rounds(
        a,
        &[
            ("without a trigger", &db.store, "scratch"),
            ("the counter row alone", &floor.store, "event_store"),
            ("the ledger's trigger", &db.store, "event_store"),
        ],
    )
    .await;
    let (wo, c, w) = (medians[0], medians[1], medians[2]);
    let rows = db.store.read_after(&suitex_events::store::Selection::All, 0, u32::MAX).await.unwrap();
    assert!(rows.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1), "gapless");
    let rows = floor.store.read_after(&suitex_events::store::Selection::All, 0, u32::MAX).await.unwrap();
    assert!(
        rows.iter().enumerate().all(|(i, r)| r.seq == i as u64 + 1),
        "the floor's trigger numbers gaplessly"
    );
    println!(
        "sequence (median of {}): {wo:.1} µs per row without a trigger, {w:.1} µs with the ledger's — +{:.1} µs per row, throughput ratio {:.2}",
        a.rounds,
        w - wo,
        wo / w
    );
    println!(
        "sequence, the floor: a trigger that only takes the counter row {c:.1} µs per row — throughput ratio {:.2} against no trigger; \
         no ledger whose `seq` a counter row hands out can INSERT faster on this database, nor a worker storing into it",
        wo / c
    );
}

/// The least a trigger numbering in commit order does: take the counter row (its lock held until
/// commit) and hand out the next `seq`; no versions, no chain. Measured as a floor, never shipped.
const COUNTER_ONLY: &str = "CREATE TRIGGER event_store_assign_order BEFORE INSERT ON event_store FOR EACH ROW \
BEGIN \
    UPDATE event_store_sequence SET last_seq = LAST_INSERT_ID(last_seq + 1) WHERE id = 1; \
    SET NEW.seq = LAST_INSERT_ID(); \
END";

/// The least a hash chain adds to migration 0002's numbering: one SHA-256 of the previous hash
/// and the payload, computed and written back in the statement that already takes the counter
/// row — no encoding of the other columns, no statement of its own. Measured as a floor, never
/// shipped (it hands the hash back through a user variable, which MySQL 8 deprecates).
const LEAST_CHAIN: &str = "CREATE TRIGGER event_store_assign_order BEFORE INSERT ON event_store FOR EACH ROW \
BEGIN \
    INSERT INTO event_store_aggregates (account_id, aggregate_type, aggregate_id, last_version) \
        VALUES (NEW.account_id, NEW.aggregate_type, NEW.aggregate_id, LAST_INSERT_ID(1)) \
        ON DUPLICATE KEY UPDATE last_version = LAST_INSERT_ID(last_version + 1); \
    SET NEW.aggregate_version = LAST_INSERT_ID(); \
    UPDATE event_store_sequence SET last_seq = LAST_INSERT_ID(last_seq + 1), \
        last_hash = (@suitex_bench_hash := SHA2(CONCAT(last_hash, NEW.payload), 256)) WHERE id = 1; \
    SET NEW.seq = LAST_INSERT_ID(); \
    SET NEW.row_hash = @suitex_bench_hash; \
END";

/// A migrated database whose `event_store_assign_order` trigger is `create` instead.
async fn with_trigger(prefix: &str, create: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    db.store.execute("DROP TRIGGER event_store_assign_order").await.unwrap();
    db.store.execute(create).await.unwrap();
    db
}

/// A migrated database whose numbering trigger is migration 0002's — numbering without the
/// hash chain — in place of 0003's: the baseline of the chain's cost.
async fn numbered_only(prefix: &str) -> TestDb {
    let sql = include_str!("../migrations/0002_ledger_order.sql");
    let trigger = &sql[sql.find("CREATE TRIGGER event_store_assign_order").expect("0002 has the trigger")..];
    with_trigger(prefix, trigger.trim_end().trim_end_matches(';')).await
}

/// What the hash chain costs per INSERT (migration 0003's trigger against 0002's, which numbers
/// without chaining, and beside the least a chain can add, [`LEAST_CHAIN`]), and how fast `verify`
/// recomputes it beside a plain scan of the same rows.
async fn chain_section(a: &Args) {
    let chained = TestDb::new("bench_chain").await;
    let numbered = numbered_only("bench_nochain").await;
    let least = with_trigger("bench_leastchain", LEAST_CHAIN).await;
    let medians = insert_rounds(
        a,
        &[
            ("numbered", &numbered.store, "event_store"),
            ("with the least chain", &least.store, "event_store"),
            ("numbered and chained", &chained.store, "event_store"),
        ],
    )
    .await;
    let (wo, f, w) = (medians[0], medians[1], medians[2]);
    println!(
        "chain (median of {}): {wo:.1} µs per row without, {w:.1} µs with — +{:.1} µs per row, throughput ratio {:.2} (target >= 0.90)",
        a.rounds,
        w - wo,
        wo / w
    );
    println!(
        "chain, the floor: numbering with the least chain {f:.1} µs per row — +{:.1} µs per row, throughput ratio {:.2}; \
         no chain computed per row by the database costs less on this database",
        f - wo,
        wo / f
    );
    // The same through the store's append (the worker's path: idempotent, bound parameters).
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let batch = events(a.rows, &format!("an{round}"));
        let started = Instant::now();
        for chunk in batch.chunks(MAX_ROWS_PER_INSERT) {
            numbered.store.append(chunk).await.unwrap();
        }
        without.push(a.rows as f64 / started.elapsed().as_secs_f64());
        let batch = events(a.rows, &format!("ac{round}"));
        let started = Instant::now();
        for chunk in batch.chunks(MAX_ROWS_PER_INSERT) {
            chained.store.append(chunk).await.unwrap();
        }
        with.push(a.rows as f64 / started.elapsed().as_secs_f64());
    }
    let (w, wo) = (median(with), median(without));
    println!(
        "chain through EventStore::append (median of {}): {wo:.0} rows/s without, {w:.0} with — ratio {:.2} (target >= 0.90)",
        a.rounds,
        w / wo
    );
    // And what it costs the worker: a full load on the fake into each (alternating, median).
    let loads = alternating_loads(
        a,
        "bench-chain",
        || numbered_only("bench_wl_nochain"),
        || TestDb::new("bench_wl_chain"),
    )
    .await;
    if let Some((wo, w)) = loads {
        println!(
            "chain, the worker at full load on the fake ({} events, median of {}): {wo:.0} events/s numbered only, {w:.0} numbered and chained — ratio {:.2} (target >= 0.90)",
            a.load_events,
            a.rounds,
            w / wo
        );
    }
    let rows = (a.rows * a.rounds * 2) as f64;
    let started = Instant::now();
    let v = chained.store.verify_chain(1, None, |_| {}).await.unwrap();
    let verify = started.elapsed().as_secs_f64();
    assert!(v.intact() && v.rows as f64 == rows, "{v:?}");
    let started = Instant::now();
    let scanned: Vec<(u64, String)> =
        sqlx::query_as("SELECT seq, CAST(payload AS CHAR) FROM event_store ORDER BY seq")
            .fetch_all(chained.store.pool())
            .await
            .unwrap();
    let scan = started.elapsed().as_secs_f64();
    assert_eq!(scanned.len() as f64, rows);
    println!(
        "verify: {:.0} rows/s beside a plain SELECT of seq and payload {:.0} rows/s — ratio {:.2}",
        rows / verify,
        rows / scan,
        scan / verify
    );
}

/// Full loads of the worker (default options) on the fake, alternating rounds, into a database
/// from `baseline` and one from `variant`: the median events/s of each (`None` when a drain
/// did not finish).
async fn alternating_loads<B, BF, V, VF>(a: &Args, tag: &str, baseline: B, variant: V) -> Option<(f64, f64)>
where
    B: Fn() -> BF,
    BF: std::future::Future<Output = TestDb>,
    V: Fn() -> VF,
    VF: std::future::Future<Output = TestDb>,
{
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, tag).await;
    let emitter = Emitter::connect(config.clone()).await.unwrap();
    let (mut base, mut var) = (Vec::new(), Vec::new());
    for round in 0..a.rounds {
        let batch = events(a.load_events, &format!("{tag}-b{round}"));
        if let Drain::Done(r) =
            full_load_into(baseline().await, &config, &emitter, &batch, WorkerOptions::default()).await.rate
        {
            base.push(r);
        }
        let batch = events(a.load_events, &format!("{tag}-v{round}"));
        if let Drain::Done(r) =
            full_load_into(variant().await, &config, &emitter, &batch, WorkerOptions::default()).await.rate
        {
            var.push(r);
        }
    }
    (!base.is_empty() && !var.is_empty()).then(|| (median(base), median(var)))
}

/// What the parked-key check costs the healthy path: the worker at full load with no key
/// parked, and with one (another aggregate's) parked, alternating rounds.
async fn parking_section(a: &Args) {
    let one_parked = || async {
        let db = TestDb::new("bench_parked").await;
        db.store
            .execute(
                "INSERT INTO event_store_parking (ordering_key, action, message_id, data_sha256, reason, recorded_by) \
                 VALUES ('9:bench:parked', 'parked', 'bench', REPEAT('0', 64), 'a parked key for the benchmark', 'bench')",
            )
            .await
            .unwrap();
        db
    };
    if let Some((none, one)) =
        alternating_loads(a, "bench-park", || TestDb::new("bench_unparked"), one_parked).await
    {
        println!(
            "parking, the worker at full load on the fake ({} events, median of {}): {none:.0} events/s with no key parked, {one:.0} with one parked — ratio {:.2} (target >= 0.95)",
            a.load_events,
            a.rounds,
            one / none
        );
    }
}

/// 1, 2 and 4 workers on one subscription of the fake, total throughput.
async fn scale_section(a: &Args) {
    println!(
        "scale: {} events waiting, drained by 1, 2 and 4 workers on one subscription (the fake)",
        a.load_events
    );
    let mut one = None;
    for workers in [1usize, 2, 4] {
        let fake = pubsub_fake::start().await;
        let config = fake_topology(&fake, &format!("scale{workers}")).await;
        let emitter = Emitter::connect(config.clone()).await.unwrap();
        let db = TestDb::new("bench_scale").await;
        let batch = events(a.load_events, &format!("k{workers}"));
        for chunk in batch.chunks(1000) {
            for r in emitter.emit_events(chunk.to_vec()).await.unwrap() {
                r.unwrap();
            }
        }
        let started = Instant::now();
        let mut running = Vec::new();
        for _ in 0..workers {
            running.push(RunningWorker::start(&config, &db.settings, WorkerOptions::default()).await);
        }
        let rate = drain(batch.len() as u64, started, || db.rows()).await;
        for w in running {
            w.stop().await;
        }
        match rate {
            Drain::Done(r) => {
                let base = *one.get_or_insert(r);
                println!("  {workers} worker(s): {r:>8.0} events/s in all, {:.2}× one worker", r / base);
            }
            stalled => println!("  {workers} worker(s): {stalled}"),
        }
    }
}

/// The peak RSS (VmHWM) of a worker process storing `events` (emitted before it starts), until it
/// has exited after its last row.
async fn worker_peak_rss(config: &Config, events: Vec<Event>) -> f64 {
    let db = TestDb::new("bench_mem").await;
    worker_process_peak_rss(BIN, config, &db, events, "bench_memory.log", &[]).await
}

async fn memory_section(a: &Args) {
    println!(
        "memory: peak RSS of a worker process storing {} claim-checked events of {} MiB, and {} events of 1 KiB",
        a.memory_events, a.memory_mib, a.memory_events
    );
    let fake = pubsub_fake::start().await;
    let config = fake_topology(&fake, "benchmem").await;
    let small = worker_peak_rss(&config, events(a.memory_events, "small")).await;
    let fill = "m".repeat(a.memory_mib * 1024 * 1024 - 64);
    let large: Vec<Event> = (0..a.memory_events)
        .map(|i| {
            Event::builder()
                .account_id(8)
                .aggregate("customer", format!("M-{i}"))
                .event_type("customer.snapshot")
                .payload(json!({"seq": i, "fill": fill}))
                .build()
                .unwrap()
        })
        .collect();
    drop(fill);
    let big = worker_peak_rss(&config, large).await;
    remove_bucket(&config).await;
    let target = 3.0 * a.memory_mib as f64 + small;
    println!("  1 KiB events:                 peak RSS {small:>8.1} MiB");
    println!("  {:>3} MiB events:               peak RSS {big:>8.1} MiB", a.memory_mib);
    println!(
        "  target <= 3 x {} MiB + {small:.1} MiB = {target:.1} MiB: {}",
        a.memory_mib,
        if big <= target { "met" } else { "NOT met" }
    );
}

#[tokio::main]
async fn main() {
    let a = <Args as clap::Parser>::parse();
    if std::env::var_os("RUST_LOG").is_some() {
        // Diagnostics on stderr, e.g. RUST_LOG=suitex_events=debug for each batch's phases.
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let on = |s: &str| a.only.iter().any(|o| o == s);
    if on("append") {
        append_section(&a).await;
    }
    if on("fake") {
        fake_section(&a).await;
    }
    if on("emulator") {
        emulator_section(&a).await;
    }
    if on("sequence") {
        sequence_section(&a).await;
    }
    if on("chain") {
        chain_section(&a).await;
    }
    if on("parking") {
        parking_section(&a).await;
    }
    if on("scale") {
        scale_section(&a).await;
    }
    if on("memory") {
        memory_section(&a).await;
    }
}
