//! The command line: clap definitions only (no I/O). Each command's flags live with the
//! command's module; the flags several commands share (where Firestore and MongoDB are)
//! live here.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use fireshift::firestore::FirestoreEndpoint;
use fireshift::mongo::MongoEndpoint;
use fireshift::retry::RetryPolicy;
use fireshift::sink::{MongoSink, SinkConfig};
use fireshift::source::SourceConfig;

use crate::exit::EXIT_CODES_HELP;

#[derive(Debug, Parser)]
#[command(
    name = "fireshift",
    version = env!("FIRESHIFT_VERSION"),
    about = "Move a live application from Cloud Firestore to MongoDB",
    after_help = EXIT_CODES_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing syntax), e.g. `info` or `fireshift=debug`.
    #[arg(long, global = true, env = "FIRESHIFT_LOG", default_value = "info", value_parser = crate::parse::log_filter)]
    pub log: String,
    /// Log lines as `text` (colours only on a terminal, never with NO_COLOR set) or as
    /// `json` (one object per line, for log collectors).
    #[arg(long, global = true, env = "FIRESHIFT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy every collection and subcollection of a Firestore database into MongoDB.
    /// Resumable: rerun the same command after any stop and it continues.
    #[command(after_help = crate::help::migrate())]
    Migrate(Box<crate::migrate::MigrateArgs>),
    /// Show every range of a job: state, documents done, rate, last error.
    #[command(after_help = crate::help::status())]
    Status(crate::status::StatusArgs),
    /// Compare the target with the source document by document (canonical hashes, field
    /// diffs); write a parity report. Exit 0 on full parity, 4 on mismatches.
    #[command(after_help = crate::help::verify())]
    Verify(crate::verify::VerifyArgs),
    /// Validate a mapping directory (no I/O beyond reading it). Exit 0 when valid, 1 with
    /// every error as file:line:column, what is wrong and how to fix it.
    #[command(after_help = crate::help::check())]
    Check(crate::mappings::CheckArgs),
    /// The cutover gate, run once the app stopped writing to Firestore: waits until the
    /// follower (`migrate --follow`) applied every change, verifies, checks the
    /// dual-write outbox, then records the cutover and the follower exits. Exit 0 only
    /// when every gate passes; 9–12 name the gate that failed.
    #[command(after_help = crate::help::cutover())]
    Cutover(crate::cutover::CutoverArgs),
    /// Build the indexes the mappings declare (idempotent) and report each one. Exit 0
    /// when all exist, 5 when some were refused or clash.
    #[command(after_help = crate::help::indexes())]
    Indexes(crate::mappings::IndexesArgs),
    /// Sample every collection: patterns, counts, field types with frequencies and
    /// conflicts, a Firestore read estimate; write skeleton mappings and a report.
    #[command(after_help = crate::help::plan())]
    Plan(crate::plan::PlanArgs),
}

/// The MongoDB side of a command: every command that touches MongoDB takes these.
#[derive(Debug, Args)]
pub struct MongoTarget {
    /// MongoDB connection string (mongodb:// or mongodb+srv://, TLS options such as
    /// tls=true&tlsCAFile=… included). Never printed unredacted.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    pub mongodb_uri: String,
    /// PEM file of CA certificates to trust for MongoDB TLS (turns TLS on), as
    /// tlsCAFile=… in the URI would.
    #[arg(long, env = "MONGODB_CA_FILE", value_name = "PEM")]
    pub mongodb_ca_file: Option<PathBuf>,
    /// Target MongoDB database.
    #[arg(long)]
    pub database: String,
}

impl MongoTarget {
    pub fn endpoint(&self) -> MongoEndpoint {
        MongoEndpoint {
            uri: self.mongodb_uri.clone(),
            ca_file: self.mongodb_ca_file.clone(),
        }
    }

    /// Connects to the target database (ping with retries, errors with the URI
    /// redacted) with `config`'s batch and retry settings.
    pub async fn connect(&self, config: SinkConfig) -> anyhow::Result<MongoSink> {
        MongoSink::connect(&self.endpoint(), &self.database, config)
            .await
            .context("connecting to MongoDB")
    }
}

/// The Firestore side of a command: which database, and where and how to reach it.
#[derive(Debug, Args)]
pub struct FirestoreArgs {
    /// Google Cloud project that owns the Firestore database (with --from-export: taken
    /// from the export; given, it must match).
    #[arg(
        long,
        env = "GOOGLE_CLOUD_PROJECT",
        required_unless_present = "from_export"
    )]
    pub project: Option<String>,
    /// Firestore database id.
    #[arg(long, visible_alias = "database-id", default_value = "(default)")]
    pub firestore_database: String,
    /// Firestore API endpoint, https:// (default: Google's, https://firestore.googleapis.com;
    /// a regional or private endpoint here). Credentials are Application Default
    /// Credentials. Without this flag, FIRESTORE_EMULATOR_HOST selects the emulator.
    #[arg(long, env = "FIRESTORE_ENDPOINT", value_name = "URL")]
    pub firestore_endpoint: Option<String>,
    /// PEM file of CA certificates to trust for the Firestore endpoint, besides the
    /// system's roots (SSL_CERT_FILE replaces those).
    #[arg(long, value_name = "PEM")]
    pub firestore_ca_file: Option<PathBuf>,
}

impl FirestoreArgs {
    /// The project (clap requires it unless the source is an export, which names its
    /// own: empty until then).
    pub fn project(&self) -> &str {
        self.project.as_deref().unwrap_or_default()
    }

    /// The source configuration these flags describe, with `retry`.
    pub fn source_config(&self, retry: RetryPolicy) -> SourceConfig {
        self.source_config_with(retry, fireshift::firestore::DEFAULT_ANSWER_TIMEOUT)
    }

    /// [`Self::source_config`] waiting at most `answer_timeout` for each answer.
    pub fn source_config_with(&self, retry: RetryPolicy, answer_timeout: Duration) -> SourceConfig {
        let mut config = SourceConfig::new(self.project());
        config.database_id = self.firestore_database.clone();
        config.retry = retry;
        config.answer_timeout = answer_timeout;
        config.endpoint = FirestoreEndpoint {
            url: self.firestore_endpoint.clone(),
            ca_file: self.firestore_ca_file.clone(),
        };
        config
    }
}

/// An export instead of the live database (docs/export.md).
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Read a managed export (`gcloud firestore export`) instead of the live database:
    /// a local folder, its `….overall_export_metadata` file, or gs://bucket/prefix
    /// (Application Default Credentials; STORAGE_EMULATOR_HOST selects an emulator).
    /// No Firestore read is made; the project and database come from the export.
    #[arg(long, value_name = "PATH")]
    pub from_export: Option<String>,
    /// A damaged or undecodable export record is dead-lettered with its file and byte
    /// offset, and the run goes on (exit 3); without it the run stops there (exit 1),
    /// checkpoints intact.
    #[arg(long, requires = "from_export")]
    pub skip_corrupt: bool,
    /// An export holds no create or update time per document: a mapping that maps them
    /// into fields ([metadata]) is refused unless this says what they become: `omit`
    /// leaves the fields out, `snapshot` fills both with the export's snapshot time.
    #[arg(
        long,
        value_enum,
        requires = "from_export",
        value_name = "omit|snapshot"
    )]
    pub export_times: Option<ExportTimesArg>,
}

/// `--export-times`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportTimesArg {
    Omit,
    Snapshot,
}

impl ExportArgs {
    /// How to read the export, with `retry` for its storage.
    pub fn options(&self, retry: RetryPolicy) -> fireshift::source::export::ExportOptions {
        use fireshift::source::export::ExportTimes;
        fireshift::source::export::ExportOptions {
            skip_corrupt: self.skip_corrupt,
            times: match self.export_times {
                None => ExportTimes::Refuse,
                Some(ExportTimesArg::Omit) => ExportTimes::Omit,
                Some(ExportTimesArg::Snapshot) => ExportTimes::Snapshot,
            },
            retry,
        }
    }
}

/// Where to read and where to write.
#[derive(Debug, Args)]
pub struct Endpoints {
    #[command(flatten)]
    pub firestore: FirestoreArgs,
    #[command(flatten)]
    pub export: ExportArgs,
    #[command(flatten)]
    pub mongo: MongoTarget,
    /// Give up on an unreachable service after retrying this long (seconds).
    #[arg(long, default_value_t = 300)]
    pub retry_timeout: u64,
    /// How long one Firestore call may wait for the server's next answer (seconds);
    /// past it the call is retried (within --retry-timeout).
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
}

impl Endpoints {
    /// The source configuration of these endpoints.
    pub fn source_config(&self) -> SourceConfig {
        self.firestore
            .source_config_with(self.retry(), Duration::from_secs(self.request_timeout))
    }

    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            deadline: Duration::from_secs(self.retry_timeout),
            ..RetryPolicy::default()
        }
    }
}
