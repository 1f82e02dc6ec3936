//! The admin HTTP API, end to end over the real binary (SQLite, or
//! PostgreSQL with `TG_TEST_STORE=postgres`): `tollgate admin bootstrap`,
//! an admin token from `/oauth/token`, then every noun's routes, pagination,
//! `ETag`/`If-Match`, idempotent creates, the permissions, the audit log,
//! and that no secret is ever in a list, a read or the audit log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{Server, send};
use reqwest::Method;
use serde_json::{Value, json};

/// An answer: status, headers, JSON body (`Null` when empty).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Calls the admin API at `base` with `token`.
struct Admin<'a> {
    s: &'a Server,
    base: String,
    token: String,
}

impl Admin<'_> {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut rb = self
            .s
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        if let Some(b) = body {
            rb = rb.json(&b);
        }
        let r = send(rb).await;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None, &[]).await
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body), &[]).await
    }

    /// Every item of a list, following `next_cursor` with pages of `limit`.
    async fn all(&self, path: &str, limit: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit={limit}&cursor={c}"),
                None => format!("{path}{sep}limit={limit}"),
            };
            let a = self.get(&url).await;
            assert_eq!(a.status, 200, "{url}: {}", a.text);
            let page = a.body["items"].as_array().unwrap();
            assert!(page.len() <= limit);
            items.extend(page.iter().cloned());
            match a.body["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return items,
            }
        }
        panic!("the cursor never ended");
    }
}

/// An access token for `id`/`secret` with `audience` at the default
/// environment's token endpoint.
async fn token_for(s: &Server, id: &str, secret: &str, audience: &str) -> String {
    let r = s.token(id, secret, &[("audience", audience)]).await;
    let status = r.status();
    let v: Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    v["access_token"].as_str().unwrap().to_string()
}

/// `tollgate admin bootstrap --json`, then an admin token: the way in.
async fn bootstrap(s: &Server) -> (Admin<'_>, String, String) {
    let v = s.cli_json(&["admin", "bootstrap"]);
    assert_eq!(v["audience"], "tollgate-admin");
    let id = v["client_id"].as_str().unwrap().to_string();
    let secret = v["client_secret"].as_str().unwrap().to_string();
    s.sync().await;
    let token = token_for(s, &id, &secret, "tollgate-admin").await;
    (
        Admin {
            s,
            base: s.url.clone(),
            token,
        },
        id,
        secret,
    )
}

#[tokio::test]
async fn no_admin_route_answers_without_a_valid_admin_token() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let paths = [
        "/admin/v1/environments",
        "/admin/v1/environments/default/clients",
        "/admin/v1/audit",
        "/admin/openapi.json",
    ];
    for p in paths {
        let r = send(s.get(p)).await;
        assert_eq!(r.status(), 401, "{p}");
        let challenge = r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(challenge, "Bearer realm=\"tollgate-admin\"", "{p}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "unauthorized");
        assert!(v["message"].as_str().is_some());
    }
    // A token that is not one: invalid_token.
    let r = send(s.get("/admin/v1/environments").bearer_auth("not.a.token")).await;
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=\"invalid_token\"")
    );
    // A genuine token for another API is not an admin token.
    s.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    let (id, secret) = s.client(&["--name", "partner", "--api", "orders"]);
    s.sync().await;
    let other = token_for(&s, &id, &secret, "orders").await;
    let r = send(s.get("/admin/v1/environments").bearer_auth(&other)).await;
    assert_eq!(r.status(), 401);
    // The admin token is good, and answers JSON.
    let a = admin.get("/admin/v1/environments").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["items"][0]["name"], "default");
    // The OpenAPI document, to admins.
    let doc = admin.get("/admin/openapi.json").await;
    assert_eq!(doc.status, 200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(
        doc.body["paths"]["/admin/v1/environments/{env}/clients/{client_id}"]["patch"].is_object()
    );
    // A revoked admin client's token stops working at once.
    let admin_id = admin_client_id(&admin).await;
    s.cli_ok(&["client", "disable", &admin_id]);
    s.sync().await;
    assert_eq!(admin.get("/admin/v1/environments").await.status, 401);
}

/// The bootstrap client's id, from the audit log's first entry.
async fn admin_client_id(admin: &Admin<'_>) -> String {
    let a = admin.get("/admin/v1/audit").await;
    assert_eq!(a.status, 200, "{}", a.text);
    let first = &a.body["items"][0];
    assert_eq!(first["action"], "admin.bootstrap");
    assert_eq!(first["actor"], "cli");
    first["target"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn every_noun_through_http_with_etags_and_an_audit_log_without_secrets() {
    let s = Server::start();
    let (admin, admin_id, admin_secret) = bootstrap(&s).await;
    // Every secret seen; none may appear in a read, a list or the log.
    let mut secrets = vec![admin_secret.clone()];
    let mut reads = String::new();

    // ----- environments
    let a = admin
        .post("/admin/v1/environments", json!({"name": "staging"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["alg"], "ES256");
    let a = admin
        .post("/admin/v1/environments", json!({"name": "staging"}))
        .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (409, Some("conflict"))
    );
    let a = admin
        .post(
            "/admin/v1/environments",
            json!({"name": "x", "colour": "red"}),
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    let names: Vec<Value> = admin
        .all("/admin/v1/environments", 1)
        .await
        .into_iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, [json!("default"), json!("staging")]);
    let env = admin.get("/admin/v1/environments/staging").await;
    let tag = env.header("etag").unwrap().to_string();
    let patch = json!({"hosts": ["staging.example.com"]});
    let a = admin
        .call(
            Method::PATCH,
            "/admin/v1/environments/staging",
            Some(patch.clone()),
            &[],
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (428, Some("precondition_required"))
    );
    let a = admin
        .call(
            Method::PATCH,
            "/admin/v1/environments/staging",
            Some(patch.clone()),
            &[("if-match", "\"0000\"")],
        )
        .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (412, Some("precondition_failed"))
    );
    let a = admin
        .call(
            Method::PATCH,
            "/admin/v1/environments/staging",
            Some(patch.clone()),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["hosts"], json!(["staging.example.com"]));
    assert_ne!(
        a.header("etag"),
        Some(tag.as_str()),
        "a new version, a new tag"
    );
    // The old tag is stale now: a second admin holding it cannot overwrite.
    let a = admin
        .call(
            Method::PATCH,
            "/admin/v1/environments/staging",
            Some(json!({"hosts": []})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(a.status, 412);
    assert_eq!(
        admin.get("/admin/v1/environments/nowhere").await.status,
        404
    );

    // ----- APIs
    let apis = "/admin/v1/environments/staging/apis";
    let a = admin
        .post(
            apis,
            json!({"identifier": "orders", "permissions": ["read"], "packages": {"basic": ["read"]}}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let api = admin.get(&format!("{apis}/orders")).await;
    reads.push_str(&api.text);
    let a = admin
        .call(
            Method::PATCH,
            &format!("{apis}/orders"),
            Some(json!({"add_permissions": ["write"], "token_lifetime": 300})),
            &[("if-match", api.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["permissions"], json!(["read", "write"]));
    assert_eq!(a.body["token_lifetime"], 300);
    let a = admin
        .post(apis, json!({"identifier": "spare", "permissions": ["x"]}))
        .await;
    assert_eq!(a.status, 201);
    reads.push_str(&admin.get(apis).await.text);

    // ----- clients
    let clients = "/admin/v1/environments/staging/clients";
    let a = admin
        .post(
            clients,
            json!({"name": "Acme", "apis": [{"api": "orders", "grants": ["basic"]}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["client"]["client_id"].as_str().unwrap().to_string();
    let first = a.body["client_secret"].as_str().unwrap().to_string();
    secrets.push(first.clone());
    let client = format!("{clients}/{id}");
    let c = admin.get(&client).await;
    assert_eq!(c.status, 200);
    assert!(c.body.get("client_secret").is_none());
    assert_eq!(c.body["secrets"].as_array().unwrap().len(), 1);
    reads.push_str(&c.text);
    reads.push_str(&admin.get(clients).await.text);
    s.sync().await;
    let staging_token = |secret: String| {
        let s = &s;
        let id = id.clone();
        async move {
            s.form(
                "/e/staging/oauth/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", &id),
                    ("client_secret", &secret),
                ],
            )
            .await
            .status()
            .as_u16()
        }
    };
    assert_eq!(staging_token(first.clone()).await, 200);
    // Rotation with grace: both work; revoking the older leaves the new.
    let a = admin
        .post(&format!("{client}/rotate-secret"), json!({"grace": 3600}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let second = a.body["client_secret"].as_str().unwrap().to_string();
    secrets.push(second.clone());
    assert_ne!(first, second);
    s.sync().await;
    assert_eq!(staging_token(first.clone()).await, 200);
    assert_eq!(staging_token(second.clone()).await, 200);
    let a = admin
        .post(&format!("{client}/revoke-secret"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["secrets"].as_array().unwrap().len(), 1);
    s.sync().await;
    assert_eq!(staging_token(first.clone()).await, 401);
    assert_eq!(staging_token(second.clone()).await, 200);
    // Disable, enable.
    assert_eq!(
        admin
            .post(&format!("{client}/disable"), json!({}))
            .await
            .status,
        200
    );
    s.sync().await;
    assert_eq!(staging_token(second.clone()).await, 401);
    let a = admin.post(&format!("{client}/enable"), json!({})).await;
    assert_eq!((a.status, &a.body["enabled"]), (200, &json!(true)));
    s.sync().await;
    assert_eq!(staging_token(second.clone()).await, 200);
    // Update in place under If-Match.
    let c = admin.get(&client).await;
    let a = admin
        .call(
            Method::PATCH,
            &client,
            Some(json!({"name": "Acme Ltd", "capabilities": ["introspect"]})),
            &[("if-match", c.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["name"], "Acme Ltd");
    assert_eq!(a.body["capabilities"], json!(["introspect"]));

    // ----- users
    let users = format!("{client}/users");
    let a = admin
        .post(
            &users,
            json!({"username": "ann@example.com", "password": "pw-one-1"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    secrets.push("pw-one-1".into());
    let a = admin
        .post(
            &users,
            json!({"username": "bob", "password": "x", "password_md5": "y"}),
        )
        .await;
    assert_eq!(a.status, 400);
    let user = "/admin/v1/environments/staging/users/ann%40example.com";
    let u = admin.get(user).await;
    assert_eq!(u.status, 200, "{}", u.text);
    assert!(u.body.get("password").is_none());
    reads.push_str(&u.text);
    let listed = admin.all(&users, 10).await;
    assert_eq!(listed.len(), 1);
    reads.push_str(&Value::from(listed).to_string());
    let a = admin
        .post(&format!("{user}/password"), json!({"password": "pw-two-2"}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    secrets.push("pw-two-2".into());
    let a = admin.post(&format!("{user}/disable"), json!({})).await;
    assert_eq!((a.status, &a.body["enabled"]), (200, &json!(false)));
    let a = admin.post(&format!("{user}/enable"), json!({})).await;
    assert_eq!((a.status, &a.body["enabled"]), (200, &json!(true)));
    assert_eq!(
        admin.call(Method::DELETE, user, None, &[]).await.status,
        428
    );
    let u = admin.get(user).await;
    let a = admin
        .call(
            Method::DELETE,
            user,
            None,
            &[("if-match", u.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(admin.get(user).await.status, 404);

    // ----- signing keys
    let keys = "/admin/v1/environments/staging/keys";
    let before = admin.all(keys, 10).await;
    assert_eq!(before.len(), 1);
    let a = admin
        .post(&format!("{keys}/rotate"), json!({"publish_delay": 60}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["state"], "next");
    let after = admin.all(keys, 10).await;
    assert_eq!(after.len(), 2);
    let keys_text = Value::from(after).to_string();
    assert!(!keys_text.contains("private") && !keys_text.contains("sealed"));
    reads.push_str(&keys_text);

    // ----- refresh JWTs
    let rjwts = "/admin/v1/environments/staging/refresh-jwts";
    let a = admin
        .post(rjwts, json!({"client_id": id, "ttl": 86400}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let jti = a.body["refresh_jwt"]["jti"].as_str().unwrap().to_string();
    secrets.push(a.body["token"].as_str().unwrap().to_string());
    let listed = admin.all(rjwts, 10).await;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].get("token").is_none());
    reads.push_str(&Value::from(listed).to_string());
    let a = admin
        .post(&format!("{rjwts}/{jti}/revoke"), json!({}))
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert!(admin.all(rjwts, 10).await[0]["revoked_at"].is_i64());

    // ----- introspection of any token
    let r = s
        .form(
            "/e/staging/oauth/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &id),
                ("client_secret", &second),
            ],
        )
        .await;
    let access: Value = r.json().await.unwrap();
    let access = access["access_token"].as_str().unwrap().to_string();
    let a = admin
        .post(
            "/admin/v1/environments/staging/introspect",
            json!({"token": access}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["active"], true);
    assert_eq!(a.body["client_id"], json!(id));
    let a = admin
        .post(
            "/admin/v1/environments/staging/introspect",
            json!({"token": "nonsense"}),
        )
        .await;
    assert_eq!(a.body, json!({"active": false}));

    // ----- deletes under If-Match
    let c = admin.get(&client).await;
    let a = admin
        .call(
            Method::DELETE,
            &client,
            None,
            &[("if-match", c.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 204);
    assert_eq!(admin.get(&client).await.status, 404);
    s.sync().await;
    let a = admin
        .post(
            "/admin/v1/environments/staging/introspect",
            json!({"token": access}),
        )
        .await;
    assert_eq!(
        a.body["active"], false,
        "a deleted client's token is inactive"
    );
    let spare = format!("{apis}/spare");
    let t = admin.get(&spare).await;
    let a = admin
        .call(
            Method::DELETE,
            &spare,
            None,
            &[("if-match", t.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 204);

    // ----- the audit log: every write, by whom, from where, no secret
    let log = admin.all("/admin/v1/audit", 4).await;
    let actions: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        actions,
        [
            "admin.bootstrap",
            "environment.create",
            "environment.update",
            "api.create",
            "api.update",
            "api.create",
            "client.create",
            "client.rotate_secret",
            "client.revoke_secret",
            "client.disable",
            "client.enable",
            "client.update",
            "user.create",
            "user.set_password",
            "user.disable",
            "user.enable",
            "user.delete",
            "key.rotate",
            "refresh_jwt.issue",
            "refresh_jwt.revoke",
            "client.delete",
            "api.delete",
        ]
    );
    for e in &log[1..] {
        assert_eq!(e["actor"], json!(admin_id), "{e}");
        assert_eq!(e["source"], "127.0.0.1", "{e}");
        assert!(e["at"].is_i64());
    }
    let update = &log[2];
    assert_eq!(update["before"]["hosts"], json!([]));
    assert_eq!(update["after"]["hosts"], json!(["staging.example.com"]));
    let rotation = log
        .iter()
        .find(|e| e["action"] == "client.rotate_secret")
        .unwrap();
    assert_eq!(rotation["before"]["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(rotation["after"]["secrets"].as_array().unwrap().len(), 2);
    let deleted = log.iter().find(|e| e["action"] == "client.delete").unwrap();
    assert!(deleted["after"].is_null());
    let log_text = Value::from(log.clone()).to_string();
    // The CLI prints the same log as JSON lines.
    let lines = s.cli_ok(&["audit", "--json"]);
    let cli: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(cli.len(), log.len());
    assert_eq!(cli[5]["id"], log[5]["id"]);
    assert_eq!(
        s.cli_ok(&["audit", "--json", "--limit", "3"])
            .lines()
            .count(),
        3
    );
    let since_future = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600)
        .to_string();
    assert!(s.cli_ok(&["audit", "--since", &since_future]).is_empty());
    for secret in &secrets {
        assert!(
            !log_text.contains(secret.as_str()),
            "a secret in the audit log"
        );
        assert!(
            !lines.contains(secret.as_str()),
            "a secret in `tollgate audit`"
        );
        assert!(
            !reads.contains(secret.as_str()),
            "a secret in a read or list"
        );
    }
    // Nor the stored hashes of secrets or passwords.
    for needle in ["digest", "argon2", "\"password\"", "phc"] {
        assert!(!log_text.contains(needle), "{needle} in the audit log");
        assert!(!reads.contains(needle), "{needle} in a read or list");
    }
}

#[tokio::test]
async fn lists_page_with_an_opaque_cursor() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let mut want = vec!["tollgate-admin".to_string()];
    for i in 0..7 {
        let name = format!("api-{i}");
        let a = admin
            .post(
                "/admin/v1/environments/default/apis",
                json!({"identifier": name, "permissions": ["p"]}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        want.push(name);
    }
    want.sort();
    for limit in [1, 3, 8, 50] {
        let got: Vec<String> = admin
            .all("/admin/v1/environments/default/apis", limit)
            .await
            .into_iter()
            .map(|a| a["identifier"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(got, want, "limit {limit}");
    }
    let first = admin
        .get("/admin/v1/environments/default/apis?limit=3")
        .await;
    let cursor = first.body["next_cursor"].as_str().unwrap();
    assert!(!cursor.contains("api-"), "the cursor is opaque: {cursor}");
    for bad in ["limit=0", "limit=1001", "cursor=%21%21", "limit=x"] {
        let a = admin
            .get(&format!("/admin/v1/environments/default/apis?{bad}"))
            .await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn a_create_with_an_idempotency_key_is_replayed_not_repeated() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let clients = "/admin/v1/environments/default/clients";
    let body =
        json!({"name": "once", "apis": [{"api": "tollgate-admin", "grants": ["admin:read"]}]});
    let key = [("idempotency-key", "create-once-1")];
    let first = admin
        .call(Method::POST, clients, Some(body.clone()), &key)
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = admin
        .call(Method::POST, clients, Some(body.clone()), &key)
        .await;
    assert_eq!(again.status, 201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body, "the same client and secret");
    let named: Vec<Value> = admin
        .all(clients, 50)
        .await
        .into_iter()
        .filter(|c| c["name"] == "once")
        .collect();
    assert_eq!(named.len(), 1, "one client, not two");
    // The key with another body: refused.
    let other = json!({"name": "twice"});
    let a = admin
        .call(Method::POST, clients, Some(other.clone()), &key)
        .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (422, Some("idempotency_key_reused"))
    );
    // Without a key, two creates are two clients.
    assert_eq!(admin.post(clients, other.clone()).await.status, 201);
    assert_eq!(admin.post(clients, other).await.status, 201);
    let twice = admin
        .all(clients, 50)
        .await
        .into_iter()
        .filter(|c| c["name"] == "twice")
        .count();
    assert_eq!(twice, 2);
    // A failed create under a key answers the same failure again.
    let env_key = [("idempotency-key", "env-bad")];
    let bad = json!({"name": "bad/name"});
    let a = admin
        .call(
            Method::POST,
            "/admin/v1/environments",
            Some(bad.clone()),
            &env_key,
        )
        .await;
    assert_eq!(a.status, 400);
    let b = admin
        .call(Method::POST, "/admin/v1/environments", Some(bad), &env_key)
        .await;
    assert_eq!(
        (b.status, b.header("idempotent-replayed")),
        (400, Some("true"))
    );
}

#[tokio::test]
async fn permissions_scope_what_an_admin_client_may_do() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let clients = "/admin/v1/environments/default/clients";
    let make = |grants: Value| {
        let admin = &admin;
        async move {
            let a = admin
                .post(
                    clients,
                    json!({"name": "scoped", "apis": [{"api": "tollgate-admin", "grants": grants}]}),
                )
                .await;
            assert_eq!(a.status, 201, "{}", a.text);
            (
                a.body["client"]["client_id"].as_str().unwrap().to_string(),
                a.body["client_secret"].as_str().unwrap().to_string(),
            )
        }
    };
    let (ro_id, ro_secret) = make(json!(["admin:read"])).await;
    let (rw_id, rw_secret) = make(json!(["admin:read", "admin:write"])).await;
    s.sync().await;
    let read_only = Admin {
        s: &s,
        base: s.url.clone(),
        token: token_for(&s, &ro_id, &ro_secret, "tollgate-admin").await,
    };
    let writer = Admin {
        s: &s,
        base: s.url.clone(),
        token: token_for(&s, &rw_id, &rw_secret, "tollgate-admin").await,
    };
    assert_eq!(read_only.get("/admin/v1/environments").await.status, 200);
    assert_eq!(read_only.get("/admin/v1/audit").await.status, 200);
    let a = read_only
        .post("/admin/v1/environments", json!({"name": "nope"}))
        .await;
    assert_eq!(
        (a.status, a.body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    assert!(a.body["message"].as_str().unwrap().contains("admin:write"));
    let challenge = a.header("www-authenticate").unwrap();
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"admin:write\""), "{challenge}");
    // Refused before the body is read: even a bad body gets 403.
    let a = read_only
        .call(Method::POST, "/admin/v1/environments", None, &[])
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(
        admin.get("/admin/v1/environments/nope").await.status,
        404,
        "nothing was created"
    );
    // Writing without admin:secrets: no secret is made or shown.
    let a = writer
        .post("/admin/v1/environments", json!({"name": "fine"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    for (path, body) in [
        (clients.to_string(), json!({"name": "x"})),
        (format!("{clients}/{ro_id}/rotate-secret"), json!({})),
        (
            "/admin/v1/environments/default/refresh-jwts".to_string(),
            json!({"client_id": ro_id}),
        ),
    ] {
        let a = writer.post(&path, body).await;
        assert_eq!(a.status, 403, "{path}: {}", a.text);
        assert!(
            a.body["message"]
                .as_str()
                .unwrap()
                .contains("admin:secrets"),
            "{path}"
        );
    }
    // But a disable is a plain write.
    let a = writer
        .post(&format!("{clients}/{ro_id}/disable"), json!({}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
}

#[tokio::test]
async fn the_admin_api_can_listen_on_its_own_address() {
    let s = Server::start_with(&[], &[("TOLLGATE_ADMIN_LISTEN", "127.0.0.1:0")]);
    let logs = s.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("admin API listening"))
        .unwrap_or_else(|| panic!("{logs}"));
    let addr = line
        .split("address=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap();
    let (mut admin, _, _) = bootstrap(&s).await;
    // Not on the main listener, where tokens are still issued.
    assert_eq!(admin.get("/admin/v1/environments").await.status, 404);
    admin.base = format!("http://{addr}");
    let a = admin.get("/admin/v1/environments").await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        send(s.http.get(format!("http://{addr}/admin/v1/environments")))
            .await
            .status(),
        401
    );
    // Only the admin API there.
    assert_eq!(
        send(s.http.post(format!("http://{addr}/oauth/token")))
            .await
            .status(),
        404
    );
}

impl Admin<'_> {
    /// A POST of `body` as `content_type` (not JSON).
    async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> Answer {
        let r = send(
            self.s
                .http
                .post(format!("{}{path}", self.base))
                .bearer_auth(&self.token)
                .header("content-type", content_type)
                .body(body.to_string()),
        )
        .await;
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// The audit entries whose action is `action`.
    async fn audited(&self, action: &str) -> Vec<Value> {
        self.all("/admin/v1/audit", 1000)
            .await
            .into_iter()
            .filter(|e| e["action"] == action)
            .collect()
    }
}

/// What the CLI does that the first routes lacked: API keys, a user's
/// roles, user import (atomic, a bad line named), trusted incumbent
/// issuers, an incumbent's published keys, key import, and revoking every
/// refresh token of a client; each write audited, no secret read back.
#[tokio::test]
async fn api_keys_imports_and_the_switch_over_through_http() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let e = "/admin/v1/environments/default";
    let a = admin
        .post(
            &format!("{e}/apis"),
            json!({"identifier": "odds", "permissions": ["read"]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = admin
        .post(
            &format!("{e}/clients"),
            json!({"name": "Acme", "apis": [{"api": "odds", "grants": ["read"]}],
                   "grant_types": ["client_credentials", "password"]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let id = a.body["client"]["client_id"].as_str().unwrap().to_string();

    // ----- API keys
    let keys = format!("{e}/api-keys");
    let a = admin
        .post(
            &keys,
            json!({"client_id": id, "name": "shop", "ttl": 86400}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let key = a.body["key"].as_str().unwrap().to_string();
    let kid = a.body["api_key"]["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("{kid}_")), "{key} {kid}");
    assert_eq!(a.body["api_key"]["status"], "active");
    let a = admin.post(&keys, json!({"client_id": "nobody"})).await;
    assert_eq!(a.status, 404, "{}", a.text);
    let a = admin
        .post(&format!("{keys}/{kid}/rotate"), json!({"grace": 0}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let rotated = a.body["key"].as_str().unwrap().to_string();
    let kid2 = a.body["api_key"]["id"].as_str().unwrap().to_string();
    assert_eq!(a.body["replaces"]["id"], kid.as_str());
    assert_ne!(kid2, kid);
    let listed = admin.get(&format!("{keys}?client={id}")).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 2);
    assert!(!listed.text.contains(&key) && !listed.text.contains(&rotated));
    assert_eq!(
        admin.get(&format!("{keys}?client=nobody")).await.body["items"],
        json!([])
    );
    let a = admin
        .call(Method::POST, &format!("{keys}/{kid2}/revoke"), None, &[])
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["status"], "revoked");
    let a = admin
        .call(Method::POST, &format!("{keys}/{kid2}/revoke"), None, &[])
        .await;
    assert_eq!(a.status, 404, "revoked twice: {}", a.text);
    // The CLI sees what the API made.
    let cli = s.cli_json(&["api-key", "list", "--client", &id]);
    assert_eq!(cli.as_array().unwrap().len(), 2);

    // ----- a user's roles
    let users = format!("{e}/clients/{id}/users");
    let a = admin
        .post(
            &users,
            json!({"username": "ann", "password": "pw-ann-123456"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = admin
        .post(
            &format!("{e}/users/ann/roles"),
            json!({"roles": ["ROLE_CATALOG", "ROLE_ORDERS"]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["roles"], json!(["ROLE_CATALOG", "ROLE_ORDERS"]));

    // ----- user import: all or none, a bad line named
    let import = format!("{users}/import");
    let md5 = common::md5_hex("old-password");
    let bad = format!("username,hash\nbob,{md5}\ncarl,{md5}\ndora\n");
    let a = admin.post_raw(&import, "text/csv", &bad).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.body["message"].as_str().unwrap().contains("line 4"),
        "{}",
        a.text
    );
    assert_eq!(
        admin.get(&format!("{e}/users/bob")).await.status,
        404,
        "none written"
    );
    let dup = format!(
        "{{\"username\":\"bob\",\"hash\":\"{md5}\"}}\n{{\"username\":\"ann\",\"hash\":\"{md5}\"}}\n"
    );
    let a = admin.post_raw(&import, "application/x-ndjson", &dup).await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert!(
        a.body["message"].as_str().unwrap().contains("line 2"),
        "{}",
        a.text
    );
    let a = admin.post_raw(&import, "application/xml", "<x/>").await;
    assert_eq!(a.status, 415, "{}", a.text);
    let good = format!("username,hash\nbob,{md5}\ncarl,{md5},password\n");
    let a = admin.post_raw(&import, "text/csv", &good).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["imported"], 2);
    let bob = admin.get(&format!("{e}/users/bob")).await;
    assert_eq!(bob.status, 200);
    assert!(!bob.text.contains(&md5), "a read never shows a hash");

    // ----- an incumbent's keys: another environment's JWKS stands in
    let a = admin
        .post("/admin/v1/environments", json!({"name": "old"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    s.sync().await;
    let jwks: Value = send(s.get("/e/old/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    let old_kid = jwks["keys"][0]["kid"].as_str().unwrap().to_string();
    let published = format!("{e}/keys/published");
    let a = admin
        .post(&published, json!({"name": "auth0", "jwks": jwks}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["kids"], json!([old_kid]));
    assert_eq!(a.body["for"], "access-tokens");
    s.sync().await;
    let served: Value = send(s.get("/.well-known/jwks.json"))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        served["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == old_kid.as_str())
    );
    let a = admin
        .post(&published, json!({"name": "bad", "jwks": {"keys": "no"}}))
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    assert_eq!(
        admin.get(&published).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let one = admin.get(&format!("{published}/auth0")).await;
    assert_eq!(one.status, 200);
    let a = admin
        .call(Method::DELETE, &format!("{published}/auth0"), None, &[])
        .await;
    assert_eq!(a.status, 428);
    let a = admin
        .call(
            Method::DELETE,
            &format!("{published}/auth0"),
            None,
            &[("if-match", one.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    assert_eq!(admin.get(&format!("{published}/auth0")).await.status, 404);

    // ----- trusted issuers (an HS256 secret: sealed, never read back)
    let trusted = format!("{e}/trusted-issuers");
    let shared = "incumbent-shared-secret-0123456789abcdef";
    let a = admin
        .post(
            &trusted,
            json!({"name": "legacy", "hs256_secret": shared, "issuer": "https://legacy.example.com"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.body["keys"], "hs256");
    assert_eq!(a.body["for"], "bearer-exchange");
    assert_eq!(a.body["client_claim"], "sub");
    let a = admin
        .post(&trusted, json!({"name": "two", "jwks": jwks, "pem": "x"}))
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    let a = admin
        .post(&trusted, json!({"name": "legacy", "jwks": jwks}))
        .await;
    assert_eq!(a.status, 409, "{}", a.text);
    let list = admin.get(&trusted).await;
    assert_eq!(list.body["items"].as_array().unwrap().len(), 1);
    assert!(!list.text.contains(shared));
    // Revocation of an incumbent's token by id, and of a client's tokens.
    let a = admin
        .call(
            Method::POST,
            &format!("{e}/refresh-jwts/foreign-jti-1/revoke"),
            None,
            &[],
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);
    let a = admin
        .post(&format!("{e}/refresh-jwts"), json!({"client_id": id}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let a = admin
        .call(
            Method::POST,
            &format!("{e}/clients/{id}/revoke-refresh-tokens"),
            None,
            &[],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["refresh_jwts"], 1);
    let tag = admin.get(&format!("{trusted}/legacy")).await;
    let a = admin
        .call(
            Method::DELETE,
            &format!("{trusted}/legacy"),
            None,
            &[("if-match", tag.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 204, "{}", a.text);

    // ----- key import (an HS256 environment's shared secret)
    let a = admin
        .post(
            "/admin/v1/environments",
            json!({"name": "spring", "alg": "HS256"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let hs = "spring-shared-signing-secret-0123456789abcdef";
    let a = admin
        .post(
            "/admin/v1/environments/spring/keys/import",
            json!({"hs256_secret": hs, "kid": "pinned"}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(
        (a.body["kid"].as_str(), a.body["alg"].as_str()),
        (Some("pinned"), Some("HS256"))
    );
    let a = admin
        .post(
            "/admin/v1/environments/spring/keys/import",
            json!({"pem": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"}),
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.text);

    // ----- every write audited, no secret in the log
    for action in [
        "api_key.create",
        "api_key.rotate",
        "api_key.revoke",
        "user.set_roles",
        "user.import",
        "key.publish",
        "key.unpublish",
        "trust.create",
        "trust.delete",
        "refresh_jwt.revoke",
        "client.revoke_refresh_tokens",
        "key.import",
    ] {
        assert!(
            !admin.audited(action).await.is_empty(),
            "{action} not audited"
        );
    }
    assert_eq!(
        admin.audited("user.import").await.len(),
        1,
        "refusals are not entries"
    );
    let log = admin.get("/admin/v1/audit?limit=1000").await.text;
    for secret in [key.as_str(), rotated.as_str(), shared, hs, md5.as_str()] {
        assert!(!log.contains(secret), "a secret in the audit log");
    }
}

/// `admin:env:<name>` limits an admin client to those environments: routes
/// elsewhere are 403, lists and the audit log show only its environments,
/// and it cannot reach beyond its limit through the admin API's own
/// clients, keys or trusted issuers in the default environment.
#[tokio::test]
async fn an_admin_limited_to_environments_stays_in_them() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    for env in ["staging", "production"] {
        let a = admin
            .post("/admin/v1/environments", json!({"name": env}))
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let api = admin
        .get("/admin/v1/environments/default/apis/tollgate-admin")
        .await;
    let a = admin
        .call(
            Method::PATCH,
            "/admin/v1/environments/default/apis/tollgate-admin",
            Some(json!({"add_permissions": ["admin:env:staging", "admin:env:default"]})),
            &[("if-match", api.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let clients = "/admin/v1/environments/default/clients";
    let all = json!(["admin:read", "admin:write", "admin:secrets"]);
    let mut limited_admins = Vec::new();
    for extra in [json!(["admin:env:staging"]), json!(["admin:env:default"])] {
        let mut grants = all.as_array().unwrap().clone();
        grants.extend(extra.as_array().unwrap().iter().cloned());
        let a = admin
            .post(
                clients,
                json!({"name": "limited", "apis": [{"api": "tollgate-admin", "grants": grants}]}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        limited_admins.push((
            a.body["client"]["client_id"].as_str().unwrap().to_string(),
            a.body["client_secret"].as_str().unwrap().to_string(),
        ));
    }
    s.sync().await;
    let (id, secret) = &limited_admins[0];
    let staging = Admin {
        s: &s,
        base: s.url.clone(),
        token: token_for(&s, id, secret, "tollgate-admin").await,
    };
    let a = staging
        .post(
            "/admin/v1/environments/staging/clients",
            json!({"name": "Acme staging"}),
        )
        .await;
    assert_eq!(a.status, 201, "its own environment: {}", a.text);
    let names: Vec<Value> = staging
        .all("/admin/v1/environments", 10)
        .await
        .into_iter()
        .map(|e| e["name"].clone())
        .collect();
    assert_eq!(names, [json!("staging")]);
    for path in [
        "/admin/v1/environments/production",
        "/admin/v1/environments/production/clients",
        "/admin/v1/environments/default/clients",
        "/admin/v1/environments/st%61ging/clients",
        "/admin/v1/environments/production/clients/any/usage",
    ] {
        let a = staging.get(path).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (403, Some("insufficient_scope")),
            "{path}"
        );
    }
    let a = staging
        .post(
            "/admin/v1/environments/production/clients",
            json!({"name": "x"}),
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(
        a.header("www-authenticate")
            .unwrap()
            .contains("admin:env:production")
    );
    let a = staging
        .post("/admin/v1/environments", json!({"name": "new"}))
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    // Its audit log: its environment's entries only.
    let log = staging.all("/admin/v1/audit", 1000).await;
    assert!(!log.is_empty());
    assert!(log.iter().all(|e| e["env"] == "staging"), "{log:?}");
    assert!(admin.all("/admin/v1/audit", 1000).await.len() > log.len());

    // Limited to the default environment: not to its admin clients.
    let (id, secret) = &limited_admins[1];
    let home = Admin {
        s: &s,
        base: s.url.clone(),
        token: token_for(&s, id, secret, "tollgate-admin").await,
    };
    let a = home.post(clients, json!({"name": "ok", "apis": []})).await;
    assert_eq!(a.status, 201, "an ordinary client: {}", a.text);
    let ordinary = a.body["client"]["client_id"].as_str().unwrap().to_string();
    let a = home
        .post(
            clients,
            json!({"name": "wider", "apis": [{"api": "tollgate-admin", "grants": all}]}),
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    let (other, _) = &limited_admins[0];
    for (path, body) in [
        (format!("{clients}/{other}/rotate-secret"), json!({})),
        (
            format!("{clients}/{other}/users"),
            json!({"username": "u", "password": "p-123456789"}),
        ),
        (
            "/admin/v1/environments/default/refresh-jwts".to_string(),
            json!({"client_id": other}),
        ),
        (
            "/admin/v1/environments/default/keys/import".to_string(),
            json!({"pem": "x"}),
        ),
        (
            "/admin/v1/environments/default/trusted-issuers".to_string(),
            json!({"pem": "x"}),
        ),
    ] {
        let a = home.post(&path, body).await;
        assert_eq!(a.status, 403, "{path}: {}", a.text);
    }
    let c = home.get(&format!("{clients}/{ordinary}")).await;
    let a = home
        .call(
            Method::PATCH,
            &format!("{clients}/{ordinary}"),
            Some(json!({"apis": [{"api": "tollgate-admin", "grants": all}]})),
            &[("if-match", c.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
    let api = home
        .get("/admin/v1/environments/default/apis/tollgate-admin")
        .await;
    assert_eq!(api.status, 200, "reading is fine");
    let a = home
        .call(
            Method::PATCH,
            "/admin/v1/environments/default/apis/tollgate-admin",
            Some(json!({"add_permissions": ["admin:env:production"]})),
            &[("if-match", api.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.text);
}

/// Two admins writing from the same `ETag` at the same moment: the store
/// settles it, exactly one succeeds and the other gets 412 (the check and
/// the write are one step), for changes and deletes alike.
#[tokio::test]
async fn concurrent_writes_from_one_etag_have_exactly_one_winner() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let e = "/admin/v1/environments/default";
    let a = admin
        .post(&format!("{e}/clients"), json!({"name": "Acme"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let client = format!(
        "{e}/clients/{}",
        a.body["client"]["client_id"].as_str().unwrap()
    );
    for round in 0..8 {
        let read = admin.get(&client).await;
        let tag = read.header("etag").unwrap().to_string();
        let patch = |who: &str| json!({"name": format!("round {round} by {who}")});
        let h = [("if-match", tag.as_str())];
        let (x, y) = tokio::join!(
            admin.call(Method::PATCH, &client, Some(patch("x")), &h),
            admin.call(Method::PATCH, &client, Some(patch("y")), &h),
        );
        let mut statuses = [x.status, y.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 412],
            "round {round}: {} / {}",
            x.text,
            y.text
        );
        let winner = if x.status == 200 { &x } else { &y };
        assert_eq!(admin.get(&client).await.body["name"], winner.body["name"]);
    }
    for round in 0..4 {
        let api = format!("{e}/apis/race{round}");
        let a = admin
            .post(
                &format!("{e}/apis"),
                json!({"identifier": format!("race{round}"), "permissions": ["read"]}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
        let tag = admin.get(&api).await.header("etag").unwrap().to_string();
        let h = [("if-match", tag.as_str())];
        let (x, y) = tokio::join!(
            admin.call(
                Method::PATCH,
                &api,
                Some(json!({"add_permissions": ["write"]})),
                &h
            ),
            admin.call(Method::DELETE, &api, None, &h),
        );
        let mut statuses = [x.status, y.status];
        statuses.sort_unstable();
        // One wins; the other finds it changed (412), or gone if the
        // delete had already finished when it read (404): never both.
        assert!(
            statuses == [200, 412] || statuses == [204, 412] || statuses == [204, 404],
            "round {round}: {} / {}",
            x.text,
            y.text
        );
    }
}

/// `audit_retention`: the purge task removes entries older than it (it runs
/// at start, then every minute), and `tollgate audit --json` exports JSON
/// lines.
#[tokio::test]
async fn audit_entries_past_the_retention_are_purged() {
    let mut s = Server::start_with(&[], &[("TOLLGATE_AUDIT_RETENTION", "2s")]);
    let (admin, _, _) = bootstrap(&s).await;
    let a = admin
        .post("/admin/v1/environments", json!({"name": "staging"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    let lines = s.cli_ok(&["audit", "--json"]);
    let entries: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{lines}");
    assert_eq!(entries[1]["action"], "environment.create");
    // Past the retention, a restart's first purge removes both.
    s.crash_and_restart(std::time::Duration::from_secs(3));
    let mut left = usize::MAX;
    for _ in 0..100 {
        left = s.cli_ok(&["audit", "--json"]).lines().count();
        if left == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(left, 0, "the purge left entries past audit_retention");
    assert!(s.logs().contains("purged audit entries"), "{}", s.logs());
}

/// `tollgate --server URL …` with `TOLLGATE_ADMIN_TOKEN`: the provisioning
/// commands run over the admin API, with the output of local mode.
fn remote(s: &Server, token: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::BIN)
        .arg("--server")
        .arg(&s.url)
        .args(args)
        // No local store may be touched: a data directory that is not there.
        .env("TOLLGATE_DATA_DIR", "/nonexistent/tollgate-remote-test")
        .env("TOLLGATE_ADMIN_TOKEN", token)
        .output()
        .unwrap()
}

fn remote_ok(s: &Server, token: &str, args: &[&str]) -> String {
    let out = remote(s, token, args);
    assert!(
        out.status.success(),
        "tollgate --server {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn remote_json(s: &Server, token: &str, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    serde_json::from_str(&remote_ok(s, token, &full)).unwrap()
}

#[tokio::test]
async fn the_cli_drives_a_remote_server_with_the_output_of_local_mode() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let t = admin.token.clone();
    // Provision remotely.
    let v = remote_json(&s, &t, &["env", "create", "staging"]);
    assert_eq!(v["name"], "staging");
    remote_ok(
        &s,
        &t,
        &[
            "api",
            "create",
            "odds",
            "--permission",
            "read",
            "--package",
            "basic=read",
        ],
    );
    let c = remote_json(
        &s,
        &t,
        &["client", "create", "--name", "Acme", "--api", "odds=basic"],
    );
    let id = c["client_id"].as_str().unwrap().to_string();
    let secret = c["client_secret"].as_str().unwrap().to_string();
    s.sync().await;
    let r = s.token(&id, &secret, &[("audience", "odds")]).await;
    assert_eq!(r.status(), 200, "the remotely made client works");
    remote_ok(&s, &t, &["client", "disable", &id]);
    remote_ok(&s, &t, &["client", "enable", &id]);
    let rotated = remote_json(&s, &t, &["client", "rotate-secret", &id, "--grace", "1h"]);
    assert_eq!(rotated["client_id"], id.as_str());
    assert!(rotated["previous_secrets_expire_at"].is_string());
    let k = remote_json(
        &s,
        &t,
        &["api-key", "create", "--client", &id, "--name", "shop"],
    );
    assert!(k["api_key"].as_str().unwrap().starts_with("tgk_"));
    let u = remote_json(
        &s,
        &t,
        &[
            "user",
            "create",
            "--client",
            &id,
            "--username",
            "ann",
            "--password",
            "pw-ann-123456",
        ],
    );
    assert_eq!(u["username"], "ann");
    let rj = remote_json(&s, &t, &["refresh-jwt", "issue", "--client", &id]);
    assert!(rj["refresh_jwt"].is_string());
    remote_ok(&s, &t, &["key", "rotate", "--env", "staging"]);

    // Changes: each prints what local mode prints of the changed record.
    let updated = remote_json(
        &s,
        &t,
        &[
            "client",
            "update",
            &id,
            "--name",
            "Acme Ltd",
            "--obligation",
            "reuse:30s",
            "--role",
            "ROLE_A",
        ],
    );
    assert_eq!(updated, s.cli_json(&["client", "show", &id]));
    assert_eq!(updated["name"], "Acme Ltd");
    let ob = remote_json(&s, &t, &["client", "set-obligation", &id, "inherit"]);
    assert_eq!(ob, json!({"client_id": id, "obligation": null}));
    let api = remote_json(
        &s,
        &t,
        &[
            "api",
            "update",
            "odds",
            "--permission",
            "write",
            "--token-lifetime",
            "5m",
        ],
    );
    let local_api = |name: &str| {
        s.cli_json(&["api", "list"])
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["identifier"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(api, local_api("odds"));
    assert_eq!(api["token_lifetime"], 300);
    let ob = remote_json(&s, &t, &["api", "set-obligation", "odds", "limit:10/60s"]);
    assert_eq!(ob["obligation"], local_api("odds")["obligation"]);
    assert!(!ob["obligation"].is_null());
    let roles = remote_json(
        &s,
        &t,
        &["user", "set-roles", "ann", "--role", "ROLE_CATALOG"],
    );
    assert_eq!(roles["roles"], json!(["ROLE_CATALOG"]));
    remote_ok(
        &s,
        &t,
        &[
            "user",
            "set-password",
            "ann",
            "--password",
            "pw-ann-new-123456",
        ],
    );
    let file = s.data_dir().join("users.csv");
    std::fs::write(
        &file,
        format!("username,hash\nbob,{}\n", common::md5_hex("bob-pw")),
    )
    .unwrap();
    let imported = remote_json(
        &s,
        &t,
        &["user", "import", "--client", &id, file.to_str().unwrap()],
    );
    assert_eq!(
        imported,
        json!({"imported": 1, "client_id": id, "env": "default"})
    );
    std::fs::write(&file, "username,hash\ncarl\n").unwrap();
    let out = remote(
        &s,
        &t,
        &["user", "import", "--client", &id, file.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 2"));

    // An environment changed: hosts, a setting, the algorithm (a new key).
    let env = remote_json(
        &s,
        &t,
        &[
            "env",
            "update",
            "staging",
            "--host",
            "staging.example.com",
            "--set",
            "rfc6749_token_lifetime=5m",
            "--alg",
            "EdDSA",
        ],
    );
    assert_eq!(env["hosts"], json!(["staging.example.com"]));
    assert_eq!(env["alg"], "EdDSA");
    assert_eq!(env["settings"]["rfc6749_token_lifetime"], "5m");
    assert_eq!(env["new_key"]["alg"], "EdDSA");
    let local_env = s
        .cli_json(&["env", "list"])
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "staging")
        .cloned()
        .unwrap();
    assert_eq!(local_env["settings"], env["settings"]);
    assert_eq!(local_env["alg"], env["alg"]);

    // The switch-over: a trusted issuer, published keys, an imported key.
    let secret_file = s.data_dir().join("hs256");
    std::fs::write(&secret_file, "incumbent-shared-secret-0123456789\n").unwrap();
    let trusted = remote_json(
        &s,
        &t,
        &[
            "refresh-jwt",
            "trust",
            "--hs256-secret-file",
            secret_file.to_str().unwrap(),
            "--name",
            "legacy",
        ],
    );
    let local_file = s.data_dir().join("hs256-local");
    std::fs::write(&local_file, "another-shared-secret-0123456789ab\n").unwrap();
    let local = s.cli_json(&[
        "refresh-jwt",
        "trust",
        "--hs256-secret-file",
        local_file.to_str().unwrap(),
        "--name",
        "local",
    ]);
    let same = |mut v: Value| {
        let o = v.as_object_mut().unwrap();
        o.remove("name");
        o.remove("created_at");
        v
    };
    assert_eq!(same(trusted), same(local));
    assert_eq!(
        remote_json(&s, &t, &["refresh-jwt", "untrust", "legacy"]),
        json!({"untrusted": "legacy"})
    );
    s.sync().await;
    let jwks_file = s.data_dir().join("jwks.json");
    let jwks = send(s.get("/e/staging/.well-known/jwks.json"))
        .await
        .text()
        .await
        .unwrap();
    let published_kids = serde_json::from_str::<Value>(&jwks).unwrap()["keys"]
        .as_array()
        .unwrap()
        .len();
    std::fs::write(&jwks_file, jwks).unwrap();
    let published = remote_json(
        &s,
        &t,
        &[
            "key",
            "publish",
            "--jwks",
            jwks_file.to_str().unwrap(),
            "--name",
            "old",
        ],
    );
    assert_eq!(published["name"], "old");
    assert_eq!(
        published["kids"].as_array().unwrap().len(),
        published_kids,
        "{published}"
    );
    assert_eq!(
        remote_json(&s, &t, &["key", "unpublish", "old"]),
        json!({"unpublished": "old"})
    );
    remote_ok(&s, &t, &["env", "create", "spring", "--alg", "HS256"]);
    let imported = remote_json(
        &s,
        &t,
        &[
            "key",
            "import",
            "--env",
            "spring",
            "--hs256-secret-file",
            secret_file.to_str().unwrap(),
            "--kid",
            "pinned",
        ],
    );
    assert_eq!(
        (
            imported["kid"].as_str(),
            imported["alg"].as_str(),
            imported["published"].as_bool()
        ),
        (Some("pinned"), Some("HS256"), Some(false))
    );

    // Reads: the same output as local mode, as JSON and as text.
    for args in [
        vec!["client", "list"],
        vec!["client", "show", id.as_str()],
        vec!["api-key", "list"],
        vec!["user", "list", "--client", id.as_str()],
        vec!["api", "list"],
    ] {
        let local = s.cli_json(&args);
        let over = remote_json(&s, &t, &args);
        assert_eq!(over, local, "{args:?} --json");
        assert_eq!(remote_ok(&s, &t, &args), s.cli_ok(&args), "{args:?}");
    }
    // Environments alike, but for the issuer: the server's own (a local
    // command derives it from its own public_url, which may differ).
    let no_issuer = |mut v: Value| {
        for e in v.as_array_mut().unwrap() {
            let issuer = e.as_object_mut().unwrap().remove("issuer").unwrap();
            assert!(issuer.is_string());
        }
        v
    };
    let over = remote_json(&s, &t, &["env", "list"]);
    assert!(over[0]["issuer"].as_str().unwrap().starts_with(&s.url));
    assert_eq!(no_issuer(over), no_issuer(s.cli_json(&["env", "list"])));
    let local: Vec<Value> = s
        .cli_ok(&["--json", "audit"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let over: Vec<Value> = remote_ok(&s, &t, &["--json", "audit"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(over, local, "audit --json");
    assert!(local.iter().any(|e| e["action"] == "api_key.create"));
    assert_eq!(remote_ok(&s, &t, &["audit"]), s.cli_ok(&["audit"]));

    // Deletes and their output.
    let out = remote_json(&s, &t, &["client", "delete", &id]);
    assert_eq!(out, json!({"deleted": id}));
    assert!(
        !s.cli_json(&["client", "list"])
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == id.as_str()),
        "deleted"
    );

    // Refusals: a bad token, no token, a command that runs on the host only.
    let out = remote(&s, "not-a-token", &["client", "list"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    let out = std::process::Command::new(common::BIN)
        .args(["--server", &s.url, "client", "list"])
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("TOLLGATE_ADMIN_TOKEN"));
    let out = remote(&s, &t, &["doctor"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("on the host"));
    // The token from a file.
    let file = s.data_dir().join("admin-token");
    std::fs::write(&file, format!("{t}\n")).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["--server", &s.url, "--admin-token-file"])
        .arg(&file)
        .args(["--json", "env", "list"])
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Today's usage row of `client` as the admin API at `admin` reports it,
/// once `ready` holds (each instance flushes every usage_flush_interval).
async fn usage_when(admin: &Admin<'_>, client: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let path = format!("/admin/v1/environments/default/clients/{client}/usage");
    let mut last = Value::Null;
    for _ in 0..100 {
        let a = admin.get(&path).await;
        assert_eq!(a.status, 200, "{}", a.text);
        last = a.body;
        if ready(&last) {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("usage never got there: {last}");
}

/// `GET …/clients/{id}/usage`: tokens issued, errors and 429s per UTC day
/// (30 days by default, zeros included), the limit's state; two instances'
/// counts add up, and one stopping flushes what it counted.
#[tokio::test]
async fn usage_per_day_adds_up_across_instances_with_the_quota_state() {
    let s = Server::start_with(&[], &[("TOLLGATE_USAGE_FLUSH_INTERVAL", "200ms")]);
    let (admin, _, _) = bootstrap(&s).await;
    s.cli_ok(&["api", "create", "orders", "--permission", "read"]);
    let (id, secret) = s.client(&["--name", "acme", "--api", "orders=read"]);
    s.cli_ok(&["client", "set-obligation", &id, "limit:3/1h"]);
    // Another instance that would flush only in an hour: its stop does.
    let mut other = s.start_beside(&[], &[("TOLLGATE_USAGE_FLUSH_INTERVAL", "1h")]);
    s.sync().await;
    other.sync().await;
    let ok = |r: reqwest::Response| async move { r.status().as_u16() };
    assert_eq!(ok(s.token(&id, &secret, &[]).await).await, 200);
    assert_eq!(ok(s.token(&id, &secret, &[]).await).await, 200);
    assert_eq!(ok(s.token(&id, "wrong", &[]).await).await, 401);
    assert_eq!(ok(other.token(&id, &secret, &[]).await).await, 200);
    assert_eq!(ok(other.token(&id, &secret, &[]).await).await, 429);
    // (A flush may fall between two calls: wait for both kinds.)
    let u = usage_when(&admin, &id, |u| {
        u["days"][29]["issued"] == 2 && u["days"][29]["errors"] == 1
    })
    .await;
    assert_eq!(u["days"].as_array().unwrap().len(), 30);
    assert_eq!(u["days"][29]["throttled"], 0, "the other instance holds it");
    assert_eq!(u["days"][0]["issued"], 0, "days without calls are zeros");
    assert_eq!(u["to"], u["days"][29]["day"]);
    assert_eq!(
        (
            &u["quota"]["max"],
            &u["quota"]["window"],
            &u["quota"]["used"]
        ),
        (&json!(3), &json!(3600), &json!(3))
    );
    assert!(other.stop().success());
    let u = usage_when(&admin, &id, |u| u["days"][29]["issued"] == 3).await;
    assert_eq!(
        (&u["days"][29]["errors"], &u["days"][29]["throttled"]),
        (&json!(1), &json!(1)),
        "{u}"
    );

    // A range; refusals.
    let day = u["to"].as_str().unwrap();
    let path = format!("/admin/v1/environments/default/clients/{id}/usage");
    let a = admin.get(&format!("{path}?from={day}&to={day}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["days"].as_array().unwrap().len(), 1);
    assert_eq!(a.body["days"][0]["issued"], 3);
    for (query, status) in [
        ("?from=2026-02-30", 400),
        ("?from=2026-12-02&to=2026-12-01", 400),
        ("?from=2020-01-01&to=2026-01-01", 400),
        ("?since=2026-01-01", 400),
    ] {
        let a = admin.get(&format!("{path}{query}")).await;
        assert_eq!(a.status, status, "{query}: {}", a.text);
    }
    let a = admin
        .get("/admin/v1/environments/default/clients/nobody/usage")
        .await;
    assert_eq!(a.status, 404, "{}", a.text);
    // A client without a limit has no quota.
    let (free, _) = s.client(&["--name", "free", "--api", "orders=read"]);
    let a = admin
        .get(&format!(
            "/admin/v1/environments/default/clients/{free}/usage"
        ))
        .await;
    assert_eq!(
        (a.status, &a.body["quota"]),
        (200, &Value::Null),
        "{}",
        a.text
    );
}

/// The partner routes, mirroring `tollgate partner …`: create (idempotent),
/// list with the cursor, get with an `ETag`, offers per environment changed
/// under `If-Match` (one winner of two from one tag), the one-time link,
/// disable (its client refused on the running server) and enable, its
/// accounts and clients, the audit trail; an admin limited to environments
/// reads only what lies in them and may write nothing here.
#[tokio::test]
async fn partners_through_http_mirror_the_cli() {
    let s = Server::start();
    let (admin, _, _) = bootstrap(&s).await;
    let a = admin
        .post("/admin/v1/environments", json!({"name": "staging"}))
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    for env in ["default", "staging"] {
        let a = admin
            .post(
                &format!("/admin/v1/environments/{env}/apis"),
                json!({"identifier": "odds", "packages": {"basic": ["odds:read"], "premium": ["odds:read", "odds:live"]}}),
            )
            .await;
        assert_eq!(a.status, 201, "{}", a.text);
    }
    let bad = admin
        .post(
            "/admin/v1/partners",
            json!({"id": "acme", "offers": [{"env": "default", "api": "odds", "package": "nope"}]}),
        )
        .await;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let body = json!({"id": "acme", "name": "Acme Betting",
        "offers": [{"env": "default", "api": "odds", "package": "basic"}]});
    let key = [("idempotency-key", "partner-acme-1")];
    let first = admin
        .call(Method::POST, "/admin/v1/partners", Some(body.clone()), &key)
        .await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.body["name"], "Acme Betting");
    assert_eq!(first.body["enabled"], true);
    let replay = admin
        .call(Method::POST, "/admin/v1/partners", Some(body.clone()), &key)
        .await;
    assert_eq!(
        (replay.status, &replay.body),
        (201, &first.body),
        "replayed"
    );
    assert_eq!(
        admin.post("/admin/v1/partners", body).await.status,
        409,
        "a second create without the key"
    );
    for id in ["beta", "gamma"] {
        let a = admin.post("/admin/v1/partners", json!({"id": id})).await;
        assert_eq!(a.status, 201, "{}", a.text);
        assert_eq!(a.body["name"], id, "the name defaults to the id");
    }
    let ids: Vec<Value> = admin
        .all("/admin/v1/partners", 2)
        .await
        .into_iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(ids, [json!("acme"), json!("beta"), json!("gamma")]);
    // The CLI sees what the API made.
    assert_eq!(s.cli_json(&["partner", "list"])[0]["name"], "Acme Betting");

    // Offers per environment, under If-Match.
    let acme = "/admin/v1/partners/acme";
    let read = admin.get(acme).await;
    assert_eq!(read.status, 200);
    let tag = read.header("etag").unwrap().to_string();
    let patch = json!({"offers": {"staging": [{"api": "odds", "package": "premium"}]}});
    assert_eq!(
        admin
            .call(Method::PATCH, acme, Some(patch.clone()), &[])
            .await
            .status,
        428
    );
    let h = [("if-match", tag.as_str())];
    let (x, y) = tokio::join!(
        admin.call(Method::PATCH, acme, Some(patch.clone()), &h),
        admin.call(Method::PATCH, acme, Some(json!({"name": "Acme Ltd"})), &h),
    );
    let mut statuses = [x.status, y.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{} / {}", x.text, y.text);
    let read = admin.get(acme).await;
    let tag = read.header("etag").unwrap().to_string();
    let a = admin
        .call(
            Method::PATCH,
            acme,
            Some(json!({"name": "Acme Ltd", "offers": {
                "staging": [{"api": "odds", "package": "premium"}],
                "default": [{"api": "odds", "package": "basic"}, {"api": "odds", "package": "premium"}]}})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["name"], "Acme Ltd");
    let offers: Vec<String> = a.body["offers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| format!("{}:{}={}", s_(&o["env"]), s_(&o["api"]), s_(&o["package"])))
        .collect();
    assert_eq!(
        offers,
        [
            "default:odds=basic",
            "default:odds=premium",
            "staging:odds=premium"
        ]
    );
    let tag = a.header("etag").unwrap().to_string();
    let withdrawn = admin
        .call(
            Method::PATCH,
            acme,
            Some(json!({"offers": {"default": [{"api": "odds", "package": "basic"}]}})),
            &[("if-match", &tag)],
        )
        .await;
    assert_eq!(withdrawn.status, 200, "{}", withdrawn.text);
    assert_eq!(withdrawn.body["offers"].as_array().unwrap().len(), 2);
    let bad = admin
        .call(
            Method::PATCH,
            acme,
            Some(json!({"offers": {"nowhere": [{"api": "odds", "package": "basic"}]}})),
            &[("if-match", withdrawn.header("etag").unwrap())],
        )
        .await;
    assert_eq!(bad.status, 404, "{}", bad.text);

    // The one-time link: shown once, it needs admin:secrets.
    let inv = admin
        .post(
            "/admin/v1/partners/acme/invitations",
            json!({"expires_in": 3600}),
        )
        .await;
    assert_eq!(inv.status, 201, "{}", inv.text);
    let link = inv.body["link"].as_str().unwrap().to_string();
    assert!(link.contains("/portal/accept?token="), "{link}");
    let page = send(s.http.get(&link)).await;
    assert_eq!(page.status(), 200, "the link opens the sign-up page");
    let custom = admin
        .post(
            "/admin/v1/partners/acme/invitations",
            json!({"portal_url": "https://partners.example.com/p"}),
        )
        .await;
    assert!(
        custom.body["link"]
            .as_str()
            .unwrap()
            .starts_with("https://partners.example.com/p/accept?token="),
        "{}",
        custom.text
    );
    assert_eq!(
        admin
            .post("/admin/v1/partners/nobody/invitations", json!({}))
            .await
            .status,
        404
    );
    let accounts = admin.get("/admin/v1/partners/acme/accounts").await;
    assert_eq!(accounts.status, 200, "{}", accounts.text);
    assert_eq!(accounts.body["items"], json!([]));
    assert_eq!(
        admin.get("/admin/v1/partners/nobody/accounts").await.status,
        404
    );

    // A client the partner owns (made in the portal) is in its list, and
    // disabling the partner refuses it on the running server.
    let client = partner_client_via_portal(&s, &link, "default").await;
    let clients = admin.get("/admin/v1/partners/acme/clients").await;
    assert_eq!(clients.status, 200, "{}", clients.text);
    assert_eq!(clients.body["items"][0]["client_id"], json!(client.0));
    assert_eq!(clients.body["items"][0]["enabled"], true);
    let accounts = admin.get("/admin/v1/partners/acme/accounts").await;
    assert_eq!(accounts.body["items"][0]["login"], "jane");
    assert!(
        !accounts.text.contains("argon2"),
        "no password hash: {}",
        accounts.text
    );
    let off = admin
        .post("/admin/v1/partners/acme/disable", json!({}))
        .await;
    assert_eq!((off.status, &off.body["enabled"]), (200, &json!(false)));
    let t = std::time::Instant::now();
    while s.token(&client.0, &client.1, &[]).await.status() != 401 {
        assert!(
            t.elapsed() < std::time::Duration::from_secs(10),
            "still served"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        admin.get("/admin/v1/partners/acme/clients").await.body["items"][0]["enabled"],
        false
    );
    let on = admin
        .post("/admin/v1/partners/acme/enable", json!({}))
        .await;
    assert_eq!((on.status, &on.body["enabled"]), (200, &json!(true)));
    let audit = admin.all("/admin/v1/audit", 100).await;
    for action in [
        "partner.create",
        "partner.update",
        "partner.invite",
        "partner.disable",
        "partner.enable",
    ] {
        assert!(
            audit
                .iter()
                .any(|e| e["action"] == action && e["target"] == "acme"),
            "{action} in the audit log"
        );
    }
    let text = serde_json::to_string(&audit).unwrap();
    assert!(!text.contains(&link), "no invitation link in the audit log");
    assert!(!text.contains(&client.1), "no secret in the audit log");

    // An admin limited to staging: reads staging's part, writes nothing.
    let api = admin
        .get("/admin/v1/environments/default/apis/tollgate-admin")
        .await;
    let a = admin
        .call(
            Method::PATCH,
            "/admin/v1/environments/default/apis/tollgate-admin",
            Some(json!({"add_permissions": ["admin:env:staging"]})),
            &[("if-match", api.header("etag").unwrap())],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let a = admin
        .post(
            "/admin/v1/environments/default/clients",
            json!({"name": "limited", "apis": [{"api": "tollgate-admin",
                "grants": ["admin:read", "admin:write", "admin:secrets", "admin:env:staging"]}]}),
        )
        .await;
    assert_eq!(a.status, 201, "{}", a.text);
    s.sync().await;
    let staging = Admin {
        s: &s,
        base: s.url.clone(),
        token: token_for(
            &s,
            a.body["client"]["client_id"].as_str().unwrap(),
            a.body["client_secret"].as_str().unwrap(),
            "tollgate-admin",
        )
        .await,
    };
    let seen = staging.get(acme).await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    assert_eq!(
        seen.body["offers"],
        json!([{"env": "staging", "api": "odds", "package": "premium"}]),
        "only its environments' offers"
    );
    assert_eq!(
        staging.get("/admin/v1/partners/acme/clients").await.body["items"],
        json!([]),
        "the client is in default"
    );
    for (path, body) in [
        ("/admin/v1/partners", json!({"id": "delta"})),
        ("/admin/v1/partners/acme/disable", json!({})),
        ("/admin/v1/partners/acme/invitations", json!({})),
    ] {
        let a = staging.post(path, body).await;
        assert_eq!(
            (a.status, a.body["error"].as_str()),
            (403, Some("insufficient_scope")),
            "{path}: {}",
            a.text
        );
    }
    let a = staging
        .call(
            Method::PATCH,
            acme,
            Some(json!({"name": "x"})),
            &[("if-match", "*")],
        )
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(admin.get(acme).await.body["enabled"], true, "unchanged");
}

fn s_(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// Follows an invitation `link` to a portal account `jane` and creates a
/// client in `env` from the first package offered there; returns its id
/// and secret.
async fn partner_client_via_portal(s: &Server, link: &str, env: &str) -> (String, String) {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(link).send().await.unwrap();
    let pre = set_cookie(&page, "tg_pre");
    let html = page.text().await.unwrap();
    let csrf = attr_after(&html, "name=\"csrf\"", "value");
    let token = link.split("token=").nth(1).unwrap();
    let signed = http
        .post(format!("{}/portal/accept", s.url))
        .header("cookie", &pre)
        .form(&[
            ("csrf", csrf.as_str()),
            ("token", token),
            ("login", "jane"),
            ("password", "long enough password"),
            ("password2", "long enough password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303);
    let session = set_cookie(&signed, "tg_portal");
    let html = http
        .get(format!("{}/portal/", s.url))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let form_at = html
        .find(&format!("name=\"env\" value=\"{env}\""))
        .unwrap_or_else(|| panic!("a form for {env} in {html}"));
    // The csrf field of the form this environment's field belongs to.
    let form_start = html[..form_at].rfind("action=\"/portal/clients\"").unwrap();
    let csrf = attr_after(&html[form_start..], "name=\"csrf\"", "value");
    let offer = attr_after(&html[form_at..], "name=\"offer\"", "value").replace("&quot;", "\"");
    let created = http
        .post(format!("{}/portal/clients", s.url))
        .header("cookie", &session)
        .form(&[
            ("csrf", csrf.as_str()),
            ("env", env),
            ("name", "feed"),
            ("offer", offer.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let html = created.text().await.unwrap();
    (
        element_text(&html, "client-id"),
        element_text(&html, "client-secret"),
    )
}

/// The `name=value` of the cookie `name` a response sets.
fn set_cookie(resp: &reqwest::Response, name: &str) -> String {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .and_then(|v| v.split(';').next())
        .unwrap_or_else(|| panic!("no {name} cookie"))
        .to_string()
}

/// The value of the first `attr="…"` after `marker` in `html`.
fn attr_after(html: &str, marker: &str, attr: &str) -> String {
    let at = html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"));
    let rest = &html[at..];
    let start = rest.find(&format!("{attr}=\"")).unwrap() + attr.len() + 2;
    rest[start..start + rest[start..].find('"').unwrap()].to_string()
}

/// The text of the element with id `id`.
fn element_text(html: &str, id: &str) -> String {
    let at = html.find(&format!("id=\"{id}\"")).unwrap();
    let start = at + html[at..].find('>').unwrap() + 1;
    html[start..start + html[start..].find('<').unwrap()].to_string()
}
