//! `scail`: one binary for the server, the worker, one-off generation and weight management.

mod serve;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "scail",
    version,
    about = "Self-hosted SCAIL-2 character animation: the fal-ai/scail-2 API on your own machine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the fal-ai/scail-2 queue API with an in-process worker (SQLite and a local folder in
    /// --data-dir; no other service needed).
    Serve(serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
    }
}
