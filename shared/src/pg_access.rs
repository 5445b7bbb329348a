//! The access rules a PostgreSQL schema rebuild would lose with the dropped objects: the
//! schema's comment, the default privileges set for it, and the grants on its tables,
//! views, sequences and functions. Read in one query before the drop; the schema-level
//! ones are re-applied right after the schema is recreated (so that default privileges
//! cover what the migrations create), the object grants once the migrations ran, to the
//! recreated object of the same name. What had no counterpart is reported, not guessed.
//! (Column-level grants and revocations of default PUBLIC rights are not carried over.)

use diesel::sql_types::Text;
use diesel::{QueryableByName, RunQueryDsl};
use serde::Serialize;

use crate::admin::pg;
use crate::db::{quote_literal, Conn};

/// What a rebuild must put back.
#[derive(Debug, Clone, Default)]
pub struct AccessRules {
    /// Comment and default privileges of the schema.
    pub on_schema: Vec<String>,
    /// Grants on the schema's objects.
    pub on_objects: Vec<ObjectGrant>,
}

/// One grant on one object of the schema.
#[derive(Debug, Clone)]
pub struct ObjectGrant {
    /// `table users`, `sequence invoice_seq`, `function normalise(text)`.
    pub object: String,
    /// Whether the object exists, as an SQL expression.
    probe: String,
    pub statement: String,
}

/// What a rebuild re-applied of the access rules, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AccessReport {
    /// Statements run on the recreated schema (comment, default privileges).
    pub schema: Vec<String>,
    /// Grants re-applied to a recreated object of the same name.
    pub reapplied: Vec<String>,
    /// Grants whose object the migrations do not recreate: not applied.
    pub without_counterpart: Vec<String>,
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    section: String,
    #[diesel(sql_type = Text)]
    object: String,
    #[diesel(sql_type = Text)]
    probe: String,
    #[diesel(sql_type = Text)]
    statement: String,
}

const RULES: &str = r#"
WITH s AS (SELECT oid, nspname FROM pg_catalog.pg_namespace WHERE nspname = current_schema()),
grantee AS (SELECT 0::oid AS oid, 'PUBLIC' AS name
            UNION ALL SELECT oid, quote_ident(rolname) FROM pg_catalog.pg_roles)
SELECT 'schema' AS section, '' AS object, '' AS probe,
       format('COMMENT ON SCHEMA %I IS %L', s.nspname, d.description) AS statement
  FROM s JOIN pg_catalog.pg_description d
    ON d.objoid = s.oid AND d.classoid = 'pg_catalog.pg_namespace'::regclass
UNION ALL
SELECT 'schema', '', '',
       format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA %I GRANT %s ON %s TO %s%s',
              r.rolname, s.nspname, a.privilege_type,
              CASE d.defaclobjtype WHEN 'r' THEN 'TABLES' WHEN 'S' THEN 'SEQUENCES'
                                   WHEN 'f' THEN 'FUNCTIONS' ELSE 'TYPES' END,
              g.name, CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
  FROM s JOIN pg_catalog.pg_default_acl d ON d.defaclnamespace = s.oid
  JOIN pg_catalog.pg_roles r ON r.oid = d.defaclrole
  CROSS JOIN LATERAL aclexplode(d.defaclacl) a JOIN grantee g ON g.oid = a.grantee
 WHERE d.defaclobjtype IN ('r', 'S', 'f', 'T')
UNION ALL
SELECT 'object',
       CASE WHEN c.relkind = 'S' THEN 'sequence ' ELSE 'table ' END || c.relname,
       format('to_regclass(%L) IS NOT NULL', format('%I.%I', s.nspname, c.relname)),
       format('GRANT %s ON %s %I.%I TO %s%s', a.privilege_type,
              CASE WHEN c.relkind = 'S' THEN 'SEQUENCE' ELSE 'TABLE' END, s.nspname, c.relname,
              g.name, CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
  FROM s JOIN pg_catalog.pg_class c ON c.relnamespace = s.oid
  CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN grantee g ON g.oid = a.grantee
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND a.grantee <> c.relowner
UNION ALL
SELECT 'object', 'function ' || p.oid::regprocedure::text,
       format('to_regprocedure(%L) IS NOT NULL', p.oid::regprocedure::text),
       format('GRANT %s ON FUNCTION %s TO %s%s', a.privilege_type, p.oid::regprocedure::text,
              g.name, CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
  FROM s JOIN pg_catalog.pg_proc p ON p.pronamespace = s.oid
  CROSS JOIN LATERAL aclexplode(p.proacl) a JOIN grantee g ON g.oid = a.grantee
 WHERE a.grantee <> p.proowner
 ORDER BY 1, 2, 4
"#;

/// Reads the access rules of the connection's current schema.
pub fn read(conn: &mut Conn) -> diesel::QueryResult<AccessRules> {
    let rows: Vec<Row> = diesel::sql_query(RULES).load(pg(conn)?)?;
    let mut rules = AccessRules::default();
    for r in rows {
        if r.section == "schema" {
            rules.on_schema.push(r.statement);
        } else {
            rules.on_objects.push(ObjectGrant {
                object: r.object,
                probe: r.probe,
                statement: r.statement,
            });
        }
    }
    Ok(rules)
}

/// The schema-level statements, to run right after the schema is recreated.
pub fn schema_sql(rules: &AccessRules) -> String {
    rules.on_schema.iter().map(|s| format!("{s};\n")).collect()
}

#[derive(QueryableByName)]
struct Present {
    #[diesel(sql_type = Text)]
    object: String,
}

/// Re-applies the object grants whose object exists again; reports both kinds.
pub fn reapply(conn: &mut Conn, rules: &AccessRules) -> diesel::QueryResult<AccessReport> {
    let mut report = AccessReport {
        schema: rules.on_schema.clone(),
        ..AccessReport::default()
    };
    if rules.on_objects.is_empty() {
        return Ok(report);
    }
    let probes: Vec<String> = rules
        .on_objects
        .iter()
        .map(|g| {
            format!(
                "SELECT {} AS object WHERE {}",
                quote_literal(&g.object),
                g.probe
            )
        })
        .collect();
    let present: Vec<Present> = diesel::sql_query(probes.join(" UNION ")).load(pg(conn)?)?;
    let present: std::collections::HashSet<String> =
        present.into_iter().map(|p| p.object).collect();
    let mut sql = String::new();
    for grant in &rules.on_objects {
        let line = format!("{}: {}", grant.object, grant.statement);
        if present.contains(&grant.object) {
            sql.push_str(&grant.statement);
            sql.push_str(";\n");
            report.reapplied.push(line);
        } else {
            report.without_counterpart.push(line);
        }
    }
    if !sql.is_empty() {
        conn.batch_execute(&sql)?;
    }
    Ok(report)
}
