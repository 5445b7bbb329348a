//! Reads diesel `table!` invocations out of the text of a `schema.rs`. Not a Rust parser:
//! the grammar of `table!` over the tokens of `lex`, which is all a schema file declares
//! columns with; `joinable!` and `allow_tables_to_appear_in_same_query!` say nothing about
//! columns and are passed over.

use super::lex::{lex, matching, shown, Tok, Token};
use super::{CodeColumn, CodeTable};

/// Every `table!` (or `diesel::table!`) block of a `schema.rs`, in the order written.
pub fn parse(schema_rs: &str) -> Result<Vec<CodeTable>, String> {
    let toks = lex(schema_rs)?;
    let mut tables = Vec::new();
    let mut i = 0;
    while i + 2 < toks.len() {
        let is_table_macro = toks[i].tok == Tok::Ident("table".into())
            && toks[i + 1].tok == Tok::Punct('!')
            && matches!(toks[i + 2].tok, Tok::Punct('{' | '(' | '['));
        if !is_table_macro {
            i += 1;
            continue;
        }
        let close = matching(&toks, i + 2)?;
        let mut p = Parser {
            toks: &toks[i + 3..close],
            pos: 0,
            end_line: toks[close].line,
        };
        p.tables(&mut tables)?;
        i = close + 1;
    }
    Ok(tables)
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    /// The line of the bracket that closes the block, for errors at its end.
    end_line: usize,
}

/// A type as written: its last path segment and its generic arguments.
struct TypeExpr {
    name: String,
    args: Vec<TypeExpr>,
}

impl TypeExpr {
    fn render(&self) -> String {
        if self.args.is_empty() {
            return self.name.clone();
        }
        let args: Vec<String> = self.args.iter().map(TypeExpr::render).collect();
        format!("{}<{}>", self.name, args.join(", "))
    }
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.toks.get(self.pos).map_or(self.end_line, |t| t.line)
    }

    fn found(&self) -> String {
        self.peek()
            .map_or("the end of the block".into(), |t| format!("`{}`", shown(t)))
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        let hit = self.peek() == Some(tok);
        self.pos += usize::from(hit);
        hit
    }

    fn expect(&mut self, tok: Tok, what: &str) -> Result<(), String> {
        if self.eat(&tok) {
            return Ok(());
        }
        Err(format!(
            "line {}: expected `{}` {what}, found {}",
            self.line(),
            shown(&tok),
            self.found()
        ))
    }

    fn ident(&mut self, what: &str) -> Result<String, String> {
        match self.peek() {
            Some(Tok::Ident(name)) => {
                let name = name.clone();
                self.pos += 1;
                Ok(name)
            }
            _ => Err(format!(
                "line {}: expected {what}, found {}",
                self.line(),
                self.found()
            )),
        }
    }

    /// Attributes before a table or a column: the `#[sql_name = "…"]` among them, if any.
    fn attributes(&mut self) -> Result<Option<String>, String> {
        let mut sql_name = None;
        while self.eat(&Tok::Punct('#')) {
            self.eat(&Tok::Punct('!'));
            if self.peek() != Some(&Tok::Punct('[')) {
                return Err(format!(
                    "line {}: expected `[` after `#`, found {}",
                    self.line(),
                    self.found()
                ));
            }
            let close = self.pos + matching(&self.toks[self.pos..], 0)?;
            if let [Token {
                tok: Tok::Ident(key),
                ..
            }, Token {
                tok: Tok::Punct('='),
                ..
            }, Token {
                tok: Tok::Str(value),
                ..
            }] = &self.toks[self.pos + 1..close]
            {
                if key == "sql_name" {
                    sql_name = Some(value.clone());
                }
            }
            self.pos = close + 1;
        }
        Ok(sql_name)
    }

    fn tables(&mut self, out: &mut Vec<CodeTable>) -> Result<(), String> {
        let mut sql_name = None;
        loop {
            sql_name = self.attributes()?.or(sql_name);
            let Some(tok) = self.peek() else {
                return Ok(());
            };
            if *tok == Tok::Ident("use".into()) {
                while !self.eat(&Tok::Punct(';')) {
                    if self.peek().is_none() {
                        return Err(format!("line {}: a `use` with no `;`", self.line()));
                    }
                    self.pos += 1;
                }
                continue;
            }
            // `schema.table`: the live model is of one schema, so the table's own name.
            let mut name = self.ident("a table name")?;
            while self.eat(&Tok::Punct('.')) {
                name = self.ident("a table name after `.`")?;
            }
            let mut primary_key = Vec::new();
            if self.eat(&Tok::Punct('(')) {
                while !self.eat(&Tok::Punct(')')) {
                    primary_key.push(self.ident(&format!("a primary key column of `{name}`"))?);
                    if !self.eat(&Tok::Punct(',')) {
                        self.expect(
                            Tok::Punct(')'),
                            &format!("after the primary key of `{name}`"),
                        )?;
                        break;
                    }
                }
            } else {
                // diesel's default when the table names none.
                primary_key.push("id".into());
            }
            self.expect(Tok::Punct('{'), &format!("before the columns of `{name}`"))?;
            let columns = self.columns(&name)?;
            // The key names Rust columns; a renamed one is known by its SQL name.
            let primary_key = primary_key
                .into_iter()
                .map(|rust| {
                    columns
                        .iter()
                        .find(|c| c.0 == rust)
                        .map_or(rust, |c| c.1.name.clone())
                })
                .collect();
            out.push(CodeTable {
                name: sql_name.take().unwrap_or(name),
                primary_key,
                columns: columns.into_iter().map(|c| c.1).collect(),
            });
        }
    }

    /// The columns up to the closing `}`, each with its Rust name.
    fn columns(&mut self, table: &str) -> Result<Vec<(String, CodeColumn)>, String> {
        let mut out = Vec::new();
        loop {
            let sql_name = self.attributes()?;
            if self.eat(&Tok::Punct('}')) {
                return Ok(out);
            }
            let rust = self.ident(&format!("a column of `{table}`"))?;
            self.expect(Tok::Arrow, &format!("after column `{table}.{rust}`"))?;
            let ty = self.ty(&format!("the type of `{table}.{rust}`"))?;
            let (nullable, inner) = if ty.name == "Nullable" {
                match <[TypeExpr; 1]>::try_from(ty.args) {
                    Ok([inner]) => (true, inner),
                    Err(_) => {
                        return Err(format!(
                            "line {}: `{table}.{rust}`: `Nullable` takes one type",
                            self.line()
                        ))
                    }
                }
            } else {
                (false, ty)
            };
            let column = CodeColumn {
                name: sql_name.unwrap_or_else(|| rust.clone()),
                sql_type: inner.render(),
                nullable,
            };
            out.push((rust.clone(), column));
            if !self.eat(&Tok::Punct(',')) {
                self.expect(
                    Tok::Punct('}'),
                    &format!("or `,` after column `{table}.{rust}`"),
                )?;
                return Ok(out);
            }
        }
    }

    fn ty(&mut self, what: &str) -> Result<TypeExpr, String> {
        self.eat(&Tok::PathSep);
        let mut name = self.ident(what)?;
        while self.eat(&Tok::PathSep) {
            name = self.ident(what)?;
        }
        let mut args = Vec::new();
        if self.eat(&Tok::Punct('<')) {
            while !self.eat(&Tok::Punct('>')) {
                args.push(self.ty(what)?);
                if !self.eat(&Tok::Punct(',')) {
                    self.expect(Tok::Punct('>'), &format!("to close {what}"))?;
                    break;
                }
            }
        }
        Ok(TypeExpr { name, args })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, sql_type: &str, nullable: bool) -> CodeColumn {
        CodeColumn {
            name: name.into(),
            sql_type: sql_type.into(),
            nullable,
        }
    }

    /// What `diesel print-schema` writes, joinable! and all.
    const PRINTED: &str = r#"// @generated automatically by Diesel CLI.

diesel::table! {
    sessions (id) {
        id -> Text,
        user_id -> Text,
        expires_at -> Timestamp,
        ip_address -> Nullable<Text>,
    }
}

diesel::table! {
    user_credits (id) {
        id -> Text,
        team_id -> Nullable<Text>,
        credits -> Int8,
        email_verified -> Bool,
    }
}

diesel::joinable!(sessions -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(sessions, user_credits,);
"#;

    #[test]
    fn reads_what_diesel_prints() {
        let tables = parse(PRINTED).expect("parse");
        assert_eq!(tables.len(), 2);
        assert_eq!(tables[0].name, "sessions");
        assert_eq!(tables[0].primary_key, ["id"]);
        assert_eq!(
            tables[0].columns,
            [
                col("id", "Text", false),
                col("user_id", "Text", false),
                col("expires_at", "Timestamp", false),
                col("ip_address", "Text", true),
            ]
        );
        assert_eq!(tables[1].name, "user_credits");
        assert_eq!(tables[1].columns[2], col("credits", "Int8", false));
        assert_eq!(tables[1].columns[3], col("email_verified", "Bool", false));
    }

    #[test]
    fn reads_hand_written_and_oddly_formatted_blocks() {
        let src = r##"
// table! { not_a_table (id) { id -> Text, } }
use diesel::table;
/* a block /* nested */ comment with table! { x { y -> Z, } } */
table! (
    use diesel::sql_types::*;
    use crate::schema::sql_types::Mood;

    /// Users, renamed in SQL.
    #[sql_name = "people"]
    public . users (r#type ,code) {
        /// The kind of user; `type` is a keyword.
        r#type -> Varchar,
        #[sql_name = "the code"]
        #[max_length = 255]
        code->diesel::sql_types::Nullable < diesel::sql_types::Int4 >,
        mood -> crate::schema::sql_types::Mood,
        tags -> Nullable<Array<Nullable<Text>>> ,
        note -> Nullable<Text>
    }
    plain {
        id -> BigInt ,
    }
);
diesel::table!{#[doc = "x"] t2 (a) { a -> Bool }}
"##;
        let tables = parse(src).expect("parse");
        let names: Vec<_> = tables.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["people", "plain", "t2"]);
        let people = &tables[0];
        assert_eq!(people.primary_key, ["type", "the code"]);
        assert_eq!(
            people.columns,
            [
                col("type", "Varchar", false),
                col("the code", "Int4", true),
                col("mood", "Mood", false),
                col("tags", "Array<Nullable<Text>>", true),
                col("note", "Text", true),
            ]
        );
        assert_eq!(tables[1].primary_key, ["id"]);
        assert_eq!(tables[1].columns, [col("id", "BigInt", false)]);
        assert_eq!(tables[2].columns, [col("a", "Bool", false)]);
    }

    #[test]
    fn strings_may_hold_brackets_and_escapes() {
        let src =
            r###"table! { #[sql_name = "odd}\"name"] t { #[sql_name = r#"c)"#] c -> Text, } }"###;
        let tables = parse(src).expect("parse");
        assert_eq!(tables[0].name, "odd}\"name");
        assert_eq!(tables[0].columns, [col("c)", "Text", false)]);
        assert_eq!(parse("// nothing here\n").expect("empty"), []);
    }

    #[test]
    fn malformed_blocks_are_refused_with_their_line() {
        for (src, says) in [
            (
                "table! {\n t (id) {\n id Text,\n }\n}",
                "line 3: expected `->` after column `t.id`",
            ),
            (
                "table! {\n t (id) {\n id -> Text\n x -> Text }\n}",
                "line 4: expected `}` or `,`",
            ),
            (
                "table! {\n t (id) {\n id -> ,\n }\n}",
                "line 3: expected the type of `t.id`",
            ),
            (
                "table! {\n t (id) {\n id -> Nullable<Text,\n }\n}",
                "line 4: expected the type of `t.id`, found `}`",
            ),
            (
                "table! {\n t (id) {\n id -> Text,\n }",
                "line 1: a bracket opened here is never closed",
            ),
            (
                "table! {\n t (id) {\n id -> Text,\n ]\n}",
                "line 4: `]` does not close the `{` of line 2",
            ),
            (
                "table! {\n t (id) \n id -> Text,\n}",
                "line 3: expected `{` before the columns of `t`",
            ),
            (
                "table! { t { a -> Nullable<Text, Int4>, } }",
                "`Nullable` takes one type",
            ),
            (
                "table! { #[sql_name = \"t] t { a -> Text } }",
                "line 1: unterminated string",
            ),
            (
                "/* table! { t { a -> Text } }",
                "line 1: unterminated comment",
            ),
        ] {
            match parse(src) {
                Ok(tables) => panic!("{src:?} parsed as {tables:?}"),
                Err(e) => assert!(e.contains(says), "{src:?}: {e:?} does not say {says:?}"),
            }
        }
    }
}
