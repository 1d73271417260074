//! `suitex-events`: the command line of the event backbone.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
