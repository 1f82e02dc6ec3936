//! The worked example of docs/ARCHITECTURE.md ("Where a new contract
//! goes"), run: a tiny contract — `echo-client`, which answers `GET
//! /whoami` with the name of the client a Basic secret authenticates —
//! written as a contract module would be, registered by one line, and then
//! served: its route, its settings, the path-collision check and the 404
//! where it is not enabled all come from that registration.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use secrecy::ExposeSecret as _;
use tollgate_core::crypto::master::MasterKey;
use tollgate_core::model::{Api, ApiGrant};
use tollgate_core::service::{EnvSettings, NewClient};
use tollgate_core::testing::MemoryStore;
use tollgate_core::{GrantError, Tollgate};
use tollgate_http::AppState;
use tollgate_http::contracts::common::{Named, On};
use tollgate_http::contracts::registry::{Configurable, Key, OptionalContract, parse_path};
use tollgate_http::params::{Authorization, BasicDecoding, authorization};

// ---- the contract module: its settings, registration data, handler, error map

/// Step 1: the contract's settings, with the provider's defaults.
#[derive(Debug, Clone)]
struct EchoClient {
    path: String,
}

impl Default for EchoClient {
    fn default() -> Self {
        Self {
            path: "/whoami".into(),
        }
    }
}

impl Named for EchoClient {
    const NAME: &'static str = "echo-client";
}

const KEYS: &[Key] = &[Key {
    name: "echo_client_path",
    help: "path of the echo-client contract",
}];

/// Step 2: its settings, as configuration keys (server-wide, and per
/// environment by `env update --set`)...
impl Configurable for EchoClient {
    fn keys(&self) -> &'static [Key] {
        KEYS
    }
    fn set(&mut self, key: &str, value: &str) -> Result<bool, String> {
        match key {
            "echo_client_path" => self.path = parse_path(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn get(&self, key: &str) -> Option<String> {
        (key == "echo_client_path").then(|| self.path.clone())
    }
    fn clone_box(&self) -> Box<dyn Configurable> {
        Box::new(self.clone())
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// ...and what the server needs to know of it: its name and endpoints.
impl OptionalContract for EchoClient {
    fn name(&self) -> &'static str {
        Self::NAME
    }
    fn endpoints(&self) -> Vec<(String, MethodRouter<AppState>)> {
        vec![(
            self.path.clone(),
            get(whoami).layer(Extension(Arc::new(self.clone()))),
        )]
    }
    fn clone_contract(&self) -> Box<dyn OptionalContract> {
        Box::new(self.clone())
    }
}

/// Step 3: the handler translates the wire format into a core request and
/// the outcome back, through the contract's own error map.
async fn whoami(
    State(state): State<AppState>,
    On(env, _): On<EchoClient>,
    headers: HeaderMap,
) -> Response {
    let Authorization::Basic { user, password } =
        authorization(&headers, BasicDecoding::Rfc6749Form)
    else {
        return (StatusCode::UNAUTHORIZED, "who are you?").into_response();
    };
    match state.core.authenticate(&env, &user, &password).await {
        Ok(client) => client.name.clone().into_response(),
        Err(e) => error_map(&e),
    }
}

/// The contract's error map: exhaustive, so a new core outcome cannot slip
/// through unmapped.
fn error_map(e: &GrantError) -> Response {
    let status = match e {
        GrantError::InvalidClient => StatusCode::UNAUTHORIZED,
        GrantError::Unavailable | GrantError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        GrantError::RateLimited(_) | GrantError::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        GrantError::UnauthorizedClient(_)
        | GrantError::AudienceNotGranted(_)
        | GrantError::UnknownAudience(_)
        | GrantError::AudienceRequired(_)
        | GrantError::InvalidScope(_)
        | GrantError::InvalidGrant(_)
        | GrantError::ExpiredGrant
        | GrantError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
    };
    (status, e.to_string()).into_response()
}

// ---- step 4, the registration, and what follows from it --------------------

#[tokio::test]
async fn a_contract_added_by_one_registration_is_served_configured_and_checked() {
    // The one line (in the real code, a line of `registry::all()`).
    let mut contracts = tollgate_http::contracts::Settings::default();
    contracts.optional.push(Box::new(EchoClient::default()));

    // Its settings are configuration keys like any other.
    assert_eq!(contracts.set("echo_client_path", "/me/"), Ok(true));
    assert!(contracts.set("echo_client_path", "me").is_err());
    assert!(
        contracts
            .values()
            .iter()
            .any(|(k, v)| k.name == "echo_client_path" && v == "/me")
    );
    // Its path takes part in the collision check.
    let mut clash = tollgate_http::contracts::Settings::default();
    clash.optional.push(Box::new(EchoClient {
        path: "/oauth/token".into(),
    }));
    assert!(clash.check_paths().unwrap_err().contains("echo-client"));
    assert!(contracts.check_paths().is_ok());

    // A core over the memory store, with a client, and the contract enabled
    // in one environment only.
    let core = Tollgate::open(
        Arc::new(MemoryStore::default()),
        &MasterKey::generate().unwrap(),
        "http://127.0.0.1",
    )
    .await
    .unwrap();
    core.create_environment(
        "partners",
        None,
        Default::default(),
        EnvSettings {
            contracts: Some(["echo-client".to_string()].into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    core.create_api(Api {
        env: "partners".into(),
        identifier: "odds".into(),
        permissions: Default::default(),
        packages: Default::default(),
        token_lifetime: None,
        obligation: None,
        token_permissions: false,
        created_at: 0,
    })
    .await
    .unwrap();
    let (client, secret) = core
        .create_client(NewClient {
            env: "partners".into(),
            name: "acme".into(),
            client_id: None,
            client_secret: None,
            apis: vec![ApiGrant {
                api: "odds".into(),
                grants: vec![],
            }],
            grant_types: Default::default(),
            token_lifetime: None,
            extra_claims: Default::default(),
            capabilities: Default::default(),
            obligation: None,
            roles: Default::default(),
            public: false,
        })
        .await
        .unwrap();
    let secret = secret.unwrap().expose_secret().to_string();
    // A second environment overrides the contract's path by the key's name.
    core.create_environment(
        "moved",
        None,
        Default::default(),
        EnvSettings {
            contracts: Some(["echo-client".to_string()].into()),
            settings: [("echo_client_path".to_string(), Some("/who".to_string()))].into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let contracts = Arc::new(contracts);
    let core = core
        .with_env_extension(Arc::new(tollgate_http::contracts::Resolver(
            contracts.clone(),
        )))
        .await
        .unwrap();
    let app = tollgate_http::router(AppState {
        core: Arc::new(core),
        contracts,
        ops: Default::default(),
        gate: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let whoami = |prefix: &str, secret: &str| {
        http.get(format!("http://{addr}{prefix}/me"))
            .basic_auth(&client.client_id, Some(secret))
            .send()
    };
    // Served where enabled (under the environment's prefix)...
    let r = whoami("/e/partners", &secret).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "acme");
    // ...through its own error map...
    let r = whoami("/e/partners", "wrong").await.unwrap();
    assert_eq!(r.status(), 401);
    // ...and a bare 404 where it is not enabled.
    assert_eq!(whoami("", &secret).await.unwrap().status(), 404);
    // Where an environment moved it, it answers at its own path only.
    let at = |path: &str| http.get(format!("http://{addr}{path}")).send();
    assert_eq!(at("/e/moved/who").await.unwrap().status(), 401);
    assert_eq!(at("/e/moved/me").await.unwrap().status(), 404);
    assert_eq!(at("/e/partners/who").await.unwrap().status(), 404);
}
