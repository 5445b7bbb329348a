//! One module per command: its clap arguments (the `--help` text) and its `run`.

pub mod completions;
pub mod migrate;
pub mod status;
pub mod verify;
