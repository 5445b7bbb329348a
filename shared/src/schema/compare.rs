//! The comparison of a live model with what the migrations produce, each difference with
//! what to do about it.

use std::collections::BTreeMap;

use super::{
    ColumnModel, Difference, DifferenceKind, ForeignKeyModel, IndexModel, Named, SchemaModel,
    TableModel,
};

/// Compares a live database (`found`) with what the migrations produce (`expected`),
/// and says for each difference what to do. Sorted by table, then kind.
pub fn compare(expected: &SchemaModel, found: &SchemaModel) -> Vec<Difference> {
    let mut out = Vec::new();
    for (name, exp) in &expected.tables {
        let Some(live) = found.tables.get(name) else {
            out.push(Difference {
                kind: DifferenceKind::MissingTable,
                table: name.clone(),
                object: name.clone(),
                expected: Some(name.clone()),
                found: None,
                advice: "run `orchestrator migrate`, or find the migration that should create it"
                    .into(),
                duplicates: Vec::new(),
            });
            continue;
        };
        compare_table(name, exp, live, &mut out);
    }
    for name in found.tables.keys() {
        if !expected.tables.contains_key(name) {
            out.push(Difference {
                kind: DifferenceKind::UnexpectedTable,
                table: name.clone(),
                object: name.clone(),
                expected: None,
                found: Some(name.clone()),
                advice: "write a migration that creates it, or drop it".into(),
                duplicates: Vec::new(),
            });
        }
    }
    out
}

fn fk_text(fk: &ForeignKeyModel) -> String {
    format!(
        "({}) REFERENCES {}({}) ON DELETE {}",
        fk.column, fk.ref_table, fk.ref_column, fk.on_delete
    )
}

fn column_text(c: &ColumnModel) -> String {
    let mut s = c.data_type.clone();
    if !c.nullable {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    s
}

/// An index as SQL spells it: `UNIQUE (a COLLATE "C" DESC, b) WHERE …`.
pub(super) fn index_text(ix: &IndexModel) -> String {
    let columns: Vec<String> = ix
        .columns
        .iter()
        .map(|c| {
            let mut s = c.expr.clone();
            if let Some(coll) = &c.collation {
                s.push_str(&format!(" COLLATE \"{coll}\""));
            }
            if c.descending {
                s.push_str(" DESC");
            }
            s
        })
        .collect();
    let mut s = format!(
        "{}({})",
        if ix.unique { "UNIQUE " } else { "" },
        columns.join(", ")
    );
    if let Some(p) = &ix.predicate {
        s.push_str(&format!(" WHERE {p}"));
    }
    s
}

/// The names in `of` beyond the first `keep`, preferring names `other` does not have:
/// the extra copies of a definition, or the missing ones.
fn beyond<'a>(of: &'a [String], other: &[String], keep: usize) -> Vec<&'a String> {
    let mut ordered: Vec<&String> = of.iter().filter(|n| other.contains(n)).collect();
    ordered.extend(of.iter().filter(|n| !other.contains(n)));
    ordered.into_iter().skip(keep).collect()
}

/// A multiset's differences: per definition, the names missing (fewer copies live than
/// expected) and the names in excess (more copies live), with the names kept beside them.
struct Excess<'a, K> {
    key: &'a K,
    names: Vec<&'a String>,
    /// Other names carrying the same definition: the excess duplicates them.
    duplicates: Vec<&'a String>,
}

fn excess<'a, K: Ord>(of: &'a Named<K>, than: &'a Named<K>) -> Vec<Excess<'a, K>> {
    let none = Vec::new();
    of.iter()
        .filter_map(|(key, names)| {
            let other = than.get(key).unwrap_or(&none);
            let extra = beyond(names, other, other.len());
            if extra.is_empty() {
                return None;
            }
            let duplicates = names.iter().filter(|n| !extra.contains(n)).collect();
            Some(Excess {
                key,
                names: extra,
                duplicates,
            })
        })
        .collect()
}

fn quoted(names: &[&String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Advice for objects in the database that the migrations lack.
fn extra_advice(duplicates: &[&String]) -> String {
    if duplicates.is_empty() {
        "write a migration that adds it, or drop it".into()
    } else {
        format!("it duplicates {}: drop it", quoted(duplicates))
    }
}

/// Where one table's differences go.
struct Sink<'a> {
    table: &'a str,
    out: &'a mut Vec<Difference>,
}

impl Sink<'_> {
    fn add(
        &mut self,
        kind: DifferenceKind,
        object: String,
        expected: Option<String>,
        found: Option<String>,
        advice: &str,
    ) {
        self.out.push(Difference {
            kind,
            table: self.table.to_string(),
            object,
            expected,
            found,
            advice: advice.to_string(),
            duplicates: Vec::new(),
        });
    }

    /// An object the migrations lack; a copy of `duplicates` when there are any.
    fn extra(
        &mut self,
        kind: DifferenceKind,
        object: String,
        found: String,
        duplicates: &[&String],
    ) {
        self.add(kind, object, None, Some(found), &extra_advice(duplicates));
        if let Some(last) = self.out.last_mut() {
            last.duplicates = duplicates.iter().map(|n| n.to_string()).collect();
        }
    }
}

fn compare_table(table: &str, exp: &TableModel, live: &TableModel, out: &mut Vec<Difference>) {
    let mut sink = Sink { table, out };
    for (col, e) in &exp.columns {
        match live.columns.get(col) {
            None => sink.add(
                DifferenceKind::MissingColumn,
                col.clone(),
                Some(column_text(e)),
                None,
                "add it by hand or find why its migration did not run (`orchestrator status`)",
            ),
            Some(f) => {
                if e.data_type != f.data_type {
                    sink.add(
                        DifferenceKind::ColumnType,
                        col.clone(),
                        Some(e.data_type.clone()),
                        Some(f.data_type.clone()),
                        "write a migration that changes the type, or alter the column back",
                    );
                }
                if e.nullable != f.nullable {
                    let word = |n: bool| if n { "NULL" } else { "NOT NULL" }.to_string();
                    sink.add(
                        DifferenceKind::ColumnNullability,
                        col.clone(),
                        Some(word(e.nullable)),
                        Some(word(f.nullable)),
                        "write a migration that changes the nullability, or alter the column back",
                    );
                }
                if e.default != f.default {
                    sink.add(
                        DifferenceKind::ColumnDefault,
                        col.clone(),
                        e.default.clone(),
                        f.default.clone(),
                        "write a migration that sets this default, or set the column's default back",
                    );
                }
            }
        }
    }
    for (col, f) in &live.columns {
        if !exp.columns.contains_key(col) {
            sink.add(
                DifferenceKind::UnexpectedColumn,
                col.clone(),
                None,
                Some(column_text(f)),
                "write a migration that adds it, or drop it",
            );
        }
    }
    if exp.primary_key != live.primary_key {
        sink.add(
            DifferenceKind::PrimaryKey,
            "primary key".into(),
            Some(format!("({})", exp.primary_key.join(", "))),
            Some(format!("({})", live.primary_key.join(", "))),
            "write a migration that changes the primary key, or restore it",
        );
    }

    let unique_text = |cols: &Vec<String>| format!("UNIQUE ({})", cols.join(", "));
    for m in excess(&exp.uniques, &live.uniques) {
        let text = unique_text(m.key);
        sink.add(
            DifferenceKind::MissingUnique,
            format!("{} {text}", quoted(&m.names)),
            Some(text),
            None,
            "add the constraint back (remove duplicate rows first)",
        );
    }
    for m in excess(&live.uniques, &exp.uniques) {
        let text = unique_text(m.key);
        sink.extra(
            DifferenceKind::UnexpectedUnique,
            format!("{} {text}", quoted(&m.names)),
            text,
            &m.duplicates,
        );
    }
    for m in excess(&exp.indexes, &live.indexes) {
        let text = index_text(m.key);
        sink.add(
            DifferenceKind::MissingIndex,
            format!("{} {text}", quoted(&m.names)),
            Some(text),
            None,
            "create the index again, as the migrations define it",
        );
    }
    for m in excess(&live.indexes, &exp.indexes) {
        let text = index_text(m.key);
        sink.extra(
            DifferenceKind::UnexpectedIndex,
            format!("{} {text}", quoted(&m.names)),
            text,
            &m.duplicates,
        );
    }
    for m in excess(&exp.checks, &live.checks) {
        sink.add(
            DifferenceKind::MissingCheck,
            format!("CHECK ({})", m.key),
            Some(m.key.clone()),
            None,
            "add the check constraint back",
        );
    }
    for m in excess(&live.checks, &exp.checks) {
        sink.extra(
            DifferenceKind::UnexpectedCheck,
            format!("{} CHECK ({})", quoted(&m.names), m.key),
            m.key.clone(),
            &m.duplicates,
        );
    }
    compare_foreign_keys(table, exp, live, &mut sink);
}

/// Foreign keys: one whose action alone changed is named as such; the others are missing
/// or unexpected (a second copy of one included).
fn compare_foreign_keys(table: &str, exp: &TableModel, live: &TableModel, sink: &mut Sink<'_>) {
    let label =
        |f: &ForeignKeyModel| format!("{table}.{} → {}.{}", f.column, f.ref_table, f.ref_column);
    let missing = excess(&exp.foreign_keys, &live.foreign_keys);
    let mut extra: Vec<Excess<'_, ForeignKeyModel>> = excess(&live.foreign_keys, &exp.foreign_keys);
    // Pairs of a missing and an extra key to the same target: the action changed.
    let mut changed: BTreeMap<usize, usize> = BTreeMap::new();
    for (i, m) in missing.iter().enumerate() {
        if let Some(j) = extra.iter().enumerate().position(|(j, x)| {
            !changed.values().any(|v| *v == j) && x.key.target() == m.key.target()
        }) {
            changed.insert(i, j);
        }
    }
    for (i, m) in missing.iter().enumerate() {
        match changed.get(&i) {
            Some(&j) => sink.add(
                DifferenceKind::ForeignKeyAction,
                label(m.key),
                Some(m.key.on_delete.to_string()),
                Some(extra[j].key.on_delete.to_string()),
                "recreate the foreign key with the action the migrations give it, or write a migration that changes it",
            ),
            None => sink.add(
                DifferenceKind::MissingForeignKey,
                label(m.key),
                Some(fk_text(m.key)),
                None,
                "add the foreign key back (clean up orphan rows first)",
            ),
        }
    }
    let paired: Vec<usize> = changed.values().copied().collect();
    let mut j = 0;
    extra.retain(|_| {
        let keep = !paired.contains(&j);
        j += 1;
        keep
    });
    for x in extra {
        sink.extra(
            DifferenceKind::UnexpectedForeignKey,
            format!("{} {}", quoted(&x.names), label(x.key)),
            fk_text(x.key),
            &x.duplicates,
        );
    }
}
