// @generated automatically by Diesel CLI.

diesel::table! {
    accounts (id) {
        id -> Text,
        user_id -> Text,
        account_id -> Text,
        provider_id -> Text,
        access_token -> Nullable<Text>,
        refresh_token -> Nullable<Text>,
        expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    api_key_credits (id) {
        id -> Text,
        user_id -> Text,
        team_id -> Nullable<Text>,
        api_key_id -> Nullable<Text>,
        credits -> Int8,
        created_at -> Timestamp,
    }
}

diesel::table! {
    credit_transactions (id) {
        id -> Text,
        user_id -> Text,
        team_id -> Nullable<Text>,
        amount -> Int8,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        token -> Text,
        expires_at -> Timestamp,
        ip_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    subscriptions (id) {
        id -> Text,
        reference_id -> Text,
        plan -> Text,
        status -> Text,
        stripe_customer_id -> Nullable<Text>,
        period_start -> Nullable<Timestamp>,
        period_end -> Nullable<Timestamp>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    teams (id) {
        id -> Text,
        name -> Text,
        owner_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    user_credits (id) {
        id -> Text,
        user_id -> Text,
        team_id -> Nullable<Text>,
        credits -> Int8,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Nullable<Text>,
        email_verified -> Bool,
        image -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    verifications (id) {
        id -> Text,
        identifier -> Text,
        value -> Text,
        expires_at -> Timestamp,
        created_at -> Timestamp,
    }
}

diesel::joinable!(accounts -> users (user_id));
diesel::joinable!(api_key_credits -> teams (team_id));
diesel::joinable!(api_key_credits -> users (user_id));
diesel::joinable!(credit_transactions -> teams (team_id));
diesel::joinable!(credit_transactions -> users (user_id));
diesel::joinable!(sessions -> users (user_id));
diesel::joinable!(teams -> users (owner_id));
diesel::joinable!(user_credits -> teams (team_id));
diesel::joinable!(user_credits -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    api_key_credits,
    credit_transactions,
    sessions,
    subscriptions,
    teams,
    user_credits,
    users,
    verifications,
);
