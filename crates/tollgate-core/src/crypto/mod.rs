//! Cryptography and key material: the master key and what derives from it,
//! randomness, client secrets, API keys, signing keys and their rotation schedule, the
//! access tokens they sign, and the codec of tollgate's own refresh tokens.

pub mod api_key;
pub mod imported;
pub mod keyring;
pub mod keys;
pub mod master;
pub mod pem;
pub mod random;
pub mod refresh_codec;
pub mod secret;
pub mod token;
pub mod totp;
pub mod trust;
