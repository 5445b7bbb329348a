//! What both backends' histories must agree on: the logical schema. Types as families,
//! nullability, keys, uniques, foreign keys with their actions, and the indexes by their
//! columns, order, uniqueness and predicate. Collations, defaults and check expressions
//! are each backend's own (PostgreSQL keeps `COLLATE "C"` copies of two indexes for
//! byte-order streaming; the backends spell `now()` and `CHECK … IN` differently) and are
//! compared within a backend instead.

use super::{Named, SchemaModel};

/// `model` with only what the logical schema keeps: defaults and checks gone, indexes
/// without collations and without those a key already gives, and definitions that become
/// equal counted once (the name kept is the first).
pub fn logical_view(model: &SchemaModel) -> SchemaModel {
    let mut view = model.clone();
    for table in view.tables.values_mut() {
        for column in table.columns.values_mut() {
            column.default = None;
        }
        table.checks.clear();
        let indexes = std::mem::take(&mut table.indexes);
        for (mut index, names) in indexes {
            for column in &mut index.columns {
                column.collation = None;
            }
            table.indexes.entry(index).or_default().extend(names);
        }
        // An index on the primary key's or a unique constraint's columns is implied by
        // the key's own index (PostgreSQL adds `COLLATE "C"` copies of two of them).
        let keys: Vec<Vec<String>> = std::iter::once(table.primary_key.clone())
            .chain(table.uniques.keys().cloned())
            .collect();
        table.indexes.retain(|index, _| {
            let columns: Vec<String> = index.columns.iter().map(|c| c.expr.clone()).collect();
            index.predicate.is_some() || !keys.contains(&columns)
        });
        once(&mut table.indexes);
        once(&mut table.uniques);
        once(&mut table.foreign_keys);
    }
    view
}

fn once<K>(named: &mut Named<K>) {
    for names in named.values_mut() {
        names.truncate(1);
    }
}
