//! Provably fair randomness: server/client seeds, the commitment a player sees
//! before betting, and the deterministic random stream every game draws from.
//!
//! # Derivation
//!
//! 1. The operator picks a secret [`ServerSeed`] (32 bytes, shown as 64
//!    lowercase hex characters once revealed) and publishes its commitment,
//!    [`ServerSeed::hash_hex`]: the lowercase hex of SHA-256 over the 32 raw
//!    bytes (not over the hex text).
//! 2. The player picks a [`ClientSeed`]; each round has a `nonce` (a `u64`).
//! 3. The round's stream is the concatenation of 32-byte blocks
//!    `block(i) = HMAC-SHA256(key = the 32 server seed bytes,
//!    message = "{client}:{nonce}:{i}")` for `i = 0, 1, 2, …`, with `nonce`
//!    and `i` written in ASCII decimal without padding (see
//!    [`block_message`]).
//! 4. [`FairRng::next_u32`] reads the stream 4 bytes at a time as big-endian
//!    `u32`s: the first eight draws come from block 0, the next eight from
//!    block 1, and so on.
//! 5. [`RandomSource::below`] turns draws into an integer in `0..n` without
//!    modulo bias: a draw `x` is rejected (and the next one used) while
//!    `x >= 2^32 - (2^32 mod n)`; the result is `x mod n`.
//! 6. [`shuffle`] permutes a list with Fisher–Yates, one `below` per
//!    position from the last down to the second.
//!
//! After the server seed is revealed, anyone can recompute the commitment
//! and replay every round from the seeds and nonces alone.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Length of a server seed in bytes.
pub const SERVER_SEED_LEN: usize = 32;

/// Length of a server seed's hex form, in characters.
pub const SERVER_SEED_HEX_LEN: usize = SERVER_SEED_LEN * 2;

/// Longest client seed accepted, in bytes.
pub const CLIENT_SEED_MAX_LEN: usize = 64;

/// Size of one HMAC-SHA256 output block of the random stream, in bytes.
pub const BLOCK_LEN: usize = 32;

/// HMAC-SHA256 block size: keys no longer than this are zero-padded to it.
const HMAC_KEY_BLOCK_LEN: usize = 64;

/// Why a seed could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum SeedError {
    /// A server seed's hex form has the wrong length.
    #[error("server seed must be {expected} hex characters, got {actual}")]
    HexLength {
        /// The required length ([`SERVER_SEED_HEX_LEN`]).
        expected: usize,
        /// The length (in bytes) of the rejected input.
        actual: usize,
    },
    /// A server seed's hex form contains a byte that is not a hex digit.
    #[error("server seed has a non-hex character at byte {position}")]
    InvalidHex {
        /// Zero-based byte offset of the offending character.
        position: usize,
    },
    /// A client seed is empty or longer than [`CLIENT_SEED_MAX_LEN`] bytes.
    #[error("client seed must be 1 to {CLIENT_SEED_MAX_LEN} bytes, got {len}")]
    ClientSeedLength {
        /// The length of the rejected input, in bytes.
        len: usize,
    },
    /// A client seed contains a byte outside printable ASCII, or a `:`.
    #[error("client seed has a forbidden character at byte {position}")]
    ClientSeedCharacter {
        /// Zero-based byte offset of the offending character.
        position: usize,
    },
}

/// Lowercase hex encoding of `bytes` (two characters per byte).
#[must_use]
pub fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Value of one ASCII hex digit (either case).
const fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lowercase hex of SHA-256 over `bytes`.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex_encode(&Sha256::digest(bytes))
}

/// The secret half of a round's randomness, chosen by the operator.
///
/// Kept secret until the player rotates it; before that only its commitment
/// ([`hash_hex`](Self::hash_hex)) is shown. Its `Debug` output is redacted so
/// it cannot leak through logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerSeed([u8; SERVER_SEED_LEN]);

impl ServerSeed {
    /// Wraps 32 bytes (produced by the caller's CSPRNG) as a server seed.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; SERVER_SEED_LEN]) -> Self {
        Self(bytes)
    }

    /// Parses the 64-character hex form. Upper- and lowercase digits are both
    /// accepted; [`to_hex`](Self::to_hex) always produces lowercase.
    ///
    /// # Errors
    ///
    /// - [`SeedError::HexLength`] if `hex` is not exactly 64 bytes long.
    /// - [`SeedError::InvalidHex`] if it contains a non-hex character.
    pub fn from_hex(hex: &str) -> Result<Self, SeedError> {
        let raw = hex.as_bytes();
        if raw.len() != SERVER_SEED_HEX_LEN {
            return Err(SeedError::HexLength {
                expected: SERVER_SEED_HEX_LEN,
                actual: raw.len(),
            });
        }
        let mut bytes = [0u8; SERVER_SEED_LEN];
        for (i, out) in bytes.iter_mut().enumerate() {
            let hi = hex_value(raw[2 * i]).ok_or(SeedError::InvalidHex { position: 2 * i })?;
            let lo = hex_value(raw[2 * i + 1]).ok_or(SeedError::InvalidHex {
                position: 2 * i + 1,
            })?;
            *out = (hi << 4) | lo;
        }
        Ok(Self(bytes))
    }

    /// The raw seed bytes. Secret until revealed.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; SERVER_SEED_LEN] {
        &self.0
    }

    /// The seed as 64 lowercase hex characters. Secret until revealed.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex_encode(&self.0)
    }

    /// The public commitment: lowercase hex of SHA-256 over the 32 raw seed
    /// bytes. Safe to show before the seed is revealed.
    #[must_use]
    pub fn hash_hex(&self) -> String {
        sha256_hex(&self.0)
    }

    /// Whether `commitment` (hex, either case) is this seed's
    /// [`hash_hex`](Self::hash_hex). Lets a player check a revealed seed
    /// against the commitment shown earlier.
    #[must_use]
    pub fn matches_commitment(&self, commitment: &str) -> bool {
        self.hash_hex().eq_ignore_ascii_case(commitment)
    }
}

impl fmt::Debug for ServerSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServerSeed(<redacted>)")
    }
}

/// The player's half of a round's randomness.
///
/// 1 to 64 bytes of printable ASCII (`0x20..=0x7E`) other than `:`, which
/// separates the fields of the HMAC message. Serializes as a plain string;
/// deserializing validates like [`parse`](Self::parse).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ClientSeed(String);

impl ClientSeed {
    /// Validates and wraps a client seed. The text is kept exactly as given
    /// (no trimming or case folding).
    ///
    /// # Errors
    ///
    /// - [`SeedError::ClientSeedLength`] if `seed` is empty or longer than
    ///   [`CLIENT_SEED_MAX_LEN`] bytes.
    /// - [`SeedError::ClientSeedCharacter`] if it contains a `:` or a byte
    ///   outside printable ASCII.
    pub fn parse(seed: &str) -> Result<Self, SeedError> {
        Self::validate(seed)?;
        Ok(Self(seed.to_owned()))
    }

    fn validate(seed: &str) -> Result<(), SeedError> {
        let len = seed.len();
        if len == 0 || len > CLIENT_SEED_MAX_LEN {
            return Err(SeedError::ClientSeedLength { len });
        }
        match seed
            .bytes()
            .position(|b| !(0x20..=0x7e).contains(&b) || b == b':')
        {
            Some(position) => Err(SeedError::ClientSeedCharacter { position }),
            None => Ok(()),
        }
    }

    /// The seed text, exactly as it enters the HMAC message.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ClientSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ClientSeed {
    type Err = SeedError;

    /// Same as [`ClientSeed::parse`].
    ///
    /// # Errors
    ///
    /// See [`ClientSeed::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for ClientSeed {
    type Error = SeedError;

    /// Validates like [`ClientSeed::parse`] without copying the text.
    ///
    /// # Errors
    ///
    /// See [`ClientSeed::parse`].
    fn try_from(seed: String) -> Result<Self, Self::Error> {
        Self::validate(&seed)?;
        Ok(Self(seed))
    }
}

impl From<ClientSeed> for String {
    fn from(seed: ClientSeed) -> Self {
        seed.0
    }
}

/// The exact HMAC message for block `index` of a round:
/// `"{client}:{nonce}:{index}"`, numbers in ASCII decimal without padding.
#[must_use]
pub fn block_message(client: &ClientSeed, nonce: u64, index: u64) -> String {
    format!("{}:{nonce}:{index}", client.as_str())
}

/// HMAC-SHA256 keyed with the server seed, before any message is absorbed.
fn keyed_mac(server: &ServerSeed) -> Hmac<Sha256> {
    // HMAC zero-pads keys shorter than the hash's 64-byte block (RFC 2104), so
    // keying with the padded array is exactly HMAC keyed with the 32 seed
    // bytes, and needs no fallible constructor.
    let mut key = [0u8; HMAC_KEY_BLOCK_LEN];
    key[..SERVER_SEED_LEN].copy_from_slice(server.as_bytes());
    <Hmac<Sha256> as KeyInit>::new(&key.into())
}

/// Block `index` of a round's random stream:
/// `HMAC-SHA256(server seed bytes, block_message(client, nonce, index))`.
#[must_use]
pub fn stream_block(
    server: &ServerSeed,
    client: &ClientSeed,
    nonce: u64,
    index: u64,
) -> [u8; BLOCK_LEN] {
    finish_block(keyed_mac(server), client, nonce, index)
}

fn finish_block(
    mut mac: Hmac<Sha256>,
    client: &ClientSeed,
    nonce: u64,
    index: u64,
) -> [u8; BLOCK_LEN] {
    mac.update(block_message(client, nonce, index).as_bytes());
    mac.finalize().into_bytes().into()
}

/// A source of uniformly distributed `u32`s that games draw from.
///
/// Games take `&mut impl RandomSource` so tests can script exact draws; in
/// production the source is a [`FairRng`].
pub trait RandomSource {
    /// The next uniformly distributed 32-bit value.
    fn next_u32(&mut self) -> u32;

    /// A uniformly distributed integer in `0..n`, free of modulo bias.
    ///
    /// Draws `x = next_u32()` and rejects it while
    /// `x >= 2^32 - (2^32 mod n)` (the largest multiple of `n` that fits in
    /// 2^32); then returns `x mod n`. Each draw is rejected with probability
    /// below one half, so the expected number of draws is below two.
    ///
    /// # Panics
    ///
    /// If `n == 0`.
    fn below(&mut self, n: u32) -> u32 {
        assert!(n > 0, "RandomSource::below requires n > 0");
        const SPAN: u64 = 1 << 32;
        let n = u64::from(n);
        let limit = SPAN - SPAN % n;
        loop {
            let x = u64::from(self.next_u32());
            if x < limit {
                // x % n < n <= u32::MAX, so the conversion is lossless.
                #[allow(clippy::cast_possible_truncation)]
                return (x % n) as u32;
            }
        }
    }
}

impl<R: RandomSource + ?Sized> RandomSource for &mut R {
    fn next_u32(&mut self) -> u32 {
        (**self).next_u32()
    }

    fn below(&mut self, n: u32) -> u32 {
        (**self).below(n)
    }
}

/// Shuffles `items` in place with the Fisher–Yates algorithm (Durstenfeld's
/// in-place form), drawing from `rng`:
///
/// ```text
/// for i = len - 1 down to 1:
///     j = rng.below(i + 1)      // uniform in 0..=i
///     swap items[i] and items[j]
/// ```
///
/// Exactly `len - 1` calls to [`RandomSource::below`] are made, with bounds
/// `len, len - 1, …, 2` in that order (nothing is drawn for fewer than two
/// items). Because `below` is unbiased, every permutation is equally likely.
///
/// # Panics
///
/// If `items` has more than 2^32 elements (a bound would not fit in a `u32`).
pub fn shuffle<T>(rng: &mut impl RandomSource, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        let Ok(bound) = u32::try_from(i + 1) else {
            panic!("shuffle supports at most 2^32 items");
        };
        // `below(bound) < bound <= items.len()`, so the index is in range.
        let j = rng.below(bound) as usize;
        items.swap(i, j);
    }
}

/// The provably fair random stream of one round (see the [module
/// docs](self) for the derivation).
///
/// Its `Debug` output shows the client seed, nonce and position, never the
/// server seed or stream bytes.
#[derive(Clone)]
pub struct FairRng<'a> {
    /// HMAC keyed with the server seed; cloned for every block.
    mac: Hmac<Sha256>,
    client: &'a ClientSeed,
    nonce: u64,
    /// Index of the block that the next refill computes.
    next_block: u64,
    block: [u8; BLOCK_LEN],
    /// Read position in `block`; `BLOCK_LEN` means "refill first".
    offset: usize,
}

impl<'a> FairRng<'a> {
    /// Starts the stream of the round identified by `(server, client, nonce)`
    /// at block 0.
    #[must_use]
    pub fn new(server: &'a ServerSeed, client: &'a ClientSeed, nonce: u64) -> Self {
        Self {
            mac: keyed_mac(server),
            client,
            nonce,
            next_block: 0,
            block: [0; BLOCK_LEN],
            offset: BLOCK_LEN,
        }
    }

    /// The round's nonce.
    #[must_use]
    pub const fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The round's client seed.
    #[must_use]
    pub const fn client_seed(&self) -> &'a ClientSeed {
        self.client
    }

    /// How many `u32` draws have been taken so far (including any rejected by
    /// [`RandomSource::below`]).
    #[must_use]
    pub const fn draws(&self) -> u64 {
        // Each consumed block holds BLOCK_LEN / 4 draws; `offset` counts bytes
        // read from the current one.
        let per_block = (BLOCK_LEN / 4) as u64;
        let in_block = (self.offset / 4) as u64;
        if self.next_block == 0 {
            0
        } else {
            (self.next_block - 1) * per_block + in_block
        }
    }
}

impl RandomSource for FairRng<'_> {
    fn next_u32(&mut self) -> u32 {
        if self.offset == BLOCK_LEN {
            self.block = finish_block(self.mac.clone(), self.client, self.nonce, self.next_block);
            self.next_block += 1;
            self.offset = 0;
        }
        let mut word = [0u8; 4];
        word.copy_from_slice(&self.block[self.offset..self.offset + 4]);
        self.offset += 4;
        u32::from_be_bytes(word)
    }
}

impl fmt::Debug for FairRng<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FairRng")
            .field("client", &self.client.as_str())
            .field("nonce", &self.nonce)
            .field("draws", &self.draws())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seed() -> ServerSeed {
        let mut bytes = [0u8; SERVER_SEED_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap();
        }
        ServerSeed::from_bytes(bytes)
    }

    fn client() -> ClientSeed {
        ClientSeed::parse("player-seed").unwrap()
    }

    /// HMAC computed straight from the `hmac` crate with the 32-byte key, not
    /// through this module's helpers.
    fn reference_block(key: &[u8], message: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn known_answer_block_zero() {
        let server = seed();
        let client = client();
        let expected = reference_block(server.as_bytes(), "player-seed:7:0");
        let first = u32::from_be_bytes(expected[..4].try_into().unwrap());
        let mut rng = FairRng::new(&server, &client, 7);
        assert_eq!(rng.next_u32(), first);
        // Values from an independent implementation (Python's hmac module).
        assert_eq!(first, 1_203_160_825);
        assert_eq!(
            hex_encode(&expected),
            "47b6c6f9b0d2730e7cae6d8fb15f9b3b20a53d96f80f0592132b25cf9ad46800"
        );
        for chunk in expected[4..].chunks(4) {
            assert_eq!(
                rng.next_u32(),
                u32::from_be_bytes(chunk.try_into().unwrap())
            );
        }
        // The ninth draw is the first word of block 1.
        let block1 = reference_block(server.as_bytes(), "player-seed:7:1");
        assert_eq!(
            rng.next_u32(),
            u32::from_be_bytes(block1[..4].try_into().unwrap())
        );
        assert_eq!(rng.draws(), 9);
        assert_eq!(stream_block(&server, &client, 7, 1).to_vec(), block1);
    }

    #[test]
    fn known_answer_below() {
        // From the Python verifier in docs/games.md.
        let server = ServerSeed::from_bytes([7; 32]);
        let client = ClientSeed::parse("lucky").unwrap();
        let mut rng = FairRng::new(&server, &client, 0);
        let got: Vec<u32> = (0..5).map(|_| rng.below(37)).collect();
        assert_eq!(got, [22, 33, 34, 8, 8]);
    }

    #[test]
    fn known_answer_commitment() {
        let server = seed();
        assert_eq!(
            server.to_hex(),
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        );
        assert_eq!(
            server.hash_hex(),
            "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"
        );
        assert!(server.matches_commitment(
            "630DCD2966C4336691125448BBB25B4FF412A49C732DB2C8ABC1B8581BD710DD"
        ));
        assert!(!server.matches_commitment(&ServerSeed::from_bytes([1; 32]).hash_hex()));
    }

    #[test]
    fn same_inputs_same_stream_and_nonce_changes_it() {
        let server = seed();
        let client = client();
        let take = |nonce: u64| {
            let mut rng = FairRng::new(&server, &client, nonce);
            (0..40).map(|_| rng.next_u32()).collect::<Vec<_>>()
        };
        assert_eq!(take(1), take(1));
        assert_ne!(take(1), take(2));
        let other_client = ClientSeed::parse("player-seed2").unwrap();
        let mut rng = FairRng::new(&server, &other_client, 1);
        let other: Vec<_> = (0..40).map(|_| rng.next_u32()).collect();
        assert_ne!(other, take(1));
        let other_server = ServerSeed::from_bytes([9; 32]);
        let mut rng = FairRng::new(&other_server, &client, 1);
        let other: Vec<_> = (0..40).map(|_| rng.next_u32()).collect();
        assert_ne!(other, take(1));
    }

    #[test]
    fn block_message_format() {
        assert_eq!(block_message(&client(), 0, 0), "player-seed:0:0");
        assert_eq!(
            block_message(&client(), u64::MAX, 12),
            "player-seed:18446744073709551615:12"
        );
    }

    /// Replays a fixed list of draws, then panics.
    struct Scripted(std::vec::IntoIter<u32>);

    impl RandomSource for Scripted {
        fn next_u32(&mut self) -> u32 {
            self.0.next().expect("script exhausted")
        }
    }

    #[test]
    fn below_rejects_the_biased_tail() {
        // 2^32 mod 3 == 1, so only u32::MAX is rejected for n = 3.
        let mut src = Scripted(vec![u32::MAX, 5].into_iter());
        assert_eq!(src.below(3), 2);
        assert_eq!(src.0.len(), 0);
        let mut src = Scripted(vec![u32::MAX - 1].into_iter());
        assert_eq!(src.below(3), (u32::MAX - 1) % 3);
        // n = 6: 2^32 mod 6 == 4, limit is 2^32 - 4.
        let mut src = Scripted(vec![u32::MAX, u32::MAX - 3, u32::MAX - 4].into_iter());
        assert_eq!(src.below(6), (u32::MAX - 4) % 6);
        // Powers of two never reject.
        let mut src = Scripted(vec![u32::MAX].into_iter());
        assert_eq!(src.below(1 << 31), (1 << 31) - 1);
        let mut src = Scripted(vec![u32::MAX].into_iter());
        assert_eq!(src.below(1), 0);
        // Works through a `&mut` reference too (the blanket impl).
        fn below_7(mut source: impl RandomSource) -> u32 {
            source.below(7)
        }
        let mut src = Scripted(vec![10].into_iter());
        assert_eq!(below_7(&mut src), 3);
        assert_eq!(src.0.len(), 0);
    }

    #[test]
    #[should_panic(expected = "n > 0")]
    fn below_zero_panics() {
        let server = seed();
        let client = client();
        let _ = FairRng::new(&server, &client, 0).below(0);
    }

    /// Pearson chi-square statistic of `draws` values of `rng.below(n)`.
    fn chi_square(n: u32, draws: u32, nonce: u64) -> f64 {
        let server = ServerSeed::from_bytes([0x5a; 32]);
        let client = ClientSeed::parse("chi-square").unwrap();
        let mut rng = FairRng::new(&server, &client, nonce);
        let mut counts = vec![0u32; usize::try_from(n).unwrap()];
        for _ in 0..draws {
            counts[usize::try_from(rng.below(n)).unwrap()] += 1;
        }
        let expected = f64::from(draws) / f64::from(n);
        counts
            .iter()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum()
    }

    #[test]
    fn below_37_is_uniform() {
        // 36 degrees of freedom; the upper 0.1% point of chi-square(36) is
        // 67.985 (p = 0.001).
        let stat = chi_square(37, 200_000, 1);
        assert!(stat < 67.985, "chi-square {stat} for below(37)");
    }

    #[test]
    fn below_6_is_uniform() {
        // 5 degrees of freedom; the upper 0.1% point of chi-square(5) is
        // 20.515 (p = 0.001).
        let stat = chi_square(6, 200_000, 2);
        assert!(stat < 20.515, "chi-square {stat} for below(6)");
    }

    #[test]
    fn server_seed_debug_is_redacted() {
        let server = seed();
        let shown = format!("{server:?}");
        assert_eq!(shown, "ServerSeed(<redacted>)");
        assert!(!shown.contains(&server.to_hex()[..8]));
        let client = client();
        let rng = FairRng::new(&server, &client, 3);
        let shown = format!("{rng:?}");
        assert!(shown.contains("player-seed") && shown.contains("nonce: 3"));
        assert!(!shown.contains("000102"));
    }

    #[test]
    fn server_seed_hex_parsing() {
        let server = seed();
        assert_eq!(ServerSeed::from_hex(&server.to_hex()), Ok(server.clone()));
        assert_eq!(
            ServerSeed::from_hex(&server.to_hex().to_uppercase()),
            Ok(server)
        );
        assert_eq!(
            ServerSeed::from_hex("abcd"),
            Err(SeedError::HexLength {
                expected: 64,
                actual: 4
            })
        );
        let mut bad = "0".repeat(64);
        bad.replace_range(9..10, "g");
        assert_eq!(
            ServerSeed::from_hex(&bad),
            Err(SeedError::InvalidHex { position: 9 })
        );
        // A multi-byte character is rejected, not sliced through.
        let mut bad = "0".repeat(62);
        bad.push('é');
        assert_eq!(
            ServerSeed::from_hex(&bad),
            Err(SeedError::InvalidHex { position: 62 })
        );
        assert_eq!(hex_encode(&[0x00, 0xff, 0x1a]), "00ff1a");
    }

    #[test]
    fn client_seed_validation() {
        assert_eq!(client().as_str(), "player-seed");
        assert!(ClientSeed::parse("a").is_ok());
        assert!(ClientSeed::parse("with spaces ~!").is_ok());
        assert!(ClientSeed::parse(&"x".repeat(64)).is_ok());
        assert_eq!(
            ClientSeed::parse(""),
            Err(SeedError::ClientSeedLength { len: 0 })
        );
        assert_eq!(
            ClientSeed::parse(&"x".repeat(65)),
            Err(SeedError::ClientSeedLength { len: 65 })
        );
        assert_eq!(
            ClientSeed::parse("ab:c"),
            Err(SeedError::ClientSeedCharacter { position: 2 })
        );
        assert_eq!(
            ClientSeed::parse("tab\there"),
            Err(SeedError::ClientSeedCharacter { position: 3 })
        );
        assert_eq!(
            ClientSeed::parse("ñ"),
            Err(SeedError::ClientSeedCharacter { position: 0 })
        );
        assert_eq!("abc".parse::<ClientSeed>(), ClientSeed::parse("abc"));
    }

    #[test]
    fn client_seed_serde_is_a_validated_string() {
        let seed = client();
        assert_eq!(serde_json::to_string(&seed).unwrap(), "\"player-seed\"");
        assert_eq!(
            serde_json::from_str::<ClientSeed>("\"player-seed\"").unwrap(),
            seed
        );
        assert!(serde_json::from_str::<ClientSeed>("\"a:b\"").is_err());
        assert!(serde_json::from_str::<ClientSeed>("\"\"").is_err());
        assert_eq!(seed.to_string(), "player-seed");
        assert_eq!(String::from(seed), "player-seed");
    }

    #[test]
    fn known_answer_shuffle() {
        // From the Python verifier in docs/games.md.
        let server = ServerSeed::from_bytes([7; 32]);
        let client = ClientSeed::parse("lucky").unwrap();
        let mut rng = FairRng::new(&server, &client, 0);
        let mut items: Vec<u32> = (0..10).collect();
        shuffle(&mut rng, &mut items);
        assert_eq!(items, [0, 7, 1, 6, 8, 4, 2, 3, 9, 5]);
    }

    #[test]
    fn shuffle_draws_descending_bounds() {
        // With draws < 2 nothing is rejected, so each draw is `j` itself.
        let mut src = Scripted(vec![0, 1, 0].into_iter());
        let mut items = ['a', 'b', 'c', 'd'];
        // i = 3: j = 0 -> d b c a; i = 2: j = 1 -> d c b a; i = 1: j = 0 -> c d b a.
        shuffle(&mut src, &mut items);
        assert_eq!(items, ['c', 'd', 'b', 'a']);
        assert_eq!(src.0.len(), 0);
        // Nothing is drawn for fewer than two items.
        let mut empty = Scripted(Vec::new().into_iter());
        shuffle(&mut empty, &mut [1]);
        shuffle(&mut empty, &mut [0u8; 0]);
    }

    #[test]
    fn shuffle_permutations_are_uniform() {
        // All 6 orders of 3 items; 5 degrees of freedom, upper 0.1% point
        // 20.515.
        let server = ServerSeed::from_bytes([0x33; 32]);
        let client = ClientSeed::parse("shuffle").unwrap();
        let mut rng = FairRng::new(&server, &client, 0);
        let mut counts = std::collections::HashMap::new();
        let rounds = 60_000u32;
        for _ in 0..rounds {
            let mut items = [0u8, 1, 2];
            shuffle(&mut rng, &mut items);
            *counts.entry(items).or_insert(0u32) += 1;
        }
        assert_eq!(counts.len(), 6);
        let expected = f64::from(rounds) / 6.0;
        let stat: f64 = counts
            .values()
            .map(|&c| (f64::from(c) - expected).powi(2) / expected)
            .sum();
        assert!(stat < 20.515, "chi-square {stat} for shuffle of 3");
    }

    proptest! {
        #[test]
        fn below_is_always_in_range(
            bytes in any::<[u8; 32]>(),
            nonce in any::<u64>(),
            n in 1u32..=u32::MAX,
        ) {
            let server = ServerSeed::from_bytes(bytes);
            let client = ClientSeed::parse("prop").unwrap();
            let mut rng = FairRng::new(&server, &client, nonce);
            for _ in 0..16 {
                prop_assert!(rng.below(n) < n);
            }
        }

        #[test]
        fn below_is_in_range_for_any_draws(
            draws in proptest::collection::vec(any::<u32>(), 64),
            n in 1u32..=u32::MAX,
        ) {
            // With 64 arbitrary draws, running out means 64 rejections in a
            // row, which proptest would have to hit with probability < 2^-64.
            let mut src = Scripted(draws.into_iter());
            prop_assert!(src.below(n) < n);
        }

        #[test]
        fn shuffle_is_a_permutation(
            bytes in any::<[u8; 32]>(),
            nonce in any::<u64>(),
            len in 0usize..400,
        ) {
            let server = ServerSeed::from_bytes(bytes);
            let client = ClientSeed::parse("prop").unwrap();
            let mut rng = FairRng::new(&server, &client, nonce);
            let mut items: Vec<usize> = (0..len).collect();
            shuffle(&mut rng, &mut items);
            let mut sorted = items.clone();
            sorted.sort_unstable();
            prop_assert_eq!(sorted, (0..len).collect::<Vec<_>>());
        }

        #[test]
        fn hex_round_trips(bytes in any::<[u8; 32]>()) {
            let seed = ServerSeed::from_bytes(bytes);
            let hex = seed.to_hex();
            prop_assert_eq!(hex.len(), 64);
            prop_assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
            prop_assert_eq!(ServerSeed::from_hex(&hex), Ok(seed));
        }
    }
}
