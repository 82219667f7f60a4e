//! Webhooks, end to end: the reference servers deliver token events to a
//! real HTTP receiver on 127.0.0.1 that checks every signature, answers
//! errors, hangs up mid-delivery, goes down and comes back; a server
//! SIGKILLed with events pending; events given up, listed and sent again
//! with the real `pat-cli`; two PostgreSQL replicas sharing one webhook.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pat_core::{Admin, PgStore, Timestamp};
use pat_integration_tests::postgres::postgres;
use pat_integration_tests::{Server, ServerKind, Workdir, cli_ok_on};

const SECRET: &[u8] = b"whsec_0123456789abcdef";

/// How the receiver answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    /// 200, after `delay`.
    Ok,
    /// This status.
    Fail(u16),
    /// Reads the request, then closes the connection without answering
    /// (a receiver killed mid-delivery).
    HangUp,
}

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    id: String,
    kind: String,
    body: serde_json::Value,
    /// Whether it was answered 200.
    accepted: bool,
    /// When it arrived.
    at: Instant,
}

#[derive(Default)]
struct Shared {
    /// The secret it checks signatures with; `SECRET` when empty.
    secret: Mutex<Vec<u8>>,
    mode: Mutex<Option<Mode>>,
    got: Mutex<Vec<Got>>,
    bad_signatures: AtomicUsize,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

/// A webhook receiver on 127.0.0.1 that can go down (its port closed)
/// and come back on the same port.
struct Receiver {
    port: u16,
    shared: Arc<Shared>,
    listener: Option<std::thread::JoinHandle<()>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    delay: Duration,
}

impl Receiver {
    fn start(delay: Duration) -> Receiver {
        let mut r = Receiver {
            port: 0,
            shared: Arc::new(Shared::default()),
            listener: None,
            stop: Arc::default(),
            delay,
        };
        *r.shared.mode.lock().unwrap() = Some(Mode::Ok);
        r.up();
        r
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook?key=receiver-secret", self.port)
    }

    fn set(&self, mode: Mode) {
        *self.shared.mode.lock().unwrap() = Some(mode);
    }

    /// Listens again, on the same port once it had one.
    fn up(&mut self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port)).expect("receiver port");
        self.port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        self.stop = Arc::default();
        let (stop, shared, delay) = (self.stop.clone(), self.shared.clone(), self.delay);
        self.listener = Some(std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let shared = shared.clone();
                        std::thread::spawn(move || serve(conn, &shared, delay));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        }));
    }

    /// Closes its port: connections are refused until `up`.
    fn down(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.listener.take() {
            t.join().unwrap();
        }
    }

    fn got(&self) -> Vec<Got> {
        self.shared.got.lock().unwrap().clone()
    }

    /// The ids accepted, in the order they were.
    fn accepted(&self) -> Vec<String> {
        self.got()
            .into_iter()
            .filter(|g| g.accepted)
            .map(|g| g.id)
            .collect()
    }

    /// Waits until `done` holds of what it got, for at most 60 s.
    fn wait_for(&self, what: &str, done: impl Fn(&[Got]) -> bool) {
        let start = Instant::now();
        while !done(&self.got()) {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waiting for {what}; got {:#?}",
                self.got()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

fn serve(mut conn: TcpStream, shared: &Shared, delay: Duration) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        if line == "\r\n" {
            break;
        }
        headers.push(line.trim_end().to_owned());
    }
    let header = |name: &str| {
        headers
            .iter()
            .find_map(|h| {
                let (k, v) = h.split_once(':')?;
                k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
            })
            .unwrap_or_default()
    };
    let len: usize = header("content-length").parse().unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).unwrap();
    let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    shared.most_in_flight.fetch_max(now, Ordering::SeqCst);
    let secret = shared.secret.lock().unwrap().clone();
    let signed = pat_core::webhook::verify_signature(
        if secret.is_empty() { SECRET } else { &secret },
        &header("pat-signature"),
        &body,
        Timestamp::now(),
        Duration::from_secs(300),
    );
    if signed.is_err() || !headers[0].starts_with("POST /hook?key=receiver-secret ") {
        shared.bad_signatures.fetch_add(1, Ordering::SeqCst);
    }
    let mode = shared.mode.lock().unwrap().expect("a mode");
    if mode == Mode::Ok {
        std::thread::sleep(delay);
    }
    let body: serde_json::Value = serde_json::from_slice(&body).expect("a JSON body");
    assert_eq!(body["id"], header("pat-event-id"));
    assert_eq!(body["type"], header("pat-event-type"));
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    shared.got.lock().unwrap().push(Got {
        id: header("pat-event-id"),
        kind: header("pat-event-type"),
        body,
        accepted: mode == Mode::Ok,
        at: Instant::now(),
    });
    let status = match mode {
        Mode::Ok => 200,
        Mode::Fail(s) => s,
        Mode::HangUp => return,
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    );
}

fn seq(id: &str) -> u64 {
    id.strip_prefix("evt_").unwrap().parse().unwrap()
}

/// Checks what arrived: every signature good, the events in order, and an
/// id seen again only as a retry of one not yet accepted.
fn check_order(r: &Receiver) {
    assert_eq!(r.shared.bad_signatures.load(Ordering::SeqCst), 0);
    let got = r.got();
    let mut accepted: Vec<u64> = Vec::new();
    for g in &got {
        let s = seq(&g.id);
        assert!(
            !accepted.contains(&s),
            "{} again after it was accepted: {got:#?}",
            g.id
        );
        if let Some(&last) = accepted.last() {
            assert!(s > last, "out of order: {got:#?}");
        }
        if g.accepted {
            accepted.push(s);
        }
    }
}

fn secret_file(dir: &Path) -> String {
    let path = dir.join("webhook-secret");
    std::fs::write(&path, [SECRET, b"\n"].concat()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn flags<'a>(url: &'a str, secret: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    flags_waiting(url, secret, "1s", extra)
}

/// The flags, with the longest wait between retries.
fn flags_waiting<'a>(
    url: &'a str,
    secret: &'a str,
    retry_max: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut all = vec![
        "--webhook",
        url,
        "--webhook-secret-file",
        secret,
        "--webhook-timeout",
        "1s",
        "--webhook-retry-max",
        retry_max,
    ];
    all.extend_from_slice(extra);
    all
}

#[test]
fn every_event_arrives_signed_and_in_order_through_an_outage_and_a_crash() {
    for kind in ServerKind::ALL {
        let w = Workdir::new();
        let secret = secret_file(w.path());
        // Made before the webhook's first start: not sent (it starts at
        // the log's end).
        w.create(&["-u", "early", "-e", "1h"]);
        let mut r = Receiver::start(Duration::ZERO);
        let url = r.url();
        let server = Server::start(kind, &w.db(), &flags(&url, &secret, &[]));
        let (_, id) = w.create(&["-u", "alice", "-e", "1h"]);
        w.cli_ok(&["token", "rotate", &id]);
        w.cli_ok(&["token", "revoke", &id]);
        r.wait_for("three events", |g| g.len() >= 3);
        let got = r.got();
        let kinds: Vec<&str> = got.iter().map(|g| g.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["token.created", "token.rotated", "token.revoked"],
            "{kind:?}"
        );
        assert!(got.iter().all(|g| g.body["token_id"] == id.as_str()));
        assert_eq!(got[2].body["cause"], "admin");
        assert_eq!(got[0].body["user"], "alice");

        // An outage: errors, a hang-up mid-delivery, the port closed.
        r.set(Mode::Fail(503));
        w.create(&["-u", "bob", "-e", "1h"]);
        r.wait_for("two failed attempts", |g| g.len() >= 5);
        r.set(Mode::HangUp);
        r.wait_for("a hang-up", |g| g.len() >= 6);
        r.down();
        std::thread::sleep(Duration::from_secs(2));
        r.set(Mode::Ok);
        r.up();
        r.wait_for("bob's token", |g| {
            g.iter().any(|g| g.accepted && g.body["user"] == "bob")
        });

        // A crash with events pending, and one made while it was down.
        r.down();
        w.create(&["-u", "carol", "-e", "1h"]);
        server.kill();
        w.create(&["-u", "dave", "-e", "1h"]);
        r.up();
        let server = Server::start(kind, &w.db(), &flags(&url, &secret, &[]));
        r.wait_for("carol's and dave's tokens", |g| {
            ["carol", "dave"]
                .iter()
                .all(|u| g.iter().any(|g| g.accepted && g.body["user"] == *u))
        });
        check_order(&r);
        let users: Vec<String> = r
            .got()
            .iter()
            .filter(|g| g.accepted && g.kind == "token.created")
            .map(|g| g.body["user"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(users, ["alice", "bob", "carol", "dave"], "{kind:?}");
        assert!(r.got().iter().all(|g| g.body["user"] != "early"));
        // The whole stream, as the CLI reads it, holds the same events.
        let listed: serde_json::Value =
            serde_json::from_str(&w.cli_ok(&["events", "--json"])).unwrap();
        let ids: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap())
            .collect();
        for id in r.accepted() {
            assert!(ids.contains(&id.as_str()), "{id} not listed");
        }
        drop(server);
    }
}

#[test]
fn an_event_past_its_retries_is_kept_listed_and_sent_again() {
    let w = Workdir::new();
    let secret = secret_file(w.path());
    let r = Receiver::start(Duration::ZERO);
    let url = r.url();
    let server = Server::start(
        ServerKind::Actix,
        &w.db(),
        &flags(
            &url,
            &secret,
            &["--webhook-give-up", "2s", "--metrics-reader", "ops"],
        ),
    );
    let ops = w.token(&["-u", "ops", "-e", "1h"]);
    r.wait_for("ops's token", |g| g.iter().any(|g| g.accepted));
    r.set(Mode::Fail(500));
    let (_, lost) = w.create(&["-u", "alice", "-e", "1h"]);
    // Given up after 2 s of failures, then the next event goes on.
    let start = Instant::now();
    let failed = loop {
        let out: serde_json::Value =
            serde_json::from_str(&w.cli_ok(&["events", "--failed", "--json"])).unwrap();
        if !out.as_array().unwrap().is_empty() {
            break out;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never given up");
        std::thread::sleep(Duration::from_millis(200));
    };
    let failed = &failed[0];
    // Its origin and a hash: never the path or query, which may hold a
    // receiver's secret.
    let name = failed["webhook"].as_str().unwrap();
    assert!(
        name.starts_with(&format!("http://127.0.0.1:{}#", r.port)),
        "{name}"
    );

    assert_eq!(failed["event"]["token_id"], lost.as_str());
    assert_eq!(
        failed["error"],
        "the receiver answered 500 Internal Server Error"
    );
    assert!(failed["attempts"].as_u64().unwrap() >= 2);
    let event_id = failed["event"]["id"].as_str().unwrap().to_owned();
    let human = w.cli_ok(&["events", "--failed"]);
    assert!(
        human.contains(&event_id) && human.contains("token.created"),
        "{human}"
    );
    assert!(
        !human.contains("receiver-secret"),
        "the URL's query is not shown"
    );

    r.set(Mode::Ok);
    w.create(&["-u", "bob", "-e", "1h"]);
    r.wait_for("bob's token", |g| g.iter().any(|g| g.accepted));
    // Sent again on request, by its id; then no longer failed.
    let said = w.cli_ok(&["events", "resend", &event_id]);
    assert!(said.contains("will be sent again"), "{said}");
    r.wait_for("the resent event", |g| {
        g.iter().any(|g| g.accepted && g.id == event_id)
    });
    let start = Instant::now();
    while w.cli_ok(&["events", "--failed"]).trim() != "no failed events" {
        assert!(start.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(100));
    }
    // A resend of what never failed, or of no event, is an error.
    for bad in ["evt_99999", "evt_x", "0"] {
        let out = w.cli(&["events", "resend", bad]);
        assert!(!out.status.success(), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("evt_"), "{bad}: {err}");
    }
    assert_eq!(r.shared.bad_signatures.load(Ordering::SeqCst), 0);
    // What the metrics say of it: ops's and bob's tokens delivered, the
    // lost one given up after its failures, then resent; nothing pending.
    let scraped = pat_integration_tests::client()
        .get(server.url("/metrics"))
        .bearer_auth(&ops)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let value = |line: &str| {
        scraped
            .lines()
            .find_map(|l| l.strip_prefix(line)?.trim().parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {line} in {scraped}"))
    };
    let deliveries = "pat_webhook_deliveries_total{result=";
    assert_eq!(value(&format!("{deliveries}\"delivered\"}}")), 2.0);
    assert_eq!(value(&format!("{deliveries}\"given_up\"}}")), 1.0);
    assert_eq!(value(&format!("{deliveries}\"resent\"}}")), 1.0);
    assert!(value(&format!("{deliveries}\"failed\"}}")) >= 1.0);
    assert_eq!(value("pat_webhook_events_pending"), 0.0);
    drop(server);
}

// The review of the event stream (H3): every failure was retried for the
// whole give-up time (24 h) before the next event went on, so one event a
// receiver would never take held back every event after it for a day; and
// the time of the next attempt was not stored, so a restart (or another
// replica taking the lease over) retried at once, whatever the backoff.
#[test]
fn a_refused_event_is_given_up_soon_and_a_restart_keeps_the_backoff() {
    let w = Workdir::new();
    let secret = secret_file(w.path());
    let r = Receiver::start(Duration::ZERO);
    let url = r.url();
    let args = flags_waiting(&url, &secret, "30s", &[]);
    let server = Server::start(ServerKind::Axum, &w.db(), &args);
    w.create(&["-u", "first", "-e", "1h"]);
    r.wait_for("the first token", |g| g.iter().any(|g| g.accepted));

    // 422: the receiver cannot take this event. Given up after three
    // attempts, not 24 h, and kept as failed.
    r.set(Mode::Fail(422));
    let (_, poison) = w.create(&["-u", "poison", "-e", "1h"]);
    let of = |g: &[Got], user: &str| g.iter().filter(|g| g.body["user"] == user).count();
    r.wait_for("three refusals", |g| of(g, "poison") >= 3);
    let start = Instant::now();
    let failed = loop {
        let out: serde_json::Value =
            serde_json::from_str(&w.cli_ok(&["events", "--failed", "--json"])).unwrap();
        if let Some(f) = out.as_array().unwrap().first() {
            break f.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never given up");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(failed["event"]["token_id"], poison.as_str());
    assert_eq!(failed["attempts"], 3);
    r.set(Mode::Ok);
    w.create(&["-u", "after", "-e", "1h"]);
    r.wait_for("the event after it", |g| {
        g.iter().any(|g| g.accepted && g.body["user"] == "after")
    });
    assert_eq!(of(&r.got(), "poison"), 3, "not tried again once given up");

    // 503: the receiver is down, which holds for the next events too:
    // retried, the waits doubling (1, 2, 4 s; the fourth is 8 s).
    r.set(Mode::Fail(503));
    w.create(&["-u", "carol", "-e", "1h"]);
    r.wait_for("four attempts", |g| of(g, "carol") >= 4);
    server.kill();
    let fourth = r
        .got()
        .iter()
        .filter(|g| g.body["user"] == "carol")
        .nth(3)
        .unwrap()
        .at;
    // Restarted with shorter waits, which count from the next attempt.
    let args = flags_waiting(&url, &secret, "1s", &[]);
    let server = Server::start(ServerKind::Axum, &w.db(), &args);
    r.wait_for("a fifth attempt, by the restarted server", |g| {
        of(g, "carol") >= 5
    });
    let fifth = r
        .got()
        .iter()
        .filter(|g| g.body["user"] == "carol")
        .nth(4)
        .unwrap()
        .at;
    // The stored time of the next attempt (8 s after the fourth, in whole
    // seconds) is kept: before, the restarted server retried once the
    // dead one's lease (4 s) ran out.
    assert!(
        fifth - fourth >= Duration::from_millis(6500),
        "retried {:?} after the fourth attempt",
        fifth - fourth
    );
    r.set(Mode::Ok);
    r.wait_for("carol's token", |g| {
        g.iter().any(|g| g.accepted && g.body["user"] == "carol")
    });
    check_order(&r);
    drop(server);
}

#[test]
fn a_webhook_refuses_what_it_cannot_use_at_start() {
    let w = Workdir::new();
    let short = w.path().join("short");
    std::fs::write(&short, "too short").unwrap();
    let secret = secret_file(w.path());
    for (url, file, said) in [
        (
            "https://hooks.example/x",
            short.to_str().unwrap(),
            "at least 16 bytes",
        ),
        ("http://hooks.example/x", secret.as_str(), "http"),
        ("ftp://127.0.0.1/x", secret.as_str(), "scheme"),
    ] {
        let (code, err) = Server::start_failing_with(
            ServerKind::Axum,
            &w.db(),
            &["--webhook", url, "--webhook-secret-file", file],
        );
        assert_ne!(code, Some(0));
        assert!(
            err.contains("--webhook") && err.contains(said),
            "{url}: {err}"
        );
    }
    // A URL is never echoed: its path or query may hold the receiver's
    // secret. A webhook file is named, never shown.
    let (_, err) = Server::start_failing_with(
        ServerKind::Axum,
        &w.db(),
        &[
            "--webhook",
            "http://hooks.example/T0PSECRET?key=T0PSECRET",
            "--webhook-secret-file",
            &secret,
        ],
    );
    assert!(
        err.contains("--webhook number 1") && !err.contains("T0PSECRET"),
        "{err}"
    );
    let file = w.path().join("hook");
    for (content, said) in [
        ("https://hooks.example/T0PSECRET\n", "on the second"),
        (
            "https://hooks.example/T0PSECRET\nT0PSECRET-short\n",
            "at least 16 bytes",
        ),
        (
            "https://hooks.example/T0PSECRET\nT0PSECRET-0123456789\nT0PSECRET-short\n",
            "third line: a webhook secret is at least 16 bytes",
        ),
        (
            "https://hooks.example/T0PSECRET\nT0PSECRET-0123456789\nT0PSECRET-0123456789\nmore\n",
            "nothing after",
        ),
        (
            "http://hooks.example/T0PSECRET\nT0PSECRET-0123456789\n",
            "http",
        ),
        // A stray space would fail every signature check silently.
        (
            "https://hooks.example/T0PSECRET\nT0PSECRET-0123456789 \n",
            "space or tab",
        ),
        // The lines swapped: the secret's text before a `:` is not quoted
        // as a scheme.
        (
            "T0PSECRET:0123456789\nhttps://hooks.example/x\n",
            "scheme must be",
        ),
    ] {
        std::fs::write(&file, content).unwrap();
        let (code, err) = Server::start_failing_with(
            ServerKind::Axum,
            &w.db(),
            &["--webhook-file", file.to_str().unwrap()],
        );
        assert_ne!(code, Some(0));
        assert!(
            err.contains("--webhook-file")
                && err.contains(said)
                && !err.to_lowercase().contains("t0psecret"),
            "{content:?}: {err}"
        );
    }
    // The same URL twice would share one cursor and lease: each receiver
    // would get some of the events.
    std::fs::write(&file, "https://hooks.example/a\r\n0123456789abcdef0123\r\n").unwrap();
    let (code, err) = Server::start_failing_with(
        ServerKind::Axum,
        &w.db(),
        &[
            "--webhook",
            "https://hooks.example/a",
            "--webhook-secret-file",
            &secret,
            "--webhook-file",
            file.to_str().unwrap(),
        ],
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("the same URL"), "{err}");
}

// The review (H4): every webhook was signed with one secret, so any
// receiver could forge deliveries to another, and its URL was on the
// command line for every local user to read. A webhook file gives each
// its URL and its own secret, out of the process list.
#[test]
fn each_webhook_file_signs_with_its_own_secret() {
    let w = Workdir::new();
    let receivers = [
        Receiver::start(Duration::ZERO),
        Receiver::start(Duration::ZERO),
    ];
    let mut args = Vec::new();
    for (i, r) in receivers.iter().enumerate() {
        let secret = format!("whsec_receiver_{i}_0123456789");
        let file = w.path().join(format!("hook-{i}"));
        if i == 0 {
            // CRLF line ends, as an editor on another OS leaves them.
            *r.shared.secret.lock().unwrap() = secret.clone().into_bytes();
            std::fs::write(&file, format!("{}\r\n{secret}\r\n", r.url())).unwrap();
        } else {
            // Moving to a new secret: this receiver still checks with
            // the old one, on the file's third line.
            let old = "whsec_the_old_one_0123456789";
            *r.shared.secret.lock().unwrap() = old.as_bytes().to_vec();
            std::fs::write(&file, format!("{}\n{secret}\n{old}\n", r.url())).unwrap();
        }
        args.push("--webhook-file".to_owned());
        args.push(file.to_str().unwrap().to_owned());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = Server::start(ServerKind::Actix, &w.db(), &args);
    w.create(&["-u", "alice", "-e", "1h"]);
    for r in &receivers {
        r.wait_for("alice's token", |g| g.iter().any(|g| g.accepted));
        assert_eq!(
            r.shared.bad_signatures.load(Ordering::SeqCst),
            0,
            "signed with this receiver's secret"
        );
    }
    let cmdline = std::fs::read_to_string(format!("/proc/{}/cmdline", server.pid())).unwrap();
    assert!(!cmdline.contains("receiver-secret"), "{cmdline}");
    drop(server);
}

#[test]
fn two_postgres_replicas_deliver_each_event_one_at_a_time() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let dir = tempfile::tempdir().unwrap();
    let secret = secret_file(dir.path());
    // A slow receiver, so that two deliverers would overlap.
    let r = Receiver::start(Duration::from_millis(100));
    let url = r.url();
    let [a, b] = pat_integration_tests::replicas(&db, dir.path(), &flags(&url, &secret, &[]));
    let create = |user: &str| {
        let out = cli_ok_on(&db, &["token", "--json", "-u", user, "-e", "1h"]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        v["id"].as_str().unwrap().to_owned()
    };
    let mut made: Vec<String> = (0..8).map(|i| create(&format!("user{i}"))).collect();
    r.wait_for("eight events", |g| {
        g.iter().filter(|g| g.accepted).count() >= 8
    });
    // The state both replicas share: wait until the eighth is stored as
    // delivered, then kill the replica holding the lease. The other takes
    // over once the lease ends (3 s: three timeouts).
    let store = PgStore::builder()
        .listen(false)
        .cache_capacity(0)
        .connect(&db)
        .unwrap();
    let all = store.deliveries().unwrap();
    assert_eq!(all.len(), 1, "the two replicas share one webhook");
    let name = all[0].0.clone();
    let last = store.events(0, 1000).unwrap().last().unwrap().seq;
    let holder = loop {
        let state = store.delivery(&name).unwrap().expect("a state");
        if state.cursor == last {
            break state.lease.expect("a lease").holder;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (held, other) = if holder.starts_with(&format!("pid {} ", a.pid())) {
        (a, b)
    } else {
        assert!(holder.starts_with(&format!("pid {} ", b.pid())), "{holder}");
        (b, a)
    };
    held.kill();
    made.extend((8..12).map(|i| create(&format!("user{i}"))));
    let start = Instant::now();
    while r.accepted().len() < 12 {
        assert!(start.elapsed() < Duration::from_secs(60), "{:#?}", r.got());
        std::thread::sleep(Duration::from_millis(50));
    }
    let taken = store
        .delivery(&name)
        .unwrap()
        .unwrap()
        .lease
        .unwrap()
        .holder;
    assert!(
        taken.starts_with(&format!("pid {} ", other.pid())),
        "{taken}"
    );
    check_order(&r);
    assert_eq!(
        r.shared.most_in_flight.load(Ordering::SeqCst),
        1,
        "one at a time"
    );
    let delivered: Vec<String> = r
        .got()
        .iter()
        .filter(|g| g.accepted)
        .map(|g| g.body["token_id"].as_str().unwrap().to_owned())
        .collect();
    // Each exactly once: the kill came between deliveries.
    assert_eq!(delivered, made);
    drop(other);
}

#[test]
fn a_server_with_expiry_notices_sends_the_threshold_a_token_is_within() {
    let w = Workdir::new();
    let secret = secret_file(w.path());
    let r = Receiver::start(Duration::ZERO);
    let url = r.url();
    let extra = ["--expiry-notices", "--expiry-notice-interval", "1s"];
    let server = Server::start(ServerKind::Axum, &w.db(), &flags(&url, &secret, &extra));
    let (_, soon) = w.create(&["-u", "alice", "-e", "3d"]);
    let (_, today) = w.create(&["-u", "bob", "-e", "2h"]);
    w.create(&["-u", "carol", "-e", "90d"]);
    w.create(&["-u", "dave", "-a", "10m"]);
    r.wait_for("two notices", |g| {
        g.iter().filter(|g| g.kind == "token.expiring").count() >= 2
    });
    // A few more sweeps: still one notice each.
    std::thread::sleep(Duration::from_secs(3));
    let notices: Vec<(String, u64)> = r
        .got()
        .iter()
        .filter(|g| g.kind == "token.expiring")
        .map(|g| {
            (
                g.body["token_id"].as_str().unwrap().to_owned(),
                g.body["days"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(notices.len(), 2, "{notices:?}");
    assert!(
        notices.contains(&(soon, 7)) && notices.contains(&(today, 0)),
        "{notices:?}"
    );
    check_order(&r);
    drop(server);
}

#[test]
fn expiry_notices_are_written_once_across_postgres_replicas() {
    let Some(pg) = postgres() else { return };
    let db = pg.database();
    let open = || {
        PgStore::builder()
            .listen(false)
            .cache_capacity(0)
            .connect(&db)
            .unwrap()
    };
    let (a, b) = (Arc::new(open()), Arc::new(open()));
    let day = Duration::from_secs(86_400);
    let now = Timestamp::now();
    for (i, days) in [2u32, 20, 50, 400].into_iter().enumerate() {
        let new =
            pat_core::NewToken::new(format!("user{i}"), pat_core::ExpiryPolicy::hard(day * days));
        a.create(&new, now).unwrap();
    }
    // Both replicas sweep at once, again and again.
    let sweeps: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|s| {
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| {
                        s.notify_expiring(now, &pat_core::DEFAULT_NOTICE_DAYS)
                            .unwrap()
                    })
                    .sum::<usize>()
            })
        })
        .collect();
    let written: usize = sweeps.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(written, 3, "the 7-, 30- and 60-day notices, once each");
    let days: Vec<u32> = a
        .events(0, 100)
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == pat_core::EventKind::Expiring)
        .map(|e| e.days.unwrap())
        .collect();
    assert_eq!(days.len(), 3);
    for d in [7, 30, 60] {
        assert!(days.contains(&d), "{days:?}");
    }
}
