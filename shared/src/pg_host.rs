//! Where libpq really connects for a URL, and whether that is this machine.
//!
//! The URL's text does not say: `?host=` and `?hostaddr=` override its authority, a list
//! of hosts is tried in turn, and `PGHOST`, `PGHOSTADDR` and a service file (`?service=`,
//! `PGSERVICE`, `PGSERVICEFILE`) fill in whatever the URL leaves out. Only libpq applies
//! all of that exactly as it will when the command connects, so libpq is asked: it starts
//! a connection (`PQconnectStart` resolves the host and starts the socket's connect,
//! without sending a login), says where it is connecting (`PQhost`, `PQhostaddr`) and
//! which hosts and addresses it was given (`PQconninfo`), and hangs up. No login means no
//! server session: nothing counts against connection limits and nothing waits for
//! authentication. Where a connection goes is decided before it is known to succeed, so
//! the answer does not depend on whether the server is up. The server's own view (`inet_server_addr()`) is not used: a
//! container reached through a port mapped on localhost reports its bridge address, and
//! would make every laptop confirm.
#![allow(
    unsafe_code,
    reason = "libpq's C API: diesel links libpq but does not expose where it connected"
)]

use std::ffi::{c_char, CStr, CString};
use std::net::{IpAddr, ToSocketAddrs};

/// What libpq was given (after the URL, the environment and any service file) and where
/// its connection went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Route {
    /// The `host` option: comma-separated, empty when unset (libpq's default socket).
    pub host: String,
    /// The `hostaddr` option, likewise.
    pub hostaddr: String,
    /// The `port` option, likewise (one port may serve every host).
    pub port: String,
    /// `(PQhost, PQhostaddr)` of the connection libpq started; `PQhostaddr` is empty for a
    /// Unix socket. [`route`] always sets it; `None` judges the hosts as given alone.
    pub connected: Option<(String, String)>,
}

/// Whether a store's server is this machine, and why, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locality {
    pub local: bool,
    pub why: String,
}

/// Asks libpq where `connect_string` leads (see the module's notes) and decides.
pub fn locality(connect_string: &str) -> Locality {
    match route(connect_string) {
        Some(route) => decide(&route, &resolve),
        None => Locality {
            local: false,
            why: "libpq could not open a connection, so where it leads is unknown".into(),
        },
    }
}

/// How a host name's addresses are found (getaddrinfo in [`locality`], a table in tests).
pub type Resolve<'a> = &'a dyn Fn(&str, u16) -> Vec<IpAddr>;

/// A host name's addresses, as libpq resolves them (getaddrinfo).
fn resolve(host: &str, port: u16) -> Vec<IpAddr> {
    (host, port)
        .to_socket_addrs()
        .map(|addrs| addrs.map(|a| a.ip()).collect())
        .unwrap_or_default()
}

/// Local when libpq's connection went to a Unix socket or a loopback address, and when
/// every host it was given is one too: libpq moves on to a host's next address, and then
/// to the next host, when one does not answer, so any of them may be the one a run changes.
pub fn decide(route: &Route, resolve: Resolve<'_>) -> Locality {
    let hosts = split(&route.host);
    let addrs = split(&route.hostaddr);
    let ports = split(&route.port);
    let entries = hosts.len().max(addrs.len());
    if let Some((host, addr)) = &route.connected {
        if let Some(why) = remote_endpoint(host, addr, None) {
            return Locality {
                local: false,
                why: format!("libpq connected to {why}"),
            };
        }
    }
    for i in 0..entries.max(1) {
        let pick = |list: &[String]| list.get(i).cloned().unwrap_or_default();
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .and_then(|p| p.parse().ok())
            .unwrap_or(5432);
        let (host, addr) = (pick(&hosts), pick(&addrs));
        if let Some(why) = remote_endpoint(&host, &addr, Some((resolve, port))) {
            return Locality {
                local: false,
                why: format!(
                    "host {} of {} in the connection is {why}",
                    i + 1,
                    entries.max(1)
                ),
            };
        }
    }
    let connected = match &route.connected {
        Some((host, addr)) => format!("libpq connected to {}", shown(host, addr)),
        None => "libpq did not connect".into(),
    };
    Locality {
        local: true,
        why: format!("{connected}; every host it was given is this machine"),
    }
}

/// Why one host entry is not this machine, or `None` when it is. An address decides when
/// libpq has one (it connects there, whatever the name); a name is resolved only when
/// `resolve` is given (a host not connected to yet), and is local only when every address
/// it has is loopback.
fn remote_endpoint(host: &str, addr: &str, resolve: Option<(Resolve<'_>, u16)>) -> Option<String> {
    if !addr.is_empty() {
        return match addr.parse::<IpAddr>() {
            Ok(ip) if is_loopback(ip) => None,
            _ => Some(format!("address {addr}")),
        };
    }
    // libpq's own test for a socket: an absolute path, or `@` for Linux's abstract ones.
    if host.is_empty() || host.starts_with('/') || host.starts_with('@') {
        return None;
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return (!is_loopback(ip)).then(|| format!("address {ip}"));
    }
    let Some((resolve, port)) = resolve else {
        // Connected by name without an address: libpq always records the address of a
        // TCP connection, so this is not one to trust.
        return Some(format!("host {host} (no address recorded)"));
    };
    let ips = resolve(host, port);
    if ips.is_empty() {
        return Some(format!("host {host}, which does not resolve"));
    }
    ips.iter()
        .find(|ip| !is_loopback(**ip))
        .map(|ip| format!("host {host} ({ip})"))
}

/// Loopback, IPv4-mapped IPv6 (`::ffff:127.0.0.1`) included.
fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

fn shown(host: &str, addr: &str) -> String {
    match (host.is_empty(), addr.is_empty()) {
        (_, false) if host != addr && !host.is_empty() => format!("{host} ({addr})"),
        (_, false) => addr.to_string(),
        (false, true) => format!("the socket in {host}"),
        (true, true) => "the default socket".into(),
    }
}

/// libpq's comma-separated lists; an unset option has no entry.
fn split(list: &str) -> Vec<String> {
    if list.is_empty() {
        return Vec::new();
    }
    list.split(',').map(|s| s.trim().to_string()).collect()
}

/// What libpq makes of `connect_string`; `None` when it could not even start a connection
/// (out of memory, an unparsable string, a name that does not resolve, a socket that is
/// not there).
pub fn route(connect_string: &str) -> Option<Route> {
    let conninfo = CString::new(connect_string).ok()?;
    // SAFETY: `conninfo` is a NUL-terminated string that outlives the call. The result is
    // a connection object we own (NULL only when out of memory), released by PQfinish
    // below on every path.
    let conn = unsafe { pq_sys::PQconnectStart(conninfo.as_ptr()) };
    if conn.is_null() {
        return None;
    }
    // SAFETY: `conn` is the live connection object from PQconnectStart.
    let started = unsafe { pq_sys::PQstatus(conn) } != pq_sys::ConnStatusType::CONNECTION_BAD;
    let mut route = Route::default();
    if started {
        // SAFETY: both return strings owned by `conn` (or a static ""), read before
        // PQfinish frees them.
        let (host, addr) = unsafe { (text(pq_sys::PQhost(conn)), text(pq_sys::PQhostaddr(conn))) };
        route.connected = Some((host, addr));
    }
    // SAFETY: PQconninfo returns an array we own, ended by an entry whose keyword is NULL,
    // or NULL when out of memory; it is read entry by entry up to that end and freed with
    // PQconninfoFree.
    unsafe {
        let options = pq_sys::PQconninfo(conn);
        if !options.is_null() {
            let mut option = options;
            while !(*option).keyword.is_null() {
                let value = text((*option).val);
                match CStr::from_ptr((*option).keyword).to_bytes() {
                    b"host" => route.host = value,
                    b"hostaddr" => route.hostaddr = value,
                    b"port" => route.port = value,
                    _ => {}
                }
                option = option.add(1);
            }
            pq_sys::PQconninfoFree(options);
        }
    }
    // SAFETY: `conn` is live and not used after this.
    unsafe { pq_sys::PQfinish(conn) };
    started.then_some(route)
}

/// A C string libpq owns, copied; NULL reads as "".
///
/// # Safety
/// `ptr` is NULL or points at a NUL-terminated string that stays valid during the call.
unsafe fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL, NUL-terminated and alive, as the caller promises.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_dns(_: &str, _: u16) -> Vec<IpAddr> {
        Vec::new()
    }

    fn dns(host: &str, _: u16) -> Vec<IpAddr> {
        let ips: &[&str] = match host {
            "localhost" => &["::1", "127.0.0.1"],
            "db.internal" => &["10.0.0.5"],
            "split.example" => &["127.0.0.1", "10.0.0.6"],
            _ => &[],
        };
        ips.iter().filter_map(|ip| ip.parse().ok()).collect()
    }

    fn route(host: &str, hostaddr: &str, connected: Option<(&str, &str)>) -> Route {
        Route {
            host: host.into(),
            hostaddr: hostaddr.into(),
            port: "5432".into(),
            connected: connected.map(|(h, a)| (h.into(), a.into())),
        }
    }

    fn local(route: &Route) -> bool {
        decide(route, &dns).local
    }

    #[test]
    fn the_address_libpq_connected_to_decides_a_single_host() {
        // `localhost`, a loopback address, a socket, the default socket.
        assert!(local(&route(
            "localhost",
            "",
            Some(("localhost", "127.0.0.1"))
        )));
        assert!(local(&route("", "", Some(("/var/run/postgresql", "")))));
        assert!(local(&route("/tmp", "", Some(("/tmp", "")))));
        assert!(local(&route("@abstract", "", Some(("@abstract", "")))));
        assert!(local(&route("::1", "", Some(("::1", "::1")))));
        assert!(local(&route(
            "::ffff:127.0.0.1",
            "",
            Some(("::ffff:127.0.0.1", "::ffff:127.0.0.1"))
        )));
        // A name whose first address is loopback but whose next is not: libpq would go on
        // to the next when the first does not answer.
        assert!(!local(&route(
            "split.example",
            "",
            Some(("split.example", "127.0.0.1"))
        )));
        // A name in the URL, another place in fact: `?hostaddr=`, `PGHOSTADDR`, a service
        // file, or /etc/hosts mapping a local-looking name elsewhere.
        assert!(!local(&route(
            "localhost",
            "192.0.2.2",
            Some(("localhost", "192.0.2.2"))
        )));
        assert!(!local(&route(
            "127.0.0.1",
            "",
            Some(("127.0.0.1", "10.0.0.5"))
        )));
        assert!(!local(&route("db", "", Some(("db", "172.17.0.2")))));
        // A TCP connection without an address recorded is not trusted.
        assert!(!local(&route("localhost", "", Some(("localhost", "")))));
    }

    #[test]
    fn every_host_of_a_list_must_be_local() {
        let both_local = route("127.0.0.1,localhost", "", Some(("127.0.0.1", "127.0.0.1")));
        assert!(local(&both_local));
        let second_remote = route(
            "127.0.0.1,db.internal",
            "",
            Some(("127.0.0.1", "127.0.0.1")),
        );
        let decided = decide(&second_remote, &dns);
        assert!(!decided.local);
        assert!(decided.why.contains("host 2 of 2"), "{}", decided.why);
        // Addresses beside names: the address is where libpq goes.
        assert!(!local(&route(
            "a,b",
            "127.0.0.1,10.0.0.7",
            Some(("a", "127.0.0.1"))
        )));
        assert!(local(&route(
            "a,b",
            "127.0.0.1,::1",
            Some(("a", "127.0.0.1"))
        )));
        // A socket and a loopback address.
        assert!(local(&route("/tmp,localhost", "", Some(("/tmp", "")))));
        // A name that resolves partly elsewhere, or not at all.
        assert!(!local(&route("localhost,split.example", "", None)));
        assert!(!decide(&route("localhost,nowhere", "", None), &no_dns).local);
    }

    #[test]
    fn nothing_reached_means_every_host_is_judged_as_given() {
        assert!(local(&route("localhost,/tmp", "", None)));
        assert!(!local(&route("db.internal", "", None)));
        assert!(!local(&route("", "10.0.0.5", None)));
    }

    #[test]
    fn libpq_says_where_it_connects_without_a_server() {
        // A listener that never answers: the kernel completes the TCP handshake, which is
        // as far as libpq goes here, so no PostgreSQL is needed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listener");
        let port = listener.local_addr().expect("addr").port();
        let r = super::route(&format!("postgres://u@localhost:{port}/db")).expect("started");
        assert_eq!(r.host, "localhost");
        let (host, addr) = r.connected.clone().expect("connected");
        assert_eq!((host.as_str(), addr.as_str()), ("localhost", "127.0.0.1"));
        assert!(decide(&r, &resolve).local);

        let url = format!("postgres://u@db.invalid:{port}/db?hostaddr=127.0.0.1");
        let r = super::route(&url).expect("started");
        assert_eq!(
            (r.host.as_str(), r.hostaddr.as_str()),
            ("db.invalid", "127.0.0.1")
        );
        assert_eq!(
            r.connected.as_ref().map(|c| c.1.as_str()),
            Some("127.0.0.1")
        );

        let url = format!("postgres://u@/db?host=127.0.0.1,localhost&port={port}");
        let r = super::route(&url).expect("started");
        assert_eq!(r.host, "127.0.0.1,localhost");
        assert!(decide(&r, &resolve).local);

        drop(listener);
        // Nothing listens any more: the connection is still under way when libpq is asked
        // (it learns of the refusal later), and it is under way here.
        let gone = locality(&format!("postgres://u@127.0.0.1:{port}/db"));
        assert!(gone.local, "{gone:?}");
    }
}
