//! The `fireshift` binary: it owns the command line. Parse the flags, run the command
//! over the library, map the outcome to one exit code ([`exit::ExitCode`]).
//!
//! * [`cli`] the flags every command shares and the command list;
//! * one module per command: [`migrate`], [`status`], [`verify`], [`mappings`] (`check`,
//!   `indexes`), [`plan`];
//! * [`progress`] bars and log lines over the library's progress counters;
//! * [`signals`] the graceful stop on SIGINT/SIGTERM;
//! * [`exit`] every exit code.

mod cli;
mod cutover;
mod exit;
mod follow;
mod help;
mod mappings;
mod metrics;
mod migrate;
mod parse;
mod plan;
mod progress;
mod signals;
mod source;
mod status;
mod verify;

use clap::Parser;
use cli::{Cli, Command};

/// mimalloc, not glibc's malloc: see its line in Cargo.toml (a third of a copy's CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use exit::ExitCode;
use tracing_subscriber::EnvFilter;

/// Log lines go to stderr (stdout carries summaries), above the progress bars when drawn: text with colours only on a
/// terminal and never under `NO_COLOR` (so redirected logs hold no escape codes), or
/// JSON objects.
fn init_logs(args: &Cli) {
    use std::io::IsTerminal;
    // Parsed once already by the flag's value parser.
    let filter = EnvFilter::try_new(&args.log).expect("validated --log filter");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(progress::logs::Stderr);
    match args.log_format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Text => {
            let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            builder.with_ansi(colour).init()
        }
    }
}

/// Transparent huge pages off for this process. mimalloc asks the kernel for them, and
/// each fresh 2 MiB page it touches after giving memory back is zeroed whole: measured
/// on an export copy (`perf`), the kernel's page zeroing was a seventh of fireshift's CPU
/// and peak RSS a third higher, for a heap of some 100 MiB that gains nothing from
/// fewer TLB entries. The kernel checks the flag at each page fault, so memory mapped
/// before this call is covered too.
fn no_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory of ours;
    // on a kernel without it the call fails harmlessly (the result is not needed).
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

#[tokio::main]
async fn main() {
    no_transparent_huge_pages();
    // Chosen before anything can build a TLS client (see fireshift::tls).
    fireshift::tls::install_crypto_provider();
    let args = match Cli::try_parse() {
        Ok(args) => args,
        // `--help` and `--version` are not errors; anything else is a bad command line.
        Err(e) => {
            let _ = e.print();
            let code = if e.use_stderr() {
                ExitCode::Usage
            } else {
                ExitCode::Ok
            };
            std::process::exit(code.code());
        }
    };
    init_logs(&args);
    let outcome = match args.command {
        Command::Migrate(a) => migrate::run(*a).await,
        Command::Status(a) => status::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Check(a) => mappings::check(a),
        Command::Indexes(a) => mappings::indexes(a).await,
        Command::Plan(a) => plan::run(a).await,
        Command::Cutover(a) => cutover::run(a).await,
    };
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::Error
        }
    };
    std::process::exit(code.code());
}
