// @generated automatically by Diesel CLI.

diesel::table! {
    invoices (id) {
        id -> Text,
        user_id -> Text,
        amount_cents -> Int8,
        issued_at -> Timestamp,
    }
}
