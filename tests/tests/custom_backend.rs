//! The backend seam, proven from outside pat-core: a backend written here,
//! with only pat-core's public API, that answers lookups later (from its own
//! worker thread, after a real await), driven through both adapters; the
//! in-memory backend through the reference contract; and a backend that fails.

use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pat_core::{
    Admin, AuditAction, AuditEntry, AuthError, BackendError, CreatedToken, DEFAULT_ACTOR,
    DEFAULT_AUDIT_RETENTION, ExpiryPolicy, Gate, Identity, Lookup, MemoryStore, NewToken, OnReuse,
    Policy, Rotation, StoreError, Timestamp, TokenDigest, TokenId, TokenInfo, TokenSecret,
    Verification, Verifier, authority, conformance,
};
use pat_integration_tests::contract::{Tokens, cases};
use pat_integration_tests::inproc::{self, Req};

/// Records as a database would hold them: by digest, with an index by id.
#[derive(Default)]
struct Table {
    rows: HashMap<TokenDigest, TokenInfo>,
    ids: HashMap<TokenId, TokenDigest>,
    /// Secrets retired by rotations, with their token and end of grace.
    retired: HashMap<TokenDigest, (TokenId, Timestamp)>,
    policy: Policy,
    audit: Vec<AuditEntry>,
    /// The place of the last audit entry (`AuditEntry::seq`): entries are
    /// numbered in the order they are stored, so that events can be read
    /// on from any of them.
    placed: u64,
    /// Tokens reuse detection refuses until the next flush revokes their
    /// families, and the roots it revokes.
    refused: HashSet<TokenId>,
    revoke: Vec<TokenId>,
    /// Tokens whose replay is in the audit log since the last flush.
    replayed: HashSet<TokenId>,
}

impl Table {
    /// Appends `entry` to the audit log at the next place.
    fn append(&mut self, mut entry: AuditEntry) {
        self.placed += 1;
        entry.seq = self.placed;
        self.audit.push(entry);
    }

    /// The row a presented digest stands for: its own, or, during a
    /// rotation's grace, its token's current one (then `true`). A replay
    /// after the grace goes in the audit log, once per token per flush, and
    /// (the default policy) refuses the token's family until the next flush
    /// revokes it.
    fn resolve(
        &mut self,
        digest: &TokenDigest,
        now: Timestamp,
    ) -> Result<(TokenDigest, bool), AuthError> {
        let (found, previous) = if self.rows.contains_key(digest) {
            (*digest, false)
        } else {
            let &(id, retires_at) = self.retired.get(digest).ok_or(AuthError::Unknown)?;
            if let Err(e) = pat_core::retired_secret(id, retires_at, now) {
                let user = self.current(id).map_or(String::new(), |i| i.user.clone());
                if self.replayed.insert(id) {
                    let entry = AuditEntry::new(
                        now,
                        AuditAction::ReplayedSecret,
                        Some(id),
                        &*user,
                        "-",
                        "refused",
                    );
                    self.append(entry);
                }
                if self.policy.on_reuse == OnReuse::Revoke && self.ids.contains_key(&id) {
                    let family = self.family(id);
                    self.refused.extend(family.iter().map(|t| t.id));
                    self.refused.insert(id);
                    self.revoke.push(id);
                }
                return Err(e);
            }
            (*self.ids.get(&id).ok_or(AuthError::Unknown)?, true)
        };
        if self.refused.contains(&self.rows[&found].id) {
            return Err(AuthError::Unknown);
        }
        Ok((found, previous))
    }

    fn current(&self, id: TokenId) -> Option<&TokenInfo> {
        self.ids.get(&id).and_then(|d| self.rows.get(d))
    }

    /// The descendants of `id`, with pat-core's walk.
    fn family(&self, id: TokenId) -> Vec<TokenInfo> {
        let all: Vec<TokenInfo> = self.rows.values().cloned().collect();
        authority::descendants_in(&all, id)
    }

    /// Deletes a token, recording nothing.
    fn remove(&mut self, id: TokenId) {
        if let Some(digest) = self.ids.remove(&id) {
            self.rows.remove(&digest);
        }
        self.refused.remove(&id);
    }

    /// Deletes `root` and its descendants, with the audit entries
    /// pat-core writes for it; how many went.
    fn remove_family(&mut self, root: &TokenInfo, actor: &str, outcome: &str) -> usize {
        let descendants = self.family(root.id);
        self.remove(root.id);
        for d in &descendants {
            self.remove(d.id);
        }
        for e in authority::revocation_entries(root, &descendants, actor, outcome, Timestamp::now())
        {
            self.append(e);
        }
        1 + descendants.len()
    }

    /// Carries out the revocations reuse detection asked for.
    fn flush(&mut self) {
        self.replayed.clear();
        for root in std::mem::take(&mut self.revoke) {
            if let Some(info) = self.current(root).cloned() {
                self.remove_family(&info, authority::REUSE_ACTOR, authority::REUSE_OUTCOME);
            }
        }
    }

    fn log(
        &mut self,
        action: AuditAction,
        info: Option<&TokenInfo>,
        user: &str,
        actor: &str,
        outcome: &str,
    ) {
        let entry = AuditEntry::new(
            Timestamp::now(),
            action,
            info.map(|i| i.id),
            user,
            actor,
            outcome,
        );
        self.append(entry);
    }

    fn log_at(
        &mut self,
        at: Timestamp,
        action: AuditAction,
        info: Option<&TokenInfo>,
        actor: &str,
    ) {
        let user = info.map_or(String::new(), |i| i.user.clone());
        self.append(AuditEntry::new(
            at,
            action,
            info.map(|i| i.id),
            user,
            actor,
            "ok",
        ));
    }
}

/// One lookup waiting for the worker.
struct Job {
    digest: TokenDigest,
    user: Option<String>,
    client: Option<std::net::IpAddr>,
    now: Timestamp,
    reply: tokio::sync::oneshot::Sender<Result<Identity, AuthError>>,
}

/// A backend like a networked one: every lookup is sent to a worker thread
/// (the "database") and awaited. The worker answers in batches of `batch`
/// lookups: with `batch > 1` it answers nothing until that many requests wait
/// at once, which only happens if the adapters keep serving other requests
/// while one waits.
struct AsyncBackend {
    table: Arc<Mutex<Table>>,
    jobs: Mutex<mpsc::Sender<Job>>,
    /// Batches the worker had to release on its deadline rather than full.
    released_late: Arc<AtomicUsize>,
}

impl AsyncBackend {
    fn new(batch: usize) -> AsyncBackend {
        let table = Arc::new(Mutex::new(Table::default()));
        let released_late = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = mpsc::channel::<Job>();
        {
            let (table, released_late) = (table.clone(), released_late.clone());
            std::thread::spawn(move || {
                let mut waiting = Vec::new();
                loop {
                    match rx.recv_timeout(Duration::from_secs(20)) {
                        Ok(job) => waiting.push(job),
                        Err(mpsc::RecvTimeoutError::Timeout) if !waiting.is_empty() => {
                            released_late.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(mpsc::RecvTimeoutError::Timeout) => continue,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return,
                    }
                    if waiting.len() < batch
                        && released_late.load(Ordering::SeqCst) == 0
                        && !waiting.is_empty()
                    {
                        continue;
                    }
                    for job in waiting.drain(..) {
                        let mut table = table.lock().unwrap();
                        let result =
                            table
                                .resolve(&job.digest, job.now)
                                .and_then(|(digest, previous)| {
                                    let info = table.rows.get_mut(&digest).expect("resolved row");
                                    info.record_use_from(job.user.as_deref(), job.client, job.now)
                                        .map(|expires_at| Identity::new(info, expires_at))
                                        .map(|i| if previous { i.by_previous_secret() } else { i })
                                });
                        let _ = job.reply.send(result);
                    }
                }
            });
        }
        AsyncBackend {
            table,
            jobs: Mutex::new(tx),
            released_late,
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap()
    }
}

impl Verifier for AsyncBackend {
    fn verify(&self, lookup: Lookup<'_>) -> Verification {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Job {
            digest: *lookup.digest(),
            user: lookup.user().map(str::to_owned),
            client: lookup.client(),
            now: lookup.now(),
            reply,
        };
        if self.jobs.lock().unwrap().send(job).is_err() {
            return Verification::Ready(Err(unavailable("the worker is gone")));
        }
        Verification::pending(async move {
            answer
                .await
                .unwrap_or_else(|_| Err(unavailable("the worker dropped the lookup")))
        })
    }

    /// A use of a quota, counted under the table's lock (a database would
    /// lock the row): the stored record checked again, the use counted.
    fn spend(&self, identity: Identity, now: Timestamp) -> Verification {
        let mut table = self.table();
        let id = identity.token_id();
        let refused = table.refused.contains(&id);
        let Some(digest) = table.ids.get(&id).copied().filter(|_| !refused) else {
            return Verification::Ready(Err(AuthError::Unknown));
        };
        let info = table.rows.get_mut(&digest).expect("indexed row");
        Verification::Ready(
            info.check_use_from(None, identity.client(), now)
                .and_then(|_| info.spend_use())
                .map(|()| identity.spent(info)),
        )
    }

    fn flush(&self) -> Result<usize, StoreError> {
        self.table().flush();
        Ok(0)
    }
}

fn unavailable(why: &str) -> AuthError {
    AuthError::Store(StoreError::Storage(BackendError::new(
        std::io::Error::other(why.to_owned()),
    )))
}

impl Admin for Acting<'_> {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        let mut table = self.b.table();
        let id = loop {
            let id = TokenId::generate();
            if !table.ids.contains_key(&id) {
                break id;
            }
        };
        let mut info = new.to_info(id, now)?;
        if let Some(parent) = new.parent {
            let gone = authority::AuthorityViolation::NoParent(parent);
            if table.refused.contains(&parent) {
                return Err(gone.into());
            }
            let digest = table.ids.get(&parent).ok_or(gone.clone())?;
            authority::check_presented(parent, digest, new.parent_secret.as_ref())?;
            let parent = table.current(parent).ok_or(gone)?;
            authority::adopt(parent, &mut info, now)?;
        }
        table.policy.check_lifetime(&info)?;
        let live = table
            .rows
            .values()
            .filter(|i| i.user == info.user && !i.is_expired(now))
            .count();
        table.policy.check_count(&info.user, live)?;
        // The child's uses come out of its parent's quota.
        if let Some(parent) = new.parent
            && let Some(digest) = table.ids.get(&parent).copied()
            && let Some(stored) = table.rows.get_mut(&digest)
        {
            authority::draw_uses(stored, &info);
        }
        let secret = TokenSecret::generate();
        table.rows.insert(secret.digest(), info.clone());
        table.ids.insert(id, secret.digest());
        table.log_at(now, AuditAction::Create, Some(&info), &self.actor);
        Ok(CreatedToken::new(secret, info))
    }

    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        let mut out: Vec<TokenInfo> = self
            .b
            .table()
            .rows
            .values()
            .filter(|i| user.is_none_or(|u| i.user == u))
            .filter(|i| include_expired || !i.is_expired(now))
            .cloned()
            .collect();
        out.sort_by_key(|i| (i.created_at, i.id));
        Ok(out)
    }

    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        let table = self.b.table();
        if let Some(info) = table.rows.get(digest) {
            return Ok(Some(info.clone()));
        }
        Ok(match table.retired.get(digest) {
            Some(&(id, retires_at)) if now < retires_at => {
                table.ids.get(&id).and_then(|d| table.rows.get(d)).cloned()
            }
            _ => None,
        })
    }

    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let table = self.b.table();
        let digest = table.ids.get(&id).ok_or(StoreError::NotFound(id))?;
        Ok(table.rows[digest].clone())
    }

    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        let mut table = self.b.table();
        let old = *table.ids.get(&id).ok_or(StoreError::NotFound(id))?;
        if table.refused.contains(&id) {
            return Err(StoreError::NotFound(id));
        }
        authority::check_presented(id, &old, rotation.presented.as_ref())?;
        let before = table.rows[&old].clone();
        let parent = match before.parent {
            None => None,
            Some(p) => Some(
                table
                    .current(p)
                    .cloned()
                    .ok_or(authority::AuthorityViolation::NoParent(p))?,
            ),
        };
        // pat-core's rule: the envelope, the grace; then the family
        // brought within the new deadline.
        let info = authority::rotate(&before, rotation, parent.as_ref(), &table.policy, now)?;
        let clamped = authority::clamp_family(&info, |p| {
            Ok::<_, StoreError>(
                table
                    .rows
                    .values()
                    .filter(|t| t.parent == Some(p))
                    .cloned()
                    .collect(),
            )
        })?;
        let secret = TokenSecret::generate();
        table.rows.remove(&old);
        table.rows.insert(secret.digest(), info.clone());
        table.ids.insert(id, secret.digest());
        // At most one old secret works: earlier graces end now.
        for (rid, until) in table.retired.values_mut() {
            if *rid == id {
                *until = (*until).min(now);
            }
        }
        table
            .retired
            .insert(old, (id, info.previous_until.unwrap_or(now)));
        table.log_at(now, AuditAction::Rotate, Some(&info), &self.actor);
        for c in clamped {
            table
                .audit
                .push(authority::clamp_entry(&c, &self.actor, now));
            let digest = table.ids[&c.id];
            table.rows.insert(digest, c);
        }
        Ok(CreatedToken::new(secret, info))
    }

    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        let mut table = self.b.table();
        let info = table.current(id).cloned().ok_or(StoreError::NotFound(id))?;
        table.remove_family(&info, &self.actor, "ok");
        Ok(info)
    }

    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        let mut table = self.b.table();
        let ids: Vec<TokenId> = table
            .rows
            .values()
            .filter(|i| i.user == user)
            .map(|i| i.id)
            .collect();
        let mut n = 0;
        for id in ids {
            // A descendant of one of them may be gone with it already.
            let Some(info) = table.current(id).cloned() else {
                continue;
            };
            n += table.remove_family(&info, &self.actor, authority::USER_REVOKED);
        }
        let outcome = AuditEntry::count_outcome(n);
        table.log(AuditAction::RevokeUser, None, user, &self.actor, &outcome);
        Ok(n)
    }

    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        let ids: Vec<TokenId> = self
            .b
            .table()
            .rows
            .values()
            .filter(|i| i.is_expired(now))
            .map(|i| i.id)
            .collect();
        let mut table = self.b.table();
        for id in &ids {
            table.remove(*id);
        }
        let table = &mut *table;
        table
            .retired
            .retain(|_, (id, _)| table.ids.contains_key(id));
        let horizon = now
            .as_unix_secs()
            .saturating_sub(DEFAULT_AUDIT_RETENTION.as_secs());
        table.audit.retain(|e| e.at.as_unix_secs() >= horizon);
        let outcome = AuditEntry::count_outcome(ids.len());
        table.append(AuditEntry::new(
            now,
            AuditAction::Prune,
            None,
            "",
            &*self.actor,
            outcome,
        ));
        Ok(ids.len())
    }

    fn policy(&self) -> Result<Policy, StoreError> {
        Ok(self.b.table().policy)
    }

    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        let mut table = self.b.table();
        table.policy = policy;
        table.log(
            AuditAction::SetPolicy,
            None,
            "",
            &self.actor,
            &policy.summary(),
        );
        Ok(())
    }

    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        Ok(self
            .b
            .table()
            .audit
            .iter()
            .filter(|e| e.matches(since, user))
            .cloned()
            .collect())
    }

    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a> {
        self.b.acting_as(actor)
    }
}

/// The backend, acting as someone for the audit log.
struct Acting<'a> {
    b: &'a AsyncBackend,
    actor: String,
}

impl Admin for AsyncBackend {
    fn create(&self, new: &NewToken, now: Timestamp) -> Result<CreatedToken, StoreError> {
        self.acting_as(DEFAULT_ACTOR).create(new, now)
    }
    fn list(
        &self,
        user: Option<&str>,
        include_expired: bool,
        now: Timestamp,
    ) -> Result<Vec<TokenInfo>, StoreError> {
        self.acting_as(DEFAULT_ACTOR)
            .list(user, include_expired, now)
    }
    fn get(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        self.acting_as(DEFAULT_ACTOR).get(id)
    }
    fn find(&self, digest: &TokenDigest, now: Timestamp) -> Result<Option<TokenInfo>, StoreError> {
        self.acting_as(DEFAULT_ACTOR).find(digest, now)
    }
    fn rotate(
        &self,
        id: TokenId,
        rotation: &Rotation,
        now: Timestamp,
    ) -> Result<CreatedToken, StoreError> {
        self.acting_as(DEFAULT_ACTOR).rotate(id, rotation, now)
    }
    fn revoke(&self, id: TokenId) -> Result<TokenInfo, StoreError> {
        self.acting_as(DEFAULT_ACTOR).revoke(id)
    }
    fn revoke_user(&self, user: &str) -> Result<usize, StoreError> {
        self.acting_as(DEFAULT_ACTOR).revoke_user(user)
    }
    fn prune(&self, now: Timestamp) -> Result<usize, StoreError> {
        self.acting_as(DEFAULT_ACTOR).prune(now)
    }
    fn policy(&self) -> Result<Policy, StoreError> {
        Ok(self.table().policy)
    }
    fn set_policy(&self, policy: Policy) -> Result<(), StoreError> {
        self.acting_as(DEFAULT_ACTOR).set_policy(policy)
    }
    fn audit(&self, since: Timestamp, user: Option<&str>) -> Result<Vec<AuditEntry>, StoreError> {
        self.acting_as(DEFAULT_ACTOR).audit(since, user)
    }
    fn acting_as<'a>(&'a self, actor: &str) -> Box<dyn Admin + 'a> {
        Box::new(Acting {
            b: self,
            actor: actor.to_owned(),
        })
    }
}

#[test]
fn a_backend_written_outside_pat_core_passes_the_shared_suite() {
    conformance::run_contract(|| AsyncBackend::new(1));
    conformance::run_model(|| AsyncBackend::new(1), 32);
    conformance::run_authority(|| AsyncBackend::new(1), 64);
    let backend = AsyncBackend::new(1);
    conformance::run_concurrent(&conformance::Concurrent {
        replicas: [&backend, &backend],
        staleness: None,
        prune_margin: Duration::ZERO,
        bounds: &|| Ok(()),
        tick: Duration::from_millis(10),
        run_for: Duration::from_secs(2),
    });
}

#[test]
fn the_reference_contract_holds_on_every_backend_through_both_adapters() {
    let backends: Vec<(&str, Arc<dyn Backend>)> = vec![
        ("memory", Arc::new(MemoryStore::new())),
        ("async", Arc::new(AsyncBackend::new(1))),
    ];
    for (name, backend) in backends {
        let tokens = Tokens::create(backend.as_admin());
        let cases = cases(&tokens);
        let reqs: Vec<Req> = cases.iter().map(Req::from).collect();
        let gate = Gate::new(backend.clone().into_verifier());
        let tower = inproc::tower_seen(inproc::reference_router(&gate), &reqs);
        let actix = inproc::actix_seen(inproc::reference_actix(&gate), &reqs);
        for ((case, t), a) in cases.iter().zip(&tower).zip(&actix) {
            case.check(t, &format!("axum on {name}"));
            case.check(a, &format!("actix on {name}"));
            assert_eq!(t, a, "{name}: the adapters differ on {}", case.name);
        }
    }
}

/// Admin and Verifier at once, as a trait object.
trait Backend: Admin + Verifier {
    fn as_admin(&self) -> &dyn Admin;
    fn into_verifier(self: Arc<Self>) -> Arc<dyn Verifier>;
}

impl<T: Admin + Verifier + 'static> Backend for T {
    fn as_admin(&self) -> &dyn Admin {
        self
    }
    fn into_verifier(self: Arc<Self>) -> Arc<dyn Verifier> {
        self
    }
}

/// Creates `n` tokens of users `u0`..`u{n-1}` and their Bearer headers.
fn bearers(admin: &dyn Admin, n: usize) -> Vec<(String, String)> {
    let hour = ExpiryPolicy::hard(Duration::from_secs(3600));
    (0..n)
        .map(|i| {
            let user = format!("u{i}");
            let created = admin
                .create(&NewToken::new(&user, hour), Timestamp::now())
                .unwrap();
            (user, format!("Bearer {}", created.secret.expose_secret()))
        })
        .collect()
}

const CONCURRENT: usize = 16;

#[test]
fn tower_serves_other_requests_while_one_waits_for_the_backend() {
    // The backend answers nothing until CONCURRENT lookups wait at once:
    // this finishes only if the layer awaits lookups instead of blocking.
    let backend = Arc::new(AsyncBackend::new(CONCURRENT));
    let users = bearers(&*backend, CONCURRENT);
    let app = inproc::echo_router(&Gate::new(backend.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let started = Instant::now();
    let answers = rt.block_on(async {
        let tasks: Vec<_> = users
            .iter()
            .map(|(_, bearer)| {
                use tower::ServiceExt as _;
                let req = http::Request::get("/x")
                    .header("authorization", bearer)
                    .body(axum::body::Body::empty())
                    .unwrap();
                tokio::spawn(app.clone().oneshot(req))
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            let res = t.await.unwrap().unwrap();
            let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            out.push(String::from_utf8(body.to_vec()).unwrap());
        }
        out
    });
    let expected: Vec<String> = users.iter().map(|(u, _)| format!("user {u}")).collect();
    assert_eq!(answers, expected);
    assert_eq!(
        backend.released_late.load(Ordering::SeqCst),
        0,
        "the lookups never waited together (took {:?})",
        started.elapsed()
    );
}

#[test]
fn actix_serves_other_requests_while_one_waits_for_the_backend() {
    use actix_web::{App, test};
    let backend = Arc::new(AsyncBackend::new(CONCURRENT));
    let users = bearers(&*backend, CONCURRENT);
    let configure = inproc::echo_actix(&Gate::new(backend.clone()));
    let headers: Vec<String> = users.iter().map(|(_, b)| b.clone()).collect();
    // One actix worker: a single thread serves every request.
    let answers = actix_web::rt::System::new().block_on(async move {
        let app = Rc::new(test::init_service(App::new().configure(configure)).await);
        let tasks: Vec<_> = headers
            .iter()
            .map(|bearer| {
                let app = app.clone();
                let req = test::TestRequest::get()
                    .uri("/x")
                    .insert_header(("authorization", bearer.as_str()))
                    .to_request();
                actix_web::rt::spawn(async move {
                    let res = test::call_service(&*app, req).await;
                    String::from_utf8(test::read_body(res).await.to_vec()).unwrap()
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    });
    let expected: Vec<String> = users.iter().map(|(u, _)| format!("user {u}")).collect();
    assert_eq!(answers, expected);
    assert_eq!(backend.released_late.load(Ordering::SeqCst), 0);
}

/// A backend whose storage is down: every lookup fails, at once or later.
struct Down {
    later: bool,
    lookups: AtomicUsize,
}

impl Verifier for Down {
    fn verify(&self, _lookup: Lookup<'_>) -> Verification {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let err = || unavailable("connection refused by db.internal:5432");
        if self.later {
            Verification::pending(async move {
                tokio::task::yield_now().await;
                Err(err())
            })
        } else {
            Verification::Ready(Err(err()))
        }
    }
}

#[test]
fn a_failing_backend_is_503_with_retry_after_through_both_adapters() {
    let logs = LogCapture::default();
    let secret = TokenSecret::generate();
    let token = secret.expose_secret().to_owned();
    let reqs = vec![
        Req {
            method: http::Method::GET,
            path: "/hello".into(),
            headers: vec![("authorization", format!("Bearer {token}"))],
        },
        Req {
            method: http::Method::GET,
            path: "/hello".into(),
            headers: vec![(
                "authorization",
                pat_integration_tests::basic("alice", &token),
            )],
        },
    ];
    for later in [false, true] {
        let down = Arc::new(Down {
            later,
            lookups: AtomicUsize::new(0),
        });
        let gate = Gate::new(down.clone()).retry_after(3);
        let (tower, actix) = logs.during(|| {
            (
                tower_with_retry_after(&gate, &reqs),
                actix_with_retry_after(&gate, &reqs),
            )
        });
        for (status, retry_after, body) in tower.iter().chain(&actix) {
            assert_eq!(*status, 503, "later={later}");
            assert_eq!(retry_after.as_deref(), Some("3"));
            assert_eq!(body, "", "the handler must not run");
        }
        assert_eq!(tower, actix);
        assert_eq!(down.lookups.load(Ordering::SeqCst), 4);
    }
    let text = logs.text();
    assert!(text.contains("token backend unavailable"), "{text}");
    assert!(text.contains("connection refused"), "{text}");
    assert!(
        !text.contains(&token[4..]),
        "the token reached the logs: {text}"
    );
}

type Answer = (u16, Option<String>, String);

fn tower_with_retry_after(gate: &Gate, reqs: &[Req]) -> Vec<Answer> {
    use tower::ServiceExt as _;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut out = Vec::new();
        for r in reqs {
            let mut req = http::Request::get(&r.path);
            for (k, v) in &r.headers {
                req = req.header(*k, v);
            }
            let res = inproc::reference_router(gate)
                .oneshot(req.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = res.status().as_u16();
            let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
            out.push((status, retry, String::from_utf8(body.to_vec()).unwrap()));
        }
        out
    })
}

fn actix_with_retry_after(gate: &Gate, reqs: &[Req]) -> Vec<Answer> {
    use actix_web::{App, test};
    let configure = inproc::reference_actix(gate);
    let reqs = reqs.to_vec();
    actix_web::rt::System::new().block_on(async move {
        let app = test::init_service(App::new().configure(configure)).await;
        let mut out = Vec::new();
        for r in reqs {
            let mut req = test::TestRequest::get().uri(&r.path);
            for (k, v) in &r.headers {
                req = req.append_header((*k, v.as_str()));
            }
            let res = test::call_service(&app, req.to_request()).await;
            let retry = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = res.status().as_u16();
            let body = test::read_body(res).await;
            out.push((status, retry, String::from_utf8(body.to_vec()).unwrap()));
        }
        out
    })
}

/// Captures the log lines emitted on this thread while a closure runs.
#[derive(Clone, Default)]
struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn during<T>(&self, f: impl FnOnce() -> T) -> T {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f)
    }

    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}
