//! The access token handed to callers, and the two ways a contract tells
//! its expiry when it has no `expires_in`: a JWT's `exp` (header login) and
//! an RFC 3339 `expireAt` (bearer exchange).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secret::Secret;

/// An access token and when it expires (by this machine's clock).
#[derive(Clone, Debug)]
pub struct AccessToken {
    secret: Secret,
    received_at: SystemTime,
    expires_at: SystemTime,
}

impl AccessToken {
    /// A token valid until `expires_at`.
    pub fn new(secret: Secret, received_at: SystemTime, expires_at: SystemTime) -> Self {
        Self {
            secret,
            received_at,
            expires_at,
        }
    }

    /// The token, for the `Authorization` header.
    pub fn secret(&self) -> &str {
        self.secret.expose()
    }

    /// `Bearer <token>`.
    pub fn header_value(&self) -> String {
        format!("Bearer {}", self.secret.expose())
    }

    /// When it expires.
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// When it was received.
    pub fn received_at(&self) -> SystemTime {
        self.received_at
    }

    /// Its whole lifetime, as received.
    pub fn lifetime(&self) -> Duration {
        self.expires_at
            .duration_since(self.received_at)
            .unwrap_or_default()
    }

    /// Time left at `now` (zero once expired).
    pub fn remaining_at(&self, now: SystemTime) -> Duration {
        self.expires_at.duration_since(now).unwrap_or_default()
    }

    /// Time left now.
    pub fn remaining(&self) -> Duration {
        self.remaining_at(SystemTime::now())
    }
}

/// The `exp` claim of a JWT, read without verifying (the client only needs
/// to know when to refresh; the API verifies).
pub(crate) fn jwt_exp(token: &str) -> Option<SystemTime> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(UNIX_EPOCH + Duration::from_secs(exp))
}

/// Parses an RFC 3339 date-time (`2024-01-02T03:04:05Z`, fractional
/// seconds and offsets accepted).
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (date, rest) = s.split_once(['T', 't', ' '])?;
    let mut d = date.splitn(3, '-');
    let year: i64 = d.next()?.parse().ok()?;
    let month: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    // The offset: Z, or ±hh:mm after the time.
    let (time, offset_secs) = if let Some(t) = rest.strip_suffix(['Z', 'z']) {
        (t, 0i64)
    } else {
        let i = rest.rfind(['+', '-'])?;
        let (t, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (h, m) = off.get(1..)?.split_once(':')?;
        let secs = h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60;
        (t, sign * secs)
    };
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':');
    let hour: i64 = t.next()?.parse().ok()?;
    let minute: i64 = t.next()?.parse().ok()?;
    let second: i64 = t.next()?.parse().ok()?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let unix = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    u64::try_from(unix)
        .ok()
        .map(|u| UNIX_EPOCH + Duration::from_secs(u))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix(s: &str) -> u64 {
        parse_rfc3339(s)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs())
    }

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(unix("1970-01-01T00:00:00Z"), 0);
        assert_eq!(unix("2000-03-01T00:00:00Z"), 951_868_800);
        assert_eq!(unix("2024-02-29T12:34:56Z"), 1_709_210_096);
        assert_eq!(unix("2024-02-29T12:34:56.789Z"), 1_709_210_096);
        assert_eq!(unix("2024-02-29T14:34:56+02:00"), 1_709_210_096);
        assert_eq!(unix("2024-02-29T11:34:56-01:00"), 1_709_210_096);
        assert!(parse_rfc3339("2024-13-01T00:00:00Z").is_none());
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn jwt_exp_is_read_from_the_payload() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000,"sub":"x"}"#);
        let t = format!("eyJhbGciOiJub25lIn0.{payload}.sig");
        assert_eq!(
            jwt_exp(&t),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_exp("not-a-jwt"), None);
    }

    #[test]
    fn remaining_is_zero_after_expiry() {
        let now = SystemTime::now();
        let t = AccessToken::new(Secret::new("t"), now, now + Duration::from_secs(10));
        assert_eq!(t.lifetime(), Duration::from_secs(10));
        assert_eq!(
            t.remaining_at(now + Duration::from_secs(11)),
            Duration::ZERO
        );
        assert!(format!("{t:?}").contains("Secret(***)"));
    }
}
