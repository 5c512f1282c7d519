//! Integration tests of `hearth-auth`: the revocation and lockout stores (one suite, run
//! in-process and against Redis) and the tower layer over real HTTP.

mod layer;
mod stores;
