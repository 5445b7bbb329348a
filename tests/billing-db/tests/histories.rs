//! The billing store's two histories make one schema, its recorded PostgreSQL model is
//! current, and its schema.rs says what both histories make: the proofs every store crate
//! runs.

#[test]
fn both_histories_make_the_same_schema_at_every_version() {
    test_kit::assert_histories_agree(&billing_db::STORE);
}

#[test]
fn schema_rs_matches_both_histories() {
    test_kit::assert_schema_rs_matches(&billing_db::STORE);
}
