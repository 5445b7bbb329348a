//! The kinds of [`super::Difference`]: a closed set, written in JSON and in `diff`'s text
//! as their snake_case names (`missing_table`, `foreign_key_action`, …).

use serde::Serialize;

/// What differs between a database and what its migrations produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DifferenceKind {
    MissingTable,
    UnexpectedTable,
    MissingColumn,
    UnexpectedColumn,
    ColumnType,
    ColumnNullability,
    ColumnDefault,
    PrimaryKey,
    MissingUnique,
    UnexpectedUnique,
    MissingIndex,
    UnexpectedIndex,
    MissingCheck,
    UnexpectedCheck,
    MissingForeignKey,
    UnexpectedForeignKey,
    ForeignKeyAction,
}

impl DifferenceKind {
    /// Every kind, in the order above.
    pub const ALL: [DifferenceKind; 17] = [
        DifferenceKind::MissingTable,
        DifferenceKind::UnexpectedTable,
        DifferenceKind::MissingColumn,
        DifferenceKind::UnexpectedColumn,
        DifferenceKind::ColumnType,
        DifferenceKind::ColumnNullability,
        DifferenceKind::ColumnDefault,
        DifferenceKind::PrimaryKey,
        DifferenceKind::MissingUnique,
        DifferenceKind::UnexpectedUnique,
        DifferenceKind::MissingIndex,
        DifferenceKind::UnexpectedIndex,
        DifferenceKind::MissingCheck,
        DifferenceKind::UnexpectedCheck,
        DifferenceKind::MissingForeignKey,
        DifferenceKind::UnexpectedForeignKey,
        DifferenceKind::ForeignKeyAction,
    ];

    /// The name in JSON and text: `missing_table`.
    pub fn as_str(self) -> &'static str {
        use DifferenceKind::*;
        match self {
            MissingTable => "missing_table",
            UnexpectedTable => "unexpected_table",
            MissingColumn => "missing_column",
            UnexpectedColumn => "unexpected_column",
            ColumnType => "column_type",
            ColumnNullability => "column_nullability",
            ColumnDefault => "column_default",
            PrimaryKey => "primary_key",
            MissingUnique => "missing_unique",
            UnexpectedUnique => "unexpected_unique",
            MissingIndex => "missing_index",
            UnexpectedIndex => "unexpected_index",
            MissingCheck => "missing_check",
            UnexpectedCheck => "unexpected_check",
            MissingForeignKey => "missing_foreign_key",
            UnexpectedForeignKey => "unexpected_foreign_key",
            ForeignKeyAction => "foreign_key_action",
        }
    }

    /// What the difference is about, as a noun for people: `foreign key`, `the type`.
    pub fn noun(self) -> &'static str {
        use DifferenceKind::*;
        match self {
            MissingTable | UnexpectedTable => "table",
            MissingColumn | UnexpectedColumn => "column",
            MissingForeignKey | UnexpectedForeignKey => "foreign key",
            MissingIndex | UnexpectedIndex => "index",
            MissingUnique | UnexpectedUnique => "unique constraint",
            MissingCheck | UnexpectedCheck => "check constraint",
            ColumnType => "the type",
            ColumnNullability => "nullability",
            ColumnDefault => "the default",
            PrimaryKey => "the primary key",
            ForeignKeyAction => "ON DELETE",
        }
    }
}

impl std::fmt::Display for DifferenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::DifferenceKind;

    #[test]
    fn json_and_text_use_the_same_snake_case_names() {
        for kind in DifferenceKind::ALL {
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
