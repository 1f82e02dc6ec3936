//! Helpers for the header-login contract (Tradecloud), shared by its tests
//! and the refresh-family tests.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{Server, send};

pub const EMAIL: &str = "buyer@example.com";
pub const PASSWORD: &str = "correct horse battery staple";

/// A server with the contracts on, an API, a client allowing the password
/// grant and a user. Returns the server.
pub fn setup(env: &[(&str, &str)]) -> Server {
    let s = Server::start_with(&["--contracts", "all"], env);
    s.cli_ok(&["api", "create", "tradecloud", "--permission", "orders:read"]);
    let id = s.public_client(&[
        "--name",
        "tradecloud-web",
        "--api",
        "tradecloud=orders:read",
        "--grant",
        "password",
    ]);
    s.user(&id, EMAIL, PASSWORD);
    s
}

pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// (access, refresh) from a 200 carrying a pair.
pub fn pair_of(r: &reqwest::Response) -> (String, String) {
    assert_eq!(r.status(), 200);
    let h = r.headers();
    (
        h["set-authorization"].to_str().unwrap().to_string(),
        h["set-refresh-token"].to_str().unwrap().to_string(),
    )
}

pub async fn login(s: &Server, path: &str) -> reqwest::Response {
    send(s.get(path).header("authorization", basic(EMAIL, PASSWORD))).await
}

pub async fn refresh(s: &Server, token: &str) -> reqwest::Response {
    send(
        s.get("/v2/authentication/refresh")
            .header("refresh-token", token),
    )
    .await
}

pub async fn assert_not_authenticated(r: reqwest::Response, what: &str) {
    assert_eq!(r.status(), 401, "{what}");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{what}"
    );
    assert!(r.headers().get("set-authorization").is_none(), "{what}");
    assert_eq!(r.text().await.unwrap(), "Not authenticated", "{what}");
}
