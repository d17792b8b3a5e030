//! Every exit code of every command, in one place: the enum the commands return, and
//! the table `--help` and the README show.

/// How a command ended. Each value means one thing, whichever command returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Done: every document landed (`migrate`), parity (`verify`), valid (`check`),
    /// every index exists (`indexes`).
    Ok = 0,
    /// Stopped by an error: the message says which service, where and why. Also
    /// invalid mappings (`check`, and any command given `--mappings`).
    Error = 1,
    /// A bad command line.
    Usage = 2,
    /// `migrate` finished, but some documents were dead-lettered (before 5: a document
    /// that did not land weighs more than an index).
    DeadLetters = 3,
    /// `verify` finished and found mismatches.
    Mismatches = 4,
    /// `indexes` or `migrate`: some index of the mappings was refused by the server or
    /// clashes with an existing one (the data is all there).
    IndexesNotBuilt = 5,
    /// `migrate` stopped by `--max-dead-letters` (checkpoints kept; rerun to resume).
    DeadLetterLimit = 6,
    /// `verify` paused by `--max-docs` (rerun to continue).
    Paused = 7,
    /// `status --require-done`: some range of the job is not copied yet.
    NotDone = 8,
    /// `cutover`: no follower of the job is running (`migrate --follow`).
    FollowerNotRunning = 9,
    /// `cutover`: the follower did not apply everything up to the cutover time (or did
    /// not leave) within `--timeout`.
    Lagging = 10,
    /// `cutover`: verify found the target differs from the source at the cutover time.
    Parity = 11,
    /// `cutover`: the dual-write outbox still holds writes owed to MongoDB.
    OutboxNotEmpty = 12,
    /// `migrate` stopped by SIGINT (Ctrl-C) after saving its checkpoints (128 + 2, as a
    /// shell reports a process the signal ended).
    Interrupted = 130,
    /// `migrate` stopped by SIGTERM after saving its checkpoints (128 + 15).
    Terminated = 143,
}

impl ExitCode {
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The table shown after every command's `--help` (and in the README).
pub const EXIT_CODES_HELP: &str = "\
Exit codes (every command):
  0  done: every document landed, parity, valid, every index exists
  1  stopped by an error (the message says which service, where and why), or invalid mappings
  2  bad command line
  3  migrate finished, but some documents were dead-lettered
  4  verify found mismatches
  5  migrate or indexes: some index was refused or clashes (the documents all landed)
  6  migrate stopped by --max-dead-letters (checkpoints kept: rerun to resume)
  7  verify paused by --max-docs (rerun to continue)
  8  status --require-done: the job is not done yet (some range is not copied)
  9  cutover: no follower is running (migrate --follow)
  10  cutover: the follower did not catch up to the cutover time within --timeout
  11  cutover: verify found differences at the cutover time
  12  cutover: the dual-write outbox is not empty
  130  migrate stopped by SIGINT (Ctrl-C), checkpoints saved: rerun to resume
  143  migrate stopped by SIGTERM, checkpoints saved: rerun to resume";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_help_table_lists_every_code_once() {
        let all = [
            ExitCode::Ok,
            ExitCode::Error,
            ExitCode::Usage,
            ExitCode::DeadLetters,
            ExitCode::Mismatches,
            ExitCode::IndexesNotBuilt,
            ExitCode::DeadLetterLimit,
            ExitCode::Paused,
            ExitCode::NotDone,
            ExitCode::FollowerNotRunning,
            ExitCode::Lagging,
            ExitCode::Parity,
            ExitCode::OutboxNotEmpty,
            ExitCode::Interrupted,
            ExitCode::Terminated,
        ];
        for code in all {
            let row = format!("\n  {}  ", code.code());
            assert_eq!(EXIT_CODES_HELP.matches(&row).count(), 1, "{code:?}");
        }
        assert_eq!(EXIT_CODES_HELP.lines().count(), all.len() + 1);
    }
}
