//! The JSON log layer: one object per event, with the request's ids promoted to the top.
//!
//! tracing-subscriber's own JSON formatter cannot see OpenTelemetry ids, and nests the request
//! id inside a span list; operators grep and index on `request_id` and `trace_id`, so this
//! layer writes them at the top level of every line.
//!
//! Every request writes a line, so the line is written straight into one buffer: no
//! intermediate JSON tree, no per-field key strings.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// Span fields promoted to the top level of a line when any enclosing span has them.
const PROMOTED: [&str; 2] = ["request_id", "user_id"];

/// Writes one JSON line per event to `writer`.
pub(crate) struct JsonLayer<W> {
    writer: W,
    /// The dispatcher this layer belongs to, to ask the OpenTelemetry layer for a span's ids.
    /// Weak, because the dispatcher owns this layer.
    dispatch: OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl<W> JsonLayer<W> {
    pub(crate) fn new(writer: W) -> Self {
        Self {
            writer,
            dispatch: OnceLock::new(),
        }
    }
}

/// A span's fields in recording order, kept in the span's extensions. Each field is stored as
/// the JSON member it is written as (`,"key":value`, strings escaped and quoted), all in one
/// buffer: a request span's fields cost one allocation rather than one per string, and every
/// line that names the span copies each member whole instead of writing it again.
struct SpanFields {
    /// The members, one after another.
    json: Vec<u8>,
    /// Each field's name and where its member is in `json`.
    fields: Vec<Member>,
}

/// Where one field's member is in [`SpanFields::json`].
struct Member {
    name: &'static str,
    /// The whole member, from its leading comma.
    range: std::ops::Range<usize>,
    /// Where the value starts, after the key and colon.
    value: usize,
    /// Its index in [`PROMOTED`], when it is one of those.
    promoted: Option<usize>,
}

impl SpanFields {
    fn with_capacity(fields: usize) -> Self {
        Self {
            json: Vec::with_capacity(48 * fields),
            fields: Vec::with_capacity(fields),
        }
    }

    /// Records `name`'s value, written by `write` into the buffer. A field recorded again
    /// points at its new member; the old bytes stay unused. A field called `name` is not
    /// kept: it would clash with the span's own name in the line.
    fn set(&mut self, name: &'static str, write: impl FnOnce(&mut Vec<u8>)) {
        if name == "name" {
            return;
        }
        let start = self.json.len();
        self.json.push(b',');
        write_str(&mut self.json, name);
        self.json.push(b':');
        let value = self.json.len();
        write(&mut self.json);
        let member = Member {
            name,
            range: start..self.json.len(),
            value,
            promoted: PROMOTED.iter().position(|p| *p == name),
        };
        match self.fields.iter_mut().find(|m| m.name == name) {
            Some(slot) => *slot = member,
            None => self.fields.push(member),
        }
    }
}

/// `otel.*` fields name and classify the OpenTelemetry span; they are not log content.
fn is_logged(field: &Field) -> bool {
    !field.name().starts_with("otel.")
}

impl Visit for SpanFields {
    fn record_f64(&mut self, field: &Field, value: f64) {
        if is_logged(field) {
            self.set(field.name(), |out| write_f64(out, value));
        }
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        if is_logged(field) {
            self.set(field.name(), |out| write_int(out, value));
        }
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        if is_logged(field) {
            self.set(field.name(), |out| write_int(out, value));
        }
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        if is_logged(field) {
            self.set(field.name(), |out| write_bool(out, value));
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if is_logged(field) {
            self.set(field.name(), |out| write_str(out, value));
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        if is_logged(field) {
            self.set(field.name(), |out| write_display(out, &ErrorChain(value)));
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if is_logged(field) {
            self.set(field.name(), |out| {
                write_display(out, &format_args!("{value:?}"));
            });
        }
    }
}

/// An error and its causes, as `{:#}` prints them for anyhow: `outer: inner: root`.
struct ErrorChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Writes an event's fields as JSON members straight into `fields`, and its message into
/// `message`.
struct EventVisitor<'a> {
    fields: &'a mut Vec<u8>,
    message: &'a mut Vec<u8>,
}

impl EventVisitor<'_> {
    /// The buffer for `field`, with its key written when it is an ordinary field.
    fn slot(&mut self, field: &Field) -> &mut Vec<u8> {
        if field.name() == "message" {
            self.message.clear();
            return self.message;
        }
        if !self.fields.is_empty() {
            self.fields.push(b',');
        }
        write_str(self.fields, field.name());
        self.fields.push(b':');
        self.fields
    }
}

impl Visit for EventVisitor<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        write_f64(self.slot(field), value);
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        write_int(self.slot(field), value);
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        write_int(self.slot(field), value);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        write_bool(self.slot(field), value);
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        write_str(self.slot(field), value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        write_display(self.slot(field), &ErrorChain(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        write_display(self.slot(field), &format_args!("{value:?}"));
    }
}

impl<S, W> Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        // Room for every field the span declares, recorded now or later: one allocation.
        let mut fields = SpanFields::with_capacity(attrs.metadata().fields().len());
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(fields) = span.extensions_mut().get_mut::<SpanFields>()
        {
            values.record(fields);
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Vec::with_capacity(128);
        let mut message = Vec::with_capacity(64);
        event.record(&mut EventVisitor {
            fields: &mut fields,
            message: &mut message,
        });

        let line = &mut Vec::with_capacity(512);
        line.extend_from_slice(b"{\"timestamp\":\"");
        write_timestamp(line, std::time::SystemTime::now());
        line.extend_from_slice(b"\",\"level\":\"");
        line.extend_from_slice(event.metadata().level().as_str().as_bytes());
        line.extend_from_slice(b"\",\"target\":");
        write_str(line, event.metadata().target());
        line.extend_from_slice(b",\"message\":");
        if message.is_empty() {
            line.extend_from_slice(b"null");
        } else {
            line.extend_from_slice(&message);
        }
        line.extend_from_slice(b",\"fields\":{");
        line.extend_from_slice(&fields);
        line.push(b'}');

        let mut innermost = None;
        let mut ids = None;
        if let Some(scope) = ctx.event_scope(event) {
            // Where in `line` the innermost non-blank value of each promoted field was
            // written, to be copied to the top level.
            let mut promoted: [Option<std::ops::Range<usize>>; PROMOTED.len()] = Default::default();
            line.extend_from_slice(b",\"spans\":[");
            for (index, span) in scope.from_root().enumerate() {
                if index > 0 {
                    line.push(b',');
                }
                line.extend_from_slice(b"{\"name\":");
                write_str(line, span.name());
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<SpanFields>() {
                    for member in &fields.fields {
                        let start = line.len();
                        line.extend_from_slice(&fields.json[member.range.clone()]);
                        let value = start + (member.value - member.range.start)..line.len();
                        // A blank string (`""`) is not promoted.
                        if let Some(slot) = member.promoted
                            && line[value.clone()] != *b"\"\""
                        {
                            promoted[slot] = Some(value);
                        }
                    }
                }
                ids = crate::ids::in_extensions(&extensions);
                drop(extensions);
                line.push(b'}');
                innermost = Some(span.id());
            }
            line.push(b']');
            for (key, range) in PROMOTED.iter().zip(promoted) {
                if let Some(range) = range {
                    line.push(b',');
                    write_str(line, key);
                    line.push(b':');
                    line.extend_from_within(range);
                }
            }
        }
        // Without the id layer, the OpenTelemetry layer has them; no extension lock is held
        // here, as `get_otel_context` requires.
        if ids.is_none()
            && let Some(id) = innermost
            && let Some(dispatch) = self.dispatch.get().and_then(|d| d.upgrade())
        {
            ids = crate::propagation::ids_of(&id, &dispatch);
        }
        if let Some((trace_id, span_id)) = ids {
            line.extend_from_slice(b",\"trace_id\":\"");
            write_hex(line, &trace_id);
            line.extend_from_slice(b"\",\"span_id\":\"");
            write_hex(line, &span_id);
            line.push(b'"');
        }
        line.extend_from_slice(b"}\n");
        // A log line that cannot be written has nowhere else to go.
        let _ = self.writer.make_writer().write_all(line);
    }
}

/// Writes `text` as a JSON string.
fn write_str(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    escape_into(out, text);
    out.push(b'"');
}

/// Writes whatever `value` displays as a JSON string, escaping as it goes.
fn write_display(out: &mut Vec<u8>, value: &dyn fmt::Display) {
    struct Escaping<'a>(&'a mut Vec<u8>);
    impl fmt::Write for Escaping<'_> {
        fn write_str(&mut self, text: &str) -> fmt::Result {
            escape_into(self.0, text);
            Ok(())
        }
    }
    out.push(b'"');
    let _ = write!(Escaping(out), "{value}");
    out.push(b'"');
}

/// Appends `text` escaped for the inside of a JSON string (RFC 8259 section 7).
fn escape_into(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    // Most values (ids, routes, numbers as text) need no escaping at all.
    if !needs_escape(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &byte) in bytes.iter().enumerate() {
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// `now` in RFC 3339, UTC, to the nanosecond (`2026-12-01T07:50:01.123456789Z`). The part up
/// to the second is worked out once per second on each thread: every line starts with one.
fn write_timestamp(out: &mut Vec<u8>, now: std::time::SystemTime) {
    thread_local! {
        static SECOND: std::cell::Cell<(u64, [u8; 19])> =
            const { std::cell::Cell::new((u64::MAX, [0; 19])) };
    }
    let since_epoch = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let seconds = since_epoch.as_secs();
    let prefix = SECOND.with(|cached| {
        let (second, text) = cached.get();
        if second == seconds {
            return text;
        }
        let text = second_prefix(seconds);
        cached.set((seconds, text));
        text
    });
    out.extend_from_slice(&prefix);
    out.push(b'.');
    let nanos = since_epoch.subsec_nanos();
    let mut digits = [b'0'; 9];
    let mut rest = nanos;
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        rest /= 10;
    }
    out.extend_from_slice(&digits);
    out.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second, UTC.
fn second_prefix(seconds: u64) -> [u8; 19] {
    let at = i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let mut text = [0u8; 19];
    let mut put = |from: usize, width: usize, value: u32| {
        let mut rest = value;
        for slot in text[from..from + width].iter_mut().rev() {
            *slot = b'0' + u8::try_from(rest % 10).unwrap_or(0);
            rest /= 10;
        }
    };
    put(0, 4, u32::try_from(at.year()).unwrap_or(0));
    put(5, 2, u32::from(u8::from(at.month())));
    put(8, 2, u32::from(at.day()));
    put(11, 2, u32::from(at.hour()));
    put(14, 2, u32::from(at.minute()));
    put(17, 2, u32::from(at.second()));
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        text[at] = separator;
    }
    text
}

/// Whether any byte is a control character, `"` or `\\`, eight bytes at a time: this runs over
/// every string of every log line. (The word tests can only err towards "yes", which the
/// escaping loop then handles byte by byte.)
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let mut le = [0u8; 8];
        le.copy_from_slice(word);
        let x = u64::from_le_bytes(le);
        let control = x.wrapping_sub(0x20 * ONES) & !x & HIGHS;
        let quote = zero_byte(x ^ (u64::from(b'"') * ONES));
        let backslash = zero_byte(x ^ (u64::from(b'\\') * ONES));
        if control | quote | backslash != 0 {
            return true;
        }
    }
    words
        .remainder()
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// JSON has no NaN or infinity: those are written as `null`, as serde_json does.
fn write_f64(out: &mut Vec<u8>, value: f64) {
    if value.is_finite() {
        let _ = write!(out, "{value}");
    } else {
        out.extend_from_slice(b"null");
    }
}

fn write_bool(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

fn write_int(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Lowercase hex of a trace id (16 bytes) or span id (8 bytes).
fn write_hex<const N: usize>(out: &mut Vec<u8>, bytes: &[u8; N]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = [0u8; 32];
    for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(byte >> 4)];
        pair[1] = HEX[usize::from(byte & 0xf)];
    }
    out.extend_from_slice(&text[..2 * N]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_json_reads_them_back() {
        for text in [
            "plain",
            "quote \" and backslash \\",
            "lines\nand\rtabs\t",
            "control \u{1} \u{1f} and \u{7f}",
            "unicode: żółw 🐢",
            "",
        ] {
            let json = escaped(text);
            assert_eq!(
                serde_json::from_str::<String>(&json).unwrap(),
                text,
                "{json}"
            );
        }
    }

    #[test]
    fn every_byte_that_needs_escaping_is_found_wherever_it_sits() {
        let plain = "abcdefghijklmnopqrstuvwxyz0123456789";
        assert!(!needs_escape(plain.as_bytes()));
        assert!(!needs_escape("żółw 🐢 ~\u{7f}".as_bytes()));
        for special in ['"', '\\', '\n', '\u{0}', '\u{1f}'] {
            for at in 0..plain.len() {
                let mut text = plain.to_owned();
                text.insert(at, special);
                assert!(needs_escape(text.as_bytes()), "{special:?} at {at}");
                let json = escaped(&text);
                assert_eq!(serde_json::from_str::<String>(&json).unwrap(), text);
            }
        }
        // Bytes just outside the ranges are left alone.
        for byte in [0x20u8, 0x21, 0x23, 0x5b, 0x5d, 0x7f] {
            let text = String::from_utf8(vec![byte; 17]).unwrap();
            assert!(!needs_escape(text.as_bytes()), "{byte:#x}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_to_the_nanosecond() {
        use time::format_description::well_known::Rfc3339;
        for (seconds, nanos) in [
            (0, 0),
            (1_764_575_401, 123_456_789),
            (1_764_575_401, 5),
            (951_782_400, 999_999_999), // 2000-02-29
            (4_102_444_799, 1),         // 2099-12-31T23:59:59
        ] {
            let at = std::time::UNIX_EPOCH + std::time::Duration::new(seconds, nanos);
            // Twice: the second comes from the per-thread cache.
            for _ in 0..2 {
                let mut out = Vec::new();
                write_timestamp(&mut out, at);
                let text = String::from_utf8(out).unwrap();
                assert_eq!(text.len(), 30, "{text}");
                let parsed = time::OffsetDateTime::parse(&text, &Rfc3339).unwrap();
                assert_eq!(parsed.unix_timestamp(), i64::try_from(seconds).unwrap());
                assert_eq!(parsed.nanosecond(), nanos);
                assert!(text.ends_with('Z'));
            }
        }
    }

    #[test]
    fn non_finite_floats_are_null() {
        for (value, expected) in [(1.5, "1.5"), (f64::NAN, "null"), (f64::INFINITY, "null")] {
            let mut out = Vec::new();
            write_f64(&mut out, value);
            assert_eq!(out, expected.as_bytes());
        }
    }
}
