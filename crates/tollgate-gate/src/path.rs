//! Request paths and route patterns.
//!
//! The gate must see the path the upstream will act on, or a request could
//! match a laxer route than the resource it reaches. So a request path is
//! split into segments and each is percent-decoded; paths an upstream might
//! resolve differently from the gate (dot segments, encoded `/` or `\`,
//! empty segments, invalid escapes or UTF-8) are refused outright instead of
//! guessed at.
//!
//! A pattern is `/`-separated: a literal segment matches itself exactly, `*`
//! matches any one non-empty segment, and a final `**` matches the rest of
//! the path, however many segments (none included).

/// A request path the gate refuses to interpret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("request path refused: {0}")]
pub struct BadPath(pub &'static str);

/// A request path, split and decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    segments: Vec<String>,
}

impl RequestPath {
    /// Parses the path of a request target (`/a/b?query`; the query and any
    /// fragment are ignored). A trailing `/` is kept as a last empty segment.
    pub fn parse(target: &str) -> Result<Self, BadPath> {
        let path = target
            .split(['?', '#'])
            .next()
            .filter(|p| !p.is_empty())
            .ok_or(BadPath("empty path"))?;
        let rest = path
            .strip_prefix('/')
            .ok_or(BadPath("not an absolute path"))?;
        if rest.is_empty() {
            return Ok(Self {
                segments: Vec::new(),
            });
        }
        let raw: Vec<&str> = rest.split('/').collect();
        let last = raw.len() - 1;
        let mut segments = Vec::with_capacity(raw.len());
        for (i, seg) in raw.into_iter().enumerate() {
            if seg.is_empty() && i != last {
                return Err(BadPath("empty segment"));
            }
            let decoded = decode(seg)?;
            if decoded == "." || decoded == ".." {
                return Err(BadPath("dot segment"));
            }
            if decoded.contains(['/', '\\', '\0']) {
                return Err(BadPath("encoded separator"));
            }
            segments.push(decoded);
        }
        Ok(Self { segments })
    }

    /// The decoded segments.
    pub fn segments(&self) -> &[String] {
        &self.segments
    }
}

fn decode(seg: &str) -> Result<String, BadPath> {
    if !seg.contains('%') {
        return Ok(seg.to_string());
    }
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
            match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(u8::try_from(h * 16 + l).map_err(|_| BadPath("bad escape"))?);
                    i += 3;
                }
                _ => return Err(BadPath("bad escape")),
            }
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| BadPath("not UTF-8"))
}

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `*`: any one non-empty segment.
    One,
    /// `**`, last only: the rest, however long.
    Rest,
}

/// A route's path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    parts: Vec<Part>,
}

impl Pattern {
    /// Parses a pattern; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix('/')
            .ok_or_else(|| format!("path '{text}' must start with '/'"))?;
        if text.contains(['?', '#', '%', '\\']) {
            return Err(format!(
                "path '{text}': no query, fragment, escape or backslash (write segments as decoded text)"
            ));
        }
        let mut parts = Vec::new();
        if !rest.is_empty() {
            let segs: Vec<&str> = rest.split('/').collect();
            let last = segs.len() - 1;
            for (i, seg) in segs.into_iter().enumerate() {
                parts.push(match seg {
                    "**" if i == last => Part::Rest,
                    "**" => return Err(format!("path '{text}': '**' only as the last segment")),
                    "*" => Part::One,
                    "." | ".." => return Err(format!("path '{text}': no dot segments")),
                    s if s.contains('*') => {
                        return Err(format!(
                            "path '{text}': '*' stands for a whole segment ('/a/*/b'), not part of one"
                        ));
                    }
                    "" if i != last => return Err(format!("path '{text}': empty segment")),
                    s => Part::Literal(s.to_string()),
                });
            }
        }
        Ok(Self {
            text: text.to_string(),
            parts,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &RequestPath) -> bool {
        let segs = path.segments();
        let mut i = 0;
        for part in &self.parts {
            match part {
                Part::Rest => return true,
                Part::One => match segs.get(i) {
                    Some(s) if !s.is_empty() => {}
                    _ => return false,
                },
                Part::Literal(l) => match segs.get(i) {
                    Some(s) if s == l => {}
                    _ => return false,
                },
            }
            i += 1;
        }
        i == segs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, path: &str) -> bool {
        let p = Pattern::parse(pattern).map_err(|e| e.to_string());
        let r = RequestPath::parse(path);
        matches!((p, r), (Ok(p), Ok(r)) if p.matches(&r))
    }

    #[test]
    fn literals_stars_and_rest() {
        assert!(m("/v2/odds", "/v2/odds"));
        assert!(m("/v2/odds", "/v2/odds?x=1"));
        assert!(!m("/v2/odds", "/v2/odds/"));
        assert!(!m("/v2/odds", "/v2/oddsx"));
        assert!(m("/v2/odds/*", "/v2/odds/12"));
        assert!(!m("/v2/odds/*", "/v2/odds/12/x"));
        assert!(!m("/v2/odds/*", "/v2/odds/"));
        assert!(!m("/v2/odds/*", "/v2/odds"));
        assert!(m("/v2/*/live", "/v2/odds/live"));
        assert!(m("/v2/**", "/v2"));
        assert!(m("/v2/**", "/v2/"));
        assert!(m("/v2/**", "/v2/a/b/c"));
        assert!(!m("/v2/**", "/v3/a"));
        assert!(m("/**", "/"));
        assert!(m("/", "/"));
        assert!(!m("/", "/a"));
    }

    #[test]
    fn paths_an_upstream_could_read_otherwise_are_refused() {
        for bad in [
            "/v2/../admin",
            "/v2/./odds",
            "/v2/%2e%2e/admin",
            "/v2/%2E/x",
            "/v2/a%2fb",
            "/v2/a%5cb",
            "/v2//odds",
            "/v2/%zz",
            "/v2/%ff",
            "/v2/%00",
            "v2/odds",
            "",
            "?x",
        ] {
            assert!(RequestPath::parse(bad).is_err(), "{bad}");
        }
        // Escapes of ordinary characters are what the upstream sees decoded.
        assert!(m("/v2/odds/*", "/v2/%6Fdds/1"));
        assert!(m("/v2/a b", "/v2/a%20b"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (bad, why) in [
            ("v2", "start with '/'"),
            ("/v2/**/x", "last segment"),
            ("/v2/od*", "whole segment"),
            ("/v2/../x", "dot"),
            ("/v2//x", "empty"),
            ("/v2?x", "query"),
            ("/v2/%41", "escape"),
        ] {
            match Pattern::parse(bad) {
                Err(e) => assert!(e.contains(why), "{bad}: {e}"),
                Ok(_) => panic!("{bad} accepted"),
            }
        }
    }

    proptest! {
        /// Percent-encoding any characters of a path changes nothing the
        /// gate sees: a route matches the encoded path iff it matches the
        /// plain one.
        #[test]
        fn encoding_does_not_change_matching(
            segs in proptest::collection::vec("[a-z0-9:_ -]{1,6}", 0..5),
            mask in proptest::collection::vec(any::<bool>(), 40),
            pattern in proptest::collection::vec(
                prop_oneof!["[a-z]{1,2}", Just("*".to_string())], 0..4),
            rest in any::<bool>(),
        ) {
            let plain = format!("/{}", segs.join("/"));
            let mut encoded = String::new();
            for (i, c) in plain.chars().enumerate() {
                if c != '/' && mask.get(i % mask.len()).copied().unwrap_or(false) {
                    encoded.push_str(&format!("%{:02X}", c as u32));
                } else {
                    encoded.push(c);
                }
            }
            let mut text = format!("/{}", pattern.join("/"));
            if rest {
                text = format!("{}/**", text.trim_end_matches('/'));
            }
            let p = Pattern::parse(&text).map_err(TestCaseError::fail)?;
            let a = RequestPath::parse(&plain).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let b = RequestPath::parse(&encoded).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(p.matches(&a), p.matches(&b));
        }
    }
}
