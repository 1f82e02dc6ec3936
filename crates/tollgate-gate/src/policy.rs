//! The route policy: the `[gate]` table of a TOML file (the server's
//! configuration file, or a file of its own) with its `[[gate.route]]`
//! entries.
//!
//! ```toml
//! [gate]
//! leeway = "30s"                 # exp/nbf tolerance, at most 60s
//!
//! [[gate.route]]
//! env = "default"                # optional: every environment
//! methods = ["GET"]              # optional: any method
//! path = "/v2/odds/*"
//! audience = "odds"
//! permissions_any = ["odds:read"]  # or permissions_all, or public = true
//! api_keys = true
//! ```
//!
//! The first route (in file order) whose environment, method and path match
//! decides; a request no route matches is denied. Every error names the
//! line it is about, so an operator can fix the file before a server loads
//! it (`tollgate gate check-policy FILE`).

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::path::{Pattern, RequestPath};

/// The largest leeway allowed on `exp`/`nbf`: clock skew, not a grace period.
pub const MAX_LEEWAY: Duration = Duration::from_secs(60);
/// Decisions cached by default.
pub const DEFAULT_CACHE_ENTRIES: usize = 10_000;

/// A policy file that does not validate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Something wrong at a line.
    #[error("line {line}: {message}")]
    At {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// Something wrong with the file as a whole.
    #[error("{0}")]
    Whole(String),
}

/// What a matching route requires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// No token needed.
    Public,
    /// A valid token for `audience` holding the permissions.
    Protected {
        /// The audience (API identifier) the token must be for.
        audience: String,
        /// At least one of these, when not empty.
        any: BTreeSet<String>,
        /// All of these.
        all: BTreeSet<String>,
        /// Whether an API key (`X-API-Key`) may stand in for a token.
        api_keys: bool,
    },
}

/// One `[[gate.route]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Where it was written (1-based line of its table).
    pub line: usize,
    /// The environment it applies to; `None`: every one.
    pub env: Option<String>,
    /// Methods (upper case); empty: any.
    pub methods: Vec<String>,
    /// The path pattern.
    pub path: Pattern,
    /// What it requires.
    pub rule: Rule,
}

impl Route {
    fn applies(&self, env: &str, method: &str, path: &RequestPath) -> bool {
        self.env.as_deref().is_none_or(|e| e == env)
            && (self.methods.is_empty() || self.methods.iter().any(|m| m == method))
            && self.path.matches(path)
    }
}

/// Names of the identity headers a gate answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    /// The token's client (`client_id` claim).
    pub client_id: String,
    /// The token's subject (`sub`).
    pub subject: String,
    /// The token's permissions, space-separated (`scope`).
    pub scopes: String,
}

impl Default for HeaderNames {
    fn default() -> Self {
        Self {
            client_id: "X-Client-Id".into(),
            subject: "X-Subject".into(),
            scopes: "X-Scopes".into(),
        }
    }
}

/// The gate's settings besides the routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Tolerance on `exp` and `nbf` (at most [`MAX_LEEWAY`]).
    pub leeway: Duration,
    /// Most decisions cached at once.
    pub cache_entries: usize,
    /// Identity header names.
    pub headers: HeaderNames,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            leeway: Duration::ZERO,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            headers: HeaderNames::default(),
        }
    }
}

/// A validated policy.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Policy {
    /// Settings.
    pub settings: Settings,
    /// Routes, in file order.
    pub routes: Vec<Route>,
}

/// Which route a request matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'p> {
    /// Its index in [`Policy::routes`] (part of the decision cache's key).
    pub index: usize,
    /// The route.
    pub route: &'p Route,
}

impl Policy {
    /// The first route matching a request, if any.
    pub fn route_for(&self, env: &str, method: &str, path: &RequestPath) -> Option<Matched<'_>> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.applies(env, method, path))
            .map(|(index, route)| Matched { index, route })
    }

    /// The label a request's route carries in metrics: its methods and
    /// path pattern as written (`GET,POST /v2/odds/**`, `* /health`), or
    /// `unmatched`, or `bad_path`. Stable across reloads that keep the
    /// route, unlike its line.
    pub fn route_label(&self, env: &str, method: &str, target: &str) -> String {
        let Ok(path) = RequestPath::parse(target) else {
            return "bad_path".into();
        };
        match self.route_for(env, method, &path) {
            Some(m) => {
                let methods = if m.route.methods.is_empty() {
                    "*".to_string()
                } else {
                    m.route.methods.join(",")
                };
                format!("{methods} {}", m.route.path.as_str())
            }
            None => "unmatched".into(),
        }
    }

    /// Parses and validates the `[gate]` table of TOML `text`; other
    /// top-level keys are ignored (they are the server's). A text without
    /// `[gate]` is an error: a gate with no routes would deny everything.
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let doc: Doc = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => PolicyError::At {
                line: line_of(text, span.start),
                message: e.message().to_string(),
            },
            None => PolicyError::Whole(e.message().to_string()),
        })?;
        let gate = doc
            .gate
            .ok_or_else(|| PolicyError::Whole("no [gate] table".into()))?;
        let at = |span: Range<usize>, message: String| PolicyError::At {
            line: line_of(text, span.start),
            message,
        };
        let mut settings = Settings::default();
        if let Some(l) = gate.leeway {
            let d = humantime::parse_duration(l.get_ref())
                .map_err(|e| at(l.span(), format!("leeway = '{}': {e}", l.get_ref())))?;
            if d > MAX_LEEWAY {
                return Err(at(
                    l.span(),
                    format!("leeway = '{}' is over the 60s maximum", l.get_ref()),
                ));
            }
            settings.leeway = d;
        }
        if let Some(n) = gate.cache_entries {
            settings.cache_entries = usize::try_from(*n.get_ref())
                .map_err(|_| at(n.span(), "cache_entries must be 0 or more".into()))?;
        }
        if let Some(h) = gate.headers {
            for (slot, name) in [
                (&mut settings.headers.client_id, h.client_id),
                (&mut settings.headers.subject, h.subject),
                (&mut settings.headers.scopes, h.scopes),
            ] {
                if let Some(n) = name {
                    if !is_header_name(n.get_ref()) {
                        return Err(at(
                            n.span(),
                            format!("'{}' is not a header name", n.get_ref()),
                        ));
                    }
                    *slot = n.into_inner();
                }
            }
        }
        if gate.route.is_empty() {
            return Err(PolicyError::Whole(
                "no [[gate.route]]: every request would be denied".into(),
            ));
        }
        let mut routes: Vec<Route> = Vec::with_capacity(gate.route.len());
        for r in gate.route {
            let line = line_of(text, r.span().start);
            let route = validate(r.into_inner(), &at)?;
            let route = Route { line, ..route };
            if let Some(twin) = routes
                .iter()
                .find(|o| o.env == route.env && o.methods == route.methods && o.path == route.path)
            {
                return Err(PolicyError::At {
                    line,
                    message: format!(
                        "route {} {} repeats the one at line {}, which always wins",
                        route.path.as_str(),
                        if route.methods.is_empty() {
                            "(any method)".to_string()
                        } else {
                            route.methods.join(",")
                        },
                        twin.line
                    ),
                });
            }
            routes.push(route);
        }
        Ok(Self { settings, routes })
    }
}

fn validate(
    r: RouteDoc,
    at: &impl Fn(Range<usize>, String) -> PolicyError,
) -> Result<Route, PolicyError> {
    let path = Pattern::parse(r.path.get_ref()).map_err(|e| at(r.path.span(), e))?;
    let env = match r.env {
        Some(e) if e.get_ref().is_empty() => {
            return Err(at(
                e.span(),
                "env must not be empty (leave it out: every environment)".into(),
            ));
        }
        Some(e) => Some(e.into_inner()),
        None => None,
    };
    let mut methods = Vec::new();
    if let Some(m) = r.methods {
        if m.get_ref().is_empty() {
            return Err(at(
                m.span(),
                "methods must not be empty (leave it out: any method)".into(),
            ));
        }
        for name in m.get_ref() {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(at(m.span(), format!("'{name}' is not an HTTP method")));
            }
            let upper = name.to_ascii_uppercase();
            if !methods.contains(&upper) {
                methods.push(upper);
            }
        }
        methods.sort();
    }
    let public = r.public.as_ref().is_some_and(|p| *p.get_ref());
    let set =
        |list: Option<Spanned<Vec<String>>>, key: &str| -> Result<BTreeSet<String>, PolicyError> {
            match list {
                None => Ok(BTreeSet::new()),
                Some(l) if l.get_ref().is_empty() => Err(at(
                    l.span(),
                    format!("{key} must not be empty (leave it out instead)"),
                )),
                Some(l) => {
                    let span = l.span();
                    let mut out = BTreeSet::new();
                    for p in l.into_inner() {
                        if p.is_empty() || p.contains(char::is_whitespace) || p.contains('"') {
                            return Err(at(
                                span.clone(),
                                format!("{key}: '{p}' is not a permission"),
                            ));
                        }
                        out.insert(p);
                    }
                    Ok(out)
                }
            }
        };
    let rule = if public {
        let extra = [
            r.audience.as_ref().map(|a| ("audience", a.span())),
            r.permissions_any
                .as_ref()
                .map(|a| ("permissions_any", a.span())),
            r.permissions_all
                .as_ref()
                .map(|a| ("permissions_all", a.span())),
            r.api_keys.as_ref().map(|a| ("api_keys", a.span())),
        ];
        if let Some((key, span)) = extra.into_iter().flatten().next() {
            return Err(at(span, format!("a public route takes no {key}")));
        }
        Rule::Public
    } else {
        let audience = match r.audience {
            Some(a) if !a.get_ref().is_empty() => a.into_inner(),
            Some(a) => return Err(at(a.span(), "audience must not be empty".into())),
            None => {
                return Err(at(
                    r.path.span(),
                    format!(
                        "route {} needs an audience (or public = true)",
                        r.path.get_ref()
                    ),
                ));
            }
        };
        Rule::Protected {
            audience,
            any: set(r.permissions_any, "permissions_any")?,
            all: set(r.permissions_all, "permissions_all")?,
            api_keys: r.api_keys.is_some_and(|a| a.into_inner()),
        }
    };
    Ok(Route {
        line: 0,
        env,
        methods,
        path,
        rule,
    })
}

/// RFC 9110 token characters, the syntax of a header name.
fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[derive(Deserialize)]
struct Doc {
    gate: Option<GateDoc>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateDoc {
    leeway: Option<Spanned<String>>,
    cache_entries: Option<Spanned<i64>>,
    headers: Option<HeadersDoc>,
    #[serde(default)]
    route: Vec<Spanned<RouteDoc>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeadersDoc {
    client_id: Option<Spanned<String>>,
    subject: Option<Spanned<String>>,
    scopes: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteDoc {
    env: Option<Spanned<String>>,
    methods: Option<Spanned<Vec<String>>>,
    path: Spanned<String>,
    public: Option<Spanned<bool>>,
    audience: Option<Spanned<String>>,
    permissions_any: Option<Spanned<Vec<String>>>,
    permissions_all: Option<Spanned<Vec<String>>>,
    api_keys: Option<Spanned<bool>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"listen = "127.0.0.1:8080"

[gate]
leeway = "30s"
headers = { subject = "X-User" }

[[gate.route]]
methods = ["get", "HEAD"]
path = "/v2/odds/*"
audience = "odds"
permissions_any = ["odds:read", "odds:all"]
api_keys = true

[[gate.route]]
env = "staging"
path = "/health"
public = true

[[gate.route]]
path = "/v2/admin/**"
audience = "odds"
permissions_all = ["odds:read", "odds:admin"]
"#;

    fn err_line(text: &str) -> (usize, String) {
        match Policy::parse(text) {
            Err(PolicyError::At { line, message }) => (line, message),
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn routes_are_labelled_by_methods_and_pattern() {
        let p = Policy::parse(GOOD).unwrap();
        assert_eq!(
            p.route_label("default", "GET", "/v2/odds/17?x=1"),
            "GET,HEAD /v2/odds/*"
        );
        assert_eq!(p.route_label("staging", "POST", "/health"), "* /health");
        assert_eq!(p.route_label("default", "POST", "/health"), "unmatched");
        assert_eq!(p.route_label("default", "GET", "/v2/../etc"), "bad_path");
    }

    #[test]
    fn parses_the_documented_shape() {
        let p = Policy::parse(GOOD).unwrap();
        assert_eq!(p.settings.leeway, Duration::from_secs(30));
        assert_eq!(p.settings.headers.subject, "X-User");
        assert_eq!(p.settings.headers.client_id, "X-Client-Id");
        assert_eq!(p.routes.len(), 3);
        assert_eq!(p.routes[0].line, 7);
        assert_eq!(p.routes[0].methods, ["GET", "HEAD"]);
        assert_eq!(p.routes[1].env.as_deref(), Some("staging"));
        assert_eq!(p.routes[1].rule, Rule::Public);
        match &p.routes[2].rule {
            Rule::Protected {
                audience,
                all,
                any,
                api_keys,
            } => {
                assert_eq!(audience, "odds");
                assert_eq!(all.len(), 2);
                assert!(any.is_empty());
                assert!(!api_keys);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn first_match_decides_and_unmatched_is_none() {
        let p = Policy::parse(GOOD).unwrap();
        let path = |s: &str| RequestPath::parse(s).unwrap();
        assert_eq!(
            p.route_for("default", "GET", &path("/v2/odds/1"))
                .map(|m| m.index),
            Some(0)
        );
        assert_eq!(p.route_for("default", "POST", &path("/v2/odds/1")), None);
        assert_eq!(
            p.route_for("staging", "GET", &path("/health"))
                .map(|m| m.index),
            Some(1)
        );
        assert_eq!(p.route_for("default", "GET", &path("/health")), None);
        assert_eq!(
            p.route_for("x", "DELETE", &path("/v2/admin/a/b"))
                .map(|m| m.index),
            Some(2)
        );
        assert_eq!(p.route_for("default", "GET", &path("/other")), None);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "[gate]\nleeway = \"2m\"\n[[gate.route]]\npath=\"/\"\npublic=true\n",
                2,
                "60s",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"/a\"\n",
                3,
                "needs an audience",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"/a\"\npublic = true\naudience = \"x\"\n",
                5,
                "public route takes no audience",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"a\"\npublic = true\n",
                3,
                "start with '/'",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"/a\"\naudience = \"x\"\npermissions_any = []\n",
                5,
                "must not be empty",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"/a\"\naudience = \"x\"\nmethods = [\"G T\"]\n",
                5,
                "not an HTTP method",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"/a\"\naudince = \"x\"\n",
                4,
                "unknown field",
            ),
            (
                "[gate]\n\n[[gate.route]]\npath = \"/a\"\npublic = true\n\n[[gate.route]]\npath = \"/a\"\npublic = true\n",
                7,
                "line 3",
            ),
            (
                "[gate]\nheaders = { scopes = \"X Scopes\" }\n[[gate.route]]\npath=\"/\"\npublic=true\n",
                2,
                "not a header name",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"/a\"\npublic = \"yes\"\n",
                4,
                "bool",
            ),
            (
                "[gate]\n[[gate.route]]\npath = \"/a\"\naudience = \"x\"\npermissions_all = [\"a b\"]\n",
                5,
                "not a permission",
            ),
        ];
        for (text, line, needle) in cases {
            let (l, m) = err_line(text);
            assert_eq!(
                (l, m.contains(needle)),
                (*line, true),
                "{text:?}: line {l}: {m}"
            );
        }
    }

    #[test]
    fn whole_file_errors() {
        assert!(matches!(
            Policy::parse("listen = \"x\"\n"),
            Err(PolicyError::Whole(_))
        ));
        assert!(matches!(
            Policy::parse("[gate]\nleeway = \"1s\"\n"),
            Err(PolicyError::Whole(_))
        ));
    }
}
