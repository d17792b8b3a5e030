//! The `fireshift` binary: parse, run, map the outcome to an exit code.
//! 0 = every document landed; 3 = finished with dead letters; 1 = stopped by an error;
//! 2 = bad command line.

use clap::Parser;
use fireshift::cli::{self, Cli, Command};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() {
    // Chosen before anything can build a TLS client (see fireshift::tls).
    fireshift::tls::install_crypto_provider();
    let args = Cli::parse();
    let filter = EnvFilter::try_new(&args.log).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let outcome = match args.command {
        Command::Migrate(a) => cli::migrate(a).await,
        Command::Status(a) => cli::status(a).await,
        Command::Verify(a) => fireshift::verify::cmd::run(a).await,
        Command::Check(a) => fireshift::mapping::cmd::check(a),
        Command::Indexes(a) => fireshift::mapping::cmd::indexes(a).await,
        Command::Plan(a) => fireshift::plan::run(a).await,
    };
    match outcome {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
