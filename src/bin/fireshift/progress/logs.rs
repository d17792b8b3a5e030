//! Log lines and progress bars share stderr: while bars are drawn, each log line is
//! written with the bars lifted (indicatif's `suspend`) and drawn again below it, so
//! lines scroll above the bars instead of tearing through them.

use std::io::Write;
use std::sync::Mutex;

use indicatif::MultiProgress;
use tracing_subscriber::fmt::MakeWriter;

/// The bars on screen, if any.
static BARS: Mutex<Option<MultiProgress>> = Mutex::new(None);

/// From now on, stderr lines go above these bars.
pub fn attach(bars: &MultiProgress) {
    *BARS.lock().unwrap() = Some(bars.clone());
}

/// The bars are gone: stderr lines go straight out again.
pub fn detach() {
    *BARS.lock().unwrap() = None;
}

/// Writes `bytes` to stderr above the bars (if any).
fn write_above(bytes: &[u8]) -> std::io::Result<()> {
    let bars = BARS.lock().unwrap();
    match &*bars {
        Some(bars) => bars.suspend(|| std::io::stderr().write_all(bytes)),
        None => std::io::stderr().write_all(bytes),
    }
}

/// One line for the operator on stderr (a message outside the log, e.g. "stopping"),
/// above the bars if any.
pub fn say(line: &str) {
    let _ = write_above(format!("{line}\n").as_bytes());
}

/// The log subscriber's writer: stderr, above the bars.
#[derive(Clone, Copy, Default)]
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Stderr;

    fn make_writer(&'a self) -> Self::Writer {
        *self
    }
}

impl Write for Stderr {
    // The subscriber formats a whole event, then writes it in one call: one event is
    // one suspend, so a line is never split by a redraw.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        write_above(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
