//! The argument groups several commands share: `--store S` and the safety flags of the
//! destructive commands.

use clap::Args;

/// `--store S`: limit a command to one store. Its possible values are the registry's
/// (see `crate::cli::command`).
#[derive(Debug, Clone, Args)]
pub struct StoreArg {
    /// Only this store (default: every store, in dependency order)
    #[arg(long, value_name = "S")]
    pub store: Option<String>,
}

/// The safety flags of destructive commands.
#[derive(Debug, Clone, Args)]
pub struct GuardArgs {
    /// Replace stores that hold rows (backed up first, unless reset --no-backup)
    #[arg(long)]
    pub force: bool,

    /// Answer yes to the question a terminal would be asked (the same as --force; for
    /// scripts, which are never asked)
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Database name of a protected store, once per store, to confirm replacing it
    // A database name may start with `-`; it is still the value, never a flag.
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub confirm: Vec<String>,

    /// Also drop or alter objects in other schemas that depend on the store's schema
    /// (views, columns of its types, foreign keys, inheriting tables, publications);
    /// without it they are named and the command refuses. They are in the backup.
    #[arg(long)]
    pub drop_dependents: bool,
}

impl GuardArgs {
    /// The engine's view of these flags.
    pub fn permission(&self) -> crate::guard::Permission {
        crate::guard::Permission {
            force: self.force || self.yes,
            confirm: self.confirm.clone(),
            drop_dependents: self.drop_dependents,
        }
    }
}
