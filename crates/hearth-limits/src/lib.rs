//! Limits for Hearth services. This release holds the first piece every limit is keyed on:
//! who the client is.
//!
//! # Layout
//! - [`client_ip`]: the client's address behind a load balancer. The socket peer is the client
//!   unless it is a configured trusted proxy; then the right-most `X-Forwarded-For` address that
//!   is not itself a trusted proxy is. A spoofed header from an untrusted peer changes nothing.
//! - [`LimitsSettings`]: the `limits` settings section.
//!
//! # Example
//! ```
//! use hearth_limits::client_ip::{ClientIpResolver, Cidr};
//!
//! let resolver = ClientIpResolver::new(vec!["10.0.0.0/8".parse::<Cidr>().unwrap()]);
//! let peer = "10.1.2.3".parse().unwrap();
//! assert_eq!(resolver.resolve(peer, Some("203.0.113.7, 10.9.9.9")), "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
//! // An untrusted peer cannot claim another address.
//! let stranger = "198.51.100.1".parse().unwrap();
//! assert_eq!(resolver.resolve(stranger, Some("203.0.113.7")), stranger);
//! ```
//!
//! # What it does not do (yet)
//! Rate limiting, cost budgets and anomaly detection are not in this release; they will key on
//! the address resolved here.

pub mod client_ip;

use serde::{Deserialize, Deserializer};

/// The `limits` settings section (`HEARTH__LIMITS__*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSettings {
    /// CIDRs of load balancers whose `X-Forwarded-For` is believed; comma-separated in the
    /// environment. Empty by default: the socket peer is the client.
    #[serde(deserialize_with = "cidr_list")]
    pub trusted_proxies: Vec<client_ip::Cidr>,
}

fn cidr_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<client_ip::Cidr>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(String),
        Many(Vec<String>),
    }
    let items = match Raw::deserialize(deserializer)? {
        Raw::One(text) => text.split(',').map(str::to_owned).collect(),
        Raw::Many(items) => items,
    };
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(serde::de::Error::custom))
        .collect()
}
