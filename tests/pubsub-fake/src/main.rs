//! `pubsub-fake [--port N] [--topic PATH]… [--subscription SPEC]…`: runs the fake as a server
//! until interrupted, printing its endpoint once the topics and subscriptions asked for exist.
//!
//! The fake speaks gRPC only, so a test in another language (the PHP suites) describes its
//! topology here instead of through the REST admin API that `suitex-events provision` uses:
//!
//! * `--topic projects/P/topics/T`
//! * `--subscription projects/P/subscriptions/S=projects/P/topics/T[,ordered][,dead-letter=projects/P/topics/D]`
//!   — with message ordering; with a dead-letter policy (5 delivery attempts). Without a retry
//!   policy a nacked message comes back at once.

use pubsub_fake::{DeadLetterPolicy, Subscription};

const USAGE: &str = "usage: pubsub-fake [--port N] [--topic PATH]... \
    [--subscription PATH=TOPIC[,ordered][,dead-letter=TOPIC]]...  (127.0.0.1; port 0 picks a free one)";

fn fail(message: String) -> ! {
    eprintln!("error: {message}\n{USAGE}");
    std::process::exit(2)
}

/// A `--subscription` value.
fn subscription(spec: &str) -> Subscription {
    let (name, rest) =
        spec.split_once('=').unwrap_or_else(|| fail(format!("--subscription {spec}: no '=TOPIC'")));
    let mut parts = rest.split(',');
    let topic = parts.next().unwrap_or_default();
    let mut s = Subscription {
        name: name.to_string(),
        topic: topic.to_string(),
        ack_deadline_seconds: 60,
        ..Default::default()
    };
    for part in parts {
        match part.split_once('=') {
            None if part == "ordered" => s.enable_message_ordering = true,
            Some(("dead-letter", topic)) => {
                s.dead_letter_policy =
                    Some(DeadLetterPolicy { dead_letter_topic: topic.to_string(), max_delivery_attempts: 5 })
            }
            _ => fail(format!("--subscription {spec}: unknown option {part}")),
        }
    }
    s
}

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let (mut topics, mut subscriptions) = (Vec::new(), Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| fail(format!("{arg} needs a value")));
        match arg.as_str() {
            "--port" => port = value().parse().unwrap_or_else(|_| fail("--port needs a port number".into())),
            "--topic" => topics.push(value()),
            "--subscription" => subscriptions.push(subscription(&value())),
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail(format!("unknown argument {other}")),
        }
    }
    let fake = match pubsub_fake::start_on(([127, 0, 0, 1], port).into()).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    for topic in &topics {
        if let Err(e) = fake.create_topic(topic) {
            fail(format!("--topic {topic}: {}", e.message()));
        }
    }
    for s in subscriptions {
        let name = s.name.clone();
        if let Err(e) = fake.create_subscription(s) {
            fail(format!("--subscription {name}: {}", e.message()));
        }
    }
    println!("{}", fake.endpoint());
    let _ = tokio::signal::ctrl_c().await;
}
