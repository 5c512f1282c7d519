//! Making a test's scoped tracing subscriber see every call site, in a binary whose other tests
//! run in parallel without one.
//!
//! tracing caches each call site's interest once for the process. While only one dispatcher is
//! registered, it computes that interest from the *registering thread's* default: a test's
//! scoped dispatcher can be the only one, and another test's thread (no subscriber) that
//! reaches a call site first then caches "never" for it; the scoped test's spans and events
//! from that call site silently vanish. Call [`keep_global`] before creating the scoped
//! dispatcher and [`refresh`] once it exists.

use std::sync::OnceLock;

/// Keeps a second dispatcher registered for the life of the test binary, so every interest
/// computation asks all live dispatchers rather than the calling thread's.
pub fn keep_global() {
    static KEPT: OnceLock<tracing::Dispatch> = OnceLock::new();
    KEPT.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
}

/// Recomputes every registered call site's interest against the dispatchers alive now, so a
/// call site cached before the test's dispatcher existed gets its say.
pub fn refresh() {
    tracing::callsite::rebuild_interest_cache();
}
