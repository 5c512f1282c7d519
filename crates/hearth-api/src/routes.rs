//! Route handlers, one module per area.

pub(crate) mod admin;
pub(crate) mod ai;
pub(crate) mod auth;
pub(crate) mod campaigns;
pub(crate) mod email;
pub(crate) mod fairness;
pub(crate) mod games;
pub(crate) mod health;
pub(crate) mod jobs;
pub(crate) mod leaderboards;
pub(crate) mod life;
pub(crate) mod wallet;
