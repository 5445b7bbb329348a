//! One module per command: its clap arguments (the `--help` text) and its `run`.

pub mod adopt;
pub mod args;
pub mod backup;
pub mod backups;
pub mod completions;
pub mod diff;
pub mod generate;
pub mod lint;
pub mod migrate;
pub mod migrate_plan;
pub mod recover;
pub mod repair;
mod repair_output;
pub mod reset;
pub mod restore;
pub mod revert;
mod revert_output;
pub mod schema;
pub mod smoke;
pub mod squash;
pub mod status;
pub mod unmigrated;
pub mod verify;
