//! `pat-cli token ...`: create, list, show, revoke, prune.

use std::path::Path;

use clap::error::ErrorKind;
use pat_core::{
    Admin, AdminClient, ExpiryPolicy, NewToken, OpenError, Scopes, Store, StoreError, Timestamp,
    admin_socket_path,
};

use crate::cli::{CreateArgs, Result, TokenAction, usage_error};
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
    if let (Some(window), Some(cap)) = (args.auto, args.max_lifetime)
        && cap < window
    {
        usage_error(
            ErrorKind::ValueValidation,
            format!(
                "--max-lifetime ({}) must not be shorter than --auto ({})",
                pat_core::format_duration(cap),
                pat_core::format_duration(window)
            ),
        );
    }
    let new = NewToken::new(user, expiry)
        .label(args.label)
        .created_by(os_user())
        .scopes(args.scopes.into_iter().collect::<Scopes>());
    let store = connect(db, false)?;
    let created = store.create(&new, Timestamp::now())?;
    if args.quiet {
        println!("{}", created.secret.expose_secret());
    } else if args.json {
        println!("{}", output::created_json(&created));
    } else {
        print!("{}", output::created_human(&created));
    }
    Ok(())
}

/// `pat-cli token list|show|revoke|prune`
pub(crate) fn manage(db: &Path, action: TokenAction) -> Result {
    let store = connect(db, true)?;
    let now = Timestamp::now();
    match action {
        TokenAction::List { user, all, json } => {
            let tokens = store.list(user.as_deref(), all, now)?;
            if json {
                println!("{}", output::list_json(&tokens));
            } else {
                print!("{}", output::list_human(&tokens, now));
            }
        }
        TokenAction::Show { id, json } => {
            let info = store.get(id)?;
            if json {
                println!("{}", output::info_json(&info));
            } else {
                print!("{}", output::show_human(&info, now));
            }
        }
        TokenAction::Revoke {
            ids,
            user: Some(user),
        } => {
            debug_assert!(ids.is_empty());
            let n = store.revoke_user(&user)?;
            println!("revoked {n} token{} of {user}", plural(n));
        }
        TokenAction::Revoke { ids, user: None } => {
            // Revoke all that exist, then fail if any did not.
            let mut missing = Vec::new();
            for id in ids {
                match store.revoke(id) {
                    Ok(info) => println!("revoked {} ({}, {:?})", info.id, info.user, info.label),
                    Err(pat_core::StoreError::NotFound(id)) => missing.push(id.to_string()),
                    Err(e) => return Err(e.into()),
                }
            }
            if !missing.is_empty() {
                return Err(format!("no token with id {}", missing.join(", ")).into());
            }
        }
        TokenAction::Prune => {
            let n = store.prune(now)?;
            println!("removed {n} expired token{}", plural(n));
        }
    }
    Ok(())
}

/// The store at `db`: opened directly when no process holds it, else
/// through the admin socket of the process that does, so every command
/// works (with the same output) while a service runs.
///
/// With `must_exist`, a missing file is an error: listing or revoking in a
/// mistyped path should not leave an empty store behind.
fn connect(db: &Path, must_exist: bool) -> Result<Box<dyn Admin>> {
    if must_exist && !db.exists() {
        return Err(format!(
            "store `{}` does not exist (pass --db or set PAT_DB; `pat-cli token -u USER -e DUR` creates it)",
            db.display()
        )
        .into());
    }
    match Store::builder().manual_flush().admin_socket(false).open(db) {
        Ok(store) => {
            warn_if_exposed(db);
            Ok(Box::new(store))
        }
        Err(locked @ OpenError::Locked { .. }) => via_socket(db, &locked),
        // Another user's service: its socket will say whether we may.
        Err(denied @ OpenError::Io { .. }) if admin_socket_path(db).exists() => {
            via_socket(db, &denied)
        }
        Err(e) => Err(e.into()),
    }
}

/// Warns on stderr when others may read the store (it was created 0600;
/// someone widened it). Digests are not tokens, but the file names users.
fn warn_if_exposed(db: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    if let Ok(meta) = std::fs::metadata(db) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: store `{}` is accessible to other users (mode {mode:04o}); run `chmod 600` on it",
                db.display()
            );
        }
    }
}

fn via_socket(db: &Path, why: &OpenError) -> Result<Box<dyn Admin>> {
    let socket = admin_socket_path(db);
    match AdminClient::connect(&socket) {
        Ok(client) => Ok(Box::new(client)),
        Err(StoreError::Remote(refusal)) => Err(format!(
            "{}, and its admin socket `{}` refused: {refusal}",
            output::chain(why),
            socket.display()
        )
        .into()),
        Err(e) => {
            let cause =
                std::error::Error::source(&e).map_or_else(|| e.to_string(), ToString::to_string);
            let why = output::chain(why);
            Err(format!(
                "{why}, and no admin socket answers at `{}` ({cause}); stop that process and retry, \
                 or start it with its admin socket enabled",
                socket.display()
            )
            .into())
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The OS user running the CLI, recorded as the token's creator.
fn os_user() -> String {
    for var in ["USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var)
            && !name.is_empty()
            && !name.chars().any(char::is_control)
        {
            return name;
        }
    }
    use std::os::unix::fs::MetadataExt as _;
    match std::fs::metadata("/proc/self") {
        Ok(m) => format!("uid {}", m.uid()),
        Err(_) => "unknown".to_owned(),
    }
}
