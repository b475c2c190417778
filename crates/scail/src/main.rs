//! `scail`: one binary for the server, the worker, one-off generation and weight management.

mod bench;
mod demo;
mod device;
mod generate;
mod probe;
mod serve;
mod stagea;
mod weights;

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
    /// --data-dir; no other service needed). With --store/--storage/--no-worker: an API node of a
    /// fleet.
    Serve(Box<serve::ServeArgs>),
    /// Run jobs from a shared job store (--store postgres://…, --storage s3://…), no HTTP API:
    /// one GPU worker of a fleet. Loads the model as `serve --weights` does.
    Worker(Box<serve::ServeArgs>),
    /// Run one job from the command line, no server, with a progress bar.
    Generate(Box<generate::GenerateArgs>),
    /// Run Stage A alone (segmentation, pose) and write what the DiT would see: the masks
    /// lossless, the driving input and a side-by-side preview, to check, edit and pass back.
    Stagea(Box<stagea::StageAArgs>),
    /// Print JSON facts about a video or image (container, codecs, size, rotation, fps, frames).
    Probe(probe::ProbeArgs),
    /// Verify, convert or create model weights.
    Weights(weights::WeightsArgs),
    /// Benchmarks with random weights at any size.
    Bench(bench::BenchArgs),
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
        Command::Serve(args) => serve::run(*args, serve::Role::Serve),
        Command::Worker(args) => serve::run(*args, serve::Role::Worker),
        Command::Generate(args) => generate::run(*args),
        Command::Stagea(args) => stagea::run(*args),
        Command::Probe(args) => probe::run(args),
        Command::Weights(args) => weights::run(args),
        Command::Bench(args) => bench::run(args),
    }
}
