//! The app store's API on each backend, with the auth store as its owner directory.

use app_db::datasets::{add_document, create_dataset, delete_dataset, NewDataset};
use app_db::jobs;
use app_db::AppError;
use shared::directory::{LookupError, OwnerDirectory};
use test_kit::{count, for_each_backend};

/// Owners known to this test: the app store only ever sees this trait.
struct Known(Vec<&'static str>);

impl OwnerDirectory for Known {
    fn user_exists(&mut self, user_id: &str) -> Result<bool, LookupError> {
        Ok(self.0.contains(&user_id))
    }
    fn team_exists(&mut self, team_id: &str) -> Result<bool, LookupError> {
        Ok(self.0.contains(&team_id))
    }
}

#[test]
fn datasets_need_a_known_owner_and_jobs_move_through_their_states() {
    for_each_backend("app_api", |pair| {
        let mut conn = pair.app.connect();
        shared::migrations::run_pending(&mut conn, &app_db::STORE, |_| {}).expect("migrate");
        let mut owners = Known(vec!["u1", "t1"]);
        let unknown = NewDataset {
            owner_id: "ghost",
            team_id: None,
            name: "x",
            description: None,
        };
        assert!(matches!(
            create_dataset(&mut conn, &mut owners, &unknown),
            Err(AppError::UnknownOwner(_))
        ));
        let bad_team = NewDataset {
            owner_id: "u1",
            team_id: Some("t9"),
            name: "x",
            description: None,
        };
        assert!(matches!(
            create_dataset(&mut conn, &mut owners, &bad_team),
            Err(AppError::UnknownTeam(_))
        ));
        assert_eq!(count(&mut conn, "datasets"), 0);

        let new = NewDataset {
            owner_id: "u1",
            team_id: Some("t1"),
            name: "papers",
            description: None,
        };
        let dataset = create_dataset(&mut conn, &mut owners, &new).expect("dataset");
        let doc = add_document(
            &mut conn,
            &dataset.id,
            "a.pdf",
            Some("application/pdf"),
            Some(1024),
        )
        .expect("doc");
        let job = jobs::enqueue(&mut conn, &doc.id).expect("job");
        assert_eq!((job.status.as_str(), job.attempts), ("queued", 0));
        let job = jobs::start(&mut conn, &job.id).expect("start");
        assert_eq!((job.status.as_str(), job.attempts), ("running", 1));
        assert!(
            matches!(
                jobs::start(&mut conn, &job.id),
                Err(AppError::InvalidTransition { .. })
            ),
            "no double start"
        );
        let job = jobs::fail(&mut conn, &job.id, "parser crashed").expect("fail");
        assert_eq!(
            (job.status.as_str(), job.error.as_deref()),
            ("failed", Some("parser crashed"))
        );
        let job = jobs::retry(&mut conn, &job.id).expect("retry");
        let job = jobs::start(&mut conn, &job.id).expect("start again");
        assert_eq!(job.attempts, 2);
        let job = jobs::finish(&mut conn, &job.id).expect("finish");
        assert_eq!((job.status.as_str(), job.error), ("done", None));
        assert!(matches!(
            jobs::finish(&mut conn, "nope"),
            Err(AppError::NotFound { .. })
        ));

        assert!(delete_dataset(&mut conn, &dataset.id).expect("delete"));
        assert_eq!(count(&mut conn, "documents"), 0, "CASCADE to documents");
        assert_eq!(count(&mut conn, "processing_jobs"), 0, "CASCADE to jobs");
    });
}
