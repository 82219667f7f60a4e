//! `pat-cli token ...`: create, list, show, revoke, prune.

use std::io::Write as _;
use std::path::Path;

use clap::error::ErrorKind;
use pat_core::{
    Admin, AdminClient, ExpiryPolicy, NewToken, NewTokenError, OpenError, Rotation, Scopes, Store,
    StoreError, Timestamp, TokenId, admin_socket_path, printable,
};

use crate::cli::{
    CreateArgs, Limit, PolicyAction, PolicyCommand, PrefixAction, PrefixCommand, Result,
    ScopesAction, ScopesCommand, TokenAction, usage_error,
};
use crate::output;

/// `pat-cli token -u USER (-e DUR | -a DUR) ...`
pub(crate) fn create(db: &Path, args: CreateArgs) -> Result {
    let Some(user) = args.user else {
        usage_error(ErrorKind::MissingRequiredArgument, "-u/--user is required");
    };
    let expiry = match (args.expire, args.auto) {
        (Some(_), Some(_)) => usage_error(
            ErrorKind::ArgumentConflict,
            "--expire (-e) and --auto (-a) cannot be combined: choose a hard limit (-e 24h) \
             or a sliding window refreshed by each use (-a 10m)",
        ),
        (None, None) => usage_error(
            ErrorKind::MissingRequiredArgument,
            "an expiry is required: --expire (-e) for a hard limit, e.g. -e 24h, \
             or --auto (-a) for a sliding window, e.g. -a 10m",
        ),
        (Some(lifetime), None) => {
            if args.max_lifetime.is_some() {
                usage_error(
                    ErrorKind::ArgumentConflict,
                    "--max-lifetime caps a sliding window and needs --auto (-a); \
                     with --expire (-e) the expiry is already fixed",
                );
            }
            ExpiryPolicy::hard(lifetime)
        }
        (None, Some(window)) => ExpiryPolicy::sliding(window, args.max_lifetime),
    };
    let meta = pat_core::Metadata::new(args.meta.into_iter().map(|e| (e.key, e.value)))
        .unwrap_or_else(|e| usage_error(ErrorKind::ValueValidation, format!("--meta: {e}")));
    let mut new = NewToken::new(user, expiry)
        .label(args.label)
        .created_by(os_user())
        .scopes(args.scopes.into_iter().collect::<Scopes>())
        .meta(meta)
        .allow_from(args.allow_from);
    new.rate = args.rate;
    new.max_uses = args.max_uses;
    let now = Timestamp::now();
    // The rules are the store's (the same for every backend); checked here
    // first so that a bad request is a usage error naming its flag, before
    // the store is touched.
    if let Err(e) = new.to_info(TokenId::from_u64(0), now) {
        usage_error(ErrorKind::ValueValidation, flag_error(&e));
    }
    // Named permissions must be the catalog's: a usage error naming them
    // and what comes close, before anything is created (not even a store).
    let missing = std::fs::symlink_metadata(db).is_err() && !is_database_url(db);
    let store = match (missing, new.scopes.named().is_empty()) {
        (true, false) => None,
        _ => Some(connect(db, false)?),
    };
    if !new.scopes.named().is_empty() {
        let catalog = match &store {
            Some(store) => store.permissions()?,
            None => pat_core::Catalog::new(),
        };
        if let Err(e) = catalog.check(&new.scopes) {
            usage_error(
                ErrorKind::ValueValidation,
                format!("invalid value for --scope (-s): {e}"),
            );
        }
    }
    let store = match store {
        Some(store) => store,
        None => connect(db, false)?,
    };
    let created = acting(&*store).create(&new, now)?;
    if args.quiet {
        println!("{}", created.secret.expose_secret());
    } else if args.json {
        output::print_json(&output::created_json(&created));
    } else {
        print!("{}", output::created_human(&created));
    }
    Ok(())
}

/// A request the store would refuse, as a usage error naming the flag.
fn flag_error(e: &NewTokenError) -> String {
    match e {
        NewTokenError::User { .. } => format!("invalid value for --user (-u): {e}"),
        NewTokenError::Label { .. } => format!("invalid value for --label (-l): {e}"),
        NewTokenError::TooManyScopes { .. } => format!("too many --scope (-s): {e}"),
        NewTokenError::TooManyNetworks { .. } => format!("too many --allow-from: {e}"),
        NewTokenError::CapBelowWindow {
            window,
            max_lifetime,
        } => format!("--max-lifetime ({max_lifetime}) must not be shorter than --auto ({window})"),
        NewTokenError::TooLate => format!(
            "invalid value for --expire (-e) or --auto (-a): {e}; choose a shorter duration"
        ),
        other => format!("invalid token request: {other}"),
    }
}

/// `pat-cli token check`: a token from standard input, checked offline,
/// then looked up without recording a use.
fn check(db: &Path) -> Result {
    use std::io::{BufRead as _, IsTerminal as _};
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("paste the token, then press Enter:");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let presented = line.trim();
    let store = match std::fs::symlink_metadata(db).is_err() && !is_database_url(db) {
        true => None,
        false => Some(connect(db, true)?),
    };
    let stored = match &store {
        Some(store) => store.token_prefixes()?,
        None => vec![pat_core::Prefix::DEFAULT],
    };
    let prefixes = pat_core::Prefixes::from_stored(&stored)?;
    let digest = match prefixes.digest(presented) {
        Ok(d) => d,
        Err(e) if e.is_foreign() => {
            return Err(format!(
                "not a well-formed token: it does not start with {} (this store's prefix{})",
                heads(&stored),
                if stored.len() == 1 { "" } else { "es" }
            )
            .into());
        }
        Err(e) => return Err(format!("not a well-formed token: {e}").into()),
    };
    let formed = "well-formed (prefix, length and checksum are right)";
    let Some(store) = store else {
        println!(
            "{formed}; no store at `{}` to look it up",
            printable(&db.to_string_lossy())
        );
        return Ok(());
    };
    let now = Timestamp::now();
    match store.find(&digest, now)? {
        None => println!("{formed}; unknown to this store (never issued, revoked or pruned)"),
        Some(info) => {
            let state = if info.is_expired(now) {
                format!("expired at {}", info.expiry.expires_at())
            } else {
                format!("live until {}", info.expiry.expires_at())
            };
            println!(
                "{formed}; token {} of {}, {state}",
                info.id,
                printable(&info.user)
            );
        }
    }
    Ok(())
}

fn is_database_url(db: &Path) -> bool {
    db.to_str()
        .is_some_and(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
}

/// `pat-cli token list|show|revoke|prune|check`
pub(crate) fn manage(db: &Path, action: TokenAction) -> Result {
    if let TokenAction::Check = action {
        return check(db);
    }
    let store = connect(db, true)?;
    let now = Timestamp::now();
    match action {
        TokenAction::List {
            user,
            all,
            expiring_within,
            unused_for,
            json,
        } => {
            let mut tokens = store.list(user.as_deref(), all, now)?;
            let policy = store.policy()?;
            if let Some(within) = expiring_within {
                let until = now.saturating_add(within);
                tokens.retain(|t| !t.is_expired(now) && t.expiry.expires_at() <= until);
            }
            if let Some(idle) = unused_for {
                // Used at or after this instant counts as used recently.
                let since = now.as_unix_secs().saturating_sub(idle.as_secs());
                tokens.retain(|t| t.last_used_at.is_none_or(|u| u.as_unix_secs() < since));
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let written = if json {
                output::write_list_json(&mut output::SafeJson::new(&mut out), &tokens, &policy)
            } else {
                output::write_list_human(&mut out, &tokens, now, &policy)
            };
            // A reader that stopped early (`| head`) is not an error.
            match written.and_then(|()| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => return Err(e.into()),
                _ => {}
            }
        }
        TokenAction::Show { id, json } => {
            let info = store.get(id)?;
            if json {
                output::print_json(&output::info_json(&info));
            } else {
                print!("{}", output::show_human(&info, now));
            }
        }
        TokenAction::Revoke {
            ids,
            user: Some(user),
        } => {
            debug_assert!(ids.is_empty());
            let n = acting(&*store).revoke_user(&user)?;
            println!("revoked {n} token{} of {}", plural(n), printable(&user));
        }
        TokenAction::Revoke { ids, user: None } => {
            // Revoke all that exist, then fail if any did not.
            let mut missing = Vec::new();
            for id in ids {
                // What goes with it, as it stands just before.
                let descendants = match store.descendants(id) {
                    Ok(d) => d.len(),
                    Err(pat_core::StoreError::NotFound(_)) => 0,
                    Err(e) => return Err(e.into()),
                };
                match acting(&*store).revoke(id) {
                    Ok(info) => println!(
                        "revoked {} ({}, \"{}\"){}",
                        info.id,
                        printable(&info.user),
                        printable(&info.label),
                        match descendants {
                            0 => String::new(),
                            n => format!(" and {n} token{} made with it", plural(n)),
                        }
                    ),
                    Err(pat_core::StoreError::NotFound(id)) => missing.push(id.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !missing.is_empty() {
                return Err(format!("no token with id {}", missing.join(", ")).into());
            }
        }
        TokenAction::Disable { ids } => suspend(&*store, &ids, true)?,
        TokenAction::Enable { ids } => suspend(&*store, &ids, false)?,
        TokenAction::Rotate {
            id,
            expire,
            auto,
            max_lifetime,
            grace,
            quiet,
            json,
        } => {
            let mut rotation = Rotation::new().grace(grace.unwrap_or_default());
            // An admin's new lifetime: the policy, not the old envelope,
            // bounds it.
            match (expire, auto) {
                (Some(lifetime), _) => {
                    rotation = rotation.new_lifetime(ExpiryPolicy::hard(lifetime));
                }
                (None, Some(window)) => {
                    rotation = rotation.new_lifetime(ExpiryPolicy::sliding(window, max_lifetime));
                }
                (None, None) => {}
            }
            if let Some(policy) = rotation.expiry
                && let Err(e) = policy.start(now)
            {
                usage_error(ErrorKind::ValueValidation, flag_error(&e));
            }
            let rotated = acting(&*store).rotate(id, &rotation, now)?;
            // The grace the store gave (the policy caps the one asked).
            let retires_at = rotated.info.previous_until.unwrap_or(now);
            if quiet {
                println!("{}", rotated.secret.expose_secret());
            } else if json {
                let mut v = output::created_json(&rotated);
                v["previous_secret_retires_at"] = retires_at.to_string().into();
                output::print_json(&v);
            } else {
                print!("{}", output::rotated_human(&rotated, retires_at, now));
            }
        }
        // Answered above, before a store is opened.
        TokenAction::Check => {}
        TokenAction::Prune => {
            let n = acting(&*store).prune(now)?;
            println!("removed {n} expired token{}", plural(n));
        }
    }
    Ok(())
}

/// `pat-cli audit [--since DUR] [-u USER] [--json]`
pub(crate) fn audit(
    db: &Path,
    since: Option<std::time::Duration>,
    user: Option<&str>,
    json: bool,
) -> Result {
    let store = connect(db, true)?;
    let now = Timestamp::now();
    let since = since.map_or(Timestamp::UNIX_EPOCH, |d| {
        Timestamp::from_unix_secs(now.as_unix_secs().saturating_sub(d.as_secs()))
            .unwrap_or(Timestamp::UNIX_EPOCH)
    });
    let entries = store.audit(since, user)?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = if json {
        output::write_audit_json(&mut output::SafeJson::new(&mut out), &entries)
    } else {
        output::write_audit_human(&mut out, &entries)
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `pat-cli events [--after SEQ] [--failed] [--json]` and `pat-cli events
/// resend EVENT`.
pub(crate) fn events(db: &Path, cmd: crate::cli::EventsCommand) -> Result {
    let store = connect(db, true)?;
    if let Some(crate::cli::EventsAction::Resend { event, webhook }) = cmd.action {
        let names: Vec<String> = match webhook {
            Some(name) => vec![name],
            None => store.deliveries()?.into_iter().map(|(n, _)| n).collect(),
        };
        let mut marked = 0;
        for name in &names {
            if store.resend_event(name, event)? {
                println!("evt_{event} will be sent again to {}", printable(name));
                marked += 1;
            }
        }
        if marked == 0 {
            return Err(
                format!("no webhook gave up evt_{event} (see `pat-cli events --failed`)").into(),
            );
        }
        return Ok(());
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = if cmd.failed {
        let all = store.deliveries()?;
        if cmd.json {
            output::write_failed_json(&mut output::SafeJson::new(&mut out), &all)
        } else {
            output::write_failed_human(&mut out, &all)
        }
    } else {
        let limit = usize::try_from(cmd.limit).unwrap_or(usize::MAX);
        let events = store.events(cmd.after, limit)?;
        if cmd.json {
            output::write_events_json(&mut output::SafeJson::new(&mut out), &events)
        } else {
            output::write_events_human(&mut out, &events)
        }
    };
    match written.and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// `pat-cli policy [--json]` and `pat-cli policy set ...`
pub(crate) fn policy(db: &Path, cmd: PolicyCommand) -> Result {
    let (store, json) = match cmd.action {
        None => (connect(db, true)?, cmd.json),
        Some(PolicyAction::Set {
            max_lifetime,
            max_tokens_per_user,
            max_grace,
            on_reuse,
            json,
        }) => {
            let store = connect(db, false)?;
            let mut policy = store.policy()?;
            if let Some(Limit(max)) = max_lifetime {
                policy = policy.max_lifetime(max);
            }
            if let Some(Limit(max)) = max_tokens_per_user {
                policy = policy.max_tokens_per_user(max);
            }
            if let Some(Limit(max)) = max_grace {
                policy = policy.max_grace(max);
            }
            if let Some(on_reuse) = on_reuse {
                policy = policy.on_reuse(on_reuse);
            }
            acting(&*store).set_policy(policy)?;
            (store, json || cmd.json)
        }
    };
    let policy = store.policy()?;
    if json {
        output::print_json(&output::policy_json(&policy));
    } else {
        print!("{policy}");
    }
    Ok(())
}

/// The heads of tokens of `prefixes`: `` `acme_` or `pat_` ``.
fn heads(prefixes: &[pat_core::Prefix]) -> String {
    let heads: Vec<String> = prefixes.iter().map(|p| format!("`{p}_`")).collect();
    heads.join(" or ")
}

/// `pat-cli init`: a new store with its prefix.
pub(crate) fn init(db: &Path, prefix: pat_core::Prefix) -> Result {
    let exists = |current: pat_core::Prefix| {
        format!(
            "store `{}` exists already, with the prefix `{current}`; `pat-cli prefix set {prefix}` \
             changes it (its tokens of the former prefix keep working)",
            printable(&db.to_string_lossy())
        )
    };
    let stored = if let Some(url) = db.to_str().filter(|_| is_database_url(db)) {
        let store = pat_core::PgStore::builder()
            .listen(false)
            .cache_capacity(0)
            .manual_flush()
            .prefix(prefix)
            .connect(url)?;
        store.token_prefixes()?
    } else {
        if std::fs::symlink_metadata(db).is_ok() {
            let current = current_of(&connect(db, true)?.token_prefixes()?)?;
            return Err(exists(current).into());
        }
        let store = Store::builder()
            .manual_flush()
            .admin_socket(false)
            .prefix(prefix)
            .open(db)?;
        store.token_prefixes()?
    };
    // A database that had pat's tables keeps its own prefix.
    if stored != [prefix] {
        return Err(exists(current_of(&stored)?).into());
    }
    println!(
        "created store `{}`; its tokens start with `{prefix}_`",
        printable(&db.to_string_lossy())
    );
    Ok(())
}

/// The current prefix of a store's list; an empty list (a confused
/// service behind the socket) is an error, not a panic.
fn current_of(all: &[pat_core::Prefix]) -> Result<pat_core::Prefix> {
    all.first()
        .copied()
        .ok_or_else(|| "the store named no token prefix".into())
}

/// `pat-cli prefix [set NEW]`.
pub(crate) fn prefixes(db: &Path, cmd: PrefixCommand) -> Result {
    let store = connect(db, true)?;
    let json = match cmd.action {
        None => cmd.json,
        Some(PrefixAction::Set { prefix, json }) => {
            acting(&*store).set_prefix(prefix)?;
            json || cmd.json
        }
    };
    let all = store.token_prefixes()?;
    if json {
        output::print_json(&output::prefixes_json(&all));
    } else {
        println!("current: {}", current_of(&all)?);
        let former: Vec<&str> = all.iter().skip(1).map(|p| p.as_str()).collect();
        println!(
            "former:  {}",
            if former.is_empty() {
                "-".to_owned()
            } else {
                former.join(", ")
            }
        );
    }
    Ok(())
}

/// `pat-cli scopes [list | define | remove]`
pub(crate) fn scopes(db: &Path, cmd: ScopesCommand) -> Result {
    let store = connect(db, !matches!(cmd.action, Some(ScopesAction::Define { .. })))?;
    let json = match cmd.action {
        None => cmd.json,
        Some(ScopesAction::List { json }) => json || cmd.json,
        Some(ScopesAction::Define {
            name,
            description,
            implies,
        }) => {
            let def = implies
                .into_iter()
                .fold(pat_core::PermissionDef::new(name.clone()), |d, i| {
                    d.implies(i)
                })
                .description(description);
            let changed = acting(&*store).define_permissions(&[def])?;
            println!(
                "{} `{name}`",
                if changed { "defined" } else { "unchanged:" }
            );
            return Ok(());
        }
        Some(ScopesAction::Remove { name, force }) => {
            let removal = acting(&*store).remove_permission(&name, force)?;
            println!("{}", output::removal_human(&name, &removal));
            return Ok(());
        }
    };
    let catalog = store.permissions()?;
    if json {
        output::print_json(&pat_core::management::catalog_json(&catalog));
    } else {
        print!("{}", output::catalog_human(&catalog));
    }
    Ok(())
}

/// The prefixes `scan-rules` prints rules for: the store's, or `pat`
/// when there is no store at `db` (nothing is created).
pub(crate) fn scan_prefixes(db: &Path) -> Result<Vec<pat_core::Prefix>> {
    if std::fs::symlink_metadata(db).is_err() && !is_database_url(db) {
        return Ok(vec![pat_core::Prefix::DEFAULT]);
    }
    Ok(connect(db, true)?.token_prefixes()?)
}

/// The store at `db`: opened directly when no process holds it, else
/// through the admin socket of the process that does, so every command
/// works (with the same output) while a service runs.
///
/// A store file that is refused (another user's, a link, open to others,
/// empty) is an error: the CLI never turns to the socket for it, since
/// whoever planted the file can serve a socket beside it.
///
/// With `must_exist`, a missing file is an error: listing or revoking in a
/// mistyped path should not leave an empty store behind.
fn connect(db: &Path, must_exist: bool) -> Result<Box<dyn Admin>> {
    if let Some(url) = db
        .to_str()
        .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
    {
        // The database is where replicas meet: no socket needed. The CLI
        // neither caches nor listens, and writes each use at once (it
        // makes none).
        let store = pat_core::PgStore::builder()
            .listen(false)
            .cache_capacity(0)
            .manual_flush()
            .connect(url)?;
        return Ok(Box::new(store));
    }
    if must_exist && std::fs::symlink_metadata(db).is_err() {
        return Err(format!(
            "store `{}` does not exist (pass --db or set PAT_DB; `pat-cli token -u USER -e DUR` creates it)",
            printable(&db.to_string_lossy())
        )
        .into());
    }
    match Store::builder().manual_flush().admin_socket(false).open(db) {
        Ok(store) => Ok(Box::new(store)),
        Err(locked @ OpenError::Locked { .. }) => via_socket(db, &locked),
        // A store this user may not open (another user's service): its
        // socket, checked like any other, will say whether we may.
        Err(denied @ OpenError::Io { .. }) if admin_socket_path(db).exists() => {
            via_socket(db, &denied)
        }
        Err(e) => Err(e.into()),
    }
}

fn via_socket(db: &Path, why: &OpenError) -> Result<Box<dyn Admin>> {
    let socket = admin_socket_path(db);
    let shown = printable(&socket.to_string_lossy()).into_owned();
    let why = output::chain(why);
    match AdminClient::connect(&socket) {
        Ok(client) => Ok(Box::new(client)),
        Err(StoreError::Remote(refusal)) => {
            Err(format!("{why}, and its admin socket `{shown}` refused: {refusal}").into())
        }
        Err(untrusted @ StoreError::Untrusted { .. }) => {
            Err(format!("{why}; {}", output::chain(&untrusted)).into())
        }
        Err(e) => {
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            Err(format!(
                "{why}, and no admin socket answers at `{shown}` ({cause}); stop that process and retry, \
                 or start it with its admin socket enabled"
            )
            .into())
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `token disable` (`disable`) or `token enable`: each id in turn, a line
/// for each, then a failure naming the ids that are not tokens, or the
/// first refusal (a token disabled with an ancestor).
fn suspend(store: &dyn Admin, ids: &[TokenId], disable: bool) -> Result<()> {
    let (done, already) = if disable {
        ("disabled", "was disabled already")
    } else {
        ("enabled", "was enabled already")
    };
    let mut missing = Vec::new();
    for &id in ids {
        let changed = if disable {
            acting(store).disable(id)
        } else {
            acting(store).enable(id)
        };
        match changed {
            Ok(0) => println!("{id} {already}"),
            Ok(1) => println!("{done} {id}"),
            Ok(n) => println!(
                "{done} {id} and {} token{} made with it",
                n - 1,
                plural(n - 1)
            ),
            Err(pat_core::StoreError::NotFound(id)) => missing.push(id.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        return Err(format!("no token with id {}", missing.join(", ")).into());
    }
    Ok(())
}

/// The store, recording changes in its audit log as done by the OS user
/// running the CLI (through an admin socket, the service records the
/// peer's uid instead).
fn acting(store: &dyn Admin) -> Box<dyn Admin + '_> {
    store.acting_as(&os_user())
}

/// The OS user running the CLI, recorded as the token's creator and as the
/// actor in the audit log: `$USER` or
/// `$LOGNAME` when they make a valid name, else the uid.
fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
            && NewToken::check_label(&name).is_ok()
        {
            return name;
        }
    }
    format!("uid {}", rustix::process::getuid().as_raw())
}
