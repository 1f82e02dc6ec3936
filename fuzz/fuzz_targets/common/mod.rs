//! What the JWT targets share: one signing key of each algorithm and the
//! refresh codec, made once per process (key generation is far slower than
//! one run of a target).

use std::sync::OnceLock;

use tollgate_core::crypto::keys::{SigningKey, generate};
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::crypto::refresh_codec::RefreshCodec;
use tollgate_core::model::Alg;

/// The issuer every access token here is signed for.
pub const ISSUER: &str = "https://tollgate.example/e/default";

/// Keys of one environment, and the codec of its refresh tokens.
pub struct Keys {
    /// ES256, EdDSA, RS256, in that order.
    pub signing: Vec<SigningKey>,
    /// Session refresh tokens and refresh JWTs.
    pub codec: RefreshCodec,
}

/// The process's keys.
pub fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let derived = MasterKey::generate()
            .and_then(|m| m.derive())
            .expect("master key");
        let signing = [Alg::ES256, Alg::EdDSA, Alg::RS256]
            .into_iter()
            .map(|alg| {
                let rec = generate(&derived, "default", alg, 0).expect("key generation");
                SigningKey::load(&derived, &rec).expect("key load")
            })
            .collect();
        Keys {
            signing,
            codec: RefreshCodec::new(&derived),
        }
    })
}
