//! A session refresh token for a new access token (reuse or rotation).

use crate::crypto::random::uuid_v4;
use crate::crypto::refresh_codec::ReadError;
use crate::error::GrantError;
use crate::model::RefreshFamily;
use crate::service::Outage;
use crate::service::Tollgate;
use crate::service::cache::read_through;
use crate::service::grants::issue::access_lifetime;
use crate::service::grants::session::{add, unavailable};
use crate::service::requests::{ClientAuth, LateReuse, RefreshPolicy, Session, SessionProfile};
use crate::service::state::EnvRuntime;
use crate::time::now;

impl Tollgate {
    /// Exchanges a refresh token. With [`RefreshPolicy::Rotate`] the store
    /// decides atomically: the first request rotates; a retry within the
    /// leeway gets the same successor; a later reuse revokes the family.
    /// With [`RefreshPolicy::Reuse`] the same refresh token comes back with
    /// a new access token. A client, when presented, must be the token's.
    /// Counted in the client's usage (`usage.rs`).
    pub async fn refresh(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        refresh_token: &str,
        profile: &SessionProfile,
        source: Option<std::net::IpAddr>,
    ) -> Result<Session, GrantError> {
        let result = self
            .refresh_uncounted(env, auth, refresh_token, profile, source)
            .await;
        self.tallied_session(env, auth, result).await
    }

    async fn refresh_uncounted(
        &self,
        env: &EnvRuntime,
        auth: ClientAuth<'_>,
        refresh_token: &str,
        profile: &SessionProfile,
        source: Option<std::net::IpAddr>,
    ) -> Result<Session, GrantError> {
        let caller = self.calling_client(env, auth, source).await?;
        // An incumbent's token (a trusted issuer's) is adopted into a family
        // whose current token it is, and always rotated: its first refresh
        // moves the session to a tollgate token.
        let (claims, adopted) = match self.codec.read_session(refresh_token) {
            Ok(c) => (c, false),
            Err(ReadError::Expired) => return Err(GrantError::ExpiredGrant),
            Err(ReadError::Invalid) => (
                self.adopt_foreign_session(env, refresh_token, profile)
                    .await?,
                true,
            ),
        };
        let invalid = |why: &str| GrantError::InvalidGrant(why.to_string());
        // A session is usable only where it was born: its contract, its
        // environment and its client. The claims say so for tokens that
        // carry them; the family's row is checked below in every case.
        if !claims.born_in(&env.env.name, profile.contract) {
            return Err(invalid("born in another contract or environment"));
        }
        if caller
            .as_ref()
            .is_some_and(|c| c.client_id != claims.client_id)
        {
            return Err(invalid("issued to another client"));
        }
        let user = self
            .cached_user(&env.env.name, &claims.user_name)
            .await?
            .filter(|u| u.enabled && u.client_id == claims.client_id)
            .ok_or_else(|| invalid("user disabled or deleted"))?;
        let client = self
            .cached_client(&env.env.name, &user.client_id)
            .await?
            .filter(|c| c.enabled)
            .ok_or_else(|| invalid("client disabled or deleted"))?;
        // The client must still hold the grant the session was started with.
        if !client.grant_types.contains(&profile.grant) {
            return Err(GrantError::UnauthorizedClient(
                profile.grant.as_str().into(),
            ));
        }
        let audience = claims.aud.first().map_or("", String::as_str);
        let obligation = Self::obligation_for(env, &client, audience);
        // Read at each refresh: a lifetime changed since the login applies
        // to the session's next access token.
        let lifetime = access_lifetime(env, &client, audience, profile.access_lifetime);
        let t = now();
        let started = std::time::Instant::now();
        let policy = if adopted {
            RefreshPolicy::Rotate
        } else {
            profile.policy
        };
        match policy {
            RefreshPolicy::Reuse => {
                // From memory when seen before: under this policy a family
                // changes only by revocation, which bumps the store revision
                // and empties the cache on every instance within a sync.
                let key = (env.env.name.clone(), claims.fam.clone());
                let f = read_through(
                    &self.metrics,
                    &self.caches.families,
                    "refresh_family",
                    "get_refresh_family",
                    key,
                    false,
                    || self.store.get_refresh_family(&env.env.name, &claims.fam),
                )
                .await?
                .ok_or_else(|| invalid("unknown"))?;
                if f.contract != profile.contract || f.client_id != claims.client_id {
                    return Err(invalid("born in another contract"));
                }
                if f.revoked_at.is_some() {
                    return Err(invalid("revoked"));
                }
                if f.current != claims.jti {
                    return Err(invalid("not the family's current token"));
                }
                if f.expires_at <= t {
                    return Err(GrantError::ExpiredGrant);
                }
                // Counted only now that the refresh is known to succeed.
                self.check_limit(env, &client, obligation).await?;
                // A new access token; the refresh token stays as it is.
                let fresh = RefreshFamily {
                    access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    access_exp: add(t, lifetime),
                    issued_at: t,
                    ..(*f).clone()
                };
                self.session_from(env, &client, &user, &fresh, profile, Some(refresh_token))
            }
            RefreshPolicy::Rotate => {
                let next = RefreshFamily {
                    env: env.env.name.clone(),
                    family: claims.fam.clone(),
                    contract: profile.contract.to_string(),
                    client_id: claims.client_id.clone(),
                    username: claims.user_name.clone(),
                    grant: claims
                        .grant_type
                        .parse()
                        .map_err(|_| invalid("bad grant"))?,
                    audience: claims.aud.first().cloned().unwrap_or_default(),
                    scope: claims.scope.join(" "),
                    current: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    previous: Some(claims.jti.clone()),
                    access_jti: uuid_v4().map_err(|_| GrantError::Unavailable)?,
                    access_exp: add(t, lifetime),
                    issued_at: t,
                    expires_at: add(t, profile.refresh_lifetime),
                    rotated_at: Some(t),
                    revoked_at: None,
                    created_at: t,
                };
                // Counted before the store decides (a won rotation cannot be
                // taken back), and refunded below when it is not one.
                let limited = self.check_limit(env, &client, obligation).await?;
                let won = self
                    .store
                    .rotate_refresh_family(&claims.jti, &next, t)
                    .await;
                self.metrics.store_timing("rotate_refresh_family", started);
                // Whatever happened, a copy of this family cached under the
                // reuse policy (another contract's settings, an older
                // process state) is stale now.
                self.forget_family(&env.env.name, &claims.fam);
                if won.map_err(unavailable)? {
                    return self.session_from(env, &client, &user, &next, profile, None);
                }
                if let Some(rate) = limited {
                    self.refund_limit(env, &client, &rate).await;
                }
                // Lost: the row says why.
                let row = self
                    .store
                    .get_refresh_family(&env.env.name, &claims.fam)
                    .await
                    .map_err(unavailable)?;
                let leeway = i64::try_from(profile.retry_leeway).unwrap_or(i64::MAX);
                match judge(row, &claims.jti, &next, t, leeway, self.outage) {
                    Verdict::Retry(existing) => {
                        self.session_from(env, &client, &user, &existing, profile, None)
                    }
                    Verdict::Reused if profile.late_reuse == LateReuse::RefuseToken => {
                        // The operator chose to refuse only this token: the
                        // family goes on with its current one.
                        tracing::warn!(
                            env = %env.env.name,
                            client_id = %claims.client_id,
                            family = %claims.fam,
                            "refresh token reused after rotation: refused (family kept)"
                        );
                        self.metrics.count(
                            "tollgate_refresh_reuse_refused_total",
                            "Rotated refresh tokens presented again and refused alone (late_reuse = refuse-token)",
                            &[("contract", profile.contract)],
                            1,
                        );
                        Err(invalid("reused: token refused"))
                    }
                    Verdict::Reused => {
                        // Racing with a legitimate rotation, the revocation
                        // wins, which is what reuse detection asks for.
                        self.store
                            .revoke_refresh_family(&env.env.name, &claims.fam, t)
                            .await
                            .map_err(unavailable)?;
                        tracing::warn!(
                            env = %env.env.name,
                            client_id = %claims.client_id,
                            family = %claims.fam,
                            "refresh token reused after rotation: family revoked"
                        );
                        self.metrics.count(
                            "tollgate_refresh_reuse_total",
                            "Rotated refresh tokens presented again (families revoked)",
                            &[("contract", profile.contract)],
                            1,
                        );
                        Err(invalid("reused: family revoked"))
                    }
                    Verdict::Unknown => Err(invalid("unknown")),
                    Verdict::Revoked => Err(invalid("revoked")),
                    Verdict::Expired => Err(GrantError::ExpiredGrant),
                }
            }
        }
    }
}

/// What a lost rotation means, read from the family's row afterwards.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The presented token was replaced less than the retry leeway ago and
    /// its successor is still current and live: hand out the family as it
    /// stands (a client whose response was lost gets the same pair).
    Retry(Box<RefreshFamily>),
    /// A token of the family that is no longer current, outside the leeway
    /// or after its successor moved on: reuse; the family must be revoked.
    Reused,
    /// No such family here, or one born in another contract or for another
    /// client (not this caller's business; nothing is revoked).
    Unknown,
    /// Revoked already (logout, reuse, its user or client went away).
    Revoked,
    /// The presented token is the current one, but expired.
    Expired,
}

/// The policy of refresh-token families (OAuth 2.0 Security BCP §4.14), on
/// the row read after a lost compare-and-set of `presented` towards `next`.
/// Whole seconds: a leeway of 10 covers retries 0..=9 s after the rotation;
/// 0 turns retries off. Time the service was down does not count: a client
/// whose response was lost in a crash retries after the restart, however
/// slow, and gets what was left of its leeway.
fn judge(
    row: Option<RefreshFamily>,
    presented: &str,
    next: &RefreshFamily,
    now: i64,
    leeway: i64,
    outage: Option<Outage>,
) -> Verdict {
    let Some(f) = row else {
        return Verdict::Unknown;
    };
    if f.contract != next.contract || f.client_id != next.client_id {
        return Verdict::Unknown;
    }
    if f.revoked_at.is_some() {
        return Verdict::Revoked;
    }
    if f.current == presented {
        return Verdict::Expired;
    }
    let within = f
        .rotated_at
        .is_some_and(|r| served_since(r, now, outage) < leeway);
    if within && f.previous.as_deref() == Some(presented) && f.expires_at > now {
        return Verdict::Retry(Box::new(f));
    }
    Verdict::Reused
}

/// Seconds the service was up between `from` and `now`.
fn served_since(from: i64, now: i64, outage: Option<Outage>) -> i64 {
    let down = outage.map_or(0, |o| {
        // The part of the outage inside [from, now].
        (o.until.min(now) - o.from.max(from)).max(0)
    });
    now - from - down
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::GrantType;

    fn row(current: &str, previous: Option<&str>, rotated_at: Option<i64>) -> RefreshFamily {
        RefreshFamily {
            env: "default".into(),
            family: "f".into(),
            contract: "header-login".into(),
            client_id: "c".into(),
            username: "u".into(),
            grant: GrantType::Password,
            audience: "api".into(),
            scope: "read".into(),
            current: current.into(),
            previous: previous.map(String::from),
            access_jti: format!("a-{current}"),
            access_exp: 2_000,
            issued_at: 1_000,
            expires_at: 5_000,
            rotated_at,
            revoked_at: None,
            created_at: 900,
        }
    }

    #[test]
    fn a_retry_needs_the_leeway_the_replaced_token_and_a_live_successor() {
        let next = row("x", None, None);
        let r = row("t2", Some("t1"), Some(1_000));
        // Whole seconds: 9 s after is in, 10 s after is out; 0 turns it off.
        assert_eq!(
            judge(Some(r.clone()), "t1", &next, 1_009, 10, None),
            Verdict::Retry(Box::new(r.clone()))
        );
        assert_eq!(
            judge(Some(r.clone()), "t1", &next, 1_010, 10, None),
            Verdict::Reused
        );
        assert_eq!(
            judge(Some(r.clone()), "t1", &next, 1_000, 0, None),
            Verdict::Reused
        );
        // An older token than the replaced one: reuse, even inside the leeway.
        assert_eq!(
            judge(Some(r.clone()), "t0", &next, 1_001, 10, None),
            Verdict::Reused
        );
        // The successor expired: no retry.
        let brief = RefreshFamily {
            expires_at: 1_002,
            ..r.clone()
        };
        assert_eq!(
            judge(Some(brief), "t1", &next, 1_002, 10, None),
            Verdict::Reused
        );
    }

    #[test]
    fn an_outage_does_not_eat_the_leeway() {
        let next = row("x", None, None);
        // Rotated at 1_000, the service down from 1_003 to 1_030: at 1_035
        // it has served 3 + 5 = 8 s since the rotation, inside a 10 s leeway.
        let r = row("t2", Some("t1"), Some(1_000));
        let outage = Some(Outage {
            from: 1_003,
            until: 1_030,
        });
        assert_eq!(
            judge(Some(r.clone()), "t1", &next, 1_035, 10, outage),
            Verdict::Retry(Box::new(r.clone()))
        );
        assert_eq!(
            judge(Some(r.clone()), "t1", &next, 1_037, 10, outage),
            Verdict::Reused
        );
        assert_eq!(
            judge(Some(r.clone()), "t1", &next, 1_035, 10, None),
            Verdict::Reused
        );
        // Rotated after the restart: the outage is not its business.
        let later = row("t2", Some("t1"), Some(1_031));
        assert_eq!(
            judge(Some(later), "t1", &next, 1_045, 10, outage),
            Verdict::Reused
        );
        assert_eq!(served_since(1_000, 1_035, outage), 8);
        assert_eq!(served_since(1_031, 1_035, outage), 4);
    }

    #[test]
    fn unknown_revoked_expired_and_foreign_families() {
        let next = row("x", None, None);
        assert_eq!(judge(None, "t1", &next, 1_000, 10, None), Verdict::Unknown);
        let revoked = RefreshFamily {
            revoked_at: Some(1_001),
            ..row("t2", Some("t1"), Some(1_000))
        };
        assert_eq!(
            judge(Some(revoked), "t1", &next, 1_002, 10, None),
            Verdict::Revoked
        );
        // The CAS failed although the token is current: it expired.
        assert_eq!(
            judge(Some(row("t1", None, None)), "t1", &next, 6_000, 10, None),
            Verdict::Expired
        );
        // Born in another contract or for another client: none of ours,
        // and never reuse (which would revoke the rightful holder's family).
        for foreign in [
            RefreshFamily {
                contract: "device-credentials".into(),
                ..row("t2", Some("t1"), Some(1_000))
            },
            RefreshFamily {
                client_id: "d".into(),
                ..row("t2", Some("t1"), Some(1_000))
            },
        ] {
            assert_eq!(
                judge(Some(foreign), "t0", &next, 1_001, 10, None),
                Verdict::Unknown
            );
        }
    }

    /// The store's compare-and-set, as the contract suite pins it down.
    fn cas(f: &mut RefreshFamily, presented: &str, next: &str, now: i64) -> bool {
        if f.current == presented && f.revoked_at.is_none() && f.expires_at > now {
            f.previous = Some(std::mem::replace(&mut f.current, next.to_string()));
            f.rotated_at = Some(now);
            true
        } else {
            false
        }
    }

    proptest::proptest! {
        /// Refresh-family invariants under any sequence of presentations of
        /// any token ever issued, at any pace, with any leeway: one head;
        /// a retry only inside the leeway and only with the token just
        /// replaced, handing out the current successor; any other replaced
        /// token is reuse, revokes the family, and nothing succeeds after.
        #[test]
        fn families_keep_one_head_and_reuse_revokes(
            leeway in 0i64..12,
            steps in proptest::collection::vec((0usize..64, 0i64..15), 1..40),
        ) {
            let mut f = row("t0", None, None);
            f.expires_at = i64::MAX / 2;
            let next = row("x", None, None);
            let mut issued = vec!["t0".to_string()];
            let mut now = 1_000;
            for (pick, dt) in steps {
                now += dt;
                let presented = issued[pick % issued.len()].clone();
                let before = f.clone();
                let successor = format!("t{}", issued.len());
                if cas(&mut f, &presented, &successor, now) {
                    proptest::prop_assert!(before.revoked_at.is_none());
                    proptest::prop_assert_eq!(&before.current, &presented);
                    issued.push(successor);
                    continue;
                }
                match judge(Some(f.clone()), &presented, &next, now, leeway, None) {
                    Verdict::Retry(got) => {
                        proptest::prop_assert!(before.revoked_at.is_none());
                        proptest::prop_assert_eq!(before.previous.as_deref(), Some(presented.as_str()));
                        proptest::prop_assert!(now - before.rotated_at.unwrap_or(i64::MIN) < leeway);
                        proptest::prop_assert_eq!(&got.current, &f.current, "the one head");
                    }
                    Verdict::Reused => {
                        proptest::prop_assert!(before.revoked_at.is_none());
                        proptest::prop_assert_ne!(&presented, &before.current);
                        f.revoked_at = Some(now);
                    }
                    Verdict::Revoked => proptest::prop_assert!(before.revoked_at.is_some()),
                    other => proptest::prop_assert!(false, "unexpected {:?}", other),
                }
                // The one head: only the current token can rotate, and none
                // once the family is revoked.
                let heads = issued
                    .iter()
                    .filter(|t| cas(&mut f.clone(), t, "probe", now))
                    .count();
                proptest::prop_assert_eq!(heads, usize::from(f.revoked_at.is_none()));
            }
        }
    }
}
