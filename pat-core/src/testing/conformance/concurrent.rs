//! The concurrent model test: threads looking tokens up, creating, revoking,
//! rotating, pruning and flushing at once, on one backend or on two
//! replicas of one database, each answer checked against what the model
//! knew when the call began and ended.
//!
//! Time is logical (a clock thread moves it one second per tick), so
//! sliding windows of a few seconds expire and refresh many times in a
//! short run; revocation is checked against real time, since a staleness
//! bound is real time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use rand::Rng as _;

use super::{Backend, authenticate};
use crate::{AuthError, ExpiryPolicy, NewToken, Rotation, StoreError, Timestamp, TokenId};

/// What [`run_concurrent`] runs against.
pub struct Concurrent<'a> {
    /// Two handles to the backend: the same one twice for a backend in one
    /// process, or two replicas of one database.
    pub replicas: [&'a dyn Backend; 2],
    /// How late a replica may learn of a revocation made elsewhere; `None`:
    /// at once (one process, or replicas that tell each other before a
    /// write returns).
    pub staleness: Option<Duration>,
    /// How long after its expiry `prune` keeps a token (a PostgreSQL
    /// backend's prune margin); zero for one process.
    pub prune_margin: Duration,
    /// Checks the backend's memory against its bounds; called often, from
    /// every thread. `Err` names what is over.
    pub bounds: &'a (dyn Fn() -> Result<(), String> + Sync),
    /// Real time per logical second. Sliding windows are 3 to 8 logical
    /// seconds: make them long against the staleness bound, or replicas
    /// will rightly refuse tokens whose uses elsewhere they cannot know yet.
    pub tick: Duration,
    /// How long to run.
    pub run_for: Duration,
}

impl std::fmt::Debug for Concurrent<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Concurrent")
            .field("staleness", &self.staleness)
            .field("prune_margin", &self.prune_margin)
            .field("tick", &self.tick)
            .field("run_for", &self.run_for)
            .finish_non_exhaustive()
    }
}

/// Logical seconds: the clock starts here.
const EPOCH: u64 = 1_000_000;
/// Real time between two flushes (of alternate replicas).
const FLUSH_EVERY: Duration = Duration::from_millis(15);
/// Live secrets the admin thread keeps around.
const LIVE: usize = 24;

fn at(secs: u64) -> Timestamp {
    Timestamp::from_unix_secs(secs).expect("test times are in range")
}

/// One secret, as the model knows it.
struct Cred {
    secret: String,
    id: TokenId,
    user: String,
    /// The sliding window in seconds; `None` for a hard deadline.
    window: Option<u64>,
    /// The latest deadline each replica has shown by a successful use (or
    /// the creation), by replica: a lower bound on what it must honour.
    until: [AtomicU64; 2],
    /// The latest use each replica answered, by replica.
    last_use: [AtomicU64; 2],
    /// Deadlines known to be written by a replica's flush, and when that
    /// flush returned: another replica must honour them once the
    /// staleness bound has passed.
    flushed: Mutex<VecDeque<(Instant, u64)>>,
    /// Looked up rarely, so that it expires now and then.
    idle: bool,
    /// A revocation (or a rotation replacing this secret) has begun.
    revoking: AtomicBool,
    /// When it returned.
    revoked_at: OnceLock<Instant>,
}

impl Cred {
    fn new(secret: String, info: &crate::TokenInfo) -> Cred {
        let deadline = info.expiry.expires_at().as_unix_secs();
        Cred {
            secret,
            id: info.id,
            user: info.user.clone(),
            window: info.expiry.window().map(|w| w.as_secs()),
            until: [AtomicU64::new(deadline), AtomicU64::new(deadline)],
            last_use: [AtomicU64::new(0), AtomicU64::new(0)],
            flushed: Mutex::new(VecDeque::new()),
            idle: rand::rng().random_bool(0.3),
            revoking: AtomicBool::new(false),
            revoked_at: OnceLock::new(),
        }
    }

    /// The deadline replica `r` must honour for a lookup that began at
    /// `began`.
    fn owed(&self, r: usize, began: Instant, staleness: Duration) -> u64 {
        let own = self.until[r].load(Ordering::Acquire);
        let flushed = lock(&self.flushed)
            .iter()
            .filter(|(when, _)| *when + staleness <= began)
            .map(|(_, v)| *v)
            .max()
            .unwrap_or(0);
        own.max(flushed)
    }
}

fn rng_replica() -> usize {
    rand::rng().random_range(0..2)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct World<'a> {
    c: &'a Concurrent<'a>,
    /// Both replicas are one backend: one view.
    same: bool,
    clock: AtomicU64,
    creds: RwLock<Vec<Arc<Cred>>>,
    /// Secrets revoked or rotated away lately, still presented now and
    /// then (as a client that missed the news would).
    dead: Mutex<VecDeque<Arc<Cred>>>,
    /// The latest `now` any prune was given, less the margin: tokens
    /// expired before it may be gone.
    prune_floor: AtomicU64,
    stop: AtomicBool,
    violations: Mutex<Vec<String>>,
    lookups: AtomicUsize,
    accepted: AtomicUsize,
}

impl World<'_> {
    fn now(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    fn view(&self, r: usize) -> usize {
        if self.same { 0 } else { r }
    }

    fn fail(&self, what: String) {
        let mut v = lock(&self.violations);
        if v.len() < 20 {
            v.push(what);
        }
        self.stop.store(true, Ordering::Release);
    }

    fn staleness(&self) -> Duration {
        self.c.staleness.unwrap_or(Duration::ZERO)
    }

    fn pick(&self) -> Option<Arc<Cred>> {
        if rand::rng().random_range(0..5) == 0 {
            let dead = lock(&self.dead);
            if !dead.is_empty() {
                return Some(dead[rand::rng().random_range(0..dead.len())].clone());
            }
        }
        self.pick_live()
    }

    fn pick_live(&self) -> Option<Arc<Cred>> {
        let creds = self.creds.read().unwrap_or_else(PoisonError::into_inner);
        if creds.is_empty() {
            return None;
        }
        let mut rng = rand::rng();
        let cred = &creds[rng.random_range(0..creds.len())];
        (!cred.idle || rng.random_range(0..40) == 0).then(|| cred.clone())
    }

    fn check_bounds(&self) {
        if let Err(e) = (self.c.bounds)() {
            self.fail(format!("a bound was exceeded: {e}"));
        }
    }

    /// One lookup of a token picked at random, checked.
    fn lookup(&self) {
        let Some(cred) = self.pick() else { return };
        self.lookup_of(&cred, rand::rng().random_range(0..2));
    }

    /// A lookup of `cred` on replica `r`, checked.
    fn lookup_of(&self, cred: &Cred, r: usize) {
        let v = self.view(r);
        let began = Instant::now();
        let revoked_before = cred.revoked_at.get().copied();
        let owed = cred.owed(v, began, self.staleness());
        let now = self.now();
        let answer = authenticate(self.c.replicas[r], &cred.secret, None, at(now));
        let n = self.lookups.fetch_add(1, Ordering::Relaxed);
        let who = format!("token {} on replica {r} at {now}", cred.id);
        match answer {
            Ok(identity) => {
                self.accepted.fetch_add(1, Ordering::Relaxed);
                if let Some(revoked) = revoked_before
                    && began >= revoked + self.staleness()
                {
                    self.fail(format!(
                        "{who}: accepted {:?} after its revocation returned",
                        began - revoked
                    ));
                }
                if identity.user() != cred.user || identity.token_id() != cred.id {
                    self.fail(format!("{who}: answered as another token"));
                }
                let deadline = identity.expires_at().as_unix_secs();
                if deadline <= now {
                    self.fail(format!("{who}: accepted with deadline {deadline}"));
                }
                if let Some(w) = cred.window {
                    if deadline < now + w {
                        self.fail(format!("{who}: a use moved the deadline to {deadline}"));
                    }
                    cred.until[v].fetch_max(now + w, Ordering::AcqRel);
                }
                cred.last_use[v].fetch_max(now, Ordering::AcqRel);
            }
            Err(AuthError::Expired { expires_at }) => {
                if now < owed && !cred.revoking.load(Ordering::Acquire) {
                    self.fail(format!(
                        "{who}: refused as expired at {expires_at}, alive until {owed}"
                    ));
                }
            }
            Err(AuthError::Unknown) => {
                let floor = self.prune_floor.load(Ordering::Acquire);
                if !cred.revoking.load(Ordering::Acquire) && owed > now.max(floor) {
                    self.fail(format!(
                        "{who}: refused as unknown, alive until {owed} and never revoked \
                         (prunes reached {floor})"
                    ));
                }
            }
            Err(e) => self.fail(format!("{who}: {e}")),
        }
        if n.is_multiple_of(16) {
            self.check_bounds();
        }
    }

    /// Creates, revokes or rotates, keeping about [`LIVE`] secrets around.
    fn admin(&self) {
        let mut rng = rand::rng();
        let r = rng.random_range(0..2);
        let backend = self.c.replicas[r];
        let now = self.now();
        let live = self
            .creds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        let roll = rng.random_range(0..10);
        if live < LIVE || (roll < 2 && live < 2 * LIVE) {
            let user = format!("u{}", rng.random_range(0..8));
            let expiry = if rng.random_bool(0.7) {
                ExpiryPolicy::sliding(Duration::from_secs(rng.random_range(3..8)), None)
            } else {
                ExpiryPolicy::hard(Duration::from_secs(rng.random_range(5..40)))
            };
            match backend.create(&NewToken::new(user, expiry), at(now)) {
                Ok(created) => {
                    let cred = Cred::new(created.secret.expose_secret().to_owned(), &created.info);
                    self.creds
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(Arc::new(cred));
                }
                Err(e) => self.fail(format!("create: {e}")),
            }
            return;
        }
        let Some(cred) = self.pick_live() else { return };
        if cred.revoking.swap(true, Ordering::AcqRel) {
            return; // already on its way out
        }
        let rotate = roll < 6;
        // A lookup of the same token races the write, every time.
        let outcome = thread::scope(|s| {
            s.spawn(|| self.lookup_of(&cred, rng_replica()));
            if rotate {
                backend.rotate(cred.id, &Rotation::new(), at(now)).map(Some)
            } else {
                backend.revoke(cred.id).map(|_| None)
            }
        });
        let returned = Instant::now();
        let _ = cred.revoked_at.set(returned);
        // The very next request with it, on the replica that revoked it,
        // must be refused.
        if let Ok(identity) = authenticate(backend, &cred.secret, None, at(self.now())) {
            self.fail(format!(
                "token {} on replica {r}: accepted right after its revocation returned ({})",
                cred.id,
                identity.token_id()
            ));
        }
        {
            let mut dead = lock(&self.dead);
            dead.push_back(cred.clone());
            if dead.len() > 32 {
                dead.pop_front();
            }
        }
        let mut creds = self.creds.write().unwrap_or_else(PoisonError::into_inner);
        creds.retain(|c| !Arc::ptr_eq(c, &cred));
        match outcome {
            Ok(Some(rotated)) => {
                let next = Cred::new(rotated.secret.expose_secret().to_owned(), &rotated.info);
                creds.push(Arc::new(next));
            }
            Ok(None) => {}
            // Pruned meanwhile: legitimate only if it could have expired.
            Err(StoreError::NotFound(_)) => {
                let owed = (0..2)
                    .map(|v| cred.owed(v, returned, self.staleness()))
                    .max()
                    .unwrap_or(0);
                if owed > self.prune_floor.load(Ordering::Acquire) {
                    drop(creds);
                    self.fail(format!(
                        "revoke or rotate of {}: not found, alive until {owed}",
                        cred.id
                    ));
                }
            }
            Err(e) => {
                drop(creds);
                self.fail(format!("revoke or rotate of {}: {e}", cred.id));
            }
        }
    }

    /// Flushes one replica, then records the deadlines it wrote.
    fn flush(&self, r: usize) {
        let v = self.view(r);
        let creds: Vec<Arc<Cred>> = self
            .creds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let known: Vec<u64> = creds
            .iter()
            .map(|c| c.until[v].load(Ordering::Acquire))
            .collect();
        if let Err(e) = self.c.replicas[r].flush() {
            self.fail(format!("flush of replica {r}: {e}"));
            return;
        }
        let done = Instant::now();
        for (c, until) in creds.iter().zip(known) {
            let mut flushed = lock(&c.flushed);
            flushed.push_back((done, until));
            // Keep what a lookup may still need: entries within the
            // staleness bound, and the latest one before it.
            while flushed.len() > 2 && flushed[1].0 + self.staleness() * 2 < done {
                flushed.pop_front();
            }
        }
    }

    fn prune(&self) {
        let now = self.now();
        let floor = now.saturating_sub(self.c.prune_margin.as_secs());
        // Raised before the prune starts: a lookup refused meanwhile may
        // be refused because of it.
        self.prune_floor.fetch_max(floor, Ordering::AcqRel);
        let r = rand::rng().random_range(0..2);
        if let Err(e) = self.c.replicas[r].prune(at(now)) {
            self.fail(format!("prune on replica {r}: {e}"));
        }
    }

    /// After the run: every use answered was written.
    fn settle(&self) {
        for r in 0..2 {
            if let Err(e) = self.c.replicas[r].flush() {
                self.fail(format!("final flush of replica {r}: {e}"));
            }
        }
        let creds = self
            .creds
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for cred in creds {
            let until = (0..2)
                .map(|v| cred.until[v].load(Ordering::Acquire))
                .max()
                .unwrap_or(0);
            let last = (0..2)
                .map(|v| cred.last_use[v].load(Ordering::Acquire))
                .max()
                .unwrap_or(0);
            match self.c.replicas[0].get(cred.id) {
                Ok(info) => {
                    if info.expiry.expires_at().as_unix_secs() < until {
                        self.fail(format!(
                            "token {}: stored deadline {}, uses reached {until}",
                            cred.id,
                            info.expiry.expires_at()
                        ));
                    }
                    if last > 0 && info.last_used_at.map(|t| t.as_unix_secs()) < Some(last) {
                        self.fail(format!(
                            "token {}: stored last use {:?}, answered one at {last}",
                            cred.id, info.last_used_at
                        ));
                    }
                }
                Err(StoreError::NotFound(_))
                    if until <= self.prune_floor.load(Ordering::Acquire) => {}
                Err(e) => self.fail(format!("token {}: {e}", cred.id)),
            }
        }
        self.check_bounds();
    }
}

/// Runs lookups (three threads), creations, revocations and rotations, flushes
/// and prunes at once against `c.replicas` for `c.run_for`, and panics
/// listing what went wrong. Checked at every step:
/// - nothing is accepted once its revocation (or the rotation that replaced
///   it) returned, or, between replicas, once the staleness bound passed;
/// - a token alive by a deadline a replica showed (a use it answered, or
///   one flushed by another replica longer than the bound ago) is never
///   refused as expired by it, nor as unknown unless it was revoked or
///   could have been pruned;
/// - every answered use is in the store after the final flush;
/// - `c.bounds` holds.
///
/// Give a backend a tiny cache capacity so that evictions happen all the
/// time.
pub fn run_concurrent(c: &Concurrent<'_>) {
    // Races, not reuse detection: a rotated-away secret presented again is
    // refused, and its token lives on (the default would revoke it).
    c.replicas[0]
        .set_policy(crate::Policy::default().on_reuse(crate::OnReuse::Refuse))
        .expect("set the policy");
    let world = World {
        c,
        same: std::ptr::addr_eq(c.replicas[0], c.replicas[1]),
        clock: AtomicU64::new(EPOCH),
        creds: RwLock::new(Vec::new()),
        dead: Mutex::new(VecDeque::new()),
        prune_floor: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        violations: Mutex::new(Vec::new()),
        lookups: AtomicUsize::new(0),
        accepted: AtomicUsize::new(0),
    };
    let end = Instant::now() + c.run_for;
    let running = || Instant::now() < end && !world.stop.load(Ordering::Acquire);
    thread::scope(|s| {
        let world = &world;
        let tick = c.tick;
        s.spawn(move || {
            while running() {
                thread::sleep(tick);
                world.clock.fetch_add(1, Ordering::AcqRel);
            }
        });
        for _ in 0..3 {
            s.spawn(move || {
                while running() {
                    world.lookup();
                    thread::sleep(Duration::from_micros(200));
                }
            });
        }
        s.spawn(move || {
            while running() {
                world.admin();
                thread::sleep(tick / 4);
            }
        });
        s.spawn(move || {
            let mut r = 0;
            while running() {
                world.flush(r);
                r = 1 - r;
                thread::sleep(FLUSH_EVERY);
            }
        });
        s.spawn(move || {
            while running() {
                thread::sleep(tick * 7);
                world.prune();
            }
        });
    });
    if !world.stop.load(Ordering::Acquire) {
        world.settle();
    }
    let violations = lock(&world.violations);
    assert!(
        violations.is_empty(),
        "the concurrent model test failed ({} lookups, {} accepted):\n{}",
        world.lookups.load(Ordering::Relaxed),
        world.accepted.load(Ordering::Relaxed),
        violations.join("\n")
    );
    let (lookups, accepted) = (
        world.lookups.load(Ordering::Relaxed),
        world.accepted.load(Ordering::Relaxed),
    );
    assert!(
        lookups > 100 && accepted > lookups / 10,
        "too little happened to mean anything: {lookups} lookups, {accepted} accepted"
    );
}
