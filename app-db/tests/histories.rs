//! The app store's PostgreSQL and SQLite histories make one schema: the same versions,
//! and after each the same tables, columns, keys, uniques, foreign keys and indexes; and
//! the recorded PostgreSQL model `verify` uses is what the PostgreSQL history makes.

#[test]
fn both_histories_make_the_same_schema_at_every_version() {
    test_kit::assert_histories_agree(&app_db::STORE);
}
