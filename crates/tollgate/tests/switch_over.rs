//! Switching over from an incumbent (issue 11 §1): tokens a stand-in
//! incumbent mints (a few lines of Python with PyJWT, the library such
//! services are built on) keep working after the switch, with no partner
//! action; revocation reaches them; imported keys and users carry over.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{Server, jwt_parts, md5_hex, send, verify_with_jwks};
use serde_json::{Value, json};

const EXCHANGE: &str = "/pub/v2/players/access-token";
const DEVICE_REFRESH: &str = "/v1/token?grant_type=refresh_token";
const DEVICE_LOGIN: &str = "/v1/token?grant_type=device_credentials";

/// The stand-in incumbent: `keygen DIR ALG` writes `DIR/incumbent.pem`
/// (private) and `DIR/incumbent.pub.pem`; `mint DIR ALG CLAIMS [KID]`
/// prints a token signed as the incumbent signs (HS256 with the secret in
/// `DIR/secret`); `jwks DIR ALG KID` prints the JWKS it publishes.
const INCUMBENT: &str = r#"
import json, os, sys, jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519
cmd, d, alg = sys.argv[1], sys.argv[2], sys.argv[3]
if cmd == "keygen":
    k = {"RS256": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
         "ES256": lambda: ec.generate_private_key(ec.SECP256R1()),
         "EdDSA": lambda: ed25519.Ed25519PrivateKey.generate()}[alg]()
    open(os.path.join(d, "incumbent.pem"), "wb").write(k.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    open(os.path.join(d, "incumbent.pub.pem"), "wb").write(k.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
elif cmd == "jwks":
    pub = serialization.load_pem_public_key(open(os.path.join(d, "incumbent.pub.pem"), "rb").read())
    jwk = json.loads(jwt.get_algorithm_by_name(alg).to_jwk(pub))
    jwk.update({"kid": sys.argv[4], "use": "sig", "alg": alg})
    print(json.dumps({"keys": [jwk]}))
else:
    claims = json.loads(sys.argv[4])
    headers = {"kid": sys.argv[5]} if len(sys.argv) > 5 else None
    key = open(os.path.join(d, "secret" if alg == "HS256" else "incumbent.pem"), "rb").read()
    key = key.rstrip(b"\r\n") if alg == "HS256" else key
    print(jwt.encode(claims, key, algorithm=alg, headers=headers))
"#;

/// A python3 with PyJWT and cryptography (scripts/install-test-deps.sh).
fn python() -> &'static str {
    ["python3", "/usr/bin/python3"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .args(["-c", "import jwt, cryptography"])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("python3 with PyJWT and cryptography: run scripts/install-test-deps.sh")
}

fn incumbent(args: &[&str]) -> String {
    let out = Command::new(python())
        .args(["-c", INCUMBENT])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "incumbent: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn mint(dir: &Path, alg: &str, claims: &Value) -> String {
    incumbent(&["mint", dir.to_str().unwrap(), alg, &claims.to_string()])
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn exchange(s: &Server, token: &str) -> reqwest::Response {
    send(
        s.post(EXCHANGE)
            .header("authorization", format!("Bearer {token}")),
    )
    .await
}

fn basic(v: &str) -> String {
    format!("Basic {}", STANDARD.encode(v))
}

async fn device_refresh(s: &Server, key: &str, token: &str) -> reqwest::Response {
    send(
        s.post(DEVICE_REFRESH)
            .header("authorization", basic(key))
            .header("content-type", "application/json")
            .body(format!("refresh_token={token}")),
    )
    .await
}

async fn device_login(s: &Server, key: &str, user: &str, md5: &str) -> reqwest::Response {
    send(
        s.post(DEVICE_LOGIN)
            .header("authorization", basic(key))
            .header("content-type", "application/json")
            .body(format!("username={user}&password={md5}")),
    )
    .await
}

/// Cloudbet: the incumbent's RS256 refresh JWTs in partners' hands keep
/// being exchanged beside tollgate's own; both are listed; revocation by id
/// and by client reaches them, also tokens never presented before.
#[tokio::test]
async fn an_incumbents_refresh_jwts_keep_working_and_can_be_revoked() {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    let dir = s.dir.path();
    incumbent(&["keygen", dir.to_str().unwrap(), "RS256"]);
    s.cli_ok(&["api", "create", "odds", "--permission", "odds:read"]);
    // The partner keeps its id: the incumbent's `sub`.
    let (id, _) = s.client(&[
        "--name",
        "player",
        "--client-id",
        "player-42",
        "--api",
        "odds=odds:read",
    ]);
    assert_eq!(id, "player-42");
    let pem = dir.join("incumbent.pub.pem");
    let trusted = s.cli_json(&[
        "refresh-jwt",
        "trust",
        "--name",
        "cloudbet-old",
        "--pem",
        pem.to_str().unwrap(),
        "--issuer",
        "https://sports-api.cloudbet.com",
        "--client-claim",
        "sub",
    ]);
    assert_eq!(trusted["for"], "bearer-exchange");
    let own = s.cli_json(&["refresh-jwt", "issue", "--client", &id])["refresh_jwt"]
        .as_str()
        .unwrap()
        .to_string();
    s.sync().await;

    let claims = |jti: &str| {
        json!({"sub": id, "jti": jti, "iat": now() - 86_400, "exp": now() + 86_400,
               "iss": "https://sports-api.cloudbet.com"})
    };
    let theirs = mint(dir, "RS256", &claims("old-1"));
    for (what, token) in [("incumbent's", &theirs), ("tollgate's", &own)] {
        let r = exchange(&s, token).await;
        assert_eq!(r.status(), 200, "{what}");
        let body: Value = r.json().await.unwrap();
        let access = body["token"].as_str().unwrap();
        let c = verify_with_jwks(
            &s.http,
            &format!("{}/.well-known/jwks.json", s.url),
            access,
            &s.url,
            "odds",
        )
        .await;
        assert_eq!(c["client_id"], id.as_str(), "{what}");
    }

    // Not the incumbent's key, not its issuer, expired: refused.
    let forged_dir = tempfile::tempdir().unwrap();
    incumbent(&["keygen", forged_dir.path().to_str().unwrap(), "RS256"]);
    let forged = mint(forged_dir.path(), "RS256", &claims("old-x"));
    let mut other_iss = claims("old-y");
    other_iss["iss"] = json!("https://elsewhere.example");
    let mut expired = claims("old-z");
    expired["exp"] = json!(now() - 10);
    for (what, token) in [
        ("forged", forged),
        ("other issuer", mint(dir, "RS256", &other_iss)),
        ("expired", mint(dir, "RS256", &expired)),
    ] {
        assert_eq!(exchange(&s, &token).await.status(), 401, "{what}");
    }

    // The access token's lifetime follows the hierarchy as for tollgate's
    // own refresh JWTs: here the client's.
    s.cli_ok(&["client", "update", &id, "--token-lifetime", "7m"]);
    s.sync().await;
    let r = exchange(&s, &mint(dir, "RS256", &claims("old-l"))).await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let (_, c) = jwt_parts(body["token"].as_str().unwrap());
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 420);

    // Listed beside tollgate's own.
    let listed = s.cli_json(&["refresh-jwt", "list"]);
    let kinds: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["issued", "trusted"]);
    assert_eq!(listed[1]["name"], "cloudbet-old");
    assert_eq!(listed[1]["algorithms"], json!(["RS256"]));
    let text = s.cli_ok(&["refresh-jwt", "list"]);
    assert!(
        text.contains("trusted\tcloudbet-old\tfor bearer-exchange"),
        "{text}"
    );

    // Revocation by id: the incumbent's token, another still works.
    let revoked = s.cli_json(&["refresh-jwt", "revoke", "old-1"]);
    assert_eq!(revoked["kind"], "foreign");
    let second = mint(dir, "RS256", &claims("old-2"));
    s.sync().await;
    assert_eq!(exchange(&s, &theirs).await.status(), 401, "revoked by id");
    assert_eq!(exchange(&s, &second).await.status(), 200);

    // Revocation by client: tollgate's, the incumbent's seen and unseen.
    let unseen = mint(dir, "RS256", &claims("old-3"));
    let out = s.cli_json(&["refresh-jwt", "revoke", "--client", &id]);
    assert_eq!(out["refresh_jwts"], 1);
    s.sync().await;
    for (what, token) in [("own", &own), ("seen", &second), ("unseen", &unseen)] {
        assert_eq!(exchange(&s, token).await.status(), 401, "{what}");
    }
    // Tokens the incumbent (or tollgate) issues after the cut-off work.
    let mut fresh = claims("old-4");
    fresh["iat"] = json!(now() + 1);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        exchange(&s, &mint(dir, "RS256", &fresh)).await.status(),
        200
    );

    // Untrusted: its tokens are refused from the next sync.
    s.cli_ok(&["refresh-jwt", "untrust", "cloudbet-old"]);
    s.sync().await;
    assert_eq!(
        exchange(&s, &mint(dir, "RS256", &fresh)).await.status(),
        401
    );
}

/// Dive: Spring `JwtTokenStore` refresh tokens (HS256, a shared signing key)
/// are accepted by the device-credentials refresh, mapped by `client_id` and
/// `user_name`; the first refresh moves the session into a tollgate family.
#[tokio::test]
async fn spring_refresh_tokens_move_into_tollgate_families() {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    let dir = s.dir.path();
    std::fs::write(dir.join("secret"), "dive-jwt-signing-key\n").unwrap();
    s.cli_ok(&["api", "create", "rest", "--permission", "device"]);
    let key = s.public_client(&[
        "--name",
        "dive-app",
        "--client-id",
        "rtve_test",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    s.user(&key, "123456", "pin");
    s.cli_ok(&[
        "refresh-jwt",
        "trust",
        "--for",
        "device-credentials",
        "--name",
        "dive-spring",
        "--hs256-secret-file",
        dir.join("secret").to_str().unwrap(),
    ]);
    // The moved session's access tokens get the environment's lifetime.
    s.cli_ok(&[
        "env",
        "update",
        "default",
        "--set",
        "device_credentials_access_lifetime=5m",
    ]);
    s.sync().await;
    let spring = |jti: &str, user: &str| {
        json!({"aud": ["api-server", "oauth-server"], "user_name": user, "device_id": user,
               "grant_type": "device_credentials", "scope": ["device"], "ati": "a-1",
               "exp": now() + 180 * 86_400, "authorities": ["ROLE_TV_GRID"],
               "client_id": key, "jti": jti})
    };
    let theirs = mint(dir, "HS256", &spring("8ebc13e0-1", "123456"));

    let r = device_refresh(&s, &key, &theirs).await;
    let status = r.status();
    let body: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    let ours = body["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(ours, theirs, "the session moved to a tollgate token");
    assert_eq!(body["device_id"], "123456");
    assert_eq!(body["scope"], "device");
    let (_, c) = jwt_parts(&ours);
    assert_eq!(c["fam"], "inc.8ebc13e0-1");
    let (_, a) = jwt_parts(body["access_token"].as_str().unwrap());
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 300);
    // The incumbent's token presented again at once: a retry, the same pair.
    let again: Value = device_refresh(&s, &key, &theirs)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["refresh_token"], ours.as_str());
    // The tollgate token goes on like any other.
    assert_eq!(device_refresh(&s, &key, &ours).await.status(), 200);

    // Another client's key, a user not imported, a forged key: refused.
    let stranger = mint(dir, "HS256", &spring("x-2", "nobody"));
    assert_eq!(device_refresh(&s, &key, &stranger).await.status(), 400);
    std::fs::write(dir.join("secret"), "not-the-key").unwrap();
    let forged = mint(dir, "HS256", &spring("x-3", "123456"));
    assert_eq!(device_refresh(&s, &key, &forged).await.status(), 400);
    std::fs::write(dir.join("secret"), "dive-jwt-signing-key").unwrap();

    // Revocation by id of a token never presented, and by client.
    let unseen = mint(dir, "HS256", &spring("8ebc13e0-4", "123456"));
    let kept = mint(dir, "HS256", &spring("8ebc13e0-5", "123456"));
    s.cli_ok(&["refresh-jwt", "revoke", "8ebc13e0-4"]);
    s.sync().await;
    assert_eq!(device_refresh(&s, &key, &unseen).await.status(), 400);
    assert_eq!(device_refresh(&s, &key, &kept).await.status(), 200);
    let later = mint(dir, "HS256", &spring("8ebc13e0-6", "123456"));
    s.cli_ok(&["refresh-jwt", "revoke", "--client", &key]);
    s.sync().await;
    assert_eq!(device_refresh(&s, &key, &later).await.status(), 400);
    // Logins are not refresh tokens: the device still logs in.
    assert_eq!(
        device_login(&s, &key, "123456", &md5_hex("pin"))
            .await
            .status(),
        200
    );
}

/// Verifies `token` as a resource server that pinned the incumbent's key
/// would: PyJWT with the public key file (or, for HS256, the shared secret
/// file), never tollgate's JWKS. Returns the claims.
fn pinned_verify(dir: &Path, alg: &str, token: &str, aud: &str) -> Value {
    let script = r#"
import json, os, sys, jwt
d, alg, token, aud = sys.argv[1:5]
key = open(os.path.join(d, "secret" if alg == "HS256" else "incumbent.pub.pem"), "rb").read()
key = key.rstrip(b"\r\n") if alg == "HS256" else key
print(json.dumps(jwt.decode(token, key, algorithms=[alg], audience=aud)))
"#;
    let out = Command::new(python())
        .args(["-c", script, dir.to_str().unwrap(), alg, token, aud])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pinned verifier refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Imported signing keys: resource servers that pinned the incumbent's key
/// and kid keep verifying; the key must be of the environment's algorithm;
/// PKCS#8, PKCS#1 and SEC1 files are read.
#[tokio::test]
async fn imported_signing_keys_keep_pinned_verifiers_working() {
    let s = Server::start();
    let dir = s.dir.path();
    incumbent(&["keygen", dir.to_str().unwrap(), "RS256"]);
    s.cli_ok(&["env", "create", "sr", "--alg", "RS256"]);
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--env",
        "sr",
        "--permission",
        "read",
    ]);
    let (id, secret) = s.client(&["--env", "sr", "--name", "p", "--api", "odds=read"]);
    let pem = dir.join("incumbent.pem");
    // An RSA key into an ES256 environment: refused, with the reason.
    let out = s.cli(&["key", "import", "--pem", pem.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("signs with ES256"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported = s.cli_json(&[
        "key",
        "import",
        "--env",
        "sr",
        "--pem",
        pem.to_str().unwrap(),
        "--kid",
        "legacy-2019",
    ]);
    assert_eq!(imported["alg"], "RS256");
    // It signs from the next second at the latest (after the env's own key).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.sync().await;
    let jwks: Value = send(s.get("/e/sr/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == "legacy-2019"),
        "{jwks}"
    );
    let r = s
        .form(
            "/e/sr/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(token).0["kid"], "legacy-2019");
    assert_eq!(
        pinned_verify(dir, "RS256", token, "odds")["client_id"],
        id.as_str()
    );
    // The same kid twice: refused.
    assert!(
        !s.cli(&[
            "key",
            "import",
            "--env",
            "sr",
            "--pem",
            pem.to_str().unwrap(),
            "--kid",
            "legacy-2019"
        ])
        .status
        .success()
    );

    // Other encodings and algorithms, as openssl writes them.
    for (env, alg, args) in [
        ("rsa1", "RS256", vec!["genrsa", "-traditional", "2048"]),
        (
            "sec1",
            "ES256",
            vec!["ecparam", "-name", "prime256v1", "-genkey", "-noout"],
        ),
        ("ed", "EdDSA", vec!["genpkey", "-algorithm", "ed25519"]),
    ] {
        let out = Command::new("openssl").args(&args).output().unwrap();
        assert!(out.status.success());
        let file = dir.join(format!("{env}.pem"));
        std::fs::write(&file, &out.stdout).unwrap();
        s.cli_ok(&["env", "create", env, "--alg", alg]);
        let k = s.cli_json(&[
            "key",
            "import",
            "--env",
            env,
            "--pem",
            file.to_str().unwrap(),
        ]);
        assert_eq!(k["alg"], alg, "{env}");
    }
}

/// HS256 access tokens for resource servers that verify with a shared
/// secret: chosen per environment, the incumbent's secret imported, never
/// in the JWKS, never rotated by tollgate.
#[tokio::test]
async fn hs256_environments_sign_with_the_shared_secret_and_publish_nothing() {
    let s = Server::start();
    let dir = s.dir.path();
    std::fs::write(dir.join("secret"), "spring-shared-signing-key\n").unwrap();
    s.cli_ok(&[
        "env",
        "create",
        "spring",
        "--alg",
        "HS256",
        "--contracts",
        "device-credentials",
    ]);
    s.cli_ok(&[
        "api",
        "create",
        "rest",
        "--env",
        "spring",
        "--permission",
        "device",
    ]);
    let key = s.public_client(&[
        "--env",
        "spring",
        "--name",
        "dive-app",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    s.cli_ok(&[
        "user",
        "create",
        "--env",
        "spring",
        "--client",
        &key,
        "--username",
        "123456",
        "--password",
        "pin",
    ]);
    let k = s.cli_json(&[
        "key",
        "import",
        "--env",
        "spring",
        "--hs256-secret-file",
        dir.join("secret").to_str().unwrap(),
    ]);
    assert_eq!(k["published"], false);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.sync().await;
    let r = send(
        s.post("/e/spring/v1/token?grant_type=device_credentials")
            .header("authorization", basic(&key))
            .header("content-type", "application/json")
            .body(format!("username=123456&password={}", md5_hex("pin"))),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(token).0["alg"], "HS256");
    let claims = pinned_verify(dir, "HS256", token, "rest");
    assert_eq!(claims["user_name"], "123456");
    let jwks: Value = send(s.get("/e/spring/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        jwks["keys"],
        json!([]),
        "a shared secret is never published"
    );
    let out = s.cli(&["key", "rotate", "--env", "spring"]);
    assert!(
        !out.status.success(),
        "a generated secret no resource server knows"
    );
    let doctor = s.cli(&["doctor"]);
    let text = String::from_utf8_lossy(&doctor.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("warn") && l.contains("signs access tokens with HS256")),
        "{text}"
    );
}

/// `env update --alg` (a change through the key schedule) and HS256: an
/// environment never changes to HS256 (the schedule would sign with a
/// secret no resource server holds), and the refusal writes nothing of the
/// same update; an HS256 environment leaves it like any change, the new
/// key published before it signs and the shared secret never published.
#[tokio::test]
async fn an_environment_leaves_hs256_through_the_key_schedule_but_never_enters_it() {
    let s = Server::start();
    let dir = s.dir.path();
    s.cli_ok(&["env", "create", "plain"]);
    let out = s.cli(&[
        "env",
        "update",
        "plain",
        "--alg",
        "HS256",
        "--issuer",
        "https://changed.example/",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot change to HS256"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = s.cli_json(&["env", "show", "plain"]);
    assert_eq!(shown["alg"], "ES256");
    assert_ne!(
        shown["issuer"], "https://changed.example/",
        "nothing written"
    );

    std::fs::write(dir.join("secret"), "spring-shared-signing-key\n").unwrap();
    s.cli_ok(&["env", "create", "spring", "--alg", "HS256"]);
    s.cli_ok(&[
        "api",
        "create",
        "rest",
        "--env",
        "spring",
        "--permission",
        "read",
    ]);
    let (id, secret) = s.client(&["--env", "spring", "--name", "p", "--api", "rest=read"]);
    s.cli_ok(&[
        "key",
        "import",
        "--env",
        "spring",
        "--hs256-secret-file",
        dir.join("secret").to_str().unwrap(),
    ]);
    let token = || async {
        let r = s
            .form(
                "/e/spring/oauth/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
            )
            .await;
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        v["access_token"].as_str().unwrap().to_string()
    };
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.sync().await;
    let shared = token().await;
    assert_eq!(jwt_parts(&shared).0["alg"], "HS256");

    let out = s.cli_json(&[
        "env",
        "update",
        "spring",
        "--alg",
        "ES256",
        "--publish-delay",
        "1s",
    ]);
    assert_eq!(out["new_key"]["alg"], "ES256");
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    s.sync().await;
    let t = token().await;
    assert_eq!(jwt_parts(&t).0["alg"], "ES256");
    let issuer = format!("{}/e/spring", s.url);
    let jwks_url = format!("{issuer}/.well-known/jwks.json");
    verify_with_jwks(&s.http, &jwks_url, &t, &issuer, "rest").await;
    let jwks: Value = send(s.get("/e/spring/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    assert_eq!(
        published,
        ["ES256"],
        "the retired secret is still not published"
    );
    // Tokens the secret signed before the change still verify where it is held.
    pinned_verify(dir, "HS256", &shared, "rest");
    // And the environment rotates like any other now.
    s.cli_ok(&["key", "rotate", "--env", "spring"]);
}

/// Hashes as an incumbent stored them, made by Python (hashlib, and the
/// system's crypt(3) for bcrypt): independent of tollgate's code.
fn py_hash(kind: &str, value: &str) -> String {
    let script = r#"
import sys, hashlib, warnings
warnings.simplefilter("ignore")
kind, value = sys.argv[1], sys.argv[2]
if kind == "md5":
    print(hashlib.md5(value.encode()).hexdigest())
else:
    import crypt
    print(crypt.crypt(value, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))
"#;
    let out = Command::new(python())
        .args(["-c", script, kind, value])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

async fn upgrades(s: &Server) -> u64 {
    let m = send(s.get("/metrics")).await.text().await.unwrap();
    m.lines()
        .find(|l| l.starts_with("tollgate_imported_password_upgrades_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

async fn header_login(s: &Server, user: &str, password: &str) -> u16 {
    let auth = format!("Basic {}", STANDARD.encode(format!("{user}:{password}")));
    send(
        s.get("/v2/authentication/login")
            .header("authorization", auth),
    )
    .await
    .status()
    .as_u16()
}

/// Users come over with their hashes (MD5, bcrypt, argon2; of the password
/// or of its MD5 form), log in on both user contracts, and are re-hashed to
/// argon2id at their first login; a malformed line or a duplicate imports
/// nothing, reported with its line number; a large file shows progress.
#[tokio::test]
async fn imported_users_log_in_with_their_old_hashes_and_are_rehashed() {
    let s = Server::start_with(&["--contracts", "all"], &[]);
    let dir = s.dir.path();
    s.cli_ok(&["api", "create", "rest", "--permission", "device"]);
    let dive = s.public_client(&[
        "--name",
        "dive",
        "--api",
        "rest=device",
        "--grant",
        "device_credentials",
    ]);
    let web = s.public_client(&[
        "--name",
        "web",
        "--api",
        "rest=device",
        "--grant",
        "password",
    ]);

    // Dive's incumbent: MD5 of the PIN, or bcrypt of what the device sends.
    let csv = dir.join("devices.csv");
    std::fs::write(
        &csv,
        format!(
            "username,hash,input\ndev-md5,{}\ndev-bcrypt,{},md5\n",
            py_hash("md5", "pin-1"),
            py_hash("bcrypt", &md5_hex("pin-2")),
        ),
    )
    .unwrap();
    let out = s.cli_json(&["user", "import", "--client", &dive, csv.to_str().unwrap()]);
    assert_eq!(out["imported"], 2);
    // Tradecloud's: bcrypt and argon2 of the password itself.
    let argon = tollgate_core::crypto::secret::hash_argon2(b"battery staple").unwrap();
    let jsonl = dir.join("buyers.jsonl");
    std::fs::write(
        &jsonl,
        format!(
            "{}\n{}\n",
            json!({"username": "buyer@example.com", "hash": py_hash("bcrypt", "horse")}),
            json!({"username": "seller@example.com", "hash": argon}),
        ),
    )
    .unwrap();
    s.cli_ok(&["user", "import", "--client", &web, jsonl.to_str().unwrap()]);
    s.sync().await;

    assert_eq!(
        device_login(&s, &dive, "dev-md5", &md5_hex("wrong"))
            .await
            .status(),
        400
    );
    assert_eq!(header_login(&s, "buyer@example.com", "wrong").await, 401);
    assert_eq!(upgrades(&s).await, 0, "no upgrade without a success");
    for round in ["first login (imported hash)", "second login (argon2id)"] {
        assert_eq!(
            device_login(&s, &dive, "dev-md5", &md5_hex("pin-1"))
                .await
                .status(),
            200,
            "{round}"
        );
        assert_eq!(
            device_login(&s, &dive, "dev-bcrypt", &md5_hex("pin-2"))
                .await
                .status(),
            200,
            "{round}"
        );
        assert_eq!(
            header_login(&s, "buyer@example.com", "horse").await,
            200,
            "{round}"
        );
        assert_eq!(
            header_login(&s, "seller@example.com", "battery staple").await,
            200,
            "{round}"
        );
        assert_eq!(upgrades(&s).await, 4, "{round}: each re-hashed once");
    }
    // A malformed line: its number, and nothing imported.
    let bad = dir.join("bad.csv");
    std::fs::write(
        &bad,
        format!(
            "u1,{m}\nu2,{m}\nu3,not-a-hash\nu4,{m}\n",
            m = py_hash("md5", "x")
        ),
    )
    .unwrap();
    let out = s.cli(&["user", "import", "--client", &dive, bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3"), "{err}");
    // A username that exists: its line, nothing imported.
    std::fs::write(
        &bad,
        format!("u1,{m}\ndev-md5,{m}\n", m = py_hash("md5", "x")),
    )
    .unwrap();
    let out = s.cli(&["user", "import", "--client", &dive, bad.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));
    let users = s.cli_json(&["user", "list", "--client", &dive]);
    assert_eq!(users.as_array().unwrap().len(), 2, "{users}");

    // A large file: progress on stderr, one transaction.
    let big = dir.join("big.csv");
    let m = py_hash("md5", "x");
    let text: String = (0..25_000).map(|i| format!("bulk-{i},{m}\n")).collect();
    std::fs::write(&big, text).unwrap();
    let out = s.cli(&["user", "import", "--client", &dive, big.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(progress.contains("10000 lines read"), "{progress}");
    assert!(
        progress.contains("writing 25000 users in one transaction"),
        "{progress}"
    );
    s.sync().await;
    assert_eq!(
        device_login(&s, &dive, "bulk-24999", &md5_hex("x"))
            .await
            .status(),
        200
    );
}

/// docs/OPERATIONS.md, "Switching over from an existing service", step by
/// step for Dive (HS256 shared key, Spring refresh tokens, users) and
/// Cloudbet (a pinned RS256 key, refresh JWTs), each environment selected
/// by its host name as after the DNS cut-over: what the incumbent minted
/// keeps working, and what tollgate signs verifies where the incumbent's
/// tokens did, with no partner action.
#[tokio::test]
async fn a_provider_of_each_seed_switches_over_by_the_documented_steps() {
    let s = Server::start();
    let dir = s.dir.path();
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    // The incumbents: Dive's Spring key, Cloudbet's RSA key.
    std::fs::write(dir.join("secret"), "dive-jwt-signing-key\n").unwrap();
    incumbent(&["keygen", dir.to_str().unwrap(), "RS256"]);

    // Dive: 1. keys, 2. trust, 3. users.
    s.cli_ok(&[
        "env",
        "create",
        "dive",
        "--alg",
        "HS256",
        "--host",
        "rest.dive.tv",
    ]);
    s.cli_ok(&["env", "update", "dive", "--contracts", "device-credentials"]);
    s.cli_ok(&[
        "key",
        "import",
        "--env",
        "dive",
        "--hs256-secret-file",
        &path("secret"),
    ]);
    s.cli_ok(&[
        "refresh-jwt",
        "trust",
        "--env",
        "dive",
        "--for",
        "device-credentials",
        "--name",
        "dive-spring",
        "--hs256-secret-file",
        &path("secret"),
    ]);
    s.cli_ok(&[
        "api",
        "create",
        "api-server",
        "--env",
        "dive",
        "--permission",
        "device",
    ]);
    s.public_client(&[
        "--env",
        "dive",
        "--name",
        "rtve",
        "--client-id",
        "rtve_test",
        "--api",
        "api-server=device",
        "--grant",
        "device_credentials",
    ]);
    std::fs::write(
        dir.join("dive-users.csv"),
        format!("123456,{}\n", py_hash("bcrypt", &md5_hex("pin"))),
    )
    .unwrap();
    s.cli_ok(&[
        "user",
        "import",
        "--env",
        "dive",
        "--client",
        "rtve_test",
        "--hashed",
        "md5",
        &path("dive-users.csv"),
    ]);

    // Cloudbet: 1. keys, 2. trust (its partners hold refresh JWTs, no users).
    s.cli_ok(&[
        "env",
        "create",
        "cloudbet",
        "--alg",
        "RS256",
        "--host",
        "sports-api.cloudbet.com",
    ]);
    s.cli_ok(&[
        "env",
        "update",
        "cloudbet",
        "--contracts",
        "bearer-exchange",
    ]);
    s.cli_ok(&[
        "key",
        "import",
        "--env",
        "cloudbet",
        "--pem",
        &path("incumbent.pem"),
        "--kid",
        "cb-1",
    ]);
    s.cli_ok(&[
        "refresh-jwt",
        "trust",
        "--env",
        "cloudbet",
        "--pem",
        &path("incumbent.pub.pem"),
        "--client-claim",
        "sub",
    ]);
    s.cli_ok(&[
        "api",
        "create",
        "odds",
        "--env",
        "cloudbet",
        "--permission",
        "odds:read",
    ]);
    s.client(&[
        "--env",
        "cloudbet",
        "--name",
        "player",
        "--client-id",
        "player-42",
        "--api",
        "odds=odds:read",
    ]);
    // Imported keys sign from the next second at the latest.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.sync().await;

    // What partners held before the switch, minted by the incumbents.
    let spring_refresh = mint(
        dir,
        "HS256",
        &json!({"aud": ["api-server"], "user_name": "123456", "device_id": "123456",
                "grant_type": "device_credentials", "scope": ["device"], "ati": "a",
                "exp": now() + 180 * 86_400, "authorities": ["ROLE_TV_GRID"],
                "client_id": "rtve_test", "jti": "e4c32ebb-1"}),
    );
    let cloudbet_refresh = mint(
        dir,
        "RS256",
        &json!({"sub": "player-42", "jti": "cb-r-1", "iat": now() - 3600, "exp": now() + 86_400}),
    );

    // 4. DNS points at tollgate: the same requests, by host name.
    let dive_host = |rb: reqwest::RequestBuilder| {
        rb.header("host", "rest.dive.tv")
            .header("authorization", basic("rtve_test"))
            .header("content-type", "application/json")
    };
    let r = send(
        dive_host(s.post("/v1/token?grant_type=refresh_token"))
            .body(format!("refresh_token={spring_refresh}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(
        pinned_verify(dir, "HS256", access, "api-server")["user_name"],
        "123456"
    );
    let r = send(
        dive_host(s.post("/v1/token?grant_type=device_credentials"))
            .body(format!("username=123456&password={}", md5_hex("pin"))),
    )
    .await;
    assert_eq!(r.status(), 200, "the imported device logs in");

    let r = send(
        s.post(EXCHANGE)
            .header("host", "sports-api.cloudbet.com")
            .header("authorization", format!("Bearer {cloudbet_refresh}")),
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let access = body["token"].as_str().unwrap();
    assert_eq!(jwt_parts(access).0["kid"], "cb-1");
    assert_eq!(
        pinned_verify(dir, "RS256", access, "odds")["client_id"],
        "player-42"
    );
}

/// A resource server that discovers keys at the issuer, as Auth0's SDKs
/// and Spring's `NimbusJwtDecoder` do: PyJWT over the JWKS the server
/// publishes for `host`, the key picked by `kid`, issuer and audience
/// checked. Returns the claims.
async fn verify_at_issuer(s: &Server, host: &str, token: &str, iss: &str, aud: &str) -> Value {
    let jwks = send(s.get("/.well-known/jwks.json").header("host", host))
        .await
        .text()
        .await
        .unwrap();
    let script = r#"
import json, sys, jwt
jwks, token, iss, aud = sys.argv[1:5]
kid = jwt.get_unverified_header(token)["kid"]
k = next(k for k in jwt.PyJWKSet.from_json(jwks).keys if k.key_id == kid)
print(json.dumps(jwt.decode(token, k.key, algorithms=[k.algorithm_name], issuer=iss, audience=aud)))
"#;
    let out = Command::new(python())
        .args(["-c", script, &jwks, token, iss, aud])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the resource server refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// docs/OPERATIONS.md, "Switching over from an existing service", for the
/// other three seeds: Sportradar (Auth0: its keys cannot leave it, so its
/// JWKS is published beside tollgate's while its tokens are in flight; the
/// partner's id and secret imported), a JSON client-credentials provider
/// (its own key imported; the JSON body unchanged) and Tradecloud (its key
/// imported, its refresh tokens trusted, its users imported with bcrypt
/// hashes). Each partner goes on with what it held, by host name as after
/// the DNS cut-over.
#[tokio::test]
async fn sportradar_json_and_tradecloud_partners_switch_over_unchanged() {
    let s = Server::start();
    let dir = s.dir.path();
    let path = |f: &str| dir.join(f).to_str().unwrap().to_string();
    incumbent(&["keygen", dir.to_str().unwrap(), "RS256"]);
    std::fs::write(
        dir.join("auth0-jwks.json"),
        incumbent(&["jwks", dir.to_str().unwrap(), "RS256", "auth0-kid-1"]),
    )
    .unwrap();

    // Sportradar: the Auth0 tenant's custom domain moves to tollgate.
    let sr_host = "auth.sportradar.test";
    let sr_iss = format!("https://{sr_host}/");
    let sr_aud = "https://api.sportradar.test";
    s.cli_ok(&[
        "env",
        "create",
        "sr",
        "--dialect",
        "auth0",
        "--host",
        sr_host,
    ]);
    let published = s.cli_json(&[
        "key",
        "publish",
        "--env",
        "sr",
        "--jwks",
        &path("auth0-jwks.json"),
        "--name",
        "auth0",
    ]);
    assert_eq!(published["kids"], json!(["auth0-kid-1"]));
    s.cli_ok(&[
        "api",
        "create",
        sr_aud,
        "--env",
        "sr",
        "--permission",
        "read:odds",
    ]);
    s.client(&[
        "--env",
        "sr",
        "--name",
        "bookmaker",
        "--client-id",
        "SR_CLIENT",
        "--client-secret",
        "sr-secret-from-auth0",
        "--api",
        &format!("{sr_aud}=read:odds"),
    ]);
    let listed = s.cli_json(&["key", "list", "--env", "sr"]);
    let states: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"incumbent") && states.contains(&"active"),
        "{listed}"
    );

    // A JSON client-credentials provider: its own ES256 key comes along.
    std::fs::create_dir(dir.join("json")).unwrap();
    let json_dir = dir.join("json");
    incumbent(&["keygen", json_dir.to_str().unwrap(), "ES256"]);
    let js_host = "api.json-provider.test";
    s.cli_ok(&["env", "create", "js", "--alg", "ES256", "--host", js_host]);
    s.cli_ok(&[
        "key",
        "import",
        "--env",
        "js",
        "--pem",
        json_dir.join("incumbent.pem").to_str().unwrap(),
        "--kid",
        "js-1",
    ]);
    s.cli_ok(&["api", "create", "orders", "--env", "js"]);
    s.client(&[
        "--env",
        "js",
        "--name",
        "shop",
        "--client-id",
        "shop-7",
        "--client-secret",
        "shop-secret-kept",
        "--api",
        "orders",
    ]);

    // Tradecloud: its key, its refresh tokens, its users.
    std::fs::create_dir(dir.join("tc")).unwrap();
    let tc_dir = dir.join("tc");
    incumbent(&["keygen", tc_dir.to_str().unwrap(), "RS256"]);
    let tc_host = "api.tradecloud.test";
    let tc_iss = "https://api.tradecloud.test";
    s.cli_ok(&[
        "env", "create", "tc", "--alg", "RS256", "--host", tc_host, "--issuer", tc_iss,
    ]);
    s.cli_ok(&["env", "update", "tc", "--contracts", "header-login"]);
    s.cli_ok(&[
        "key",
        "import",
        "--env",
        "tc",
        "--pem",
        tc_dir.join("incumbent.pem").to_str().unwrap(),
        "--kid",
        "tc-1",
    ]);
    s.cli_ok(&[
        "refresh-jwt",
        "trust",
        "--env",
        "tc",
        "--for",
        "header-login",
        "--name",
        "tradecloud-old",
        "--pem",
        tc_dir.join("incumbent.pub.pem").to_str().unwrap(),
        "--issuer",
        tc_iss,
    ]);
    s.cli_ok(&["api", "create", "tradecloud", "--env", "tc"]);
    let tc_client = s.public_client(&[
        "--env",
        "tc",
        "--name",
        "buyers",
        "--api",
        "tradecloud",
        "--grant",
        "password",
    ]);
    std::fs::write(
        dir.join("tc-users.csv"),
        format!(
            "username,hash\nbuyer@example.com,{}\n",
            py_hash("bcrypt", "s3cret!")
        ),
    )
    .unwrap();
    s.cli_ok(&[
        "user",
        "import",
        "--env",
        "tc",
        "--client",
        &tc_client,
        &path("tc-users.csv"),
    ]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    s.sync().await;

    // What partners held before the switch.
    let auth0_token = incumbent(&[
        "mint",
        dir.to_str().unwrap(),
        "RS256",
        &json!({"iss": sr_iss, "sub": "SR_CLIENT@clients", "aud": sr_aud, "azp": "SR_CLIENT",
                "scope": "read:odds", "gty": "client-credentials",
                "iat": now() - 60, "exp": now() + 540})
        .to_string(),
        "auth0-kid-1",
    ]);
    let json_token = incumbent(&[
        "mint",
        json_dir.to_str().unwrap(),
        "ES256",
        &json!({"iss": "https://api.json-provider.test", "aud": "orders", "client_id": "shop-7",
                "exp": now() + 3600})
        .to_string(),
        "js-1",
    ]);
    let tc_claims = |kind: &str, exp: i64, jti: &str| {
        json!({"iss": tc_iss, "email": "buyer@example.com", "typ": kind, "jti": jti,
               "iat": now() - 700, "exp": exp})
        .to_string()
    };
    let tc_live_access = incumbent(&[
        "mint",
        tc_dir.to_str().unwrap(),
        "RS256",
        &tc_claims("access", now() + 300, "a-live"),
        "tc-1",
    ]);
    let tc_old_access = incumbent(&[
        "mint",
        tc_dir.to_str().unwrap(),
        "RS256",
        &tc_claims("access", now() - 100, "a-old"),
        "tc-1",
    ]);
    let tc_refresh = incumbent(&[
        "mint",
        tc_dir.to_str().unwrap(),
        "RS256",
        &tc_claims("refresh", now() + 86_000, "r-1"),
        "tc-1",
    ]);

    // Sportradar after the cut-over: the token the partner reuses still
    // verifies where its API discovers keys, and a new one comes from the
    // same form request with the same credentials.
    let claims = verify_at_issuer(&s, sr_host, &auth0_token, &sr_iss, sr_aud).await;
    assert_eq!(claims["azp"], "SR_CLIENT");
    let r = send(s.post("/oauth/token").header("host", sr_host).form(&[
        ("client_id", "SR_CLIENT"),
        ("client_secret", "sr-secret-from-auth0"),
        ("audience", sr_aud),
        ("grant_type", "client_credentials"),
    ]))
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let fresh = body["access_token"].as_str().unwrap();
    assert_ne!(
        jwt_parts(fresh).0["kid"],
        "auth0-kid-1",
        "incumbent keys never sign"
    );
    let claims = verify_at_issuer(&s, sr_host, fresh, &sr_iss, sr_aud).await;
    assert_eq!(claims["azp"], "SR_CLIENT");
    // Unpublished once its tokens have expired: only tollgate's keys remain.
    s.cli_ok(&["key", "unpublish", "auth0", "--env", "sr"]);
    s.sync().await;
    let jwks: Value = send(s.get("/.well-known/jwks.json").header("host", sr_host))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["kid"] != "auth0-kid-1"),
        "{jwks}"
    );
    verify_at_issuer(&s, sr_host, fresh, &sr_iss, sr_aud).await;

    // The JSON provider: the seed's JSON body, the same credentials; old
    // and new tokens verify under the key the API pinned.
    let r = send(s.post("/oauth/token").header("host", js_host).json(
        &json!({"client_id": "shop-7", "client_secret": "shop-secret-kept",
                          "grant_type": "client_credentials"}),
    ))
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    let fresh = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_parts(fresh).0["kid"], "js-1");
    assert_eq!(
        pinned_verify(&json_dir, "ES256", fresh, "orders")["client_id"],
        "shop-7"
    );
    assert_eq!(
        pinned_verify(&json_dir, "ES256", &json_token, "orders")["client_id"],
        "shop-7"
    );

    // Tradecloud: a client holding a still-valid access token gets the
    // incumbent's "nothing to do"; with an expired one its refresh token
    // moves the session; the password it stored logs in (any case of the
    // e-mail), and what tollgate signs verifies under the pinned key.
    let tc_refresh_call = |access: &str, refresh: &str| {
        s.get("/v2/authentication/refresh")
            .header("host", tc_host)
            .header("authorization", format!("Bearer {access}"))
            .header("refresh-token", refresh.to_string())
    };
    let r = send(tc_refresh_call(&tc_live_access, &tc_refresh)).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("set-authorization").is_none(),
        "no new pair"
    );
    let r = send(tc_refresh_call(&tc_old_access, &tc_refresh)).await;
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let access = r.headers()["set-authorization"]
        .to_str()
        .unwrap()
        .to_string();
    let next = r.headers()["set-refresh-token"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(jwt_parts(&access).0["kid"], "tc-1");
    pinned_verify(&tc_dir, "RS256", &access, "tradecloud");
    // The moved session goes on with tollgate's tokens.
    let r = send(
        s.get("/v2/authentication/refresh")
            .header("host", tc_host)
            .header("refresh-token", next),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-refresh-token").is_some());
    let r = send(
        s.get("/v2/authentication/login")
            .header("host", tc_host)
            .header("authorization", basic("Buyer@Example.com:s3cret!")),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("set-authorization").is_some());
    // A forged refresh token (another key) and an unknown access token are
    // refused as the incumbent refused them.
    incumbent(&["keygen", json_dir.to_str().unwrap(), "RS256"]);
    let forged = incumbent(&[
        "mint",
        json_dir.to_str().unwrap(),
        "RS256",
        &tc_claims("refresh", now() + 86_000, "r-forged"),
        "tc-1",
    ]);
    let r = send(
        s.get("/v2/authentication/refresh")
            .header("host", tc_host)
            .header("refresh-token", forged.clone()),
    )
    .await;
    assert_eq!(r.status(), 401);
    let r = send(tc_refresh_call(&forged, &tc_refresh)).await;
    assert_eq!(r.status(), 401);
}
