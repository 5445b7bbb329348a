//! `orchestrator smoke`: the post-migration checklist, run through the stores' own APIs
//! inside one transaction per store that is rolled back at the end, so it leaves nothing
//! behind; the row counts before and after prove it.

use std::time::Instant;

use auth_db::credits::{balance, consume, grant, grant_api_key_credits, ledger_sum};
use auth_db::users::{delete_user, find_user, sign_up, NewUser};
use auth_db::{AuthDirectory, AuthError};
use clap::Args;
use serde::Serialize;
use shared::directory::OwnerDirectory;
use shared::{admin, catalog, Conn};

use crate::context::Context;
use crate::exit::{CliError, CliResult, Exit};
use crate::output;

/// Run the post-migration checklist on the configured stores, leaving nothing behind.
///
/// Signs up a user, grants and spends credits, checks the ledger, creates a dataset, a
/// document and jobs, deletes the user to watch the cascades, and checks the cross-store
/// reference, all inside transactions that are rolled back.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  orchestrator smoke\n  orchestrator --profile staging --format json smoke"
)]
pub struct SmokeArgs {}

#[derive(Debug, Serialize)]
struct Step {
    step: &'static str,
    ok: bool,
    detail: String,
    millis: u128,
}

#[derive(Debug, Serialize)]
struct Report {
    ok: bool,
    steps: Vec<Step>,
    rows_unchanged: bool,
}

type StepResult = Result<String, String>;

pub fn run(ctx: &Context, _args: &SmokeArgs) -> CliResult {
    // The stores' locks keep other runs out while the checklist runs; what an interrupted
    // run left is reported, not settled: smoke changes nothing.
    let stores = shared::store::dependency_order(&ctx.stores());
    crate::commands::unmigrated::require_files(ctx, &stores, "smoke")?;
    let _locks = crate::lock::acquire_all(ctx, &stores)?;
    if let Some(line) = crate::recovery::under_lock(ctx)?.summary() {
        return Err(CliError::new(Exit::CheckFailed, anyhow::anyhow!("{line}")));
    }
    crate::commands::unmigrated::require_migrated(ctx, &stores, "smoke")?;
    let mut auth = ctx.connect(&auth_db::STORE)?;
    let mut app = ctx.connect(&app_db::STORE)?;
    let before = (rows(&mut auth)?, rows(&mut app)?);

    let begin = |conn: &mut Conn, name: &str| {
        admin::begin(conn).map_err(|e| {
            CliError::new(Exit::Database, anyhow::anyhow!("{name}: BEGIN failed: {e}"))
        })
    };
    begin(&mut auth, "auth")?;
    begin(&mut app, "app")?;
    let steps = checklist(&mut auth, &mut app);
    // Whatever happened, nothing of the checklist stays.
    let rolled_back = admin::rollback(&mut auth).is_ok() & admin::rollback(&mut app).is_ok();
    let after = (rows(&mut auth)?, rows(&mut app)?);
    let rows_unchanged = rolled_back && before == after;

    let mut steps = steps;
    steps.push(Step {
        step: "nothing left behind",
        ok: rows_unchanged,
        detail: if rows_unchanged {
            format!(
                "row counts unchanged ({} auth, {} app)",
                total(&after.0),
                total(&after.1)
            )
        } else {
            format!("row counts changed: before {before:?}, after {after:?}")
        },
        millis: 0,
    });
    let report = Report {
        ok: steps.iter().all(|s| s.ok),
        steps,
        rows_unchanged,
    };
    if ctx.json() {
        output::print_json(&report).map_err(|e| CliError::new(Exit::Usage, e))?;
    } else {
        let rows: Vec<Vec<String>> = report
            .steps
            .iter()
            .map(|s| {
                let verdict = if s.ok {
                    output::paint("pass", output::Tone::Good)
                } else {
                    output::paint("FAIL", output::Tone::Bad)
                };
                vec![s.step.to_string(), verdict, s.detail.clone()]
            })
            .collect();
        crate::say!("{}", output::table(&["step", "result", "detail"], &rows));
    }
    if report.ok {
        Ok(())
    } else {
        let failed: Vec<&str> = report
            .steps
            .iter()
            .filter(|s| !s.ok)
            .map(|s| s.step)
            .collect();
        Err(CliError::new(
            Exit::CheckFailed,
            anyhow::anyhow!("smoke check failed: {}", failed.join(", ")),
        ))
    }
}

fn rows(conn: &mut Conn) -> CliResult<Vec<(String, i64)>> {
    let count = |conn: &mut Conn| -> diesel::QueryResult<Vec<(String, i64)>> {
        let tables = catalog::tables(conn)?;
        catalog::row_counts(conn, &tables)
    };
    count(conn).map_err(|e| CliError::new(Exit::Database, anyhow::anyhow!("counting rows: {e}")))
}

fn total(rows: &[(String, i64)]) -> i64 {
    rows.iter().map(|(_, n)| n).sum()
}

/// Runs the steps in order; a failed step ends the list (later steps need its result).
fn checklist(auth: &mut Conn, app: &mut Conn) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut run = |step: &'static str, f: &mut dyn FnMut() -> StepResult| -> bool {
        let started = Instant::now();
        let result = f();
        let ok = result.is_ok();
        steps.push(Step {
            step,
            ok,
            detail: result.unwrap_or_else(|e| e),
            millis: started.elapsed().as_millis(),
        });
        ok
    };
    let email = format!("smoke-{}@smoke.invalid", auth_db::models::new_id());
    let mut user_id = String::new();
    let mut dataset_id = String::new();
    let mut document_id = String::new();
    let mut job_ids: Vec<String> = Vec::new();

    let ok = run("signup", &mut || {
        let user = sign_up(
            auth,
            &NewUser {
                email: &email,
                name: Some("Smoke"),
            },
            100,
        )
        .map_err(|e| e.to_string())?;
        user_id = user.id;
        let b = balance(auth, &user_id).map_err(|e| e.to_string())?;
        expect(
            b == 100,
            format!("user {user_id} signed up with {b} credits"),
        )
    }) && run("credits", &mut || {
        let after_grant = grant(auth, &user_id, 50, "smoke grant").map_err(|e| e.to_string())?;
        let after_spend = consume(auth, &user_id, 30, "smoke spend").map_err(|e| e.to_string())?;
        expect(
            after_grant == 150 && after_spend == 120,
            format!("granted 50 → {after_grant}, spent 30 → {after_spend}"),
        )
    }) && run("ledger", &mut || {
        let refused = matches!(
            consume(auth, &user_id, 1_000, "smoke overspend"),
            Err(AuthError::InsufficientCredits { .. })
        );
        let (b, sum) = (
            balance(auth, &user_id).map_err(|e| e.to_string())?,
            ledger_sum(auth, &user_id).map_err(|e| e.to_string())?,
        );
        expect(
            refused && b == sum,
            format!("overspend refused: {refused}; balance {b} = ledger {sum}"),
        )
    }) && run("dataset", &mut || {
        let mut owners = AuthDirectory::new(auth);
        let unknown = app_db::datasets::NewDataset {
            owner_id: "no-such-user",
            team_id: None,
            name: "x",
            description: None,
        };
        let refused = app_db::datasets::create_dataset(app, &mut owners, &unknown).is_err();
        let new = app_db::datasets::NewDataset {
            owner_id: &user_id,
            team_id: None,
            name: "smoke dataset",
            description: None,
        };
        let dataset =
            app_db::datasets::create_dataset(app, &mut owners, &new).map_err(|e| e.to_string())?;
        dataset_id = dataset.id;
        expect(
            refused,
            format!("dataset {dataset_id} created; unknown owner refused"),
        )
    }) && run("document", &mut || {
        let doc = app_db::datasets::add_document(
            app,
            &dataset_id,
            "smoke.txt",
            Some("text/plain"),
            Some(5),
        )
        .map_err(|e| e.to_string())?;
        document_id = doc.id;
        Ok(format!("document {document_id} added"))
    }) && run("job", &mut || {
        let job = app_db::jobs::enqueue(app, &document_id).map_err(|e| e.to_string())?;
        app_db::jobs::start(app, &job.id).map_err(|e| e.to_string())?;
        let done = app_db::jobs::finish(app, &job.id).map_err(|e| e.to_string())?;
        let other = app_db::jobs::enqueue(app, &document_id).map_err(|e| e.to_string())?;
        app_db::jobs::start(app, &other.id).map_err(|e| e.to_string())?;
        let failed =
            app_db::jobs::fail(app, &other.id, "smoke failure").map_err(|e| e.to_string())?;
        job_ids = vec![job.id.clone(), other.id.clone()];
        expect(
            done.status == "done" && failed.status == "failed" && failed.error.is_some(),
            "queued → running → done, and running → failed with its error".to_string(),
        )
    }) && run("cross-store reference", &mut || {
        let mut owners = AuthDirectory::new(auth);
        let exists = owners.user_exists(&user_id).map_err(|e| e.to_string())?;
        expect(
            exists,
            format!("app.datasets.owner_id {user_id} resolves in auth.users"),
        )
    }) && run("cascade", &mut || {
        let team =
            auth_db::teams::create_team(auth, "smoke team", &user_id).map_err(|e| e.to_string())?;
        grant_api_key_credits(auth, &user_id, "smoke-key", Some(&team.id), 5)
            .map_err(|e| e.to_string())?;
        let deleted = delete_user(auth, &user_id).map_err(|e| e.to_string())?;
        let gone = find_user(auth, &user_id)
            .map_err(|e| e.to_string())?
            .is_none();
        let credits_gone = balance(auth, &user_id).is_err();
        let team_gone = !auth_db::teams::delete_team(auth, &team.id).map_err(|e| e.to_string())?;
        let orphaned = !AuthDirectory::new(auth)
            .user_exists(&user_id)
            .map_err(|e| e.to_string())?;
        let dataset_deleted =
            app_db::datasets::delete_dataset(app, &dataset_id).map_err(|e| e.to_string())?;
        let mut jobs_gone = !job_ids.is_empty();
        for id in &job_ids {
            jobs_gone &= app_db::jobs::find(app, id)
                .map_err(|e| e.to_string())?
                .is_none();
        }
        expect(
            deleted && gone && credits_gone && team_gone && orphaned && dataset_deleted && jobs_gone,
            "deleting the user took its credits, ledger, team and keys; the dataset's owner is then an orphan, \
             and deleting the dataset took its documents and jobs"
                .to_string(),
        )
    });
    let _ = ok;
    steps
}

fn expect(condition: bool, detail: String) -> StepResult {
    if condition {
        Ok(detail)
    } else {
        Err(format!("unexpected: {detail}"))
    }
}
