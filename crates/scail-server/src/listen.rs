//! The accept loop. `axum::serve` accepts every connection and waits forever for its headers, so
//! a few thousand idle sockets used up the process's file descriptors. Here every connection
//! must send its request headers within a deadline (the same deadline closes idle keep-alive
//! connections), and open connections are capped in total and per peer; a connection over a cap
//! is closed at once rather than queued.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Connection hygiene settings (part of [`crate::ServerConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections at most, all peers together.
    pub max_connections: usize,
    /// Open connections at most from one peer (an IPv4 address or an IPv6 /64).
    pub max_connections_per_peer: usize,
    /// Time a client has to send a request's headers, counted from the connection's start or
    /// from the end of its previous response (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 4096,
            max_connections_per_peer: 256,
            header_read_timeout: Duration::from_secs(20),
        }
    }
}

/// Peers are counted by IPv4 address, or by IPv6 /64: one host usually holds a whole /64.
pub fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        },
        v4 => v4,
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_peer: HashMap<IpAddr, usize>,
}

/// Counts open connections; a [`Slot`] is one of them.
pub struct Tracker {
    max_total: usize,
    max_per_peer: usize,
    counts: Mutex<Counts>,
}

/// An admitted connection; dropping it frees its place.
pub struct Slot {
    tracker: Arc<Tracker>,
    peer: IpAddr,
}

impl Tracker {
    pub fn new(max_total: usize, max_per_peer: usize) -> Arc<Tracker> {
        Arc::new(Tracker {
            max_total: max_total.max(1),
            max_per_peer: max_per_peer.max(1),
            counts: Mutex::new(Counts::default()),
        })
    }

    /// A place for a new connection from `ip`, or `None` when a cap is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<Slot> {
        let peer = peer_key(ip);
        let mut c = self.counts.lock().unwrap();
        if c.total >= self.max_total {
            return None;
        }
        let n = c.per_peer.entry(peer).or_insert(0);
        if *n >= self.max_per_peer {
            return None;
        }
        *n += 1;
        c.total += 1;
        Some(Slot {
            tracker: self.clone(),
            peer,
        })
    }

    pub fn open(&self) -> usize {
        self.counts.lock().unwrap().total
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.tracker.counts.lock().unwrap();
        c.total -= 1;
        if let Some(n) = c.per_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                c.per_peer.remove(&self.peer);
            }
        }
    }
}

/// The total cap, lowered to fit the process's file descriptor limit (with room for the
/// database, stored files, fetches and webhooks) so the cap is reached before the limit is.
fn effective_total(configured: usize) -> usize {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we pass.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0
            && lim.rlim_cur != libc::RLIM_INFINITY
        {
            let room = (lim.rlim_cur as usize).saturating_sub(256).max(64);
            if room < configured {
                tracing::warn!(
                    "the file descriptor limit ({}) allows {room} connections, fewer than the \
                     configured {configured}; raise `ulimit -n` to serve more",
                    lim.rlim_cur
                );
                return room;
            }
        }
    }
    configured
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops accepting, lets each open
/// connection finish its current request within `drain` and returns when all have closed.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()> + Send,
    drain: Duration,
) {
    let tracker = Tracker::new(
        effective_total(limits.max_connections),
        limits.max_connections_per_peer,
    );
    let (stop_tx, stop_rx) = watch::channel(false);
    // Not `now - 60 s`: that underflows on a machine booted less than a minute ago.
    let mut refused_logged: Option<std::time::Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of descriptors or memory: back off instead of spinning on the error.
                    if !matches!(e.kind(), std::io::ErrorKind::ConnectionAborted
                        | std::io::ErrorKind::ConnectionReset)
                    {
                        tracing::warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Some(slot) = tracker.admit(peer.ip()) else {
            // Closed at once (dropped); log at most every 10 s, a flood must not flood the log.
            if refused_logged.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                refused_logged = Some(std::time::Instant::now());
                tracing::warn!(
                    "refusing connections: {} open, caps {} in total and {} per peer (from {})",
                    tracker.open(),
                    tracker.max_total,
                    tracker.max_per_peer,
                    peer.ip()
                );
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        tracing::debug!("connection from {peer}: {e}");
                    }
                }
                // The guard `wait_for` returns is not Send: drop it inside.
                _ = async { drop(stop.wait_for(|s| *s).await) } => {
                    // Finish the request in flight, then close. A client that sent half a
                    // request head counts as in flight to hyper: `drain` bounds the wait.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(drain, conn).await;
                }
            }
            // `stop` (a receiver) drops here: shutdown waits for all of them.
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(stop_rx);
    stop_tx.closed().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_in_total_and_per_peer() {
        let t = Tracker::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = t.admit(a).unwrap();
        let a2 = t.admit(a).unwrap();
        assert!(t.admit(a).is_none(), "per-peer cap");
        let b1 = t.admit(b).unwrap();
        assert!(t.admit(b).is_none(), "total cap");
        assert_eq!(t.open(), 3);
        drop(a1);
        assert!(t.admit(a).is_some(), "a freed place is reusable");
        drop((a2, b1));
        assert_eq!(t.open(), 0);
        assert!(t.counts.lock().unwrap().per_peer.is_empty());
    }

    #[test]
    fn peers_are_hosts() {
        let k = |s: &str| peer_key(s.parse().unwrap());
        assert_eq!(k("::ffff:10.0.0.1"), k("10.0.0.1"));
        assert_eq!(k("2001:db8:1:2::1"), k("2001:db8:1:2:ffff::9"));
        assert_ne!(k("2001:db8:1:2::1"), k("2001:db8:1:3::1"));
        assert_ne!(k("10.0.0.1"), k("10.0.0.2"));
    }
}
