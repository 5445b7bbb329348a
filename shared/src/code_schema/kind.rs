//! The kinds of [`super::CodeProblem`]: a closed set, named in JSON `code_…`.

use serde::Serialize;

/// How a database differs from what the code's `schema.rs` declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum CodeProblemKind {
    /// The code reads a table the database lacks.
    #[serde(rename = "code_missing_table")]
    MissingTable,
    /// The code reads a column the database lacks.
    #[serde(rename = "code_missing_column")]
    MissingColumn,
    /// The column's type family is not the one the code reads.
    #[serde(rename = "code_column_type")]
    ColumnType,
    /// The code and the database disagree on whether a column may be NULL.
    #[serde(rename = "code_column_nullability")]
    ColumnNullability,
    /// The database has a table the code does not declare (strict check only).
    #[serde(rename = "code_undeclared_table")]
    UndeclaredTable,
    /// The database has a column the code does not declare (strict check only).
    #[serde(rename = "code_undeclared_column")]
    UndeclaredColumn,
    /// Another primary key (strict check only).
    #[serde(rename = "code_primary_key")]
    PrimaryKey,
    /// A diesel type whose family is unknown (strict check only).
    #[serde(rename = "code_unknown_type")]
    UnknownType,
}

impl CodeProblemKind {
    /// The name in JSON: `code_missing_column`.
    pub fn as_str(self) -> &'static str {
        use CodeProblemKind::*;
        match self {
            MissingTable => "code_missing_table",
            MissingColumn => "code_missing_column",
            ColumnType => "code_column_type",
            ColumnNullability => "code_column_nullability",
            UndeclaredTable => "code_undeclared_table",
            UndeclaredColumn => "code_undeclared_column",
            PrimaryKey => "code_primary_key",
            UnknownType => "code_unknown_type",
        }
    }
}

impl std::fmt::Display for CodeProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::CodeProblemKind::*;

    #[test]
    fn json_names_are_the_text_names() {
        for kind in [
            MissingTable,
            MissingColumn,
            ColumnType,
            ColumnNullability,
            UndeclaredTable,
            UndeclaredColumn,
            PrimaryKey,
            UnknownType,
        ] {
            let json = serde_json::to_string(&kind).expect("json");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
