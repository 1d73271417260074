//! `pubsub-fake [--port N]`: runs the fake as a server until interrupted, printing its endpoint.

#[tokio::main]
async fn main() {
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| {
                    eprintln!("error: --port needs a port number");
                    std::process::exit(2)
                })
            }
            "-h" | "--help" => {
                println!("usage: pubsub-fake [--port N]  (127.0.0.1; 0 picks a free port)");
                return;
            }
            other => {
                eprintln!("error: unknown argument {other}");
                std::process::exit(2)
            }
        }
    }
    let fake = match pubsub_fake::start_on(([127, 0, 0, 1], port).into()).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1)
        }
    };
    println!("{}", fake.endpoint());
    let _ = tokio::signal::ctrl_c().await;
}
