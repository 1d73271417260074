//! Test support: fresh, isolated topology on the local emulators, and helpers to read back what
//! was published. Every test gets its own topics, subscriptions and bucket (unique suffix), so
//! tests run in parallel and never see each other's messages.
//!
//! The emulators must be running (`scripts/services start`, which `scripts/test` calls). A test
//! that cannot reach them fails with a message saying so; none is skipped.

pub mod bench;
pub mod otlp;

use google_cloud_pubsub::model::{Message, Subscription};
use std::time::Duration;
use suitex_events::config::{Config, Names};
use suitex_events::worker::provision::{ProvisionOptions, provision};

pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. Start the local services and export their addresses: \
             `scripts/services start && eval \"$(scripts/services env)\"` (scripts/test does both)"
        )
    })
}

/// A short unique suffix.
pub fn unique() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

/// Names with a unique suffix, so each test has topology of its own.
pub fn unique_names(prefix: &str) -> Names {
    let s = format!("{prefix}-{}", unique());
    Names {
        raw_topic: format!("raw-{s}"),
        merged_topic: format!("merged-{s}"),
        dlq_topic: format!("dlq-{s}"),
        raw_subscription: format!("raw-{s}-sub"),
        dlq_subscription: format!("dlq-{s}-sub"),
        payload_bucket: format!("b-{s}"),
    }
}

pub fn emulator_config(prefix: &str) -> suitex_events::config::ConfigBuilder {
    Config::builder("suitex-local")
        .emulators(&required_env("PUBSUB_EMULATOR_HOST"), &required_env("STORAGE_EMULATOR_HOST"))
        .names(unique_names(prefix))
}

/// How `events.raw-sub` is made on the official emulator, which crashes on ordering together
/// with a dead-letter policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Dead-lettering after 5 attempts, no ordering (dead-letter tests).
    UnorderedWithDeadLetters,
    /// Ordering, no dead-lettering (ordering tests).
    OrderedWithoutDeadLetters,
}

/// Provisions `config`'s topology on the emulators, with immediate redelivery (no retry
/// backoff, so a test sees five attempts in seconds) and `merged_subscriptions` on
/// `events.merged`.
pub async fn provision_for_tests(config: &Config, topology: Topology, merged_subscriptions: &[&str]) {
    let options = ProvisionOptions {
        without_ordering: topology == Topology::UnorderedWithDeadLetters,
        without_dead_lettering: topology == Topology::OrderedWithoutDeadLetters,
        retry_backoff: None,
        merged_subscriptions: merged_subscriptions.iter().map(|s| s.to_string()).collect(),
        ..ProvisionOptions::default()
    };
    provision(config, &options)
        .await
        .expect("provisioning on the emulators (are they running? scripts/services start)");
}

/// Provisions `config`'s topology and an ORDERED probe subscription on the raw topic (the
/// emulator cannot order `events.raw-sub` itself, which carries a dead-letter policy).
/// Returns the probe subscription's path.
pub async fn provision_with_probe(config: &Config) -> String {
    provision_for_tests(config, Topology::UnorderedWithDeadLetters, &[]).await;
    let probe = config.subscription_path(&format!("{}-probe", config.names().raw_topic));
    let admin = suitex_events::clients::subscription_admin(config).await.unwrap();
    admin
        .create_subscription()
        .with_request(
            Subscription::new()
                .set_name(&probe)
                .set_topic(config.raw_topic_path())
                .set_ack_deadline_seconds(60)
                .set_enable_message_ordering(true),
        )
        .send()
        .await
        .expect("creating the probe subscription");
    probe
}

/// Pulls (unary Pull, returning immediately) and acks what is there now, with unary
/// Acknowledge calls: unlike acks sent through a StreamingPull stream, these are never lost
/// when the stream closes (the emulator ignores acks that arrive after its stream ended, which
/// on an ordered subscription would hold up the message's key until its lease expired).
async fn pull_and_ack(puller: &suitex_events::consume::puller::Puller, subscription: &str) -> Vec<Message> {
    let received = puller
        .pull(subscription, 100)
        .await
        .unwrap_or_else(|e| panic!("pulling from {subscription} failed: {e}"));
    let ack_ids = received.iter().map(|r| r.ack_id.clone()).collect();
    puller
        .ack(subscription, ack_ids)
        .await
        .unwrap_or_else(|e| panic!("acking on {subscription} failed: {e}"));
    received
        .into_iter()
        .map(|r| {
            let m = r.message.unwrap_or_default();
            Message::new()
                .set_data(bytes::Bytes::from(m.data))
                .set_attributes(m.attributes)
                .set_ordering_key(m.ordering_key)
                .set_message_id(m.message_id)
        })
        .collect()
}

/// Receives (and acks) messages until `n` arrived or `timeout` passed.
pub async fn receive(config: &Config, subscription: &str, n: usize, timeout: Duration) -> Vec<Message> {
    let puller = suitex_events::consume::puller::Puller::connect(config).await.unwrap();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut got = Vec::new();
    while got.len() < n && tokio::time::Instant::now() < deadline {
        let batch = pull_and_ack(&puller, subscription).await;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        got.extend(batch);
    }
    got
}

/// Receives (and acks) until every message whose `event_id` attribute is in `sentinels` has
/// arrived and returns the other messages received meanwhile. Proves absence without waiting on
/// a clock: whatever was published on a sentinel's ordering key before it arrives first, so
/// emit one sentinel per key in question.
pub async fn receive_until(
    config: &Config,
    subscription: &str,
    sentinels: &[&str],
    timeout: Duration,
) -> Vec<Message> {
    let puller = suitex_events::consume::puller::Puller::connect(config).await.unwrap();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut waiting: std::collections::HashSet<&str> = sentinels.iter().copied().collect();
    let mut others = Vec::new();
    while !waiting.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "sentinels {waiting:?} never arrived on {subscription} within {timeout:?}"
        );
        let batch = pull_and_ack(&puller, subscription).await;
        if batch.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for msg in batch {
            if !waiting.remove(attr(&msg, "event_id")) {
                others.push(msg);
            }
        }
    }
    others
}

/// What a [`Relay`] does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayMode {
    /// Relays both ways.
    Up,
    /// An outage: new connections are closed at once and open ones are cut.
    Down,
    /// A hung server: connections are accepted and kept open, but nothing is relayed either way
    /// (a client sees its calls hang). Leaving this mode cuts every connection it froze.
    Frozen,
}

/// `config`'s topics and subscriptions on a Pub/Sub fake, `events.raw-sub` exactly as production
/// has it — message ordering AND a dead-letter policy after 5 attempts, which the official
/// emulator cannot run — with immediate redelivery; plus `events.dlq-sub` and
/// `events.merged-sub` (both ordered). Returns the config pointed at the fake and at the storage
/// emulator, with a bucket of its own.
pub async fn fake_topology(fake: &pubsub_fake::PubSubFake, prefix: &str) -> Config {
    use pubsub_fake::{DeadLetterPolicy, Subscription};
    let config = Config::builder("suitex-local")
        .pubsub_endpoint(suitex_events::config::Endpoint::emulator(&fake.endpoint()))
        .storage_endpoint(suitex_events::config::Endpoint::emulator(&required_env("STORAGE_EMULATOR_HOST")))
        .names(Names {
            payload_bucket: format!("b-{prefix}-{}", unique()).replace('_', "-"),
            ..Names::default()
        })
        .build()
        .unwrap();
    let n = config.names();
    for t in [&n.raw_topic, &n.merged_topic, &n.dlq_topic] {
        fake.create_topic(&config.topic_path(t)).unwrap();
    }
    let sub = |name: &str, topic: &str| Subscription {
        name: config.subscription_path(name),
        topic: config.topic_path(topic),
        ack_deadline_seconds: 60,
        enable_message_ordering: true,
        ..Default::default()
    };
    fake.create_subscription(Subscription {
        dead_letter_policy: Some(DeadLetterPolicy {
            dead_letter_topic: config.topic_path(&n.dlq_topic),
            max_delivery_attempts: 5,
        }),
        ..sub(&n.raw_subscription, &n.raw_topic)
    })
    .unwrap();
    fake.create_subscription(sub(&n.dlq_subscription, &n.dlq_topic)).unwrap();
    fake.create_subscription(sub(&n.dlq_watch_subscription(), &n.dlq_topic)).unwrap();
    fake.create_subscription(sub("events.merged-sub", &n.merged_topic)).unwrap();
    suitex_events::worker::provision::provision_bucket(&config)
        .await
        .expect("creating the bucket on the storage emulator (scripts/services start)");
    config
}

/// Deletes every object of `config`'s bucket on the storage emulator, and the bucket: the
/// emulator keeps objects in memory, and a benchmark's gigabytes must not outlive it.
pub async fn remove_bucket(config: &Config) {
    let suitex_events::config::Endpoint::Emulator(url) = config.storage_endpoint() else {
        panic!("remove_bucket runs against the storage emulator only")
    };
    let bucket = &config.names().payload_bucket;
    let http = reqwest::Client::new();
    loop {
        let list: serde_json::Value = http
            .get(format!("{url}/storage/v1/b/{bucket}/o"))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .expect("listing the bucket on the storage emulator")
            .json()
            .await
            .expect("a JSON object list");
        let names: Vec<String> = list["items"]
            .as_array()
            .map(|items| items.iter().filter_map(|o| o["name"].as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        if names.is_empty() {
            break;
        }
        for name in names {
            let encoded: String = name
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            http.delete(format!("{url}/storage/v1/b/{bucket}/o/{encoded}"))
                .send()
                .await
                .and_then(|r| r.error_for_status())
                .expect("deleting an object on the storage emulator");
        }
    }
    http.delete(format!("{url}/storage/v1/b/{bucket}"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("deleting the bucket on the storage emulator");
}

/// A TCP relay to another server that a test can take down, freeze and bring back (a service
/// outage or a hung server, as a client sees it).
pub struct Relay {
    addr: std::net::SocketAddr,
    mode: tokio::sync::watch::Sender<RelayMode>,
}

impl Relay {
    /// Relays 127.0.0.1:<free port> to `target` (`host:port`). Runs on the calling runtime.
    pub async fn start(target: &str) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding the relay");
        let addr = listener.local_addr().unwrap();
        let (mode, watch) = tokio::sync::watch::channel(RelayMode::Up);
        let target = target.to_string();
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (target, mut watch) = (target.clone(), watch.clone());
                tokio::spawn(async move {
                    let mode = *watch.borrow_and_update();
                    match mode {
                        RelayMode::Down => return,
                        RelayMode::Frozen => {
                            // Held open, silent, until the freeze ends; then cut.
                            let _ = watch.wait_for(|m| *m != RelayMode::Frozen).await;
                            return;
                        }
                        RelayMode::Up => {}
                    }
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else { return };
                    let changed = tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => return,
                        m = watch.wait_for(|m| *m != RelayMode::Up) => m.map(|m| *m),
                    };
                    if matches!(changed, Ok(RelayMode::Frozen)) {
                        let _ = watch.wait_for(|m| *m != RelayMode::Frozen).await;
                    }
                });
            }
        });
        Relay { addr, mode }
    }

    /// `http://127.0.0.1:<port>`, the relay's address as an emulator host.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The relay's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Takes the relayed service down (`false`) or brings it back (`true`).
    pub fn set_up(&self, up: bool) {
        self.set_mode(if up { RelayMode::Up } else { RelayMode::Down });
    }

    /// Switches the relay to `mode`.
    pub fn set_mode(&self, mode: RelayMode) {
        self.mode.send_replace(mode);
    }
}

/// The storage emulator's base URL.
pub fn storage_url() -> String {
    match suitex_events::config::Endpoint::emulator(&required_env("STORAGE_EMULATOR_HOST")) {
        suitex_events::config::Endpoint::Emulator(url) => url,
        suitex_events::config::Endpoint::Google => unreachable!(),
    }
}

/// Downloads an object straight from the storage emulator's JSON API (not through the SDK).
pub async fn download(bucket: &str, object: &str) -> Vec<u8> {
    let url = format!("{}/storage/v1/b/{bucket}/o/{}?alt=media", storage_url(), object.replace('/', "%2F"));
    let resp = reqwest::get(&url).await.expect("GET object");
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.bytes().await.unwrap().to_vec()
}

/// Deletes one object straight from the storage emulator's JSON API (as its lifecycle would).
pub async fn delete_object(bucket: &str, object: &str) {
    let url = format!("{}/storage/v1/b/{bucket}/o/{}", storage_url(), object.replace('/', "%2F"));
    let resp = reqwest::Client::new().delete(&url).send().await.expect("DELETE object");
    assert!(resp.status().is_success(), "DELETE {url}: {}", resp.status());
}

/// Object names in `bucket` under `prefix`, straight from the emulator.
pub async fn list_objects(bucket: &str, prefix: &str) -> Vec<String> {
    let url = format!("{}/storage/v1/b/{bucket}/o?prefix={prefix}", storage_url());
    let v: serde_json::Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    v.get("items")
        .and_then(|i| i.as_array())
        .map(|items| items.iter().map(|o| o["name"].as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// The worker's options for tests: batches taken within 10 ms, quick back-off, a 5 s shutdown.
pub fn quick_worker_options() -> suitex_events::worker::WorkerOptions {
    suitex_events::worker::WorkerOptions {
        batch_wait: Duration::from_millis(10),
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_secs(1),
        shutdown_deadline: Duration::from_secs(5),
        ..suitex_events::worker::WorkerOptions::default()
    }
}

/// `e` as the emitter publishes it to `events.raw`: its wire form, ordering key and attributes.
pub fn raw_message(e: &suitex_events::Event) -> Message {
    let attributes: Vec<(String, String)> =
        e.attributes().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Message::new().set_data(e.to_wire_json()).set_ordering_key(e.ordering_key()).set_attributes(attributes)
}

pub fn attr<'a>(m: &'a Message, key: &str) -> &'a str {
    m.attributes.get(key).map(String::as_str).unwrap_or_default()
}

/// The MariaDB server the tests use (`SUITEX_TEST_MYSQL_URL`, `mysql://user[:password]@host:port`).
pub fn mysql_server() -> suitex_events::store::StoreSettings {
    let url = required_env("SUITEX_TEST_MYSQL_URL");
    let rest = url
        .strip_prefix("mysql://")
        .unwrap_or_else(|| panic!("SUITEX_TEST_MYSQL_URL {url:?} is not mysql://…"));
    let (creds, addr) = rest.rsplit_once('@').unwrap_or(("root", rest));
    let (user, password) = creds.split_once(':').unwrap_or((creds, ""));
    let addr = addr.trim_end_matches('/');
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "3306"));
    suitex_events::store::StoreSettings::from_lookup(|k| match k {
        "DB_EVENT_STORE_HOST" => Some(host.to_string()),
        "DB_EVENT_STORE_PORT" => Some(port.to_string()),
        "DB_EVENT_STORE_USERNAME" => Some(user.to_string()),
        "DB_EVENT_STORE_PASSWORD" => Some(password.to_string()),
        "DB_EVENT_STORE_DATABASE" => Some("mysql".to_string()),
        "DB_EVENT_STORE_SSL_MODE" => Some("disabled".to_string()),
        _ => None,
    })
    .unwrap()
}

/// A database of its own on the test server, migrated; dropped when this is dropped.
pub struct TestDb {
    pub settings: suitex_events::store::StoreSettings,
    pub store: suitex_events::store::EventStore,
}

impl TestDb {
    pub async fn new(prefix: &str) -> TestDb {
        let server = mysql_server();
        let name = format!("t_{}_{}", prefix.replace('-', "_"), unique());
        let admin = suitex_events::store::EventStore::connect(&server).await.unwrap();
        admin
            .execute(&format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            .await
            .unwrap_or_else(|e| {
                panic!("MariaDB at {} is not usable ({e}); scripts/services start", server.describe())
            });
        admin.pool().close().await;
        let settings = server.with_database(&name);
        let store = suitex_events::store::EventStore::open(&settings).await.unwrap();
        store.migrate().await.unwrap();
        TestDb { settings, store }
    }

    /// Rows in `event_store`.
    pub async fn rows(&self) -> u64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event_store")
            .fetch_one(self.store.pool())
            .await
            .unwrap() as u64
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and the database must not outlive the test.
        let s = &self.settings;
        let _ = std::process::Command::new("mariadb")
            .args([
                "--protocol=tcp",
                &format!("-h{}", s.host),
                &format!("-P{}", s.port),
                &format!("-u{}", s.username),
                "-e",
                &format!("DROP DATABASE IF EXISTS `{}`", s.database),
            ])
            .env("MYSQL_PWD", &s.password)
            .status();
    }
}

/// A MariaDB server of a test's own (own data directory and port), so a test can take it away
/// and bring it back without disturbing anything else. Stopped and deleted on drop.
pub struct PrivateMariaDb {
    dir: std::path::PathBuf,
    port: u16,
    child: Option<std::process::Child>,
    /// Server options beyond the defaults (TLS material, say).
    args: Vec<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn which(names: &[&str]) -> String {
    for n in names {
        for dir in ["/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"] {
            let p = format!("{dir}/{n}");
            if std::path::Path::new(&p).exists() {
                return p;
            }
        }
    }
    panic!("none of {names:?} is installed (apt-get install mariadb-server)")
}

impl PrivateMariaDb {
    /// Initialises a data directory and starts the server on a free port.
    pub fn start() -> PrivateMariaDb {
        PrivateMariaDb::start_with(Vec::new())
    }

    /// [`PrivateMariaDb::start`], serving TLS with `certs`' server certificate.
    pub fn start_with_tls(certs: &TestCerts) -> PrivateMariaDb {
        PrivateMariaDb::start_with(vec![
            format!("--ssl-ca={}", certs.ca.display()),
            format!("--ssl-cert={}", certs.server_cert.display()),
            format!("--ssl-key={}", certs.server_key.display()),
        ])
    }

    /// [`PrivateMariaDb::start`] with extra server options.
    pub fn start_with(args: Vec<String>) -> PrivateMariaDb {
        let dir = std::env::temp_dir().join(format!("suitex-mariadb-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = std::process::Command::new(which(&["mariadb-install-db", "mysql_install_db"]))
            .args([
                "--no-defaults",
                &format!("--datadir={}", dir.join("data").display()),
                // A temporary directory of its own: bootstraps running side by side in /tmp
                // trip over each other's temporary tables.
                &format!("--tmpdir={}", dir.display()),
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .output()
            .expect("run mariadb-install-db");
        assert!(out.status.success(), "mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut db = PrivateMariaDb { dir, port: free_port(), child: None, args };
        db.resume();
        db
    }

    /// Settings for its `event_store` database.
    pub fn settings(&self) -> suitex_events::store::StoreSettings {
        let port = self.port.to_string();
        suitex_events::store::StoreSettings::from_lookup(|k| match k {
            "DB_EVENT_STORE_HOST" => Some("127.0.0.1".into()),
            "DB_EVENT_STORE_PORT" => Some(port.clone()),
            "DB_EVENT_STORE_USERNAME" => Some("root".into()),
            "DB_EVENT_STORE_DATABASE" => Some("event_store".into()),
            "DB_EVENT_STORE_SSL_MODE" => Some("disabled".into()),
            _ => None,
        })
        .unwrap()
    }

    /// Settings for its `event_store` database as `user` with `password`.
    pub fn settings_as(&self, user: &str, password: &str) -> suitex_events::store::StoreSettings {
        let mut s = self.settings();
        s.username = user.to_string();
        s.password = password.to_string();
        s
    }

    /// Runs SQL statements as root (through the `mariadb` client); panics if they fail.
    pub fn sql(&self, statements: &str) {
        let out = std::process::Command::new("mariadb")
            .args(["--protocol=tcp", "-h127.0.0.1", &format!("-P{}", self.port), "-uroot", "-e", statements])
            .output()
            .expect("run the mariadb client");
        assert!(out.status.success(), "{statements}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Its directory (deleted on drop): a place for a test's files.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.dir.join("server.log")).unwrap();
        let child = std::process::Command::new(which(&["mariadbd", "mysqld"]))
            .args([
                "--no-defaults",
                &format!("--datadir={}", self.dir.join("data").display()),
                &format!("--socket={}", self.dir.join("mysqld.sock").display()),
                &format!("--pid-file={}", self.dir.join("mysqld.pid").display()),
                &format!("--tmpdir={}", self.dir.display()),
                &format!("--port={}", self.port),
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-name-resolve",
                "--max-allowed-packet=64M",
                "--innodb-buffer-pool-size=64M",
                "--skip-log-bin",
            ])
            .args(&self.args)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start mariadbd");
        self.child = Some(child);
        for _ in 0..300 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let ok = std::process::Command::new("mariadb")
                    .args([
                        "--protocol=tcp",
                        "-h127.0.0.1",
                        &format!("-P{}", self.port),
                        "-uroot",
                        "-e",
                        "CREATE DATABASE IF NOT EXISTS event_store",
                    ])
                    .status()
                    .is_ok_and(|s| s.success());
                if ok {
                    return;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("the private MariaDB did not start; see {}", self.dir.join("server.log").display());
    }

    /// Stops the server (as an outage would): connections drop, the port stops answering.
    pub fn pause(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM: a clean shutdown, so the restart does not spend time on crash recovery.
            let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A worker running in this process; stopped (gracefully) by [`RunningWorker::stop`].
pub struct RunningWorker {
    pub metrics: std::sync::Arc<suitex_events::worker::metrics::Metrics>,
    stop: tokio_util::sync::CancellationToken,
    handle: tokio::task::JoinHandle<suitex_events::Result<suitex_events::worker::RunSummary>>,
}

impl RunningWorker {
    pub async fn start(
        config: &Config,
        settings: &suitex_events::store::StoreSettings,
        options: suitex_events::worker::WorkerOptions,
    ) -> RunningWorker {
        let store = suitex_events::store::EventStore::open(settings).await.unwrap();
        let worker = suitex_events::worker::Worker::new(config.clone(), store, options).await.unwrap();
        RunningWorker::run(worker)
    }

    /// [`RunningWorker::start`], with the worker's metrics and health endpoint served on a free
    /// port of 127.0.0.1 (`/metrics`, `/healthz`, `/readyz`).
    pub async fn start_serving(
        config: &Config,
        settings: &suitex_events::store::StoreSettings,
        options: suitex_events::worker::WorkerOptions,
    ) -> (RunningWorker, std::net::SocketAddr) {
        let store = suitex_events::store::EventStore::connect(settings).await.unwrap();
        let worker = suitex_events::worker::Worker::new(config.clone(), store, options).await.unwrap();
        let addr = suitex_events::worker::metrics::spawn(
            "127.0.0.1:0".parse().unwrap(),
            worker.metrics(),
            Some(worker.health()),
        )
        .await
        .unwrap();
        (RunningWorker::run(worker), addr)
    }

    fn run(worker: suitex_events::worker::Worker) -> RunningWorker {
        let metrics = worker.metrics();
        let stop = tokio_util::sync::CancellationToken::new();
        let handle = tokio::spawn({
            let stop = stop.clone();
            async move { worker.run(stop).await }
        });
        RunningWorker { metrics, stop, handle }
    }

    /// Whether the worker's run is still going (it has not returned or panicked).
    pub fn is_running(&self) -> bool {
        !self.handle.is_finished()
    }

    /// Asks for shutdown and waits for the run to end.
    pub async fn stop(self) -> suitex_events::worker::RunSummary {
        self.stop.cancel();
        self.handle.await.expect("worker task").expect("worker run")
    }
}

/// The peak resident memory of process `pid` so far (its `VmHWM`), in MiB; `None` once it is
/// gone.
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmHWM:")
}

/// The resident memory of process `pid` now (its `VmRSS`), in MiB; `None` once it is gone.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_mib(pid, "VmRSS:")
}

/// A size line (`field` in kB) of `/proc/{pid}/status`, in MiB.
fn status_mib(pid: u32, field: &str) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find_map(|l| l.strip_prefix(field))?.split_whitespace().next()?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Emits `events`, then runs `bin worker` ([`spawn_worker_process`], stderr to `log`, `extra`
/// settings on top) until `db` holds every one, stops it with SIGTERM — its feeder publishes what
/// the ledger holds before it exits — and returns its peak RSS in MiB, taken until it has exited.
pub async fn worker_process_peak_rss(
    bin: &str,
    config: &Config,
    db: &TestDb,
    events: Vec<suitex_events::Event>,
    log: &str,
    extra: &[(&str, &str)],
) -> f64 {
    let emitter = suitex_events::Emitter::connect(config.clone()).await.unwrap();
    let n = events.len() as u64;
    for chunk in events.chunks(2) {
        for r in emitter.emit_events(chunk.to_vec()).await.unwrap() {
            r.unwrap();
        }
    }
    let mut child = spawn_worker_process(bin, config, &db.settings, log, extra);
    let pid = child.id();
    let mut peak = 0.0f64;
    eventually(Duration::from_secs(600), "the worker stores every event", || {
        if let Some(p) = peak_rss_mib(pid) {
            peak = peak.max(p);
        }
        async { db.rows().await >= n }
    })
    .await;
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    loop {
        if let Some(p) = peak_rss_mib(pid) {
            peak = peak.max(p);
        }
        match child.try_wait() {
            Ok(Some(status)) => {
                assert!(status.success(), "the worker stopped cleanly: {status}");
                return peak;
            }
            Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => panic!("waiting for the worker: {e}"),
        }
    }
}

/// Starts `bin worker` (the `suitex-events` binary of the calling test crate) as production
/// runs it: every setting from the environment, nothing inherited but `PATH`, its metrics
/// endpoint off, stderr to `log` in the temporary directory; `extra` settings on top.
pub fn spawn_worker_process(
    bin: &str,
    config: &Config,
    db: &suitex_events::store::StoreSettings,
    log: &str,
    extra: &[(&str, &str)],
) -> std::process::Child {
    let log = std::fs::File::create(std::env::temp_dir().join(log)).unwrap();
    std::process::Command::new(bin)
        .arg("worker")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(config.to_settings())
        .envs(db.to_settings())
        .env("SUITEX_WORKER_METRICS_ADDR", "off")
        .envs(extra.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start suitex-events worker")
}

/// `GET http://{addr}{path}`: status and body.
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let resp = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("the endpoint answers");
    (resp.status().as_u16(), resp.text().await.unwrap())
}

/// Polls `path` until it answers `status`; returns that answer's body.
pub async fn until_status(addr: std::net::SocketAddr, path: &str, status: u16, timeout: Duration) -> String {
    let end = tokio::time::Instant::now() + timeout;
    loop {
        let (got, body) = http_get(addr, path).await;
        if got == status {
            return body;
        }
        assert!(tokio::time::Instant::now() < end, "{path} still answers {got} after {timeout:?}: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Polls `f` every 100 ms until it returns true or `timeout` passes (then panics with `what`).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < until {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting until {what}");
}

/// Rows in `event_store` of the database `settings` names.
pub async fn count_rows(store: &suitex_events::store::EventStore) -> u64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM event_store")
        .fetch_one(store.pool())
        .await
        .unwrap_or(-1)
        .max(0) as u64
}

/// Publishes one sentinel message per ordering key to `topic` (full path) and returns their
/// `event_id` attributes, for [`receive_until`]: once every sentinel has arrived, everything
/// published earlier on those keys has too.
pub async fn publish_sentinels(config: &Config, topic: &str, keys: &[&str]) -> Vec<String> {
    let publisher = google_cloud_pubsub::client::Publisher::builder(topic)
        .with_endpoint(match config.pubsub_endpoint() {
            suitex_events::config::Endpoint::Emulator(url) => url.clone(),
            suitex_events::config::Endpoint::Google => panic!("tests run on emulators"),
        })
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for key in keys {
        let id = format!("sentinel-{}", unique());
        publisher
            .publish(
                google_cloud_pubsub::model::Message::new()
                    .set_data("sentinel")
                    .set_ordering_key(key.to_string())
                    .set_attributes([("event_id", id.as_str())]),
            )
            .await
            .expect("publish a sentinel");
        ids.push(id);
    }
    ids
}

/// A steady emit load: every `interval`, one batch of `per_tick` events of `account` over
/// `aggregates` aggregates (`invoice` `I-0` …), `ticks` times; `emitted` counts what was
/// accepted. Panics (failing the test) if an emit fails.
pub fn emit_load(
    emitter: suitex_events::Emitter,
    emitted: std::sync::Arc<std::sync::atomic::AtomicU64>,
    account: u64,
    aggregates: u64,
    per_tick: u64,
    interval: Duration,
    ticks: u64,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        for tick in 0..ticks {
            let events: Vec<suitex_events::Event> = (0..per_tick)
                .map(|i| {
                    suitex_events::Event::builder()
                        .account_id(account)
                        .aggregate("invoice", format!("I-{}", i % aggregates))
                        .event_type("invoice.changed")
                        .payload(serde_json::json!({"tick": tick, "i": i}))
                        .build()
                        .unwrap()
                })
                .collect();
            for r in emitter.emit_events(events).await.unwrap() {
                r.unwrap();
                emitted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            tokio::time::sleep(interval).await;
        }
    })
}

/// TLS material for a test server: a CA, a server certificate it signed for 127.0.0.1, and a
/// second CA that signed nothing (to prove verification fails against the wrong authority).
pub struct TestCerts {
    /// The CA that signed the server's certificate (PEM file).
    pub ca: std::path::PathBuf,
    /// A CA that did not (PEM file).
    pub other_ca: std::path::PathBuf,
    /// The server's certificate and key (PEM files).
    pub server_cert: std::path::PathBuf,
    /// The server's key.
    pub server_key: std::path::PathBuf,
}

impl TestCerts {
    /// Generates the material in `dir` with the `openssl` command.
    pub fn generate(dir: &std::path::Path) -> TestCerts {
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .expect("run openssl");
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=suitex test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            "server.pem",
            "-extfile",
            "server.ext",
        ]);
        TestCerts {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        }
    }
}

/// Cloud Storage as a create-only account (`roles/storage.objectCreator`, the web tier's) sees
/// it: an HTTP proxy in front of the storage emulator that forwards everything except object
/// reads, which it refuses with 403 as Cloud Storage does without `storage.objects.get`.
pub struct CreateOnlyStorage {
    addr: std::net::SocketAddr,
    refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CreateOnlyStorage {
    /// Listens on a free port of 127.0.0.1, forwarding to `STORAGE_EMULATOR_HOST`.
    pub async fn start() -> CreateOnlyStorage {
        use http_body_util::{BodyExt, Full};
        use hyper::body::Incoming;
        let upstream = format!("http://{}", required_env("STORAGE_EMULATOR_HOST"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let client = reqwest::Client::new();
        let counter = refused.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let (client, upstream, counter) = (client.clone(), upstream.clone(), counter.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                        let (client, upstream, counter) = (client.clone(), upstream.clone(), counter.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            let reads_object = req.method() == hyper::Method::GET
                                && (path.contains("/o/") || path.starts_with("/download/"));
                            if reads_object {
                                counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let body = r#"{"error":{"code":403,"message":"caller does not have storage.objects.get access to the object.","errors":[{"reason":"forbidden"}]}}"#;
                                return Ok::<_, std::convert::Infallible>(
                                    hyper::Response::builder()
                                        .status(403)
                                        .header("content-type", "application/json")
                                        .body(Full::new(bytes::Bytes::from_static(body.as_bytes())))
                                        .unwrap(),
                                );
                            }
                            let url = format!(
                                "{upstream}{}",
                                req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/")
                            );
                            let method =
                                reqwest::Method::from_bytes(req.method().as_str().as_bytes()).unwrap();
                            let mut forward = client.request(method, url);
                            for (name, value) in req.headers() {
                                if name != hyper::header::HOST {
                                    forward = forward.header(name.as_str(), value.as_bytes());
                                }
                            }
                            let body =
                                req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            let answer =
                                forward.body(body).send().await.expect("the storage emulator answers");
                            let mut response = hyper::Response::builder().status(answer.status().as_u16());
                            for (name, value) in answer.headers() {
                                response = response.header(name.as_str(), value.as_bytes());
                            }
                            let bytes = answer.bytes().await.unwrap_or_default();
                            Ok(response.body(Full::new(bytes)).unwrap())
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        CreateOnlyStorage { addr, refused, task }
    }

    /// `host:port`, for `Endpoint::emulator`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// Object reads refused so far.
    pub fn refused_reads(&self) -> u64 {
        self.refused.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for CreateOnlyStorage {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A worker's surroundings for database-fault tests: the Pub/Sub fake with `events.raw-sub` as
/// production has it (ordering + dead-lettering, redelivery without back-off, so a wrongly
/// nacked event would be dead-lettered in seconds), and a private MariaDB server with the
/// event store migrated, which a test may break as a DBA would.
pub struct DbFaultBed {
    pub fake: pubsub_fake::PubSubFake,
    pub config: Config,
    pub db: PrivateMariaDb,
    /// The store as root (the test's own view).
    pub root: suitex_events::store::EventStore,
}

/// The sessions of the database account bound as its one parameter, never the listing's own: what a
/// DBA ends so that a REVOKE or a new password bites.
///
/// The account alone does not find them all. Inside `event_store`'s triggers (the ledger's
/// numbering and chain) a session runs as the triggers' definer, and
/// `information_schema.processlist` shows what it runs *now*: the definer as its user, the
/// trigger's statement as its query. So an appending session is also found as a busy session
/// (not `Sleep`) of the definer (the migrator: here root, whose own sessions are idle meanwhile).
/// The Laravel tests list sessions with the same query (`Tests\Support\Harness::SESSIONS_OF_ACCOUNT`).
pub const SESSIONS_OF_ACCOUNT: &str = "SELECT CAST(id AS SIGNED) FROM information_schema.processlist \
     WHERE id <> CONNECTION_ID() AND (user = ? OR (command <> 'Sleep' AND user IN \
     (SELECT SUBSTRING_INDEX(definer, '@', 1) FROM information_schema.triggers WHERE event_object_table = 'event_store')))";

/// The ids of `account`'s sessions, listed on `conn` (see [`SESSIONS_OF_ACCOUNT`]).
pub async fn sessions_of<'c>(conn: impl sqlx::MySqlExecutor<'c>, account: &str) -> Vec<i64> {
    sqlx::query_scalar(SESSIONS_OF_ACCOUNT).bind(account).fetch_all(conn).await.expect("list the sessions")
}

/// Ends each session in `ids` from `conn`; returns how many it ended. A session that ended between
/// the listing and its KILL (a pool retiring it) is gone already: MariaDB answers 1094 (Unknown
/// thread id), which is no failure here.
pub async fn kill_sessions(conn: &mut sqlx::MySqlConnection, ids: &[i64]) -> usize {
    let mut killed = 0;
    for id in ids {
        match sqlx::raw_sql(sqlx::AssertSqlSafe(format!("KILL CONNECTION {id}"))).execute(&mut *conn).await {
            Ok(_) => killed += 1,
            Err(e) if e.to_string().contains("Unknown thread id") => {}
            Err(e) => panic!("KILL CONNECTION {id}: {e}"),
        }
    }
    killed
}

impl DbFaultBed {
    /// Ends every session of the database account `account` (see [`SESSIONS_OF_ACCOUNT`]);
    /// returns how many it ended.
    pub async fn kill_sessions_of(&self, account: &str) -> usize {
        let mut conn = self.root.pool().acquire().await.expect("a root session");
        let ids = sessions_of(&mut *conn, account).await;
        kill_sessions(&mut conn, &ids).await
    }

    pub async fn start(prefix: &str) -> DbFaultBed {
        let fake = pubsub_fake::start().await;
        let config = fake_topology(&fake, prefix).await;
        let db = PrivateMariaDb::start();
        let root = suitex_events::store::EventStore::open(&db.settings()).await.unwrap();
        root.migrate().await.unwrap();
        DbFaultBed { fake, config, db, root }
    }

    /// Worker options that retry quickly (100 ms to 1 s) and stop within 5 s.
    pub fn worker_options() -> suitex_events::worker::WorkerOptions {
        suitex_events::worker::WorkerOptions {
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            shutdown_deadline: Duration::from_secs(5),
            ..suitex_events::worker::WorkerOptions::default()
        }
    }

    /// Checks, once `total` events are stored, that no delivery attempt was spent (no nack),
    /// nothing was poison or dead-lettered, and each event is stored once.
    pub async fn assert_each_stored_once_and_nothing_dead_lettered(
        &self,
        total: u64,
        metrics: &suitex_events::worker::metrics::Metrics,
    ) {
        let raw = self.config.subscription_path(&self.config.names().raw_subscription);
        let nacks = self
            .fake
            .settlements(&raw)
            .into_iter()
            .filter(|s| s.outcome == pubsub_fake::Outcome::Nack)
            .count();
        assert_eq!(nacks, 0, "no delivery attempt was spent on a healthy event");
        assert_eq!(metrics.poison.get(), 0, "nothing was poison");
        let dlq = self.config.subscription_path(&self.config.names().dlq_subscription);
        assert_eq!(self.fake.backlog(&dlq), 0, "no healthy event was dead-lettered");
        let distinct: i64 = sqlx::query_scalar("SELECT COUNT(DISTINCT event_id) FROM event_store")
            .fetch_one(self.root.pool())
            .await
            .unwrap();
        assert_eq!(distinct as u64, total, "each event stored once");
    }
}
