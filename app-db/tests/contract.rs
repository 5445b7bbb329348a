//! The app store on each backend: exactly the contract's tables and FKs (and no `users`
//! table), minimal rows through `schema.rs`, and cascades from datasets down to jobs.

use app_db::schema::{datasets, documents, processing_jobs};
use diesel::prelude::*;
use shared::with_conn;
use test_kit::{assert_migrates_to_contract, count, for_each_backend};

#[test]
fn migrations_produce_exactly_the_contract() {
    for_each_backend("app_contract", |pair| {
        let mut conn = pair.app.connect();
        assert_migrates_to_contract(&mut conn, &app_db::STORE);
        let tables = shared::catalog::tables(&mut conn).expect("tables");
        assert!(
            !tables.iter().any(|t| t == "users"),
            "app must not have a users table"
        );
    });
}

#[test]
fn minimal_rows_insert_and_deleting_a_dataset_cascades_to_jobs() {
    for_each_backend("app_cascade", |pair| {
        let mut conn = pair.app.connect();
        assert_migrates_to_contract(&mut conn, &app_db::STORE);
        let inserted: QueryResult<()> = with_conn!(&mut conn, |c| c.transaction(|c| {
            diesel::insert_into(datasets::table)
                .values(vec![
                    (
                        datasets::id.eq("d1"),
                        datasets::owner_id.eq("u1"),
                        datasets::name.eq("one"),
                    ),
                    (
                        datasets::id.eq("d2"),
                        datasets::owner_id.eq("u1"),
                        datasets::name.eq("two"),
                    ),
                ])
                .execute(c)?;
            diesel::insert_into(documents::table)
                .values(vec![
                    (
                        documents::id.eq("doc1"),
                        documents::dataset_id.eq("d1"),
                        documents::filename.eq("a.pdf"),
                    ),
                    (
                        documents::id.eq("doc2"),
                        documents::dataset_id.eq("d2"),
                        documents::filename.eq("b.pdf"),
                    ),
                ])
                .execute(c)?;
            diesel::insert_into(processing_jobs::table)
                .values(vec![
                    (
                        processing_jobs::id.eq("j1"),
                        processing_jobs::document_id.eq("doc1"),
                    ),
                    (
                        processing_jobs::id.eq("j2"),
                        processing_jobs::document_id.eq("doc2"),
                    ),
                ])
                .execute(c)?;
            Ok(())
        }));
        inserted.expect("minimal rows");
        let status: String = with_conn!(&mut conn, |c| processing_jobs::table
            .select(processing_jobs::status)
            .filter(processing_jobs::id.eq("j1"))
            .first(c)
            .expect("status"));
        assert_eq!(status, "queued", "a job starts queued");

        let deleted = with_conn!(&mut conn, |c| diesel::delete(
            datasets::table.filter(datasets::id.eq("d1"))
        )
        .execute(c)
        .expect("delete"));
        assert_eq!(deleted, 1);
        assert_eq!(count(&mut conn, "datasets"), 1);
        assert_eq!(
            count(&mut conn, "documents"),
            1,
            "documents.dataset_id CASCADE on {}",
            pair.backend
        );
        assert_eq!(
            count(&mut conn, "processing_jobs"),
            1,
            "processing_jobs.document_id CASCADE on {}",
            pair.backend
        );

        // A document needs its dataset: the FK is enforced on both backends.
        assert!(conn
            .batch_execute(
                "INSERT INTO documents (id, dataset_id, filename) VALUES ('x', 'missing', 'f')"
            )
            .is_err());
    });
}
