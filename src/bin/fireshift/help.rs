//! What each command's `--help` ends with: an example to start from, then the exit-code
//! table every command shares. The examples use the flags as an operator types them
//! against production; `scripts/demo` shows the same against local services.

use crate::exit::EXIT_CODES_HELP;

/// `Examples:` and the command lines, then the exit codes.
fn with_examples(lines: &str) -> String {
    format!("Examples:\n{lines}\n\n{EXIT_CODES_HELP}")
}

pub fn migrate() -> String {
    with_examples(
        "  # copy a whole database with an app's mappings (rerun the same line to resume)
  fireshift migrate --project my-project --mongodb-uri \"$MONGODB_URI\" --database app \\
      --mappings mappings/myapp --summary-json summary.json
  # read and convert only: what would be dead-lettered, nothing written
  fireshift migrate --project my-project --database app --mappings mappings/myapp --dry-run
  # from a managed export instead of the live database (docs/export.md)
  fireshift migrate --from-export gs://my-bucket/exports/2026-12-01 --database app \\
      --mappings mappings/myapp --export-times omit --parallel 8
  # copy, then follow every change until `fireshift cutover` (docs/follow.md)
  fireshift migrate --project my-project --database app --mappings mappings/myapp --follow",
    )
}

pub fn cutover() -> String {
    with_examples(
        "  # after the app stopped writing to Firestore: gate, verify, record, the follower exits
  fireshift cutover --project my-project --mongodb-uri \"$MONGODB_URI\" --database app \\
      --mappings mappings/myapp --timeout 600 --report cutover",
    )
}

pub fn status() -> String {
    with_examples(
        "  fireshift status --mongodb-uri \"$MONGODB_URI\" --database app
  fireshift status --database app --json      # every job, for scripts",
    )
}

pub fn verify() -> String {
    with_examples(
        "  # full parity check with the mappings the job used; writes parity.json and parity.html
  fireshift verify --project my-project --database app --mappings mappings/myapp --report parity
  # a 1% sample first
  fireshift verify --project my-project --database app --mappings mappings/myapp --report parity --sample 0.01
  # against the export a job copied
  fireshift verify --from-export gs://my-bucket/exports/2026-12-01 --database app --mappings mappings/myapp --report parity",
    )
}

pub fn check() -> String {
    with_examples("  fireshift check --mappings mappings/myapp")
}

pub fn indexes() -> String {
    with_examples(
        "  fireshift indexes --mappings mappings/myapp --mongodb-uri \"$MONGODB_URI\" --database app",
    )
}

pub fn plan() -> String {
    with_examples(
        "  # skeleton mappings in mappings/myapp, report plan/myapp.md and plan/myapp.json
  fireshift plan --project my-project --out mappings/myapp --report plan/myapp
  # from an export: every record read once, exact counts, no Firestore read
  fireshift plan --from-export ./exports/2026-12-01 --out mappings/myapp --report plan/myapp",
    )
}
