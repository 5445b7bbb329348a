//! `src/schema.rs` says exactly what the migrations produce, on both backends: the same
//! tables, columns, type families, nullability and primary keys, in both directions.

#[test]
fn schema_rs_is_what_both_histories_produce() {
    test_kit::assert_schema_rs_matches(&app_db::STORE);
}
