//! Rows for the end-to-end tests, written the way the product writes them: through the
//! store crates' own APIs (`auth_db::users::sign_up`, `app_db::datasets::create_dataset`
//! with auth as its owner directory, …), so that a seeded store holds what a real one
//! does (credits rows, ledger rows, timestamps) and a change of the stores' schema shows
//! up here once, not in raw `INSERT`s across the suite.
//!
//! What stays raw SQL in the tests is raw on purpose: rows the API refuses (a dataset of an
//! owner auth does not know, for the reference checks), hostile text (the SQL-safety
//! suite), another process's writes and open transactions (the live-SQLite and writer
//! trials), and bulk volume (`generate_series` for the kill trials and benchmarks).

use shared::Conn;
use test_kit::TestPair;

/// The ids of what [`contract_rows`] wrote.
#[derive(Debug, Clone)]
pub struct Seeded {
    /// Three users; the first holds 50 credits (a ledger row), the others none.
    pub users: Vec<String>,
    /// A team owned by the first user.
    pub team: String,
    /// Two datasets: the first user's in the team, the second user's without one.
    pub datasets: Vec<String>,
    /// A document of the first dataset.
    pub document: String,
    /// A processing job of that document, queued.
    pub job: String,
}

/// A user signed up with `credits` (a ledger row when above 0); its id.
pub fn user(auth: &mut Conn, email: &str, credits: i64) -> String {
    auth_db::users::sign_up(
        auth,
        &auth_db::users::NewUser { email, name: None },
        credits,
    )
    .unwrap_or_else(|e| panic!("sign up {email}: {e}"))
    .id
}

/// A team owned by `owner`; its id.
pub fn team(auth: &mut Conn, name: &str, owner: &str) -> String {
    auth_db::teams::create_team(auth, name, owner)
        .unwrap_or_else(|e| panic!("team {name}: {e}"))
        .id
}

/// A dataset of `owner` (in `team`), checked against auth as app checks it; its id.
pub fn dataset(
    app: &mut Conn,
    auth: &mut Conn,
    owner: &str,
    team: Option<&str>,
    name: &str,
) -> String {
    app_db::datasets::create_dataset(
        app,
        &mut auth_db::AuthDirectory::new(auth),
        &app_db::datasets::NewDataset {
            owner_id: owner,
            team_id: team,
            name,
            description: None,
        },
    )
    .unwrap_or_else(|e| panic!("dataset {name}: {e}"))
    .id
}

/// The rows the end-to-end tests start from, through the contract's own tables: see
/// [`Seeded`]. The stores must be migrated.
pub fn contract_rows(pair: &TestPair) -> Seeded {
    let mut auth = pair.auth.connect();
    let mut app = pair.app.connect();
    let users: Vec<String> = [("a@x", 50), ("b@x", 0), ("c@x", 0)]
        .into_iter()
        .map(|(email, credits)| user(&mut auth, email, credits))
        .collect();
    let team = team(&mut auth, "team", &users[0]);
    let datasets = vec![
        dataset(&mut app, &mut auth, &users[0], Some(&team), "one"),
        dataset(&mut app, &mut auth, &users[1], None, "two"),
    ];
    let document = app_db::datasets::add_document(&mut app, &datasets[0], "a.pdf", None, None)
        .unwrap_or_else(|e| panic!("document: {e}"))
        .id;
    let job = app_db::jobs::enqueue(&mut app, &document)
        .unwrap_or_else(|e| panic!("job: {e}"))
        .id;
    Seeded {
        users,
        team,
        datasets,
        document,
        job,
    }
}

/// A user signed up since (no credits) and a dataset of theirs in app: the rows a test
/// writes after a backup, which a restore of auth alone leaves dangling. Their ids.
pub fn newcomer(pair: &TestPair, email: &str) -> (String, String) {
    let mut auth = pair.auth.connect();
    let user = user(&mut auth, email, 0);
    let dataset = dataset(
        &mut pair.app.connect(),
        &mut auth,
        &user,
        None,
        "newcomer's",
    );
    (user, dataset)
}
