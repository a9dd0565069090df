//! The `multiproc` command: benchmarks of every IPC mechanism side by side.

mod bench;
mod names;

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
    /// List the named objects multiproc created, their owner and whether it
    /// is alive.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Only objects of this kind (shm, fifo, posix-mq, sysv-msg,
        /// sysv-sem, sysv-shm, socket).
        #[arg(long)]
        kind: Option<String>,
    },
    /// Remove named objects whose owner process is dead.
    Clean {
        /// Remove every named multiproc object, live owner or not.
        #[arg(long)]
        all: bool,
        /// Only say what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Only objects of this kind (shm, fifo, posix-mq, sysv-msg,
        /// sysv-sem, sysv-shm, socket).
        #[arg(long)]
        kind: Option<String>,
    },
}

fn main() {
    // A spawned benchmark child runs its target here and exits.
    multiproc::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(opts) => bench::run(&opts),
        Command::Ls { json, kind } => names::ls(json, kind.as_deref()),
        Command::Clean { all, dry_run, kind } => names::clean(all, dry_run, kind.as_deref()),
    };
    if let Err(e) = result {
        eprintln!("multiproc: {e}");
        std::process::exit(1);
    }
}
