//! `suitex-events settings`: every setting the backbone reads, with its default and meaning.

use std::process::ExitCode;
use suitex_events::settings::ALL;

#[derive(clap::Args)]
pub struct Args {
    /// Print JSON (name, default, meaning, reader, php_directive) instead of a table.
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the README's Markdown table.
    #[arg(long)]
    markdown: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.json {
        let list: Vec<serde_json::Value> = ALL
            .iter()
            .map(|s| {
                serde_json::json!({
                    "name": s.name,
                    "default": s.default.plain(),
                    "default_markdown": s.default.markdown(),
                    "meaning": s.meaning,
                    "reader": s.reader.label(),
                    "php_directive": s.php_directive(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else if args.markdown {
        print!("{}", suitex_events::settings::markdown_table());
    } else {
        for s in ALL {
            let default = match s.default.plain() {
                d if d.is_empty() => "unset".to_string(),
                d => d,
            };
            println!("{:<34} {:<28} {}", s.name, default, s.meaning.replace('`', ""));
        }
    }
    Ok(ExitCode::SUCCESS)
}
