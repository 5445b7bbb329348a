//! The PostgreSQL inventory: one catalog query over `pg_class`, `pg_proc`, `pg_type`,
//! `pg_extension`, `pg_trigger` and, for what lies outside the schema, the closure of
//! `pg_depend` from the schema and everything in it (what `DROP SCHEMA … CASCADE`
//! follows). A view's rewrite rule is followed to its view, so a view over a view outside
//! the schema is found too. Extension members and operator-family entries go with their
//! extension or family and are not named one by one.

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{QueryableByName, RunQueryDsl};

use super::{Count, Dependent, Inventory, Object};
use crate::db::{quote_ident, Conn};

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    section: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    detail: String,
    #[diesel(sql_type = Bool)]
    hidden: bool,
    #[diesel(sql_type = Nullable<BigInt>)]
    value: Option<i64>,
}

#[derive(QueryableByName)]
struct SchemaName {
    #[diesel(sql_type = Text)]
    name: String,
}

/// `detail` of a materialized view that was never refreshed: it holds nothing to count.
const UNPOPULATED: &str = "unpopulated";

/// `detail` of a table or materialized view whose storage is empty (no page, so no row,
/// visible or not; a partitioned table has none of its own): counting it would only
/// cost a scan and, on the reset of new stores, a query and its planning.
const EMPTY: &str = "empty";

const INVENTORY: &str = r#"
WITH RECURSIVE s AS (SELECT oid, nspname FROM pg_catalog.pg_namespace WHERE nspname = current_schema()),
me AS (SELECT rolsuper OR rolbypassrls AS bypass FROM pg_catalog.pg_roles WHERE rolname = current_user),
members AS (SELECT objid, classid FROM pg_catalog.pg_depend WHERE deptype = 'e'),
inside(classid, objid) AS (
  SELECT 'pg_catalog.pg_namespace'::regclass::oid, s.oid FROM s
  UNION ALL SELECT 'pg_catalog.pg_class'::regclass::oid, c.oid FROM pg_catalog.pg_class c, s WHERE c.relnamespace = s.oid
  UNION ALL SELECT 'pg_catalog.pg_type'::regclass::oid, t.oid FROM pg_catalog.pg_type t, s WHERE t.typnamespace = s.oid
  UNION ALL SELECT 'pg_catalog.pg_proc'::regclass::oid, p.oid FROM pg_catalog.pg_proc p, s WHERE p.pronamespace = s.oid
  UNION ALL SELECT 'pg_catalog.pg_extension'::regclass::oid, e.oid FROM pg_catalog.pg_extension e, s WHERE e.extnamespace = s.oid
),
reach(classid, objid, objsubid, refclassid, refobjid, refobjsubid) AS (
  SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid
  FROM pg_catalog.pg_depend d JOIN inside i ON d.refclassid = i.classid AND d.refobjid = i.objid
  WHERE d.deptype IN ('n', 'a')
  UNION
  SELECT d.classid, d.objid, d.objsubid, d.refclassid, d.refobjid, d.refobjsubid
  FROM reach r
  LEFT JOIN pg_catalog.pg_rewrite rw ON r.classid = 'pg_catalog.pg_rewrite'::regclass AND rw.oid = r.objid
  JOIN pg_catalog.pg_depend d ON d.deptype IN ('n', 'a')
    AND d.refclassid = CASE WHEN rw.oid IS NULL THEN r.classid ELSE 'pg_catalog.pg_class'::regclass::oid END
    AND d.refobjid = COALESCE(rw.ev_class, r.objid)
  WHERE r.objsubid = 0
    -- What depends on an object inside the schema is already in the first step.
    AND NOT EXISTS (SELECT 1 FROM inside i
                     WHERE i.classid = CASE WHEN rw.oid IS NULL THEN r.classid ELSE 'pg_catalog.pg_class'::regclass::oid END
                       AND i.objid = COALESCE(rw.ev_class, r.objid))
),
located AS (
  SELECT r.*, CASE r.classid
      WHEN 'pg_catalog.pg_class'::regclass THEN r.objid
      WHEN 'pg_catalog.pg_rewrite'::regclass THEN (SELECT ev_class FROM pg_catalog.pg_rewrite WHERE oid = r.objid)
      WHEN 'pg_catalog.pg_trigger'::regclass THEN (SELECT tgrelid FROM pg_catalog.pg_trigger WHERE oid = r.objid)
      WHEN 'pg_catalog.pg_policy'::regclass THEN (SELECT polrelid FROM pg_catalog.pg_policy WHERE oid = r.objid)
      WHEN 'pg_catalog.pg_attrdef'::regclass THEN (SELECT adrelid FROM pg_catalog.pg_attrdef WHERE oid = r.objid)
    END AS rel
  FROM reach r
  WHERE r.classid NOT IN ('pg_catalog.pg_default_acl'::regclass, 'pg_catalog.pg_amop'::regclass,
                          'pg_catalog.pg_amproc'::regclass)
    AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = r.classid AND m.objid = r.objid)
    AND NOT EXISTS (SELECT 1 FROM inside i WHERE i.classid = r.classid AND i.objid = r.objid)
),
outside AS (
  SELECT CASE WHEN l.classid = 'pg_catalog.pg_rewrite'::regclass
              THEN pg_catalog.pg_describe_object('pg_catalog.pg_class'::regclass, l.rel, 0)
              ELSE pg_catalog.pg_describe_object(l.classid, l.objid, l.objsubid) END AS what,
         string_agg(DISTINCT pg_catalog.pg_describe_object(l.refclassid, l.refobjid, l.refobjsubid), ', ')
           FILTER (WHERE l.refclassid <> 'pg_catalog.pg_class'::regclass OR l.refobjid IS DISTINCT FROM l.rel) AS on_what,
         bool_or(l.objsubid = 0 AND l.classid IN ('pg_catalog.pg_class'::regclass, 'pg_catalog.pg_rewrite'::regclass,
                 'pg_catalog.pg_proc'::regclass, 'pg_catalog.pg_type'::regclass)) AS dropped
  FROM located l, s
  WHERE COALESCE((SELECT relnamespace FROM pg_catalog.pg_class WHERE oid = l.rel),
                 CASE l.classid
                   WHEN 'pg_catalog.pg_constraint'::regclass THEN (SELECT connamespace FROM pg_catalog.pg_constraint WHERE oid = l.objid)
                   WHEN 'pg_catalog.pg_proc'::regclass THEN (SELECT pronamespace FROM pg_catalog.pg_proc WHERE oid = l.objid)
                   WHEN 'pg_catalog.pg_type'::regclass THEN (SELECT typnamespace FROM pg_catalog.pg_type WHERE oid = l.objid)
                 END) IS DISTINCT FROM s.oid
    -- A view's columns go with the view, which is named itself.
    AND NOT (l.objsubid > 0 AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = l.rel) IN ('v', 'm'))
  GROUP BY 1
)
SELECT 'outside' AS section, CASE WHEN dropped THEN 'dropped' ELSE 'altered' END AS kind, what AS name, on_what AS detail, false AS hidden, NULL::bigint AS value
FROM outside
UNION ALL
SELECT 'object',
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'partitioned table' WHEN 'v' THEN 'view'
    WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' ELSE 'foreign table' END,
  c.relname::text,
  CASE WHEN c.relkind = 'm' AND NOT c.relispopulated THEN 'unpopulated'
       WHEN c.relkind IN ('r', 'p', 'm') THEN
         CASE WHEN pg_catalog.pg_relation_size(c.oid) = 0 THEN 'empty' ELSE '' END
       ELSE '' END,
  c.relkind IN ('r', 'p') AND c.relrowsecurity
    AND (c.relforcerowsecurity OR NOT pg_catalog.pg_has_role(c.relowner, 'USAGE'))
    AND NOT (SELECT bypass FROM me),
  CASE WHEN c.relkind = 'S' THEN
    CASE WHEN pg_catalog.has_sequence_privilege(c.oid, 'SELECT') THEN pg_catalog.pg_sequence_last_value(c.oid) ELSE -1 END
  END
FROM pg_catalog.pg_class c, s WHERE c.relnamespace = s.oid AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_class'::regclass AND m.objid = c.oid)
UNION ALL
SELECT 'object', 'function', p.oid::regprocedure::text, '', false, NULL
FROM pg_catalog.pg_proc p, s WHERE p.pronamespace = s.oid
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_proc'::regclass AND m.objid = p.oid)
UNION ALL
SELECT 'object', 'type', t.typname::text, '', false, NULL
FROM pg_catalog.pg_type t, s WHERE t.typnamespace = s.oid AND t.typtype IN ('e', 'd', 'r', 'm', 'b', 'c')
  AND (t.typrelid = 0 OR (SELECT relkind FROM pg_catalog.pg_class WHERE oid = t.typrelid) = 'c')
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_type el WHERE el.typarray = t.oid)
  AND NOT EXISTS (SELECT 1 FROM members m WHERE m.classid = 'pg_catalog.pg_type'::regclass AND m.objid = t.oid)
UNION ALL
SELECT 'object', 'extension', e.extname::text, '', false, NULL FROM pg_catalog.pg_extension e, s WHERE e.extnamespace = s.oid
UNION ALL
SELECT 'object', 'trigger', tg.tgname::text, c.relname::text, false, NULL
FROM pg_catalog.pg_trigger tg JOIN pg_catalog.pg_class c ON c.oid = tg.tgrelid, s
WHERE c.relnamespace = s.oid AND NOT tg.tgisinternal
UNION ALL
SELECT 'large objects', '', '', '', false, (SELECT count(*) FROM pg_catalog.pg_largeobject_metadata)
ORDER BY 1, 2, 3
"#;

pub(super) fn read(conn: &mut Conn) -> diesel::QueryResult<Inventory> {
    let Conn::Postgres(pg) = conn else {
        unreachable!("postgres inventory on a SQLite connection")
    };
    let rows: Vec<Row> = diesel::sql_query(INVENTORY).load(pg)?;
    let mut inventory = Inventory::default();
    let schema: SchemaName =
        diesel::sql_query("SELECT COALESCE(current_schema(), '')::text AS name").get_result(pg)?;
    inventory.schema = schema.name;
    for r in rows {
        match r.section.as_str() {
            "large objects" => inventory.large_objects = r.value.unwrap_or(0),
            "outside" => inventory.outside.push(Dependent {
                object: r.name,
                depends_on: r.detail,
                dropped: r.kind == "dropped",
            }),
            _ => {
                // -1: the role may not read the sequence.
                let unreadable = r.hidden || r.value == Some(-1);
                inventory.objects.push(Object {
                    on: (r.kind == "trigger").then(|| r.detail.clone()),
                    rows: None,
                    value: r.value.filter(|v| *v >= 0),
                    unreadable,
                    ours: false,
                    kind: r.kind,
                    name: r.name,
                });
                // Row security hides nothing from a size, but a table the role cannot
                // read whole stays unread, as it is named and refused either way.
                if r.detail == UNPOPULATED || (r.detail == EMPTY && !unreadable) {
                    if let Some(o) = inventory.objects.last_mut() {
                        o.rows = Some(0);
                    }
                }
            }
        }
    }
    count_rows(pg, &mut inventory)?;
    Ok(inventory)
}

/// True row counts of every table and populated materialized view the role can read
/// whole, in one query, with row security off: should a policy apply after all, the
/// count fails instead of counting fewer rows. `ONLY`: a parent's count would include
/// its children's rows, which are counted (or named, outside the schema) themselves.
fn count_rows(pg: &mut diesel::PgConnection, inventory: &mut Inventory) -> diesel::QueryResult<()> {
    use diesel::connection::SimpleConnection;
    let schema = quote_ident(&inventory.schema);
    let selects: Vec<String> = inventory
        .objects
        .iter()
        .filter(|o| matches!(o.kind.as_str(), "table" | "materialized view"))
        .filter(|o| !o.unreadable && o.rows.is_none())
        .map(|o| {
            format!(
                "SELECT {} AS name, count(*) AS n FROM ONLY {schema}.{}",
                crate::db::quote_literal(&o.name),
                quote_ident(&o.name)
            )
        })
        .collect();
    if selects.is_empty() {
        return Ok(());
    }
    pg.batch_execute("SET row_security = off")?;
    let counts: diesel::QueryResult<Vec<Count>> =
        diesel::sql_query(selects.join(" UNION ALL ")).load(pg);
    // In a failed transaction this fails too; the transaction's end resets it.
    let _ = pg.batch_execute("RESET row_security");
    for c in counts? {
        if let Some(o) = inventory
            .objects
            .iter_mut()
            .find(|o| o.name == c.name && o.rows.is_none())
        {
            o.rows = Some(c.n);
        }
    }
    Ok(())
}
