//! [`DualConfig`]: how the store reaches both databases and how it behaves, with its
//! defaults and the checks `DualStore::connect` makes before connecting. It sits below
//! every other part of the store, so it names the outbox collection through
//! [`crate::own`] rather than through the outbox module.

use std::time::Duration;

use super::error::{DualError, DualResult};
use super::mode::Mode;
use crate::firestore::FirestoreEndpoint;
use crate::mapping::transform::Transformer;
use crate::retry::RetryPolicy;
use crate::sink::dead_letter::DEAD_LETTER_COLLECTION;

/// How to reach both databases and how the store behaves.
#[derive(Debug, Clone)]
pub struct DualConfig {
    pub project: String,
    /// Firestore database id, `(default)` unless the project has several.
    pub firestore_database: String,
    /// Firestore endpoint and extra CA (default: Google's, or the emulator when
    /// `FIRESTORE_EMULATOR_HOST` is set); Application Default Credentials.
    pub firestore_endpoint: FirestoreEndpoint,
    pub mongodb_uri: String,
    /// PEM file of CA certificates for MongoDB TLS, as `tlsCAFile=` in the URI.
    pub mongodb_ca_file: Option<std::path::PathBuf>,
    pub mongodb_database: String,
    /// The mapping the migration uses (`Transformer::default()` for the defaults).
    pub transformer: Transformer,
    /// Mode of collections that neither code nor the settings document names.
    pub default_mode: Mode,
    /// Fraction (0–1) of reads that also read the other database and compare.
    pub shadow_read_fraction: f64,
    /// Longest a secondary write may take before it is left to the outbox.
    pub secondary_timeout: Duration,
    /// The reconciler leaves entries younger than this to the write path that made them.
    pub outbox_grace: Duration,
    /// Pause between reconciler passes.
    pub reconcile_interval: Duration,
    /// Entries per reconciler pass.
    pub reconcile_batch: usize,
    /// Backoff between attempts at one failing entry (`deadline` is not used: entries
    /// are retried until they succeed).
    pub reconcile_backoff: RetryPolicy,
    /// Poll the settings document this often (`None`: modes change only by code).
    pub settings_poll: Option<Duration>,
    /// MongoDB collection of the settings document (`_id: "dual"`).
    pub settings_collection: String,
    /// Firestore collection of the outbox.
    pub outbox_collection: String,
    /// Where documents the mapping refuses on their way to MongoDB go.
    pub dead_letter_collection: String,
    /// Confirmations queued for the background settler; past it, entries wait for the
    /// reconciler instead (they are durable, so nothing is lost, only delayed).
    pub settle_queue: usize,
    /// Shadow comparisons running at once; more are skipped, never queued.
    pub max_shadow_in_flight: usize,
}

impl DualConfig {
    pub fn new(
        project: impl Into<String>,
        mongodb_uri: impl Into<String>,
        mongodb_database: impl Into<String>,
    ) -> Self {
        Self {
            project: project.into(),
            firestore_database: crate::source::DEFAULT_DATABASE_ID.to_string(),
            firestore_endpoint: FirestoreEndpoint::default(),
            mongodb_uri: mongodb_uri.into(),
            mongodb_ca_file: None,
            mongodb_database: mongodb_database.into(),
            transformer: Transformer::default(),
            default_mode: Mode::FirestoreOnly,
            shadow_read_fraction: 0.0,
            secondary_timeout: Duration::from_secs(2),
            outbox_grace: Duration::from_secs(10),
            reconcile_interval: Duration::from_secs(1),
            reconcile_batch: 100,
            reconcile_backoff: RetryPolicy {
                initial_backoff: Duration::from_millis(200),
                max_backoff: Duration::from_secs(30),
                deadline: Duration::MAX,
            },
            settings_poll: Some(Duration::from_secs(5)),
            settings_collection: crate::own::DUAL_SETTINGS.into(),
            // The same name as `outbox::OUTBOX_COLLECTION` (both are `own::OUTBOX`).
            outbox_collection: crate::own::OUTBOX.into(),
            dead_letter_collection: DEAD_LETTER_COLLECTION.into(),
            settle_queue: 10_000,
            max_shadow_in_flight: 16,
        }
    }

    pub(crate) fn validate(&self) -> DualResult<()> {
        if self.project.is_empty() {
            return Err(DualError::Config("no Firestore project".into()));
        }
        if !(0.0..=1.0).contains(&self.shadow_read_fraction) {
            return Err(DualError::Config(format!(
                "shadow read fraction {} must be between 0 and 1",
                self.shadow_read_fraction
            )));
        }
        if self.reconcile_batch == 0 || self.settle_queue == 0 {
            return Err(DualError::Config(
                "reconcile batch and settle queue must be at least 1".into(),
            ));
        }
        Ok(())
    }
}
