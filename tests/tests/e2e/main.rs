//! The end-to-end tests of the real binary, one module per area, in one test binary (one
//! link instead of one per file; `cargo test -p orch-tests --test e2e reset::` runs an area).
//! The kit they share is `orch_tests` (launcher, seeding, checksums) and `support` (servers
//! of a test's own: PostgreSQL clusters, pgbouncer).

mod support;

mod adopt;
mod backup_failures;
mod backups;
mod cli_errors;
mod concurrency;
mod deployments;
mod diff;
mod drift;
mod faults;
mod identity;
mod kill_trials;
mod migrate_and_status;
mod migrate_to;
mod partial_runs;
mod protection;
mod real_databases;
mod repair;
mod repair_real;
mod reset;
mod restore_all_or_nothing;
mod revert;
mod schema;
mod secrets;
mod smoke;
mod sql_safety;
mod sqlite_live;
mod squash;
mod standby;
mod terminal;
mod three_stores;
mod unmigrated;
mod verify;
mod waits;
mod workspace;
mod writers;
