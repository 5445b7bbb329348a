DROP TABLE subscriptions;
DROP TABLE teams;
