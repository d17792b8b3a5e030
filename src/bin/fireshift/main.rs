//! The `fireshift` binary: it owns the command line. Parse the flags, run the command
//! over the library, map the outcome to one exit code ([`exit::ExitCode`]).
//!
//! * [`cli`] the flags every command shares and the command list;
//! * one module per command: [`migrate`], [`status`], [`verify`], [`mappings`] (`check`,
//!   `indexes`), [`plan`];
//! * [`progress`] bars and log lines over the library's progress counters;
//! * [`exit`] every exit code.

mod cli;
mod exit;
mod mappings;
mod migrate;
mod plan;
mod progress;
mod status;
mod verify;

use clap::Parser;
use cli::{Cli, Command};
use exit::ExitCode;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
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
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let outcome = match args.command {
        Command::Migrate(a) => migrate::run(a).await,
        Command::Status(a) => status::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Check(a) => mappings::check(a),
        Command::Indexes(a) => mappings::indexes(a).await,
        Command::Plan(a) => plan::run(a).await,
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
