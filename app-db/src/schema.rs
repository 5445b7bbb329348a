// The app store's tables, one description for both backends. There is no `users` table
// here: owners live in the auth database.

diesel::table! {
    datasets (id) {
        id -> Text,
        owner_id -> Text,
        team_id -> Nullable<Text>,
        name -> Text,
        description -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    documents (id) {
        id -> Text,
        dataset_id -> Text,
        filename -> Text,
        content_type -> Nullable<Text>,
        size_bytes -> Nullable<BigInt>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    processing_jobs (id) {
        id -> Text,
        document_id -> Text,
        status -> Text,
        attempts -> Integer,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(documents -> datasets (dataset_id));
diesel::joinable!(processing_jobs -> documents (document_id));

diesel::allow_tables_to_appear_in_same_query!(datasets, documents, processing_jobs);
