//! A login role of a test's own, for databases shaped the way teams have them: owned by a
//! role that is not a superuser.

use orch_tests::{exec, TestDb, TestPair};

/// A login role of the test's own. Dropped at the end, before the pair's databases:
/// what it owns goes back to the test's superuser, what it was granted is revoked.
pub struct Role {
    pub name: String,
    databases: Vec<shared::DatabaseUrl>,
}

impl Role {
    pub fn new(pair: &TestPair, label: &str) -> Role {
        let name = format!("orch_{label}_{}", std::process::id());
        exec(
            &mut pair.auth.connect(),
            &format!("DROP ROLE IF EXISTS {name}; CREATE ROLE {name} LOGIN;"),
        );
        Role {
            name,
            databases: vec![pair.auth.url.clone(), pair.app.url.clone()],
        }
    }

    /// `db`'s URL, logging in as this role.
    pub fn url(&self, db: &TestDb) -> String {
        db.url_string().replacen(
            "postgres://postgres@",
            &format!("postgres://{}@", self.name),
            1,
        )
    }

    /// A connection to `db` as this role.
    pub fn connect(&self, db: &TestDb) -> shared::Conn {
        let url = shared::DatabaseUrl::parse(&self.url(db)).expect("url");
        shared::Conn::establish("test", &url)
            .unwrap_or_else(|e| panic!("connecting as {}: {e}", self.name))
    }

    /// Makes the role own `db` and its public schema, as a database created for an
    /// application usually is.
    pub fn own(&self, db: &TestDb) {
        let name = db.url.database_name();
        exec(
            &mut db.connect(),
            &format!(
                "ALTER DATABASE \"{name}\" OWNER TO {r}; ALTER SCHEMA public OWNER TO {r};",
                r = self.name
            ),
        );
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let mut last = None;
        for url in &self.databases {
            if let Ok(mut conn) = shared::Conn::establish("test", url) {
                let _ = conn.batch_execute(&format!(
                    "REASSIGN OWNED BY {r} TO CURRENT_USER; DROP OWNED BY {r};",
                    r = self.name
                ));
                last = Some(conn);
            }
        }
        if let Some(mut conn) = last {
            let _ = conn.batch_execute(&format!("DROP ROLE IF EXISTS {}", self.name));
        }
    }
}

/// A role of the test's own owning both of the pair's databases, which it has migrated:
/// the shape an application's databases usually have.
pub fn migrated_owner(pair: &TestPair, label: &str) -> Role {
    let owner = Role::new(pair, label);
    owner.own(&pair.auth);
    owner.own(&pair.app);
    as_role(pair, &owner).arg("migrate").assert().success();
    owner
}

/// The binary on the pair's databases as `role`.
pub fn as_role(pair: &TestPair, role: &Role) -> assert_cmd::Command {
    let (auth, app) = (role.url(&pair.auth), role.url(&pair.app));
    orch_tests::orchestrator_on(pair.path(), &[("auth", &auth), ("app", &app)])
}
