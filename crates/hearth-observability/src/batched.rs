//! Log lines written in batches by a thread of their own.
//!
//! Standard output is line-buffered: every log line was a `write` system call on the thread
//! that logged it, inside the request. Under load that was the largest single cost of a cheap
//! request (a quarter of the gateway's CPU on `GET /health/live`, see docs/benchmarks.md,
//! "Profiles of the request path"). Here a line is appended to a buffer in memory, and a
//! thread named `hearth-log` writes what has gathered every [`INTERVAL`], or at once when a
//! batch has grown past [`KICK_BYTES`].
//!
//! Nothing is dropped: when the sink stops taking lines (a full pipe nobody reads) and the
//! buffer holds [`CAP_BYTES`], loggers wait until it drains, as they waited on the pipe before.
//! [`BatchedWriter::close`] (run by [`crate::Guard`]'s drop) writes what is left and stops the
//! thread; lines logged after that are written directly.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long a line may wait in memory before the thread writes it.
pub(crate) const INTERVAL: Duration = Duration::from_millis(25);
/// A batch this large is written at once rather than at the next interval.
pub(crate) const KICK_BYTES: usize = 64 * 1024;
/// Loggers wait while this much is waiting to be written.
pub(crate) const CAP_BYTES: usize = 8 * 1024 * 1024;

type Sink = Box<dyn Write + Send>;

struct State {
    pending: Vec<u8>,
    /// Set by [`BatchedWriter::close`]: the thread writes what is left and ends, and later
    /// lines go straight to the sink.
    closed: bool,
    /// The sink, once the thread has ended (or before it starts, if it could not).
    sink: Option<Sink>,
}

struct Shared {
    state: Mutex<State>,
    /// Wakes the writing thread early: a large batch, or closing.
    kick: Condvar,
    /// Wakes loggers waiting for room.
    drained: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`MakeWriter`](tracing_subscriber::fmt::MakeWriter) whose lines a background thread
/// writes to a sink in batches. Clones share the buffer and the thread.
///
/// ```
/// use std::io::Write as _;
/// use hearth_observability::{BatchedWriter, LogBuffer};
///
/// let sink = LogBuffer::default();
/// let writer = BatchedWriter::new(sink.clone());
/// writer.clone().write_all(b"{\"message\":\"hello\"}\n").unwrap();
/// writer.close(); // writes what is waiting, stops the thread
/// assert_eq!(sink.text(), "{\"message\":\"hello\"}\n");
/// ```
#[derive(Clone)]
pub struct BatchedWriter {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for BatchedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("BatchedWriter")
            .field("pending_bytes", &state.pending.len())
            .field("closed", &state.closed)
            .finish()
    }
}

impl BatchedWriter {
    /// Lines for standard output.
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }

    /// Lines for `sink`, written by a new thread named `hearth-log`. If the thread cannot be
    /// started, every line is written to `sink` directly, as an unbatched writer would.
    pub fn new(sink: impl Write + Send + 'static) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                pending: Vec::with_capacity(KICK_BYTES),
                closed: false,
                sink: None,
            }),
            kick: Condvar::new(),
            drained: Condvar::new(),
            thread: Mutex::new(None),
        });
        let sink: Sink = Box::new(sink);
        // The thread takes the sink from a channel once it runs, so a failed spawn leaves the
        // sink here for direct writes.
        let (sink_tx, sink_rx) = std::sync::mpsc::channel::<Sink>();
        let worker = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("hearth-log".into())
            .spawn(move || {
                if let Ok(sink) = sink_rx.recv() {
                    run(&worker, sink);
                }
            });
        match spawned {
            Ok(handle) => {
                // The receiver lives until the thread has taken the sink: this cannot fail.
                let _ = sink_tx.send(sink);
                *shared.thread.lock().unwrap_or_else(PoisonError::into_inner) = Some(handle);
            }
            Err(_) => {
                let mut state = shared.lock();
                state.closed = true;
                state.sink = Some(sink);
            }
        }
        Self { shared }
    }

    /// Writes everything waiting and stops the thread; later lines are written directly.
    /// Idempotent.
    pub fn close(&self) {
        self.shared.lock().closed = true;
        self.shared.kick.notify_all();
        let handle = self
            .shared
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    /// Bytes waiting to be written.
    pub fn pending_bytes(&self) -> usize {
        self.shared.lock().pending.len()
    }
}

/// The thread: waits for lines (at most [`INTERVAL`] once some are waiting), takes the batch,
/// writes it outside the lock, and hands the sink back when closed.
fn run(shared: &Shared, mut sink: Sink) {
    let mut spare = Vec::with_capacity(KICK_BYTES);
    loop {
        let mut state = shared.lock();
        loop {
            if state.closed || state.pending.len() >= KICK_BYTES {
                break;
            }
            if state.pending.is_empty() {
                state = shared
                    .kick
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            } else {
                let (next, timeout) = shared
                    .kick
                    .wait_timeout(state, INTERVAL)
                    .unwrap_or_else(PoisonError::into_inner);
                state = next;
                if timeout.timed_out() {
                    break;
                }
            }
        }
        std::mem::swap(&mut state.pending, &mut spare);
        let closing = state.closed;
        drop(state);
        shared.drained.notify_all();
        if !spare.is_empty() {
            // A line that cannot be written has nowhere else to go.
            let _ = sink.write_all(&spare);
            let _ = sink.flush();
            spare.clear();
            if spare.capacity() > 4 * KICK_BYTES {
                spare.shrink_to(KICK_BYTES);
            }
        }
        if closing {
            let mut state = shared.lock();
            // Lines that arrived while the last batch was written.
            let rest = std::mem::take(&mut state.pending);
            let _ = sink.write_all(&rest);
            let _ = sink.flush();
            state.sink = Some(sink);
            drop(state);
            shared.drained.notify_all();
            return;
        }
    }
}

impl Write for BatchedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut state = self.shared.lock();
        while !state.closed && state.pending.len() >= CAP_BYTES {
            state = self
                .shared
                .drained
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if state.closed {
            // The thread is gone or going: keep the order by writing under the lock.
            if state.sink.is_none() {
                // Closing, and the thread has not handed the sink back yet: queue the line
                // for the thread's last write.
                state.pending.extend_from_slice(bytes);
                return Ok(bytes.len());
            }
            if let Some(sink) = state.sink.as_mut() {
                sink.write_all(bytes)?;
                sink.flush()?;
            }
            return Ok(bytes.len());
        }
        let was_below = state.pending.len() < KICK_BYTES;
        state.pending.extend_from_slice(bytes);
        let kick = was_below && state.pending.len() >= KICK_BYTES;
        let first = state.pending.len() == bytes.len();
        drop(state);
        // Wake the thread for the first line of a batch (it then waits at most the interval)
        // and when the batch is large; the lines in between cost no wake-up.
        if first || kick {
            self.shared.kick.notify_one();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for BatchedWriter {
    type Writer = Self;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LogBuffer;

    #[test]
    fn lines_reach_the_sink_in_order_within_the_interval() {
        let sink = LogBuffer::default();
        let writer = BatchedWriter::new(sink.clone());
        for i in 0..1_000 {
            writeln!(writer.clone(), "line {i}").unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while writer.pending_bytes() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(INTERVAL);
        }
        std::thread::sleep(INTERVAL * 2);
        let text = sink.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1_000, "written without close: {}", lines.len());
        for (i, line) in lines.iter().enumerate() {
            assert_eq!(*line, format!("line {i}"));
        }
        writer.close();
    }

    #[test]
    fn close_writes_what_is_waiting_and_later_lines_go_straight_through() {
        let sink = LogBuffer::default();
        let writer = BatchedWriter::new(sink.clone());
        writer.clone().write_all(b"first\n").unwrap();
        writer.close();
        assert_eq!(sink.text(), "first\n");
        writer.clone().write_all(b"after\n").unwrap();
        assert_eq!(sink.text(), "first\nafter\n");
        writer.close();
    }

    #[test]
    fn many_threads_lose_no_line_and_tear_none() {
        let sink = LogBuffer::default();
        let writer = BatchedWriter::new(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        let line = format!("{{\"thread\":{t},\"i\":{i}}}\n");
                        writer.clone().write_all(line.as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        writer.close();
        let text = sink.text();
        let mut next = [0_u32; 4];
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            let t = usize::try_from(value["thread"].as_u64().unwrap()).unwrap();
            let i = u32::try_from(value["i"].as_u64().unwrap()).unwrap();
            assert_eq!(i, next[t], "thread {t} out of order");
            next[t] += 1;
        }
        assert_eq!(next, [20_000; 4]);
    }

    /// A sink that takes nothing until told to, like a pipe nobody reads.
    struct Stuck {
        open: Arc<(Mutex<bool>, Condvar)>,
        out: LogBuffer,
    }

    impl Write for Stuck {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (lock, cvar) = &*self.open;
            let mut open = lock.lock().unwrap();
            while !*open {
                open = cvar.wait(open).unwrap();
            }
            self.out.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stuck_sink_holds_loggers_at_the_cap_and_loses_nothing() {
        let open = Arc::new((Mutex::new(false), Condvar::new()));
        let out = LogBuffer::default();
        let writer = BatchedWriter::new(Stuck {
            open: Arc::clone(&open),
            out: out.clone(),
        });
        let line = vec![b'x'; 1023];
        let total = CAP_BYTES / 1024 * 3;
        let logger = {
            let writer = writer.clone();
            let mut line = line.clone();
            line.push(b'\n');
            std::thread::spawn(move || {
                for _ in 0..total {
                    writer.clone().write_all(&line).unwrap();
                }
            })
        };
        // The logger fills the buffer to the cap (plus the batch the thread holds) and waits.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while writer.pending_bytes() < CAP_BYTES && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(writer.pending_bytes() >= CAP_BYTES);
        assert!(writer.pending_bytes() < CAP_BYTES + 1024);
        assert!(!logger.is_finished());
        {
            let (lock, cvar) = &*open;
            *lock.lock().unwrap() = true;
            cvar.notify_all();
        }
        logger.join().unwrap();
        writer.close();
        assert_eq!(out.text().lines().count(), total);
    }
}
