//! `.env`, read as data: the process environment is never touched.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::ConfigError;

/// Reads `.env` without touching the process environment. A missing file is no error; a
/// file that cannot be parsed is, and its message says which line without quoting it
/// (the line may hold a password).
pub(super) fn read_dotenv(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    if !path.is_file() {
        return Ok(BTreeMap::new());
    }
    let unreadable = |reason: String| ConfigError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))?;
    let mut values = BTreeMap::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        let (key, value) = item.map_err(|e| unreadable(dotenv_error(&text, &e)))?;
        values.insert(key, value);
    }
    Ok(values)
}

fn dotenv_error(text: &str, error: &dotenvy::Error) -> String {
    match error {
        dotenvy::Error::LineParse(line, at) => {
            let line_no = text
                .find(line.as_str())
                .filter(|_| !line.is_empty())
                .map(|start| text[..start].matches('\n').count() + 1);
            let place = match line_no {
                Some(n) => format!("line {n}"),
                None => "a line".to_string(),
            };
            format!(
                "{place} is not KEY=VALUE (error at character {}); quote values with spaces or `#`, and close every quote",
                at + 1
            )
        }
        other => other.to_string(),
    }
}
