//! A real PostgreSQL server for the tests: `PAT_TEST_POSTGRES_URL` when it is
//! set, otherwise a private cluster started from the installed binaries
//! (`initdb`, `pg_ctl`; Debian keeps them in `/usr/lib/postgresql/*/bin`) on a
//! free port in a temporary directory, run as the `postgres` user when the
//! tests run as root (initdb refuses root), and stopped by a watchdog when
//! the test process exits, however it exits.
//!
//! Without either, the PostgreSQL tests are skipped with one loud line,
//! except under `CI=true`, where they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A PostgreSQL server the tests may create databases on.
#[derive(Debug)]
pub struct Postgres {
    /// A superuser URL to the `postgres` database.
    admin: String,
    /// The private cluster, if the harness started one.
    cluster: Option<Cluster>,
}

#[derive(Debug)]
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    as_postgres: bool,
}

static SERVER: OnceLock<Result<Postgres, String>> = OnceLock::new();
static DATABASES: AtomicUsize = AtomicUsize::new(0);

/// The server, or `None` after printing why the caller should skip. Under
/// `CI=true` a missing server fails the test instead.
pub fn postgres() -> Option<&'static Postgres> {
    match SERVER.get_or_init(start) {
        Ok(pg) => Some(pg),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL tests must run under CI=true, but: {why}")
        }
        Err(why) => {
            eprintln!(
                "\n!!! SKIPPED: PostgreSQL tests ({why}). Set PAT_TEST_POSTGRES_URL to a superuser \
                 URL, or install PostgreSQL (apt-get install postgresql) so the tests start their own.\n"
            );
            None
        }
    }
}

fn start() -> Result<Postgres, String> {
    if let Ok(url) = std::env::var("PAT_TEST_POSTGRES_URL") {
        return Ok(Postgres {
            admin: url,
            cluster: None,
        });
    }
    start_cluster()
}

/// A server of the caller's own, which it may stop and start (the shared one
/// must keep running for the other tests); `None`, after printing why, when
/// the installed binaries are missing (and under `CI=true` a failure).
pub fn dedicated() -> Option<Postgres> {
    match start_cluster() {
        Ok(pg) => Some(pg),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("PostgreSQL tests must run under CI=true, but: {why}")
        }
        Err(why) => {
            eprintln!("\n!!! SKIPPED: this test needs its own PostgreSQL server ({why}).\n");
            None
        }
    }
}

fn start_cluster() -> Result<Postgres, String> {
    let bin = bin_dir().ok_or("no PostgreSQL binaries found")?;
    let as_postgres = is_root();
    let dir = tempfile::Builder::new()
        .prefix("pat-pg-")
        .tempdir()
        .map_err(|e| e.to_string())?
        .keep();
    let data = dir.join("data");
    if as_postgres {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot hand the cluster's directory to the postgres user".into());
        }
    }
    let port = free_port()?;
    let run = |program: &str, args: &[&str]| -> Result<(), String> {
        let mut cmd = if as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(bin.join(program));
            c
        } else {
            Command::new(bin.join(program))
        };
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("{program}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{program} failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    };
    let data_s = data.to_string_lossy().into_owned();
    let dir_s = dir.to_string_lossy().into_owned();
    run(
        "initdb",
        &[
            "-D",
            &data_s,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ],
    )?;
    let options = format!(
        "-p {port} -k {dir_s} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300"
    );
    run(
        "pg_ctl",
        &[
            "-D",
            &data_s,
            "-l",
            &format!("{dir_s}/log"),
            "-o",
            &options,
            "-w",
            "start",
        ],
    )?;
    let cluster = Cluster {
        bin,
        data,
        port,
        as_postgres,
    };
    watchdog(&cluster, &dir);
    Ok(Postgres {
        admin: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        cluster: Some(cluster),
    })
}

/// Stops the cluster and removes its directory once this process is gone.
fn watchdog(cluster: &Cluster, dir: &Path) {
    let pg_ctl = cluster.bin.join("pg_ctl");
    let stop = format!(
        "{}{} -D {} -m immediate stop",
        if cluster.as_postgres {
            "runuser -u postgres -- "
        } else {
            ""
        },
        pg_ctl.display(),
        cluster.data.display()
    );
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
        pid = std::process::id(),
        dir = dir.display()
    );
    let _ = Command::new("setsid")
        .args(["sh", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n")
}

fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// The newest installed PostgreSQL's `bin` directory.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

impl Postgres {
    /// A fresh, empty database; its URL.
    pub fn database(&self) -> String {
        let n = DATABASES.fetch_add(1, Ordering::SeqCst);
        let name = format!("pat_test_{}_{n}", std::process::id());
        self.admin_sql(&format!("CREATE DATABASE {name}"));
        match self.admin.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => panic!("an admin URL without a database: cannot derive others"),
        }
    }

    /// Runs one statement as the superuser.
    pub fn admin_sql(&self, sql: &str) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let (client, connection) = tokio_postgres::connect(&self.admin, tokio_postgres::NoTls)
                .await
                .expect("connecting to the test server");
            tokio::spawn(connection);
            client.batch_execute(sql).await.expect("admin statement");
        });
    }

    /// Whether the harness runs the server itself (so a test may restart it).
    pub fn owned(&self) -> bool {
        self.cluster.is_some()
    }

    /// Stops the harness's own server (`immediate`, as a crash); `false`
    /// when the server is not the harness's.
    pub fn stop(&self) -> bool {
        self.pg_ctl(&["-m", "immediate", "stop"])
    }

    /// Starts the harness's own server again.
    pub fn start(&self) -> bool {
        let Some(c) = &self.cluster else { return false };
        let dir = c.data.parent().expect("data dir in the cluster dir");
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300",
            c.port,
            dir.display()
        );
        let log = format!("{}/log", dir.display());
        self.pg_ctl(&["-l", &log, "-o", &options, "-w", "start"])
    }

    fn pg_ctl(&self, args: &[&str]) -> bool {
        let Some(c) = &self.cluster else { return false };
        let mut cmd = if c.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(c.bin.join("pg_ctl"));
            cmd
        } else {
            Command::new(c.bin.join("pg_ctl"))
        };
        cmd.arg("-D")
            .arg(&c.data)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}
