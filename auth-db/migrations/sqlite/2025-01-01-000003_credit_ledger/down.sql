DROP TABLE api_key_credits;
DROP TABLE credit_transactions;
DROP TABLE user_credits;
