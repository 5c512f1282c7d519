//! Facts about this process for detailed health: uptime and resident memory.

use std::sync::LazyLock;
use std::time::{Duration, Instant};

static STARTED: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Marks the start of the process for [`uptime`]. [`crate::init`] calls it; calling it again
/// changes nothing.
pub fn mark_start() {
    LazyLock::force(&STARTED);
}

/// Time since [`mark_start`] was first called.
pub fn uptime() -> Duration {
    STARTED.elapsed()
}

/// Resident set size in bytes, from `/proc/self/status`; `None` where that file does not
/// exist (outside Linux).
pub fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes().unwrap() > 1024 * 1024);
        }
    }

    #[test]
    fn uptime_grows_from_the_first_mark() {
        mark_start();
        let first = uptime();
        std::thread::sleep(Duration::from_millis(5));
        assert!(uptime() > first);
    }
}
