//! `tollgate serve`: binds, opens the core, keeps it in sync with the store,
//! and serves until SIGTERM/SIGINT.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tollgate_core::Tollgate;
use tollgate_http::{AppState, router, server};

use crate::app::{load_master, open_store, public_url};
use crate::config::Config;

/// The shortest time between two syncs a change feed triggers: a burst of
/// changes (revocations under load) costs a reload at most this often, not
/// one each, for at most this much more latency.
const FEED_MIN_GAP: Duration = Duration::from_millis(50);
/// How often expired state (deny-list entries) is purged.
const PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Runs the server.
pub async fn run(config: Config) -> Result<()> {
    let contracts = Arc::new(config.contracts());
    contracts.check_paths().map_err(anyhow::Error::msg)?;
    let store = open_store(&config).await?;
    let master = load_master(&config, &store).await?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => Some(server::tls_config(c, k)?),
        _ => None,
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    let url = public_url(&config, bound);
    // Every store call the server makes ends within the deadline: a hung
    // database answers 503 + Retry-After instead of hanging requests.
    let timed = Arc::new(tollgate_core::deadline::DeadlineStore::new(
        store.clone(),
        config.store_timeout,
    ));
    // The gate's policy is checked before the server starts serving.
    let policy = config
        .gate_policy
        .as_deref()
        .map(crate::gate::load)
        .transpose()?;
    let mut core = Tollgate::open(timed, &master, &url)
        .await?
        .with_argon2_bound(config.argon2)
        .with_throttle(config.throttle)
        // Each environment's settings (the server's with its own
        // overrides) and dispatch table, built with every snapshot.
        .with_env_extension(Arc::new(tollgate_http::contracts::Resolver(
            contracts.clone(),
        )))
        .await?;
    if policy.is_some() {
        // The gate decides from memory: the deny list comes with each sync.
        core = core.keep_deny_list().await?;
    }
    let core = Arc::new(core);
    let gate = policy.map(|p| {
        tracing::info!(routes = p.routes.len(), "gate: /gate/check answers");
        Arc::new(tollgate_gate::Gate::new(
            p,
            Arc::new(tollgate_gate::CoreKeys(core.clone())),
        ))
    });
    let reload = match (&gate, &config.gate_policy) {
        (Some(g), Some(file)) => Some(crate::gate::watch(g.clone(), file.clone(), core.clone())?),
        _ => None,
    };
    drop(master);
    for env in core.list_environments().await? {
        tracing::info!(env = %env.name, issuer = %core.issuer_for(&env), "environment");
    }
    let sync = {
        let core = core.clone();
        let feed = core.change_feed().await;
        match &feed {
            Some(f) => tracing::info!(
                reach = f.reach().as_str(),
                poll_ms = config.sync_interval.as_millis(),
                "change feed: syncing on push, polling as the fallback"
            ),
            None => tracing::info!(
                poll_ms = config.sync_interval.as_millis(),
                "change feed: none, polling"
            ),
        }
        tokio::spawn(follow_changes(core, feed, config.sync_interval))
    };
    let purge = {
        let core = core.clone();
        let audit_retention = config.audit_retention;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(PURGE_INTERVAL);
            loop {
                tick.tick().await;
                match core.purge_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(rows = n, "purged expired deny-list entries"),
                    Err(e) => tracing::warn!(error = %e, "purge of expired state failed"),
                }
                if let Some(keep) = audit_retention {
                    match core.purge_audit(keep).await {
                        Ok(0) => {}
                        Ok(n) => {
                            tracing::info!(rows = n, "purged audit entries past audit_retention")
                        }
                        Err(e) => tracing::warn!(error = %e, "purge of the audit log failed"),
                    }
                }
            }
        })
    };
    // Usage counted in memory reaches the store every usage_flush_interval
    // (a failed flush keeps its deltas for the next one), and once more at
    // shutdown, below.
    // The task is stopped between flushes, never inside one (an aborted
    // flush would drop the deltas it had taken).
    let flusher = core.clone();
    let (stop_usage, mut usage_stopped) = tokio::sync::oneshot::channel::<()>();
    let usage = {
        let core = core.clone();
        let every = config.usage_flush_interval;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = &mut usage_stopped => break,
                }
                if let Err(e) = core.flush_usage().await {
                    tracing::warn!(error = %e, "usage flush failed; kept for the next one");
                }
            }
        })
    };
    let rotation = config.key_rotation_interval.map(|interval| {
        let core = core.clone();
        let delay = config.key_publish_delay.as_secs();
        // Check often enough to rotate within a quarter of the interval.
        let every = (interval / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match core.rotate_due_keys(interval.as_secs(), delay).await {
                    Ok(added) => {
                        for k in added {
                            tracing::info!(env = %k.env, kid = %k.kid, "scheduled key rotation: new key published");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "scheduled key rotation failed"),
                }
            }
        })
    });
    // Before announcing readiness: from here on a signal means a graceful stop.
    let shutdown = shutdown_signal()?;
    tracing::info!(
        address = %format!("{}://{bound}", if tls.is_some() { "https" } else { "http" }),
        public_url = %url,
        store = store.backend(),
        "listening"
    );
    tracing::info!(
        default_env = %std::iter::once("rfc6749").chain(config.contracts.iter().map(String::as_str)).collect::<Vec<_>>().join(","),
        "contracts"
    );
    let state = AppState {
        core,
        contracts,
        ops: Arc::new(tollgate_http::ops::Settings {
            metrics_token: config.metrics_token.clone(),
            metrics_elsewhere: config.metrics_listen.is_some(),
            admin_elsewhere: config.admin_listen.is_some(),
            hsts: tls.is_some(),
            portal_path: config.portal_path.clone(),
            public_url: url.clone(),
        }),
        gate,
    };
    let metrics = match config.metrics_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?;
            tracing::info!(address = %l.local_addr()?, "metrics listening");
            let app = tollgate_http::metrics_router(state.clone());
            let limits = limits(&config);
            // Ends when the main listener has shut down (aborted below).
            Some(tokio::spawn(async move {
                server::serve(l, app, None, std::future::pending(), Duration::ZERO, limits).await
            }))
        }
        None => None,
    };
    let admin = match config.admin_listen {
        Some(addr) => {
            let l = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the admin API"))?;
            tracing::info!(address = %l.local_addr()?, "admin API listening");
            let app = tollgate_http::admin_router(state.clone());
            let limits = limits(&config);
            // Plain HTTP: a listener of its own is meant for a private
            // network (or a TLS-terminating proxy). Ends when the main
            // listener has shut down (aborted below).
            Some(tokio::spawn(async move {
                server::serve(l, app, None, std::future::pending(), Duration::ZERO, limits).await
            }))
        }
        None => None,
    };
    // One stop for every listener that finishes its requests gracefully.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let proxy = match (&config.gate_proxy, &state.gate) {
        (Some(g), Some(gate)) => {
            // Served over TLS when the server is: the same certificate.
            let upstream = tollgate_http::proxy::Upstream::parse(
                &g.upstream,
                &g.env,
                g.timeout,
                tls.is_some(),
            )?;
            let l = tokio::net::TcpListener::bind(g.listen)
                .await
                .with_context(|| format!("cannot listen on {} for the gate's proxy", g.listen))?;
            tracing::info!(
                address = %l.local_addr()?,
                upstream = %g.upstream,
                env = %g.env,
                "gate: reverse proxy listening"
            );
            let app = tollgate_http::proxy::router(state.clone(), gate.clone(), upstream);
            let (grace, limits, stop) = (
                config.shutdown_grace,
                limits(&config),
                stopped(stopping.clone()),
            );
            let tls = tls.clone();
            Some(tokio::spawn(async move {
                server::serve(l, app, tls, stop, grace, limits).await
            }))
        }
        _ => None,
    };
    let app = router(state);
    server::serve(
        listener,
        app,
        tls,
        stopped(stopping),
        config.shutdown_grace,
        limits(&config),
    )
    .await?;
    if let Some(p) = proxy {
        // Stopped by the same signal: its in-flight requests finish too.
        match p.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "gate proxy stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "gate proxy task failed"),
        }
    }
    sync.abort();
    purge.abort();
    let _ = stop_usage.send(());
    if let Err(e) = usage.await {
        tracing::warn!(error = %e, "usage flush task failed");
    }
    // What was counted since the last flush: no request adds to it now.
    match flusher.flush_usage().await {
        Ok(rows) => tracing::info!(rows, "usage flushed at shutdown"),
        Err(e) => tracing::warn!(error = %e, "usage flush at shutdown failed: its counts are lost"),
    }
    if let Some(m) = metrics {
        m.abort();
    }
    if let Some(a) = admin {
        a.abort();
    }
    if let Some(r) = rotation {
        r.abort();
    }
    if let Some(r) = reload {
        r.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Keeps `core` in sync with the store: at once when `feed` says something
/// changed, and every `interval` whatever the feed says (a push can be lost:
/// a dropped LISTEN connection, a write from a process whose store cannot
/// push). Counts what the feed reported in the metrics.
async fn follow_changes(
    core: Arc<Tollgate>,
    mut feed: Option<tollgate_core::feed::ChangeFeed>,
    interval: Duration,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let pushed = tokio::select! {
            _ = tick.tick() => false,
            news = next_news(&mut feed) => match news {
                Some(news) => {
                    count_news(&core, news);
                    true
                }
                None => {
                    tracing::warn!("change feed ended: polling only");
                    feed = None;
                    continue;
                }
            },
        };
        match core.sync().await {
            Ok(true) => tracing::info!(pushed, "store changed: caches reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot check the store for changes"),
        }
        if pushed {
            // Pushes arriving meanwhile wait and come as one.
            tokio::time::sleep(FEED_MIN_GAP).await;
        }
    }
}

/// The feed's next news, or never when there is no feed.
async fn next_news(
    feed: &mut Option<tollgate_core::feed::ChangeFeed>,
) -> Option<tollgate_core::feed::News> {
    match feed {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// Counts a feed's news in `tollgate_change_feed_events_total`.
fn count_news(core: &Tollgate, news: tollgate_core::feed::News) {
    for (event, n) in [
        ("local", news.local),
        ("pushed", news.pushed),
        ("resumed", news.resumed),
    ] {
        if n > 0 {
            core.metrics.count(
                "tollgate_change_feed_events_total",
                "What the store's change feed reported: local (a change written by this process), pushed (a change notified by the database), resumed (the database's push channel was (re)connected; a sync follows)",
                &[("event", event)],
                n,
            );
        }
    }
}

/// The connection limits of the configuration.
fn limits(config: &Config) -> server::Limits {
    server::Limits {
        header_read_timeout: config.header_read_timeout,
        body_read_timeout: config.body_read_timeout,
        idle_timeout: config.idle_timeout,
        tls_handshake_timeout: config.tls_handshake_timeout,
        max_connections: config.max_connections,
    }
}

/// Registers the SIGTERM/SIGINT handlers now (a signal arriving from here on
/// shuts down gracefully) and returns the future that resolves on either.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    let (mut term, mut int) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
        )
    };
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down: finishing in-flight requests");
    })
}
