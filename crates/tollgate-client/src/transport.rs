//! Sending one token request politely: 429 and 503 wait out `Retry-After`
//! (up to a cap), other 5xx and connection failures back off exponentially
//! with jitter, everything else is the contract's answer to read.

use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::key::Contract;
use crate::options::RetryPolicy;

/// The HTTP client and the retry policy of one source.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    pub http: reqwest::Client,
    pub retry: RetryPolicy,
    pub timeout: Duration,
}

impl Transport {
    /// Sends the request `build` makes (once per attempt) and returns the
    /// first answer that is not a reason to retry.
    pub async fn send(
        &self,
        contract: Contract,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Error> {
        let policy = &self.retry;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let last_attempt = attempt >= policy.max_attempts;
            let result = build(&self.http).timeout(self.timeout).send().await;
            let wait = match result {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    match status {
                        429 | 503 => {
                            let asked = retry_after(resp.headers());
                            if asked.is_some_and(|d| d > policy.max_retry_after) || last_attempt {
                                return Err(if status == 429 {
                                    Error::RateLimited {
                                        contract,
                                        retry_after: asked,
                                    }
                                } else {
                                    Error::Unavailable {
                                        contract,
                                        attempts: attempt,
                                        last: format!("HTTP {status}"),
                                    }
                                });
                            }
                            tracing::debug!(%contract, status, ?asked, "token endpoint asks to wait");
                            asked.unwrap_or_else(|| policy.backoff(attempt))
                        }
                        500 | 502 | 504 => {
                            if last_attempt {
                                return Err(Error::Unavailable {
                                    contract,
                                    attempts: attempt,
                                    last: format!("HTTP {status}"),
                                });
                            }
                            policy.backoff(attempt)
                        }
                        _ => return Ok(resp),
                    }
                }
                Err(e) => {
                    if last_attempt {
                        return Err(Error::Unavailable {
                            contract,
                            attempts: attempt,
                            last: e.to_string(),
                        });
                    }
                    tracing::debug!(%contract, error = %e, "token request failed; retrying");
                    policy.backoff(attempt)
                }
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// `Retry-After`: delta-seconds, or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = parse_http_date(v)?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the form servers send.
fn parse_http_date(v: &str) -> Option<SystemTime> {
    let mut parts = v.split_whitespace().skip(1);
    let day = parts.next()?;
    let month = parts.next()?;
    let year = parts.next()?;
    let time = parts.next()?;
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = MONTHS.iter().position(|x| *x == month)? + 1;
    crate::token::parse_rfc3339(&format!("{year}-{m:02}-{day}T{time}Z"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_in_seconds_and_as_a_date() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Sun, 06 Nov 1994 08:49:37 GMT"),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a date in the past: now"
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            Some(784_111_777)
        );
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), None);
    }
}
