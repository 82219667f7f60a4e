//! The command line: flags, their parsers and the dispatch.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory as _, Parser, Subcommand};
use pat_core::{DEFAULT_LABEL, Permission, TokenId, TokenScope};

use crate::token;

/// What a command returns: runtime errors print with their causes and exit 1.
pub(crate) type Result<T = ()> = std::result::Result<T, Box<dyn Error>>;

/// Create and manage personal access tokens.
///
/// Tokens replace a login: clients send them as `Authorization: Bearer <token>`,
/// or as the password of HTTP Basic auth with the user's name.
#[derive(Debug, Parser)]
#[command(
    name = "pat-cli",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    /// The token store: a redb file (created by the first `token` command if
    /// missing) or a PostgreSQL connection string (`postgres://…`).
    #[arg(
        long,
        global = true,
        env = "PAT_DB",
        default_value = "pat.redb",
        value_name = "PATH"
    )]
    pub(crate) db: PathBuf,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Generate a personal access token for a user, or manage tokens.
    ///
    /// Expiration is set in one of two ways: a hard limit with -e (dead at
    /// creation + duration), or a sliding window with -a (each use pushes the
    /// expiry to now + window). Durations are a number and a unit: s, m, h, d
    /// (30s, 10m, 24h, 7d, 1h30m).
    ///
    /// By default a token grants what a login grants. Scopes restrict it to
    /// nodes: node:NODE_UUID:PERM, PERM being r, w or rw; and to the
    /// permissions of the store's catalog it names (`scopes list`), such
    /// as repo:read, or repo:* for every repo: permission. A token with any
    /// scope holds only what its scopes name.
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        after_help = "Examples:\n  pat-cli token -u admin -e 24h\n  pat-cli token -u admin -a 10m\n  \
                      pat-cli token -u alice -e 7d -s node:0b8d4c3a-1f2e-4d5c-9b8a-7f6e5d4c3b2a:r\n  \
                      pat-cli token -u alice -e 30d -s repo:read -s read_api"
    )]
    Token(Box<TokenCommand>),

    /// Show the store-wide token policy, or change it with `policy set`.
    ///
    /// The policy limits new tokens: the longest they may live (a hard
    /// limit, or the cap a sliding token must then have) and how many live
    /// tokens one user may hold. Creating or rotating a token that breaks it
    /// fails naming the limit; existing tokens are left alone, and
    /// `token list` marks those over it.
    ///
    /// It also sets how long a rotation may keep the replaced secret working
    /// (the grace, at most a day by default) and what an old secret
    /// presented after its grace does: `revoke` (the default) revokes the
    /// token and the tokens made with it, since a thief may hold the new
    /// secret too; `refuse` only refuses it and logs it.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  pat-cli policy\n  pat-cli policy set --max-lifetime 90d --max-tokens-per-user 10\n  \
                      pat-cli policy set --max-lifetime none\n  pat-cli policy set --max-grace 1h --on-reuse refuse"
    )]
    Policy(PolicyCommand),

    /// Show the audit log: every change to the tokens, who made it, and
    /// old secrets replayed after a rotation. Never a secret.
    ///
    /// The actor is the OS user behind the CLI, `uid N` for a change made
    /// through a running service's admin socket (the kernel's word), or
    /// `token ID` for a token managing itself. `token prune` drops entries
    /// older than 90 days.
    #[command(
        after_help = "Examples:\n  pat-cli audit --since 7d\n  pat-cli audit -u alice --json"
    )]
    Audit {
        /// Only entries of the last DURATION (e.g. 7d).
        #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
        since: Option<Duration>,
        /// Only entries concerning this user.
        #[arg(short, long, value_name = "USER", value_parser = user)]
        user: Option<String>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },

    /// Show the token events (created, rotated, revoked with its cause,
    /// disabled, enabled, replayed), oldest first, or the events webhooks
    /// gave up with `--failed`, or send one of those again.
    ///
    /// Each event has a place in the store's log (`evt_SEQ`); `--after SEQ`
    /// reads on from an event already seen, as a program would. A webhook
    /// gives an event up when its retries failed for a day (a reference
    /// server's `--webhook-give-up`), keeps it, and goes on with the next.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  pat-cli events --after 120 --json\n  pat-cli events --failed\n  \
                      pat-cli events resend evt_131"
    )]
    Events(EventsCommand),

    /// Create a new store, with its own token prefix.
    ///
    /// Every token of the store reads PREFIX_…, so that secret scanners
    /// (`scan-rules`, GitHub's partner program) can tell its tokens from
    /// other services'. A good prefix is short, unique to your service and
    /// ends the word: `acme`, not `pat` or `token`. A store made by a first
    /// `token` command gets `pat`; `prefix set` changes a store's prefix
    /// later, keeping the tokens of its former ones working.
    #[command(after_help = "Examples:\n  pat-cli --db /var/lib/acme/pat.redb init --prefix acme")]
    Init {
        /// The store's token prefix: 2 to 16 ASCII letters and digits.
        #[arg(long, value_name = "PREFIX", value_parser = prefix, default_value = "pat")]
        prefix: pat_core::Prefix,
    },

    /// List the permissions tokens of this store may carry, or change the
    /// catalog with `scopes define` and `scopes remove`.
    ///
    /// A permission is 1 to 64 characters of a-z, 0-9, `_`, `.`, `:` and
    /// `-` (`node:` starts node scopes). One may imply others, as GitLab's
    /// `api` implies `read_api`: a token holding it holds those too. A
    /// token's scope `repo:*` holds every `repo:` permission, those defined
    /// later included. A service may declare its permissions itself when it
    /// opens the store.
    #[command(
        args_conflicts_with_subcommands = true,
        after_help = "Examples:\n  pat-cli scopes define read_api --description \"Read the API\"\n  \
                      pat-cli scopes define api --implies read_api\n  pat-cli scopes list --json\n  \
                      pat-cli scopes remove read_api --force"
    )]
    Scopes(ScopesCommand),

    /// Show the store's token prefixes, or change the current one with
    /// `prefix set`.
    ///
    /// New tokens carry the current prefix; tokens made under a former one
    /// keep working until they expire or are revoked, everywhere the store
    /// is used. A store keeps at most 16 prefixes.
    Prefix(PrefixCommand),

    /// Print rules that let secret scanners find this store's tokens.
    ///
    /// `regex` prints one regular expression (RE2, PCRE and Python syntax
    /// alike; group 1 is the token). `gitleaks` prints a gitleaks
    /// configuration that extends gitleaks' default rules with one for these
    /// tokens; gitleaks runs no code, so it also reports a value of a token's
    /// shape whose checksum is broken. `detect-secrets` prints a plugin for
    /// Yelp's detect-secrets (`--plugin FILE`) that checks the checksum and
    /// reports real tokens only. The rules find the store's current and
    /// former prefixes; with no store at --db, the default prefix `pat`.
    #[command(
        after_help = "Examples:\n  pat-cli scan-rules --format gitleaks > .gitleaks.toml && gitleaks dir --config .gitleaks.toml .\n  \
                      pat-cli scan-rules --format detect-secrets > pat_tokens.py && detect-secrets scan --plugin pat_tokens.py"
    )]
    ScanRules {
        /// What to print the rules for.
        #[arg(long, value_enum, default_value_t = ScanFormat::Regex)]
        format: ScanFormat,
    },

    /// Print a shell completion script.
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub(crate) struct PrefixCommand {
    /// Print a JSON object.
    #[arg(long)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) action: Option<PrefixAction>,
}

/// `pat-cli events [...]`.
#[derive(Debug, Args)]
pub(crate) struct EventsCommand {
    #[command(subcommand)]
    pub(crate) action: Option<EventsAction>,
    /// Only events after this place (the SEQ of `evt_SEQ`).
    #[arg(
        long,
        value_name = "SEQ",
        default_value_t = 0,
        conflicts_with = "failed"
    )]
    pub(crate) after: u64,
    /// At most this many events.
    #[arg(long, value_name = "N", default_value_t = 1000, conflicts_with = "failed",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub(crate) limit: u64,
    /// The events webhooks gave up, with their last error, instead.
    #[arg(long)]
    pub(crate) failed: bool,
    /// Print JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EventsAction {
    /// Send a failed event again: the running service delivering the
    /// webhook sends it next.
    Resend {
        /// The event: `evt_SEQ` (or SEQ), as `events --failed` shows it.
        #[arg(value_name = "EVENT", value_parser = event_seq)]
        event: u64,
        /// The webhook that gave it up [default: every one that did].
        #[arg(long, value_name = "NAME")]
        webhook: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum PrefixAction {
    /// Make PREFIX the store's current token prefix (audited); prints the
    /// prefixes.
    Set {
        /// 2 to 16 ASCII letters and digits.
        #[arg(value_parser = prefix)]
        prefix: pat_core::Prefix,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub(crate) struct ScopesCommand {
    /// Print a JSON array.
    #[arg(long)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) action: Option<ScopesAction>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ScopesAction {
    /// List the catalog (the default).
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add a permission, or change the definition of one (audited).
    Define {
        /// Its name, e.g. repo:read.
        #[arg(value_parser = permission)]
        name: Permission,
        /// What it allows, as listings and the token panel show it.
        #[arg(short, long, value_name = "TEXT", default_value = "")]
        description: String,
        /// A permission it implies (one the catalog has, or being defined
        /// with it); repeat the flag for more.
        #[arg(long, value_name = "NAME", value_parser = permission)]
        implies: Vec<Permission>,
    },
    /// Take a permission out of the catalog (audited). Refused while live
    /// tokens carry it, saying how many, unless --force: they then lose it,
    /// and a token left with no scope is revoked (never widened to what a
    /// login grants).
    Remove {
        /// The permission.
        #[arg(value_parser = permission)]
        name: Permission,
        /// Take it from the tokens that carry it.
        #[arg(long)]
        force: bool,
    },
}

fn permission(s: &str) -> std::result::Result<Permission, pat_core::ParsePermissionError> {
    s.parse()
}

fn prefix(s: &str) -> std::result::Result<pat_core::Prefix, pat_core::ParsePrefixError> {
    s.parse()
}

#[derive(Debug, Args)]
pub(crate) struct PolicyCommand {
    /// Print a JSON object.
    #[arg(long)]
    pub(crate) json: bool,

    #[command(subcommand)]
    pub(crate) action: Option<PolicyAction>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum PolicyAction {
    /// Change limits (those not given stay as they are); prints the policy.
    #[command(group = clap::ArgGroup::new("limits").required(true).multiple(true).args(["max_lifetime", "max_tokens_per_user", "max_grace", "on_reuse"]))]
    Set {
        /// Longest life of a new token (e.g. 90d), or `none`.
        #[arg(long, value_name = "DURATION|none", value_parser = limit_duration)]
        max_lifetime: Option<Limit<Duration>>,
        /// Most live tokens per user (at least 1), or `none`.
        #[arg(long, value_name = "N|none", value_parser = limit_count)]
        max_tokens_per_user: Option<Limit<u32>>,
        /// Longest a rotation keeps the replaced secret working (e.g. 1h),
        /// or `default` (1 day).
        #[arg(long, value_name = "DURATION|default", value_parser = grace_limit)]
        max_grace: Option<Limit<Duration>>,
        /// What an old secret presented after its grace does: `revoke` the
        /// token and those made with it, or only `refuse` it.
        #[arg(long, value_name = "revoke|refuse", value_parser = on_reuse)]
        on_reuse: Option<pat_core::OnReuse>,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// A policy limit as typed: a value, or `none` to lift it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limit<T>(pub(crate) Option<T>);

fn limit_duration(s: &str) -> std::result::Result<Limit<Duration>, pat_core::ParseDurationError> {
    if s == "none" {
        return Ok(Limit(None));
    }
    duration(s).map(|d| Limit(Some(d)))
}

fn grace_limit(s: &str) -> std::result::Result<Limit<Duration>, pat_core::ParseDurationError> {
    if s == "default" {
        return Ok(Limit(None));
    }
    duration(s).map(|d| Limit(Some(d)))
}

fn on_reuse(s: &str) -> std::result::Result<pat_core::OnReuse, String> {
    match s {
        "revoke" => Ok(pat_core::OnReuse::Revoke),
        "refuse" => Ok(pat_core::OnReuse::Refuse),
        _ => Err(format!(
            "`{}` is not a reaction: give `revoke` (the token and those made with it) or \
             `refuse` (the old secret only)",
            pat_core::printable(s)
        )),
    }
}

fn limit_count(s: &str) -> std::result::Result<Limit<u32>, String> {
    if s == "none" {
        return Ok(Limit(None));
    }
    match s.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Limit(Some(n))),
        _ => Err(format!(
            "`{}` is not a count: give a whole number from 1 to {}, or `none`",
            pat_core::printable(s),
            u32::MAX
        )),
    }
}

#[derive(Debug, Args)]
pub(crate) struct TokenCommand {
    #[command(flatten)]
    pub(crate) create: CreateArgs,

    #[command(subcommand)]
    pub(crate) action: Option<TokenAction>,
}

/// Flags of `pat-cli token` (creation), as in `cells admin user token`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// User login (mandatory).
    #[arg(short, long, required = true, value_name = "USER", value_parser = user)]
    pub(crate) user: Option<String>,

    /// Hard limit: expire after this duration (e.g. 24h).
    #[arg(short, long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    pub(crate) expire: Option<Duration>,

    /// Sliding window: expire after this idle time, refreshed by each use (e.g. 10m).
    #[arg(short, long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    pub(crate) auto: Option<Duration>,

    /// With -a: never live longer than this after creation, however often used.
    #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
    pub(crate) max_lifetime: Option<Duration>,

    /// Restrict the token to a node, node:NODE_UUID:PERM (PERM r, w or
    /// rw), or to a permission of the store's catalog (repo:read, or repo:*
    /// for all of repo:). Repeat the flag or separate scopes with commas.
    #[arg(short, long = "scope", value_name = "SCOPE", value_delimiter = ',', value_parser = scope)]
    pub(crate) scopes: Vec<TokenScope>,

    /// A label to recognise the token by in listings.
    #[arg(short, long, value_name = "LABEL", default_value = DEFAULT_LABEL, value_parser = label)]
    pub(crate) label: String,

    /// Attach metadata, key=value (repeatable; at most 16 entries, keys of
    /// letters, digits, `_ . -`): handed back with every authentication
    /// (the app's Identity, /whoami, introspection).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = meta_entry)]
    pub(crate) meta: Vec<pat_core::MetaEntry>,

    /// Accept the token only from this network, in CIDR notation
    /// (10.0.0.0/8, 2001:db8::/32) or one address; repeat the flag or
    /// separate networks with commas (at most 16). Without it, from any
    /// address.
    #[arg(long = "allow-from", value_name = "CIDR", value_delimiter = ',', value_parser = cidr)]
    pub(crate) allow_from: Vec<pat_core::Cidr>,

    /// At most this many uses per second, minute or hour (10/s, 100/m,
    /// 1000/h): a burst of that many, given back evenly; a use over it is
    /// refused with 429 and Retry-After. Counted by each server process.
    #[arg(long, value_name = "N/UNIT", value_parser = rate)]
    pub(crate) rate: Option<pat_core::RateLimit>,

    /// Accept the token at most this many times (1 to 1000000000; 1 makes a
    /// one-time token). Each accepted use is written to the store before
    /// the request goes on, so no crash or second server gives one back.
    #[arg(long, value_name = "N", value_parser = max_uses, allow_hyphen_values = true)]
    pub(crate) max_uses: Option<u32>,

    /// Print only the token (for scripts).
    #[arg(short, long, conflicts_with = "json")]
    pub(crate) quiet: bool,

    /// Print a JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenAction {
    /// List tokens (never their secrets).
    List {
        /// Only this user's tokens.
        #[arg(short, long, value_name = "USER", value_parser = user)]
        user: Option<String>,
        /// Include expired tokens.
        #[arg(long)]
        all: bool,
        /// Only live tokens that expire within this duration (e.g. 7d).
        #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
        expiring_within: Option<Duration>,
        /// Only tokens never used, or last used longer ago than this (e.g. 30d).
        #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
        unused_for: Option<Duration>,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show one token.
    Show {
        /// The token's id, as listed.
        #[arg(value_parser = token_id)]
        id: TokenId,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Revoke tokens by id, or all tokens of a user. The tokens made with a
    /// revoked token (through the management API or self-service) go with
    /// it.
    #[command(group = clap::ArgGroup::new("target").required(true).args(["ids", "user"]))]
    Revoke {
        /// Ids of the tokens to revoke.
        #[arg(value_parser = token_id, conflicts_with = "user")]
        ids: Vec<TokenId>,
        /// Revoke every token of this user.
        #[arg(short, long, value_name = "USER", value_parser = user)]
        user: Option<String>,
    },
    /// Disable tokens by id: refused ("the token is disabled") from the next
    /// request on, everything else kept, until `enable`. The tokens made
    /// with a disabled token are disabled with it.
    Disable {
        /// Ids of the tokens to disable.
        #[arg(value_parser = token_id, required = true)]
        ids: Vec<TokenId>,
    },
    /// Enable disabled tokens again, with the tokens their disabling
    /// reached. A token disabled with an ancestor is enabled with that one.
    Enable {
        /// Ids of the tokens to enable.
        #[arg(value_parser = token_id, required = true)]
        ids: Vec<TokenId>,
    },
    /// Give a token a new secret (same id, user, label and scopes), shown once.
    ///
    /// The expiry restarts under the token's own model (a hard limit gets
    /// the lifetime it was issued with; a sliding window, its window and
    /// cap, counted from its first issue) unless -e or -a gives a new
    /// lifetime: an admin's decision, audited, within the store's policy
    /// and the deadline of the token it was made with. The tokens made with
    /// it are shortened to match. The old secret stops working at once, or
    /// after --grace (at most the policy's max grace); an earlier rotation's
    /// old secret stops now. Presented later, an old secret revokes the
    /// token (or, with `policy set --on-reuse refuse`, is refused and
    /// logged).
    #[command(after_help = "Examples:\n  pat-cli token rotate 3f2a9c0d1e4b5a67\n  \
                      pat-cli token rotate 3f2a9c0d1e4b5a67 --grace 10m -e 30d -q")]
    Rotate {
        /// The token's id, as listed.
        #[arg(value_parser = token_id)]
        id: TokenId,
        /// A new hard limit for the new secret (e.g. 24h).
        #[arg(short, long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true, conflicts_with = "auto")]
        expire: Option<Duration>,
        /// A new sliding window for the new secret (e.g. 10m).
        #[arg(short, long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
        auto: Option<Duration>,
        /// With -a: the new secret's cap after the rotation.
        #[arg(long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true, requires = "auto")]
        max_lifetime: Option<Duration>,
        /// Keep the old secret working this long beside the new one (e.g. 10m).
        #[arg(short, long, value_name = "DURATION", value_parser = duration, allow_hyphen_values = true)]
        grace: Option<Duration>,
        /// Print only the new token (for scripts).
        #[arg(short, long, conflicts_with = "json")]
        quiet: bool,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Delete expired tokens.
    Prune,
    /// Check a token read from standard input (never from the command line,
    /// which shell history keeps): whether it is well-formed (prefix, length,
    /// checksum), and, when the store can be read, which token it is and
    /// whether it is live, expired or unknown. Never prints the token, and
    /// does not count as a use. Exit 1 if it is not a well-formed token.
    #[command(
        after_help = "Examples:\n  pat-cli token check < leaked.txt\n  pbpaste | pat-cli token check"
    )]
    Check,
}

fn meta_entry(s: &str) -> std::result::Result<pat_core::MetaEntry, pat_core::MetadataError> {
    s.parse()
}

fn user(s: &str) -> std::result::Result<String, pat_core::NewTokenError> {
    pat_core::NewToken::check_user(s).map(|()| s.to_owned())
}

fn label(s: &str) -> std::result::Result<String, pat_core::NewTokenError> {
    pat_core::NewToken::check_label(s).map(|()| s.to_owned())
}

fn duration(s: &str) -> std::result::Result<Duration, pat_core::ParseDurationError> {
    pat_core::parse_duration(s)
}

fn rate(s: &str) -> std::result::Result<pat_core::RateLimit, pat_core::ParseRateError> {
    s.parse()
}

fn max_uses(s: &str) -> std::result::Result<u32, String> {
    let given = s.parse::<u64>().map_err(|_| {
        format!(
            "`{}` is not a use count: give a whole number from 1 to {}",
            pat_core::printable(s),
            pat_core::MAX_USES
        )
    })?;
    pat_core::use_quota(given).map_err(|e| e.to_string())
}

fn cidr(s: &str) -> std::result::Result<pat_core::Cidr, pat_core::ParseCidrError> {
    s.parse()
}

fn scope(s: &str) -> std::result::Result<TokenScope, pat_core::ParseScopeError> {
    s.parse()
}

fn event_seq(s: &str) -> std::result::Result<u64, String> {
    s.strip_prefix("evt_")
        .unwrap_or(s)
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            format!(
                "`{}` is not an event: give evt_SEQ or SEQ, SEQ a whole number from 1",
                pat_core::printable(s)
            )
        })
}

fn token_id(s: &str) -> std::result::Result<TokenId, pat_core::ParseTokenIdError> {
    s.parse()
}

impl Cli {
    /// Runs the command.
    pub(crate) fn run(self) -> Result {
        match self.command {
            Command::Token(cmd) => match cmd.action {
                None => token::create(&self.db, cmd.create),
                Some(action) => token::manage(&self.db, action),
            },
            Command::Policy(cmd) => token::policy(&self.db, cmd),
            Command::Audit { since, user, json } => {
                token::audit(&self.db, since, user.as_deref(), json)
            }
            Command::Events(cmd) => token::events(&self.db, cmd),
            Command::Init { prefix } => token::init(&self.db, prefix),
            Command::Prefix(cmd) => token::prefixes(&self.db, cmd),
            Command::Scopes(cmd) => token::scopes(&self.db, cmd),
            Command::ScanRules { format } => {
                let prefixes = token::scan_prefixes(&self.db)?;
                let rules =
                    pat_core::scanning::ScanRules::new(prefixes.iter().map(|p| p.as_str()))?;
                let text = rules.render(format.into());
                // A reader that stops early (`| head -1`) is no error.
                match std::io::Write::write_all(&mut std::io::stdout().lock(), text.as_bytes()) {
                    Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                    _ => Ok(()),
                }
            }
            Command::Completions { shell } => {
                clap_complete::generate(
                    shell,
                    &mut Cli::command(),
                    "pat-cli",
                    &mut std::io::stdout(),
                );
                Ok(())
            }
        }
    }
}

/// The scanners `scan-rules` prints for.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum ScanFormat {
    /// One regular expression.
    Regex,
    /// A gitleaks configuration (TOML).
    Gitleaks,
    /// A detect-secrets plugin (Python).
    DetectSecrets,
}

impl From<ScanFormat> for pat_core::scanning::RuleFormat {
    fn from(format: ScanFormat) -> Self {
        match format {
            ScanFormat::Regex => Self::Regex,
            ScanFormat::Gitleaks => Self::Gitleaks,
            ScanFormat::DetectSecrets => Self::DetectSecrets,
        }
    }
}

/// Exits with a usage error (code 2), formatted like clap's own.
pub(crate) fn usage_error(kind: clap::error::ErrorKind, msg: impl std::fmt::Display) -> ! {
    let mut cmd = Cli::command();
    let sub = cmd
        .find_subcommand_mut("token")
        .map(|c| c.clone())
        .unwrap_or(cmd);
    exit_with(&sub.bin_name("pat-cli token").error(kind, msg))
}

/// Prints a clap error or help and exits with its code. Errors repeat what
/// was typed, so they go through the same filter as every other message:
/// control and invisible characters escaped, anything shaped like a token
/// cut (a token pasted where an id goes must not land in a terminal's
/// scrollback or a CI log).
pub(crate) fn exit_with(e: &clap::Error) -> ! {
    use std::io::Write as _;
    let text = e.render().to_string();
    if e.use_stderr() {
        let shown: String = text
            .split_inclusive('\n')
            .map(|line| {
                let (body, newline) = match line.strip_suffix('\n') {
                    Some(body) => (body, "\n"),
                    None => (line, ""),
                };
                format!("{}{newline}", pat_core::redacted(body))
            })
            .collect();
        let _ = std::io::stderr().write_all(shown.as_bytes());
    } else {
        let _ = std::io::stdout().write_all(text.as_bytes());
    }
    std::process::exit(e.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
