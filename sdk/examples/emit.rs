//! Emit-only: what a web-tier Rust service does. Builds with the default features (no database
//! driver in the binary).
//!
//! ```sh
//! scripts/services start && eval "$(scripts/services env)"
//! cargo run -p suitex-events --example emit -- 42 customer C-1001
//! ```

use serde_json::json;
use suitex_events::{Config, Emitter, Event};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [account, aggregate_type, aggregate_id] = args.as_slice() else {
        eprintln!("usage: emit ACCOUNT_ID AGGREGATE_TYPE AGGREGATE_ID");
        std::process::exit(2);
    };
    let emitter = Emitter::connect(Config::from_env()?).await?;
    let event = Event::builder()
        .account_id(account.parse()?)
        .aggregate(aggregate_type.as_str(), aggregate_id.as_str())
        .event_type(format!("{aggregate_type}.updated"))
        .payload(json!({"updated_by": "the emit example"}))
        .build()?;
    let receipt = emitter.emit_event(event).await?;
    println!("{}", serde_json::to_string_pretty(&receipt)?);
    Ok(())
}
