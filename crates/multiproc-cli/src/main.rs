//! The `multiproc` command: benchmarks of every IPC mechanism side by side,
//! named-object housekeeping, and a standalone manager server.

mod bench;
mod names;
mod stress;

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
    /// Run many short randomized queue histories across processes (kills
    /// included) and check each for lost, duplicated, reordered or corrupt
    /// items and hangs. The last line: `stress: H histories, M items, K
    /// kills, V violations`; any violation exits 1 with a seed to replay.
    Stress(stress::Options),
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
    /// Manager servers: shared objects for processes on this machine and
    /// others.
    Manager {
        #[command(subcommand)]
        command: ManagerCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ManagerCommand {
    /// Run a standalone manager server until a client asks it to shut down.
    /// Prints `manager serving on ADDRESS` when it listens.
    Serve {
        /// Where to listen: `HOST:PORT` or `PORT` (TCP; a bare port or
        /// `:PORT` binds 127.0.0.1 — give `0.0.0.0:PORT` or an interface's
        /// address to serve other machines), a Unix socket path (its
        /// directory must be private, mode 0700), or `@NAME` (a Linux
        /// abstract socket: no file; clients of other users are refused).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// A file holding the authkey (mode 0600 or stricter, owned by the
        /// user running the server). Never on the command line.
        #[arg(long)]
        authkey_file: std::path::PathBuf,
    },
}

/// `multiproc manager serve`.
fn manager_serve(
    listen: &str,
    authkey_file: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    use multiproc::connection::{Address, Listener};
    use multiproc::manager::{Server, TypeRegistry, read_authkey_file};
    use std::io::Write as _;

    let key = read_authkey_file(authkey_file)?;
    let address = match listen.parse::<u16>() {
        Ok(port) => Address::localhost(port),
        Err(_) => Address::parse(listen)?,
    };
    let listener = Listener::bind(address, &key)?;
    println!("manager serving on {}", listener.address());
    std::io::stdout().flush()?;
    Server::new(listener, TypeRegistry::new()).serve()?;
    Ok(())
}

fn main() {
    // A spawned benchmark child runs its target here and exits.
    multiproc::init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bench(opts) => bench::run(&opts),
        Command::Stress(opts) => stress::run(&opts),
        Command::Ls { json, kind } => names::ls(json, kind.as_deref()),
        Command::Clean { all, dry_run, kind } => names::clean(all, dry_run, kind.as_deref()),
        Command::Manager {
            command:
                ManagerCommand::Serve {
                    listen,
                    authkey_file,
                },
        } => manager_serve(&listen, &authkey_file),
    };
    if let Err(e) = result {
        eprintln!("multiproc: {e}");
        std::process::exit(1);
    }
}
