//! Connection hygiene: thousands of connections that never finish their headers must not stall
//! the server; a connection over a cap is closed at once; an incomplete request head is closed
//! after the header-read timeout. Loopback only; every loop is bounded.
#![cfg(unix)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use common::*;
use scail_server::listen::ConnLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// Raises the soft descriptor limit to the hard one; returns the soft limit now in force.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on a struct we own.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < lim.rlim_max {
            let want = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                lim = want;
            }
        }
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
    let soft = lim.rlim_cur as u64;
    soft
}

/// A connection from `from` (any 127.x.y.z is loopback on Linux, so peers can differ).
async fn connect_from(from: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = TcpSocket::new_v4()?;
    s.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    s.connect(to).await
}

const PARTIAL_HEAD: &[u8] = b"GET /health HTTP/1.1\r\nHost: slow\r\nX-Slow: ";

/// Whether the server closed the connection within `within` (EOF or reset), reading and
/// discarding whatever it sent first.
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// `GET /health` on a fresh connection from `from`: the status line, and how long it took.
async fn health_from(from: Ipv4Addr, to: SocketAddr) -> (Option<String>, Duration) {
    let t0 = Instant::now();
    let line = async {
        let mut s = connect_from(from, to).await.ok()?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out).to_string();
        text.lines().next().map(str::to_string)
    };
    let r = tokio::time::timeout(Duration::from_secs(10), line)
        .await
        .ok()
        .flatten();
    (r, t0.elapsed())
}

fn peer(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, 2 + i as u8)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_do_not_stall_the_server_and_time_out() {
    let soft = raise_nofile();
    // Each held connection costs two descriptors here (client and server side).
    let n = 3000usize.min((soft.saturating_sub(1000) / 2) as usize);
    assert!(n >= 500, "descriptor limit {soft} is too low for this test");
    let per_peer = 250;
    let timeout = Duration::from_secs(4);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.connections = ConnLimits {
        max_connections: 4096,
        max_connections_per_peer: 256,
        header_read_timeout: timeout,
    };
    let srv = start_with(cfg, 1).await;
    let addr = srv.addr;

    // Many peers, each under its cap, hold connections that never finish their headers.
    let t0 = Instant::now();
    let mut slow = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = connect_from(peer(i / per_peer), addr).await.unwrap();
        s.write_all(PARTIAL_HEAD).await.unwrap();
        slow.push(s);
    }
    let opened = t0.elapsed();
    assert!(
        opened < timeout,
        "opening {n} took {opened:?}; the test needs less"
    );

    // The server still answers, and quickly.
    let (line, took) = health_from(Ipv4Addr::LOCALHOST, addr).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"), "took {took:?}");
    assert!(took < Duration::from_secs(1), "/health took {took:?}");

    // A peer at its cap gets new connections closed at once, not queued.
    let full = peer(0);
    let mut extra = Vec::new();
    for _ in 0..(256 - per_peer) {
        extra.push(connect_from(full, addr).await.unwrap());
    }
    let mut over = connect_from(full, addr).await.unwrap();
    let t1 = Instant::now();
    assert!(
        closed_within(&mut over, Duration::from_secs(1)).await,
        "a connection over the per-peer cap is closed"
    );
    assert!(t1.elapsed() < timeout / 2, "closed at once, not on timeout");
    // Still held: not closed before the timeout.
    assert!(!closed_within(&mut extra[0], Duration::from_millis(200)).await);
    assert!(
        t0.elapsed() < timeout,
        "the checks above ran within the timeout"
    );

    // After the header-read timeout every slow connection is closed by the server.
    let deadline = Duration::from_secs(15);
    for (i, s) in slow.iter_mut().chain(extra.iter_mut()).enumerate() {
        let left = deadline.saturating_sub(t0.elapsed());
        assert!(closed_within(s, left).await, "connection {i} still open");
    }
    assert!(
        t0.elapsed() >= timeout,
        "closed by the timeout, not before it"
    );
    drop(slow);
    // The peer's places are free again.
    let (line, _) = health_from(full, addr).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_timeout_total_cap_and_idle_keep_alive() {
    let timeout = Duration::from_millis(1500);
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path());
    cfg.connections = ConnLimits {
        max_connections: 40,
        max_connections_per_peer: 256,
        header_read_timeout: timeout,
    };
    let srv = start_with(cfg, 1).await;
    let addr = srv.addr;

    // An incomplete head is closed after the timeout, not before.
    let t0 = Instant::now();
    let mut partial = connect_from(peer(0), addr).await.unwrap();
    partial.write_all(PARTIAL_HEAD).await.unwrap();
    // A connection that sends nothing at all is closed too.
    let mut silent = connect_from(peer(1), addr).await.unwrap();
    // A keep-alive connection idle after a complete request is closed as well.
    let mut idle = connect_from(peer(2), addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let got = idle.read(&mut buf).await.unwrap();
    assert!(buf[..got].starts_with(b"HTTP/1.1 200 OK"));

    // Fill the total cap: the next connection is closed at once, whatever the peer.
    let mut held = Vec::new();
    for i in 0..37 {
        held.push(connect_from(peer(3 + i % 5), addr).await.unwrap());
    }
    let mut over = connect_from(peer(9), addr).await.unwrap();
    assert!(closed_within(&mut over, Duration::from_millis(500)).await);
    assert!(t0.elapsed() < timeout, "checked within the timeout");

    for (name, s) in [
        ("partial", &mut partial),
        ("silent", &mut silent),
        ("idle", &mut idle),
    ] {
        assert!(
            closed_within(s, Duration::from_secs(10)).await,
            "{name} closed"
        );
        assert!(
            t0.elapsed() >= timeout - Duration::from_millis(100),
            "{name}"
        );
    }
    for s in held.iter_mut() {
        assert!(closed_within(s, Duration::from_secs(10)).await);
    }
    // Places freed: the server answers again.
    let (line, _) = health_from(peer(9), addr).await;
    assert_eq!(line.as_deref(), Some("HTTP/1.1 200 OK"));
    srv.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_idle_connections_and_returns() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start(dir.path(), 1).await;
    let addr = srv.addr;
    let mut idle = connect_from(Ipv4Addr::LOCALHOST, addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    assert!(idle.read(&mut buf).await.unwrap() > 0);
    let mut slow = connect_from(Ipv4Addr::LOCALHOST, addr).await.unwrap();
    slow.write_all(PARTIAL_HEAD).await.unwrap();
    // Let the server read the half head: then hyper counts it as a request in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Shutdown waits neither for the half-sent head nor for the (long) header timeout: at most
    // the shutdown grace (2 s in the test config).
    let t0 = Instant::now();
    tokio::time::timeout(Duration::from_secs(10), srv.shutdown())
        .await
        .expect("shutdown returns");
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
    assert!(closed_within(&mut idle, Duration::from_secs(1)).await);
    assert!(connect_from(Ipv4Addr::LOCALHOST, addr).await.is_err());
}
