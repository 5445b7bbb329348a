// @generated automatically by Diesel CLI.

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
        size_bytes -> Nullable<Int8>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    processing_jobs (id) {
        id -> Text,
        document_id -> Text,
        status -> Text,
        attempts -> Int4,
        error -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::joinable!(documents -> datasets (dataset_id));
diesel::joinable!(processing_jobs -> documents (document_id));

diesel::allow_tables_to_appear_in_same_query!(datasets, documents, processing_jobs,);
