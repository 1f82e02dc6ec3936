//! A TCP proxy in front of the server, for the client conformance tests:
//! the client keeps one base URL while the server restarts on another port
//! (`set_upstream`), and a child process can be killed with SIGKILL right
//! after a rotation's answer went through (`victim`).

use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub url: String,
    upstream: Arc<Mutex<String>>,
    /// Killed (SIGKILL) right after a `…/refresh` answer carrying
    /// `Set-Refresh-Token` or a device `refresh_token` answer passed.
    pub victim: Arc<Mutex<Option<Child>>>,
    /// Kills that hit a still-running child.
    pub kills: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let upstream = Arc::new(Mutex::new(authority(upstream)));
        let victim: Arc<Mutex<Option<Child>>> = Arc::new(Mutex::new(None));
        let kills = Arc::new(AtomicUsize::new(0));
        let (up, vic, k) = (upstream.clone(), victim.clone(), kills.clone());
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let target = up.lock().unwrap().clone();
                tokio::spawn(relay(client, target, vic.clone(), k.clone()));
            }
        });
        Proxy {
            url,
            upstream,
            victim,
            kills,
        }
    }

    /// Points new connections at `upstream`.
    pub fn set_upstream(&self, upstream: &str) {
        *self.upstream.lock().unwrap() = authority(upstream);
    }
}

fn authority(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string()
}

async fn relay(
    client: TcpStream,
    target: String,
    victim: Arc<Mutex<Option<Child>>>,
    kills: Arc<AtomicUsize>,
) {
    // Server down: the client sees the connection close, as in an outage.
    let Ok(upstream) = TcpStream::connect(&target).await else {
        return;
    };
    let (mut cr, mut cw) = client.into_split();
    let (mut ur, mut uw) = upstream.into_split();
    let rotating = Arc::new(AtomicBool::new(false));
    let flag = rotating.clone();
    let up = tokio::spawn(async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let head = String::from_utf8_lossy(&buf[..n.min(200)]).to_ascii_lowercase();
            if head.starts_with("get ") || head.starts_with("post ") {
                let line = head.lines().next().unwrap_or_default().to_string();
                flag.store(
                    line.contains("/refresh") || line.contains("grant_type=refresh_token"),
                    Ordering::SeqCst,
                );
            }
            if uw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = uw.shutdown().await;
    });
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match ur.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cw.write_all(&buf[..n]).await.is_err() {
            break;
        }
        let _ = cw.flush().await;
        let text = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        let answered = text.starts_with("http/1.1 200")
            && (text.contains("set-refresh-token") || text.contains("\"refresh_token\""));
        if answered && rotating.load(Ordering::SeqCst) {
            // The answer is on its way to the client: kill it now or within
            // 2 ms, so some kills land before it saved the new token and
            // some after.
            let delay = fastrand_ms();
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
            if let Some(child) = victim.lock().unwrap().as_mut() {
                if matches!(child.try_wait(), Ok(None)) {
                    let _ = child.kill();
                    kills.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    }
    up.abort();
}

/// 0, 1 or 2, from the clock's low bits (no RNG dependency needed).
fn fastrand_ms() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    u64::from(nanos / 1000 % 3)
}
