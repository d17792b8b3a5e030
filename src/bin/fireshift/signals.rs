//! A graceful stop on SIGINT or SIGTERM: the first asks the run to stop (reading stops,
//! what is in flight lands, checkpoints are saved, the summary is printed); a second
//! exits at once. Installed by the commands that can stop gracefully (`migrate`);
//! the others keep the default, where a signal ends the process.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

use crate::exit::ExitCode;

/// The stop request a run watches, and which signal made it.
#[derive(Clone)]
pub struct Stop {
    pub token: CancellationToken,
    received: Arc<AtomicI32>,
}

impl Stop {
    /// Starts listening for SIGINT and SIGTERM.
    pub fn install() -> std::io::Result<Self> {
        let stop = Self {
            token: CancellationToken::new(),
            received: Arc::new(AtomicI32::new(0)),
        };
        let mut int = signal(SignalKind::interrupt())?;
        let mut term = signal(SignalKind::terminate())?;
        let handler = stop.clone();
        tokio::spawn(async move {
            loop {
                let code = tokio::select! {
                    _ = int.recv() => ExitCode::Interrupted,
                    _ = term.recv() => ExitCode::Terminated,
                };
                let first = handler
                    .received
                    .compare_exchange(0, code.code(), Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok();
                if !first {
                    // The operator does not want to wait for the drain: the checkpoints
                    // as last saved stay valid (they never pass an unacknowledged write).
                    crate::progress::logs::say(
                        "second signal: exiting now; the checkpoints as last saved stay valid",
                    );
                    std::process::exit(code.code());
                }
                crate::progress::logs::say(
                    "stopping: no further reads; writing what is in flight and saving checkpoints (signal again to exit at once)",
                );
                handler.token.cancel();
            }
        });
        Ok(stop)
    }

    /// The exit code of the signal that stopped the run, if one did.
    pub fn exit_code(&self) -> Option<ExitCode> {
        match self.received.load(Ordering::SeqCst) {
            130 => Some(ExitCode::Interrupted),
            143 => Some(ExitCode::Terminated),
            _ => None,
        }
    }
}
