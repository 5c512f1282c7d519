//! Server-sent events, as far as a chat-completions stream needs them: `data:` lines joined
//! into an event at each blank line; comments, other fields and a trailing incomplete event
//! ignored (as the WHATWG rules say). Bytes arrive in arbitrary pieces, so a line, and a UTF-8
//! character, may be split across them.

/// The longest line accepted; a longer one means the peer is not speaking SSE.
pub(crate) const MAX_LINE_BYTES: usize = 1 << 20;

/// An incremental SSE parser.
#[derive(Debug, Default)]
pub(crate) struct SseParser {
    /// Bytes of the line being received.
    line: Vec<u8>,
    /// The `data` of the event being received, lines joined with `\n`.
    data: String,
    /// Whether a `data` field has been seen for this event (an empty one counts).
    has_data: bool,
    /// The previous piece ended in `\r`: a `\n` starting this one belongs to that line end.
    skip_lf: bool,
}

/// A line longer than [`MAX_LINE_BYTES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event-stream line exceeded {MAX_LINE_BYTES} bytes")]
pub(crate) struct LineTooLong;

impl SseParser {
    /// Feeds the next piece of the stream; returns the data of every event it completed.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, LineTooLong> {
        let mut events = Vec::new();
        for &byte in bytes {
            if self.skip_lf {
                self.skip_lf = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' => self.end_line(&mut events),
                b'\r' => {
                    self.skip_lf = true;
                    self.end_line(&mut events);
                }
                _ => {
                    if self.line.len() >= MAX_LINE_BYTES {
                        return Err(LineTooLong);
                    }
                    self.line.push(byte);
                }
            }
        }
        Ok(events)
    }

    fn end_line(&mut self, events: &mut Vec<String>) {
        let line = std::mem::take(&mut self.line);
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                events.push(data);
            }
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (&line[..], &[][..]),
        };
        if field == b"data" {
            self.data.push_str(&String::from_utf8_lossy(value));
            self.data.push('\n');
            self.has_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn parse_all(pieces: &[&[u8]]) -> Vec<String> {
        let mut parser = SseParser::default();
        pieces
            .iter()
            .flat_map(|piece| parser.push(piece).unwrap())
            .collect()
    }

    const STREAM: &str = ": keep-alive\n\ndata: {\"a\":1}\n\nevent: x\nid: 7\ndata: two\ndata: lines\r\n\r\ndata:no-space\rdata: é ü\r\rdata: [DONE]\n\ndata: unfinished";

    #[test]
    fn events_are_data_lines_joined_at_blank_lines() {
        assert_eq!(
            parse_all(&[STREAM.as_bytes()]),
            ["{\"a\":1}", "two\nlines", "no-space\né ü", "[DONE]"]
        );
    }

    #[test]
    fn an_overlong_line_is_refused() {
        let mut parser = SseParser::default();
        let long = vec![b'x'; MAX_LINE_BYTES + 1];
        assert_eq!(parser.push(&long), Err(LineTooLong));
    }

    proptest! {
        #[test]
        fn any_split_of_the_bytes_gives_the_same_events(cuts in proptest::collection::vec(0usize..STREAM.len(), 0..12)) {
            let bytes = STREAM.as_bytes();
            let mut cuts = cuts;
            cuts.sort_unstable();
            let mut pieces = Vec::new();
            let mut start = 0;
            for cut in cuts {
                pieces.push(&bytes[start..cut]);
                start = cut;
            }
            pieces.push(&bytes[start..]);
            prop_assert_eq!(parse_all(&pieces), parse_all(&[bytes]));
        }
    }
}
