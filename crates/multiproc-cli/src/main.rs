//! The `multiproc` command: benchmarks of every IPC mechanism side by side.

mod bench;

use clap::{Parser, Subcommand};

/// multiproc: inter-process communication, measured.
#[derive(Debug, Parser)]
#[command(name = "multiproc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Measure latency (ping-pong) and throughput (streaming) of every
    /// mechanism on this machine, side by side with the OS baselines.
    Bench(bench::Options),
}

fn main() {
    // A spawned benchmark child runs its target here and exits.
    multiproc::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(opts) => bench::run(&opts),
    };
    if let Err(e) = result {
        eprintln!("multiproc: {e}");
        std::process::exit(1);
    }
}
