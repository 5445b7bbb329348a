//! A PostgreSQL server of a test's own: `initdb` into a temporary folder, started on a free
//! port, for the tests that must stop the server (`pg_ctl stop -m immediate`) or need it
//! to check passwords, neither of which a test may do to the shared server. Removed when
//! dropped. `initdb` refuses to run as root, so as root the server runs as `postgres`.
#![allow(dead_code, reason = "each test area uses part of this module")]

pub mod pgbouncer;
pub mod role;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

/// How the server checks clients.
pub enum Auth {
    Trust,
    /// scram-sha-256 over TCP for `postgres` with this password.
    Password(String),
}

pub struct OwnCluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    password: Option<String>,
    /// Server settings (`-c name=value`) over the defaults of `start_server`.
    settings: Vec<(String, String)>,
}

/// The newest installed server's programs (Debian keeps them out of PATH).
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((major, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    bin.join("initdb").exists().then_some(bin)
}

/// One of the installed server's programs (`pg_receivewal`, say), when there is one.
pub fn server_program(name: &str) -> Option<PathBuf> {
    server_bin()
        .map(|bin| bin.join(name))
        .filter(|p| p.exists())
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl OwnCluster {
    /// A new running server, or `None` (with a loud message) when the server programs are
    /// not installed and PostgreSQL is not required.
    pub fn start(test: &str, auth: Auth) -> Option<OwnCluster> {
        Self::start_with(test, auth, &[])
    }

    /// Like `start`, with server settings over the defaults, for example
    /// `[("max_prepared_transactions", "0")]` for a server without two-phase commit.
    pub fn start_with(test: &str, auth: Auth, settings: &[(&str, &str)]) -> Option<OwnCluster> {
        let Some(bin) = server_bin() else {
            assert!(
                !test_kit::pg_required(),
                "{test}: PostgreSQL is required but initdb was not found"
            );
            eprintln!("\n*** SKIPPED {test}: no PostgreSQL server programs (initdb) here.\n");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("orch-own-pg-")
            .tempdir()
            .expect("tempdir");
        let password = match &auth {
            Auth::Trust => None,
            Auth::Password(p) => Some(p.clone()),
        };
        let cluster = OwnCluster {
            dir,
            bin,
            port: free_port(),
            password,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        if running_as_root() {
            // The server's files belong to postgres, which must also reach the folder.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(cluster.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {:?}", cluster.dir.path());
        }
        let mut initdb = vec![
            "-D".to_string(),
            cluster.data().display().to_string(),
            "-U".into(),
            "postgres".into(),
            "--no-sync".into(),
            "--auth-local=trust".into(),
        ];
        match &auth {
            Auth::Trust => initdb.push("--auth-host=trust".into()),
            Auth::Password(p) => {
                let file = cluster.dir.path().join("pwfile");
                std::fs::write(&file, p).expect("pwfile");
                cluster.give_to_postgres(&file);
                initdb.push("--auth-host=scram-sha-256".into());
                initdb.push(format!("--pwfile={}", file.display()));
            }
        }
        cluster.run("initdb", &initdb);
        cluster.start_server();
        Some(cluster)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn give_to_postgres(&self, path: &Path) {
        if running_as_root() {
            let _ = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(path)
                .status();
        }
    }

    /// Runs one of the server's programs (as postgres when we are root); panics on failure.
    fn run(&self, program: &str, args: &[String]) {
        let exe = self.bin.join(program);
        let output = if running_as_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            output.status.success(),
            "{program} {args:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let mut all = vec!["-D".to_string(), self.data().display().to_string()];
        all.extend(args.iter().map(|a| a.to_string()));
        self.run("pg_ctl", &all);
    }

    fn start_server(&self) {
        self.start_server_with("");
    }

    /// Stops the server and starts it with `extra` server options (`-c name=value`; later
    /// ones win), for settings that need a restart (max_prepared_transactions).
    pub fn restart_with(&self, extra: &str) {
        self.pg_ctl(&["-w", "-m", "fast", "stop"]);
        self.start_server_with(extra);
    }

    fn start_server_with(&self, extra: &str) {
        let mut options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} \
             -c fsync=off -c shared_buffers=32MB",
            self.port,
            self.dir.path().display()
        );
        // Two-phase commit available unless the test says otherwise.
        let mut settings = vec![("max_prepared_transactions".to_string(), "20".to_string())];
        settings.retain(|(k, _)| !self.settings.iter().any(|(s, _)| s == k));
        settings.extend(self.settings.iter().cloned());
        for (name, value) in settings {
            options.push_str(&format!(" -c {name}={value}"));
        }
        if !extra.is_empty() {
            options.push(' ');
            options.push_str(extra);
        }
        let log = self.dir.path().join("server.log");
        self.pg_ctl(&[
            "-w",
            "-t",
            "60",
            "-l",
            &log.display().to_string(),
            "-o",
            &options,
            "start",
        ]);
    }

    /// The folder of its Unix socket (`?host=` of a socket URL).
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Lets clients from `address` in without a password (pg_hba.conf), and reloads.
    pub fn trust_from(&self, address: std::net::IpAddr) {
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let hba = self.data().join("pg_hba.conf");
        let mut lines = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        lines.push_str(&format!("host all all {address}/{bits} trust\n"));
        std::fs::write(&hba, lines).expect("pg_hba.conf");
        self.pg_ctl(&["reload"]);
    }

    /// A hot standby of this server, streaming from it: `pg_basebackup -R` into a folder
    /// of its own (the copy is as of now), started on a port of its own. It stops and is
    /// removed when dropped, like this one.
    pub fn start_standby(&self) -> OwnCluster {
        let dir = tempfile::Builder::new()
            .prefix("orch-own-pg-standby-")
            .tempdir()
            .expect("tempdir");
        let standby = OwnCluster {
            dir,
            bin: self.bin.clone(),
            port: free_port(),
            password: self.password.clone(),
            settings: self.settings.clone(),
        };
        if running_as_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(standby.dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of {:?}", standby.dir.path());
        }
        self.run(
            "pg_basebackup",
            &[
                "-h".into(),
                self.dir.path().display().to_string(),
                "-p".into(),
                self.port.to_string(),
                "-U".into(),
                "postgres".into(),
                "-D".into(),
                standby.data().display().to_string(),
                "-R".into(),
                "-X".into(),
                "stream".into(),
                // A spread checkpoint would take minutes on an idle server.
                "--checkpoint=fast".into(),
                "--no-sync".into(),
            ],
        );
        standby.start_server();
        standby
    }

    /// Stops the server the way a crash does: no checkpoint, clients cut off.
    pub fn stop_immediately(&self) {
        self.pg_ctl(&["-w", "-m", "immediate", "stop"]);
    }

    /// Starts it again (crash recovery replays the WAL).
    pub fn start_again(&self) {
        self.start_server();
    }

    /// A URL of `database` on this server, with the password when there is one.
    pub fn url(&self, database: &str) -> String {
        match &self.password {
            None => format!("postgres://postgres@127.0.0.1:{}/{database}", self.port),
            Some(p) => format!(
                "postgres://postgres:{}@127.0.0.1:{}/{database}",
                percent_encode(p),
                self.port
            ),
        }
    }

    /// Creates a database (over the local socket, where no password is asked).
    pub fn create_database(&self, name: &str) {
        self.run(
            "psql",
            &[
                "-h".into(),
                self.dir.path().display().to_string(),
                "-p".into(),
                self.port.to_string(),
                "-U".into(),
                "postgres".into(),
                "-d".into(),
                "postgres".into(),
                "-v".into(),
                "ON_ERROR_STOP=1".into(),
                "-qc".into(),
                format!("CREATE DATABASE {}", shared::db::quote_ident(name)),
            ],
        );
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        // Whatever state it is in; the folder goes with the TempDir.
        let mut stop = if running_as_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            c
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = stop
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-m", "immediate", "stop"])
            .output();
    }
}

/// An IPv4 address of this machine that is not loopback (reaching it never leaves the
/// machine), for tests of what counts as a remote server; `None` when it has none.
pub fn non_loopback_address() -> Option<std::net::IpAddr> {
    let listed = Command::new("hostname").arg("-I").output().ok()?;
    String::from_utf8_lossy(&listed.stdout)
        .split_whitespace()
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .find(|a| a.is_ipv4() && !a.is_loopback() && !a.is_unspecified())
}

/// Percent-encodes everything but unreserved characters (for a password in a URL).
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
