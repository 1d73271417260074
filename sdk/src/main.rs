//! `suitex-events`: the command line of the event backbone.

mod cli;

/// The process allocates with mimalloc rather than the system's (glibc) allocator. The worker
/// allocates and frees a message, its decoded event and its row for every event, from several
/// threads at once; glibc's allocator spent about a quarter of the worker process's CPU time on
/// that at full load (malloc, free and their chunk bookkeeping, under `perf`), on cores the
/// worker shares with the database. With mimalloc the worker stores about 15 % more events a
/// second on the same machine (`cargo bench -p suitex-events --features worker --bench worker
/// -- --only fake`, which runs the worker with this allocator; docs/architecture.md §7). The
/// library leaves the allocator to whoever links it (the PHP extension, the C library, a Rust
/// service).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    cli::main()
}
