//! Protection follows where libpq really connects, not the URL's text: a server of the
//! test's own listens on loopback, on its socket and on a non-loopback address of this
//! machine (connecting there never leaves the machine), and `reset --force` without
//! `--confirm` must refuse (exit 3) every way of reaching that address (`?host=`,
//! `?hostaddr=`, `PGHOST`, `PGHOSTADDR`, a service file named by `?service=` or
//! `PGSERVICE`, a list of hosts with one remote) and run for every local way (loopback,
//! `localhost`, the socket by `?host=` or `PGHOST`, a service naming loopback, a list of
//! local hosts).

use crate::support;

use orch_tests::orchestrator_in;
use shared::Backend;
use support::{non_loopback_address, Auth, OwnCluster};

/// libpq's environment, cleared for every run so that only the case's own applies.
const LIBPQ_ENV: [&str; 7] = [
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGSERVICE",
    "PGSERVICEFILE",
    "PGDATABASE",
];

struct Case {
    what: &'static str,
    auth_url: String,
    env: Vec<(&'static str, String)>,
    /// The stores that must be protected.
    protected: &'static [&'static str],
}

#[test]
fn protection_follows_where_libpq_really_connects() {
    if !orch_tests::backends().contains(&Backend::Postgres) {
        return;
    }
    let Some(address) = non_loopback_address() else {
        eprintln!("\n*** SKIPPED protection: this machine has no non-loopback IPv4 address.\n");
        return;
    };
    let listen = format!("127.0.0.1,{address}");
    let Some(server) = OwnCluster::start_with(
        "protection",
        Auth::Trust,
        &[("listen_addresses", listen.as_str())],
    ) else {
        return;
    };
    server.trust_from(address);
    server.create_database("auth");
    server.create_database("app");
    let work = tempfile::tempdir().expect("work");
    let port = server.port;
    let socket = server.socket_dir().display().to_string();
    let services = work.path().join("pg_service.conf");
    std::fs::write(
        &services,
        format!(
            "[remote]\nhost={address}\nport={port}\nuser=postgres\n\n\
             [local]\nhost=127.0.0.1\nport={port}\nuser=postgres\n"
        ),
    )
    .expect("service file");
    let service_file = services.display().to_string();
    let by_env = |pairs: &[(&'static str, &str)]| -> Vec<(&'static str, String)> {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    };
    let port_s = port.to_string();
    let localhost = format!("postgres://postgres@localhost:{port}/auth");
    let cases = vec![
        Case {
            what: "?host= naming a non-loopback address",
            auth_url: format!("{localhost}?host={address}"),
            env: vec![],
            protected: &["auth"],
        },
        Case {
            what: "?hostaddr= beside a local-looking name",
            auth_url: format!("{localhost}?hostaddr={address}"),
            env: vec![],
            protected: &["auth"],
        },
        Case {
            what: "PGHOST with postgres:///auth",
            auth_url: "postgres:///auth".into(),
            env: by_env(&[
                ("PGHOST", &address.to_string()),
                ("PGPORT", &port_s),
                ("PGUSER", "postgres"),
            ]),
            protected: &["auth"],
        },
        Case {
            // It sends both stores there, the app URL's 127.0.0.1 notwithstanding.
            what: "PGHOSTADDR under URLs naming localhost and 127.0.0.1",
            auth_url: localhost.clone(),
            env: by_env(&[("PGHOSTADDR", &address.to_string())]),
            protected: &["auth", "app"],
        },
        Case {
            what: "?service= naming a service on that address",
            auth_url: "postgres:///auth?service=remote".into(),
            env: by_env(&[("PGSERVICEFILE", &service_file)]),
            protected: &["auth"],
        },
        Case {
            what: "PGSERVICE naming it",
            auth_url: "postgres:///auth".into(),
            env: by_env(&[("PGSERVICEFILE", &service_file), ("PGSERVICE", "remote")]),
            protected: &["auth"],
        },
        Case {
            // libpq connects to the first, but would go to the second if the first fell.
            what: "a list of hosts, the first local, the second not",
            auth_url: format!(
                "postgres://postgres@localhost/auth?host=127.0.0.1,{address}&port={port}"
            ),
            env: vec![],
            protected: &["auth"],
        },
        Case {
            what: "a loopback address",
            auth_url: format!("postgres://postgres@127.0.0.1:{port}/auth"),
            env: vec![],
            protected: &[],
        },
        Case {
            what: "localhost",
            auth_url: localhost.clone(),
            env: vec![],
            protected: &[],
        },
        Case {
            what: "the Unix socket by ?host=",
            auth_url: format!("{localhost}?host={socket}"),
            env: vec![],
            protected: &[],
        },
        Case {
            what: "the Unix socket by PGHOST",
            auth_url: "postgres:///auth".into(),
            env: by_env(&[
                ("PGHOST", &socket),
                ("PGPORT", &port_s),
                ("PGUSER", "postgres"),
            ]),
            protected: &[],
        },
        Case {
            what: "a service naming loopback",
            auth_url: "postgres:///auth?service=local".into(),
            env: by_env(&[("PGSERVICEFILE", &service_file)]),
            protected: &[],
        },
        Case {
            what: "a list of hosts that are all local",
            auth_url: format!(
                "postgres://postgres@localhost/auth?host=127.0.0.1,localhost,{socket}&port={port}"
            ),
            env: vec![],
            protected: &[],
        },
    ];
    let app_url = server.url("app");
    let reset = |case: &Case, confirm: bool| {
        let mut cmd = orchestrator_in(work.path());
        for var in LIBPQ_ENV {
            cmd.env_remove(var);
        }
        for (k, v) in &case.env {
            cmd.env(k, v);
        }
        cmd.args(["--auth-url", &case.auth_url, "--app-url", &app_url])
            .args(["reset", "--force", "--no-backup"]);
        if confirm {
            cmd.args(["--confirm", "auth", "--confirm", "app"]);
        }
        let output = cmd.output().expect("run");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    for case in &cases {
        let (code, stderr) = reset(case, false);
        if case.protected.is_empty() {
            assert_eq!(code, 0, "{}: {stderr}", case.what);
            continue;
        }
        assert_eq!(code, 3, "{}: {stderr}", case.what);
        let named: Vec<String> = case
            .protected
            .iter()
            .map(|s| format!("{s} ({s})"))
            .collect();
        assert!(
            stderr.contains(&format!(
                "refusing to reset protected store(s) {}; nothing was changed",
                named.join(", ")
            )),
            "{}: {stderr}",
            case.what
        );
        // The same URL with the names confirmed: it reaches the server, so the refusal was
        // the protection, not a failure to connect.
        let (code, stderr) = reset(case, true);
        assert_eq!(code, 0, "{} confirmed: {stderr}", case.what);
    }
}
