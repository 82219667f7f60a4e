//! What the two reference servers share as processes: their flags, logging,
//! signals and exit codes. Included by both with `#[path]` (it lives in
//! pat-tower so the workspace keeps its fixed layout); the decisions of the
//! HTTP contract are in `contract.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Reference server flags.
#[derive(Debug, clap::Parser)]
pub(crate) struct Args {
    /// Token store: a redb file (created if missing) or a PostgreSQL
    /// connection string (`postgres://…`).
    #[arg(long, default_value = "pat.redb", value_name = "PATH")]
    pub(crate) db: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "HOST:PORT")]
    pub(crate) addr: SocketAddr,
    /// Folder shared over WebDAV at /dav/ [default: a private `dav` folder next to the store].
    #[arg(long, value_name = "DIR")]
    pub(crate) dav_root: Option<PathBuf>,
    /// Realm of the WWW-Authenticate challenges.
    #[arg(long, default_value = pat_core::DEFAULT_REALM, value_name = "NAME")]
    pub(crate) realm: String,
    /// Token records kept in memory (0: no cache) [default: 100000].
    #[arg(long, value_name = "N")]
    pub(crate) cache_capacity: Option<usize>,
    /// Worker threads [default: one per core].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub(crate) workers: Option<u16>,
    /// A user whose tokens may call `POST /introspect` (repeatable; none by
    /// default, so introspection refuses every caller).
    #[arg(long = "introspector", value_name = "USER")]
    pub(crate) introspectors: Vec<String>,
    /// A user whose tokens may read `GET /metrics` (repeatable; none by
    /// default, so `/metrics` refuses every caller).
    #[arg(long = "metrics-reader", value_name = "USER")]
    pub(crate) metrics_readers: Vec<String>,
    /// A user who may manage every user's tokens in the token panel
    /// (`/ui/tokens`) and its API (`/api/tokens`) (repeatable; others
    /// manage their own).
    #[arg(long = "admin", value_name = "USER")]
    pub(crate) admins: Vec<String>,
    /// A reverse proxy in front of the server (an address or a network,
    /// repeatable): its `Forwarded` or `X-Forwarded-For` names the client,
    /// for the tokens' address rules and the leak reports' rate limit
    /// [default: none, the client is the connection's peer].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub(crate) trusted_proxies: Vec<pat_core::Cidr>,
    /// The one forwarding header the trusted proxies write, `forwarded` or
    /// `x-forwarded-for` [default: `Forwarded` when present, else
    /// `X-Forwarded-For`].
    #[arg(long, value_name = "HEADER", requires = "trusted_proxies")]
    pub(crate) proxy_header: Option<pat_core::ProxyHeader>,
    /// Address to serve the WebDAV share over SFTP on, for logins with a
    /// user name and a token as the password; port 0 picks a free port
    /// [default: no SFTP].
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) sftp_addr: Option<SocketAddr>,
    /// The SFTP server's private host key (OpenSSH format), created (Ed25519,
    /// mode 0600) if missing; refused if a link, another user's, or readable
    /// by others [default: `<db>.ssh_host_ed25519_key` beside a redb store;
    /// required with a PostgreSQL --db].
    #[arg(long, value_name = "PATH")]
    pub(crate) sftp_host_key: Option<PathBuf>,
    /// GitHub's secret scanning public keys: the JSON that `GET
    /// https://api.github.com/meta/public_keys/secret_scanning` answers,
    /// read again when the file changes, for `POST /secret-scanning/github`
    /// [default: none, every report refused].
    #[arg(long, value_name = "PATH")]
    pub(crate) github_keys: Option<PathBuf>,
    /// A file holding the secret GitLab authenticates with
    /// (`secret_detection_token_revocation_token`), for GitLab's Token
    /// Revocation API at `/gitlab/v1/…` [default: none, not served].
    #[arg(long, value_name = "PATH")]
    pub(crate) gitlab_secret_file: Option<PathBuf>,
    /// A URL to POST every token event to, signed with
    /// `--webhook-secret-file` (repeatable; https, or http to a loopback
    /// address); see `pat_core::webhook`. Every replica may name the same:
    /// one at a time delivers. The URL shows in the process list: prefer
    /// `--webhook-file` when it holds a secret [default: none].
    #[arg(long = "webhook", value_name = "URL", requires = "webhook_secret_file")]
    pub(crate) webhooks: Vec<String>,
    /// A file holding the `--webhook` URLs' signing secret (at least 16
    /// bytes; a final line break, `\n` or `\r\n`, is not part of it).
    #[arg(long, value_name = "PATH", requires = "webhooks")]
    pub(crate) webhook_secret_file: Option<PathBuf>,
    /// A file naming one webhook: its URL on the first line and its own
    /// signing secret (at least 16 bytes) on the second (repeatable); while
    /// its receiver moves to a new secret, the one it replaces on a third,
    /// each delivery then signed with both. Out of the process list, and a
    /// secret per receiver, so that no receiver can sign for another
    /// [default: none].
    #[arg(long = "webhook-file", value_name = "PATH")]
    pub(crate) webhook_files: Vec<PathBuf>,
    /// How long one webhook delivery attempt may take; a replica's lease
    /// on a webhook lasts three times this (at least this and 3 s), so
    /// another takes over that long after one stops.
    #[arg(long, default_value = "10s", value_name = "DURATION", value_parser = pat_core::parse_duration)]
    pub(crate) webhook_timeout: std::time::Duration,
    /// The longest wait between two attempts at a failing event.
    #[arg(long, default_value = "5m", value_name = "DURATION", value_parser = pat_core::parse_duration)]
    pub(crate) webhook_retry_max: std::time::Duration,
    /// How long a failing event is retried before it is kept as failed
    /// (`pat-cli events --failed`).
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = pat_core::parse_duration)]
    pub(crate) webhook_give_up: std::time::Duration,
    /// Write expiry notices (`token.expiring` 60, 30 and 7 days before a
    /// token's latest deadline and on its last day, `token.expired` at
    /// it) into the event stream, once each on every replica [default:
    /// off].
    #[arg(long)]
    pub(crate) expiry_notices: bool,
    /// How often to look for tokens due an expiry notice.
    #[arg(long, default_value = "1h", value_name = "DURATION", value_parser = pat_core::parse_duration,
          requires = "expiry_notices")]
    pub(crate) expiry_notice_interval: std::time::Duration,
}

/// `GET /metrics`: the Prometheus text of what pat counted, for the users
/// of `--metrics-reader`.
pub(crate) struct Metrics {
    handle: metrics_exporter_prometheus::PrometheusHandle,
    readers: std::collections::BTreeSet<String>,
}

/// The buckets of the servers' histograms, in seconds: 10 µs to 10 s.
const BUCKETS: [f64; 13] = [
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.1, 1.0, 10.0,
];

impl Metrics {
    /// Installs the Prometheus recorder: before the store and the gate are
    /// built, since they take their metrics' handles then.
    pub(crate) fn install(args: &Args) -> Result<Metrics, Box<dyn std::error::Error>> {
        let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets(&BUCKETS)?
            .install_recorder()?;
        pat_core::metrics::describe();
        // The recorder's upkeep (its histograms' samples are drained into
        // buckets here), whether or not anyone scrapes: the samples of
        // unauthenticated requests must not pile up.
        let upkeep = handle.clone();
        std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                }
            })?;
        Ok(Metrics {
            handle,
            readers: args.metrics_readers.iter().cloned().collect(),
        })
    }

    /// The answer to `GET /metrics` from `caller`: its status, content
    /// type and body. 403 for a caller not named by `--metrics-reader`.
    pub(crate) fn answer(&self, caller: &pat_core::Identity) -> (u16, &'static str, String) {
        if !self.readers.contains(caller.user()) {
            return (
                403,
                "application/json",
                r#"{"error":"forbidden","error_description":"this caller may not read the metrics"}"#
                    .to_owned(),
            );
        }
        self.handle.run_upkeep();
        (
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            self.handle.render(),
        )
    }
}

/// The management API's principal for the demo: the PAT user behind the
/// layer (in a browser, the Basic-auth dialog's user and token), an admin
/// when named by `--admin`.
pub(crate) fn principal(
    admins: &std::collections::BTreeSet<String>,
    identity: Option<&pat_core::Identity>,
) -> Option<pat_core::management::Principal> {
    let identity = identity?;
    Some(
        pat_core::management::Principal::with_token(identity)
            .admin(admins.contains(identity.user())),
    )
}

impl Args {
    /// The gate both the HTTP layer and the SFTP logins check tokens with:
    /// the realm, the trusted proxies, and one count per rate-limited
    /// token.
    pub(crate) fn gate(&self, verifier: std::sync::Arc<dyn pat_core::Verifier>) -> pat_core::Gate {
        pat_core::Gate::new(verifier)
            .realm(&self.realm)
            .trusted_proxies(self.trusted())
    }

    /// The proxies of `--trusted-proxy`, read as `--proxy-header` says:
    /// where the PAT layer and the public routes find the client.
    pub(crate) fn trusted(&self) -> pat_core::TrustedProxies {
        let proxies = pat_core::TrustedProxies::new(self.trusted_proxies.iter().copied());
        match self.proxy_header {
            Some(header) => proxies.reading(header),
            None => proxies,
        }
    }

    /// GitHub's secret scanning reports revoking tokens of `admin`,
    /// checked with the keys of `--github-keys` (none without it), behind
    /// the trusted proxies.
    pub(crate) fn secret_scanning(
        &self,
        admin: std::sync::Arc<dyn pat_core::Admin + Send + Sync>,
    ) -> Result<pat_core::secret_scanning::SecretScanning, pat_core::secret_scanning::KeysError>
    {
        use pat_core::secret_scanning::{KeyFile, PublicKeys, SecretScanning};
        let scanning = match &self.github_keys {
            Some(path) => SecretScanning::new(admin, KeyFile::open(path)?),
            None => SecretScanning::new(admin, PublicKeys::default()),
        };
        Ok(scanning.trusted_proxies(self.trusted()))
    }

    /// GitLab's Token Revocation API revoking tokens of `admin`, with the
    /// secret of `--gitlab-secret-file`, behind the trusted proxies; `None`
    /// without it.
    pub(crate) fn gitlab_revocation(
        &self,
        admin: std::sync::Arc<dyn pat_core::Admin + Send + Sync>,
    ) -> Result<Option<pat_core::gitlab_revocation::TokenRevocation>, String> {
        let Some(path) = &self.gitlab_secret_file else {
            return Ok(None);
        };
        let shown = pat_core::printable(&path.to_string_lossy()).into_owned();
        let secret = std::fs::read_to_string(path)
            .map_err(|e| format!("--gitlab-secret-file `{shown}`: {e}"))?;
        let api = pat_core::gitlab_revocation::TokenRevocation::new(admin, &secret)
            .map_err(|e| format!("--gitlab-secret-file `{shown}`: {e}"))?;
        Ok(Some(api.trusted_proxies(self.trusted())))
    }

    /// The deliverers of `--webhook` and `--webhook-file`, over `admin`:
    /// delivering until dropped. An error names the flag and the file or
    /// the URL's place among the flags, never the URL (its path or query
    /// may hold the receiver's secret) or a secret.
    pub(crate) fn webhooks(
        &self,
        admin: std::sync::Arc<dyn pat_core::Admin + Send + Sync>,
    ) -> Result<Vec<pat_core::webhook::Deliverer>, String> {
        let retry = pat_core::RetryPolicy::new(
            std::time::Duration::from_secs(1).min(self.webhook_retry_max),
            self.webhook_retry_max,
            self.webhook_give_up,
        );
        // (where it was named, the webhook), all checked before any starts.
        let mut hooks: Vec<(String, pat_core::webhook::Webhook)> = Vec::new();
        if let Some(path) = &self.webhook_secret_file {
            let shown = pat_core::printable(&path.to_string_lossy()).into_owned();
            let secret = zeroize::Zeroizing::new(
                std::fs::read(path).map_err(|e| format!("--webhook-secret-file `{shown}`: {e}"))?,
            );
            let secret = one_line(&secret);
            for (i, url) in self.webhooks.iter().enumerate() {
                let named = format!("--webhook number {}", i + 1);
                let hook = pat_core::webhook::Webhook::new(url, secret)
                    .map_err(|e| format!("{named}: {e}"))?;
                hooks.push((named, hook));
            }
        }
        for path in &self.webhook_files {
            let named = format!(
                "--webhook-file `{}`",
                pat_core::printable(&path.to_string_lossy())
            );
            let text =
                zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| format!("{named}: {e}"))?);
            let file = url_and_secret(&text).map_err(|why| format!("{named}: {why}"))?;
            let mut hook = pat_core::webhook::Webhook::new(file.url, file.secret)
                .map_err(|e| format!("{named}: {e}"))?;
            if let Some(previous) = file.previous {
                hook = hook
                    .previous_secret(previous)
                    .map_err(|e| format!("{named}, its third line: {e}"))?;
            }
            hooks.push((named, hook));
        }
        for (i, (named, hook)) in hooks.iter().enumerate() {
            if let Some((first, _)) = hooks[..i]
                .iter()
                .find(|(_, h)| h.name_str() == hook.name_str())
            {
                return Err(format!(
                    "{first} and {named} name the same URL: each would take the \
                     other's events; name each webhook once"
                ));
            }
        }
        hooks
            .into_iter()
            .map(|(named, hook)| {
                hook.timeout(self.webhook_timeout)
                    .lease(self.webhook_timeout.saturating_mul(3))
                    .retry(retry)
                    .start(admin.clone())
                    .map_err(|e| format!("{named}: {e}"))
            })
            .collect()
    }

    /// With `--expiry-notices`, a thread writing the notices due every
    /// `--expiry-notice-interval`, the first at once; it runs until the
    /// process exits.
    pub(crate) fn expiry_notices(
        &self,
        admin: std::sync::Arc<dyn pat_core::Admin + Send + Sync>,
    ) -> std::io::Result<()> {
        if !self.expiry_notices {
            return Ok(());
        }
        let every = self
            .expiry_notice_interval
            .max(std::time::Duration::from_secs(1));
        std::thread::Builder::new()
            .name("expiry-notices".into())
            .spawn(move || {
                loop {
                    let now = pat_core::Timestamp::now();
                    if let Err(e) = admin.notify_expiring(now, &pat_core::DEFAULT_NOTICE_DAYS) {
                        tracing::warn!(error = %pat_core::error_chain(&e), "expiry notices failed");
                    }
                    std::thread::sleep(every);
                }
            })?;
        Ok(())
    }

    /// The leak-report route's decisions over `admin`, behind the trusted
    /// proxies.
    pub(crate) fn leak_reports(
        &self,
        admin: std::sync::Arc<dyn pat_core::Admin + Send + Sync>,
    ) -> pat_core::leaks::LeakReports {
        pat_core::leaks::LeakReports::new(admin).trusted_proxies(self.trusted())
    }

    /// The PostgreSQL connection string, when `--db` is one.
    fn database_url(&self) -> Option<&str> {
        self.db
            .to_str()
            .filter(|s| s.starts_with("postgres://") || s.starts_with("postgresql://"))
    }

    /// Opens the token store as the flags say: a redb file, or a PostgreSQL
    /// database shared with other replicas.
    pub(crate) fn backend(&self) -> Result<Backend, pat_core::OpenError> {
        if let Some(url) = self.database_url() {
            let mut builder =
                pat_core::PgStore::builder().permissions(super::contract::permissions());
            if let Some(n) = self.cache_capacity {
                builder = builder.cache_capacity(n);
            }
            return Ok(Backend::Postgres(std::sync::Arc::new(
                builder.connect(url)?,
            )));
        }
        let mut builder = pat_core::Store::builder().permissions(super::contract::permissions());
        if let Some(n) = self.cache_capacity {
            builder = builder.cache_capacity(n);
        }
        Ok(Backend::Redb(std::sync::Arc::new(builder.open(&self.db)?)))
    }

    /// `--sftp-addr` and the host key of `--sftp-host-key` (or its
    /// default), checked before anything else starts; `None` without SFTP.
    pub(crate) fn sftp_key(
        &self,
    ) -> Result<Option<(SocketAddr, russh::keys::PrivateKey)>, Box<dyn std::error::Error>> {
        let Some(addr) = self.sftp_addr else {
            return Ok(None);
        };
        let path = match (&self.sftp_host_key, self.database_url()) {
            (Some(path), _) => path.clone(),
            (None, Some(_)) => {
                return Err(
                    "--sftp-host-key PATH is required with a PostgreSQL --db: there \
                            is no store folder to keep the SFTP host key beside"
                        .into(),
                );
            }
            (None, None) => {
                let mut path = self.db.clone().into_os_string();
                path.push(".ssh_host_ed25519_key");
                path.into()
            }
        };
        Ok(Some((addr, super::sftp::host_key(&path)?)))
    }

    /// The WebDAV share of `--dav-root`, or of a private `dav` folder next to
    /// the store, created if missing (see `Share::open` for what is refused).
    pub(crate) fn share(&self) -> std::io::Result<super::dav::Share> {
        match &self.dav_root {
            Some(dir) => super::dav::Share::open(dir, false),
            None if self.database_url().is_some() => {
                super::dav::Share::open(std::path::Path::new("dav"), true)
            }
            None => {
                let dir = self.db.parent().unwrap_or(std::path::Path::new("."));
                let dir = if dir.as_os_str().is_empty() {
                    std::path::Path::new(".")
                } else {
                    dir
                };
                super::dav::Share::open(&dir.join("dav"), true)
            }
        }
    }
}

/// The SFTP server of [`Args::sftp_key`], bound, serving `share` to
/// logins checked by `gate` (the HTTP layer's, so that a token's uses count
/// once against its rate limit, whichever way it comes in).
pub(crate) async fn sftp(
    key: Option<(SocketAddr, russh::keys::PrivateKey)>,
    share: &super::dav::Share,
    gate: pat_core::Gate,
) -> Result<Option<super::sftp::SftpServer>, Box<dyn std::error::Error>> {
    let Some((addr, key)) = key else {
        return Ok(None);
    };
    let logins = pat_core::Logins::from_gate(gate);
    let server = super::sftp::SftpServer::bind(addr, key, share.clone(), logins)
        .await
        .map_err(|e| format!("cannot listen for SFTP on {addr}: {e}"))?;
    Ok(Some(server))
}

/// The token store behind a reference server.
pub(crate) enum Backend {
    /// A redb file, with its admin socket.
    Redb(std::sync::Arc<pat_core::Store>),
    /// A PostgreSQL database.
    Postgres(std::sync::Arc<pat_core::PgStore>),
}

impl Backend {
    /// The backend, for the middleware.
    pub(crate) fn verifier(&self) -> std::sync::Arc<dyn pat_core::Verifier> {
        match self {
            Backend::Redb(s) => s.clone(),
            Backend::Postgres(s) => s.clone(),
        }
    }

    /// Introspection of this backend's tokens for the `--introspector` users.
    pub(crate) fn introspection(&self, users: &[String]) -> pat_core::introspection::Introspection {
        let intro = match self {
            Backend::Redb(s) => pat_core::introspection::Introspection::new(s.clone()),
            Backend::Postgres(s) => pat_core::introspection::Introspection::new(s.clone()),
        };
        intro.allow_users(users.iter().cloned())
    }

    /// Management of this backend's tokens, for the panel's API.
    pub(crate) fn management(&self) -> pat_core::management::Management {
        pat_core::management::Management::new(self.admin())
    }

    /// The backend, for the self-service routes.
    pub(crate) fn admin(&self) -> std::sync::Arc<dyn pat_core::Admin + Send + Sync> {
        match self {
            Backend::Redb(s) => s.clone(),
            Backend::Postgres(s) => s.clone(),
        }
    }
}

/// The process exit code for how `serve` ended.
pub(crate) fn exit_code(result: Result<(), Box<dyn std::error::Error>>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The whole cause chain: "cannot serve the admin socket" alone
            // does not say what to do.
            eprintln!("error: {}", pat_core::redacted(&pat_core::error_chain(&*e)));
            std::process::ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed by the call,
/// not by the first poll: call it before printing `listening on`, so that a
/// supervisor stopping the server as soon as it is ready gets a graceful
/// exit, not the default action of the signal.
pub(crate) fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing the SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("installing the SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
}

/// Logs to stderr, filtered by `RUST_LOG`.
/// Logs to standard error, filtered by `RUST_LOG` (errors only by
/// default). actix-web's HTTP parser logs every malformed request at ERROR,
/// though it is the client's mistake (and answered 400): those are left out
/// unless `RUST_LOG` names `actix_http`.
pub(crate) fn init_logging() {
    let asked = std::env::var("RUST_LOG").unwrap_or_default();
    let mut filter = tracing_subscriber::EnvFilter::from_default_env();
    if !asked.contains("actix_http") {
        for quiet in [
            "actix_http::h1::dispatcher=off",
            "actix_http::h1::decoder=off",
        ] {
            if let Ok(directive) = quiet.parse() {
                filter = filter.add_directive(directive);
            }
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A secret file's content without its final line break (`\n` or `\r\n`).
fn one_line(text: &[u8]) -> &[u8] {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.strip_suffix(b"\r").unwrap_or(text)
}

/// What a `--webhook-file` holds.
struct HookFile<'a> {
    url: &'a str,
    secret: &'a [u8],
    /// The secret being replaced, also signed with (a third line).
    previous: Option<&'a [u8]>,
}

/// A `--webhook-file`'s URL (its first line), secret (its second) and,
/// while receivers move to a new secret, the one it replaces (a third), or
/// what is wrong with it, saying nothing of what it holds.
fn url_and_secret(text: &[u8]) -> Result<HookFile<'_>, String> {
    const SHAPE: &str = "a webhook file holds its URL on the first line, its \
                         signing secret on the second and, while receivers move to \
                         it, the secret it replaces on a third";
    let mut lines = one_line(text).split(|&b| b == b'\n').map(one_line);
    let (Some(url), Some(secret)) = (lines.next(), lines.next()) else {
        return Err(SHAPE.to_owned());
    };
    // An empty third line (a secret change done) is none.
    let previous = lines.next().filter(|l| !l.is_empty());
    if lines.next().is_some() {
        return Err(format!("{SHAPE}, and nothing after them"));
    }
    let url = std::str::from_utf8(url).map_err(|_| format!("{SHAPE}: the URL is not UTF-8"))?;
    // Signed with as given: a stray space would fail every delivery's
    // check with nothing to say why.
    for (which, s) in [("second", Some(secret)), ("third", previous)] {
        if let Some(s) = s
            && (s.first().is_some_and(u8::is_ascii_whitespace)
                || s.last().is_some_and(u8::is_ascii_whitespace))
        {
            return Err(format!(
                "its secret on the {which} line starts or ends with a space or tab"
            ));
        }
    }
    Ok(HookFile {
        url: url.trim(),
        secret,
        previous,
    })
}
