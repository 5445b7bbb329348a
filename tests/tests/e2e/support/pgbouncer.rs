//! A pgbouncer of a test's own (Debian's package `pgbouncer`) in front of the test server,
//! on a free port, in the pooling mode the test asks for. It refuses to run as root, so as
//! root it runs as `postgres`. Stopped when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Bouncer {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

fn find() -> Option<String> {
    [
        "/usr/sbin/pgbouncer",
        "/usr/bin/pgbouncer",
        "/usr/local/bin/pgbouncer",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).exists())
    .map(str::to_string)
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `(user, host, port)` of the test server's administrative URL.
fn server() -> (String, String, u16) {
    let url = test_kit::pg_admin_url();
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    let (user, hostpart) = rest.rsplit_once('@').unwrap_or(("postgres", rest));
    let user = user.split(':').next().unwrap_or("postgres").to_string();
    let hostport = hostpart.split(['/', '?']).next().unwrap_or("127.0.0.1");
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_string(), p.parse().unwrap_or(5432)),
        None => (hostport.to_string(), 5432),
    };
    (user, host, port)
}

impl Bouncer {
    /// A running pgbouncer in `mode` (`session`, `transaction`, `statement`), or `None`
    /// (with a loud message) when it is not installed and PostgreSQL is not required.
    pub fn start(test: &str, mode: &str) -> Option<Bouncer> {
        let Some(exe) = find() else {
            assert!(
                !test_kit::pg_required(),
                "{test}: PostgreSQL is required but pgbouncer is not installed (apt-get install pgbouncer)"
            );
            eprintln!("\n*** SKIPPED {test}: pgbouncer is not installed.\n");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("orch-pgbouncer-")
            .tempdir()
            .expect("tempdir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let (user, host, server_port) = server();
        let users = dir.path().join("userlist.txt");
        std::fs::write(&users, format!("\"{user}\" \"\"\n")).expect("userlist");
        let config = dir.path().join("pgbouncer.ini");
        std::fs::write(
            &config,
            format!(
                "[databases]\n* = host={host} port={server_port}\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = trust\nauth_file = {}\npool_mode = {mode}\n\
                 max_client_conn = 200\ndefault_pool_size = 20\n\
                 ignore_startup_parameters = extra_float_digits\n",
                users.display()
            ),
        )
        .expect("config");
        let mut cmd = if running_as_root() {
            // postgres must reach the folder and read the files.
            let _ = Command::new("chmod")
                .args(["-R", "a+rX"])
                .arg(dir.path())
                .status();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let child = cmd
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pgbouncer");
        let bouncer = Bouncer {
            child,
            _dir: dir,
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "pgbouncer did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(bouncer)
    }

    /// The URL of `database` through this pgbouncer.
    pub fn url(&self, database: &str) -> String {
        let (user, _, _) = server();
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        // runuser passes SIGTERM on to pgbouncer.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}
