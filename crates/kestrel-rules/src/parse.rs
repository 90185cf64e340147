//! Condition language: a hand-written scanner and recursive-descent parser for Falco conditions
//! (`not` binds tighter than `and`, which binds tighter than `or`).

use std::fmt;

/// Byte range in the condition text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// A value transformer applied to a field (`tolower(ka.user.name)`), Falco's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    ToLower,
    ToUpper,
    /// Base64-decodes the value (values that are not base64 become unavailable).
    B64,
    /// The last path component (`/a/b` → `b`).
    Basename,
    /// The length of a string, or the number of values of a list field.
    Len,
}

impl Transform {
    pub fn from_name(name: &str) -> Option<Transform> {
        Some(match name {
            "tolower" => Transform::ToLower,
            "toupper" => Transform::ToUpper,
            "b64" => Transform::B64,
            "basename" => Transform::Basename,
            "len" => Transform::Len,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Transform::ToLower => "tolower",
            Transform::ToUpper => "toupper",
            Transform::B64 => "b64",
            Transform::Basename => "basename",
            Transform::Len => "len",
        }
    }
}

/// A field reference such as `ka.user.name`, `jevt.value[/stage]` or `tolower(ka.verb)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldRef {
    pub name: String,
    pub arg: Option<String>,
    /// Transformers, innermost first (`toupper(basename(x))` is `[Basename, ToUpper]`).
    pub transforms: Vec<Transform>,
    pub span: Span,
}

impl fmt::Display for FieldRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in self.transforms.iter().rev() {
            write!(f, "{}(", t.name())?;
        }
        match &self.arg {
            Some(a) => write!(f, "{}[{}]", self.name, a)?,
            None => f.write_str(&self.name)?,
        }
        for _ in &self.transforms {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    In,
    Intersects,
    Contains,
    IContains,
    StartsWith,
    EndsWith,
    Glob,
    IGlob,
    PMatch,
    Regex,
    Exists,
    /// Byte containment; the right-hand side is hex (`bcontains 68656c6c6f`).
    BContains,
    /// Byte prefix; the right-hand side is hex.
    BStartsWith,
}

impl Op {
    fn from_word(w: &str) -> Option<Op> {
        Some(match w {
            "in" => Op::In,
            "intersects" => Op::Intersects,
            "contains" => Op::Contains,
            "bcontains" => Op::BContains,
            "icontains" => Op::IContains,
            "startswith" => Op::StartsWith,
            "bstartswith" => Op::BStartsWith,
            "endswith" => Op::EndsWith,
            "glob" => Op::Glob,
            "iglob" => Op::IGlob,
            "pmatch" => Op::PMatch,
            "regex" => Op::Regex,
            "exists" => Op::Exists,
            _ => return None,
        })
    }

    /// Operators whose right-hand side is a parenthesised list.
    pub fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::PMatch)
    }
}

/// One literal on the right-hand side; a bare word may name a list.
#[derive(Debug, Clone, PartialEq)]
pub struct Literal {
    pub text: String,
    pub quoted: bool,
    pub span: Span,
}

/// Right-hand side of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    None,
    Single(Literal),
    List(Vec<Literal>),
    /// `val(field)`: another field of the same event.
    Field(FieldRef),
}

/// Condition syntax tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A macro reference, inlined at compile time.
    Macro {
        name: String,
        span: Span,
    },
    Compare {
        field: FieldRef,
        op: Op,
        operand: Operand,
    },
}

/// A syntax error at a byte offset of the condition.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

/// Parses a complete condition.
pub fn parse_condition(src: &str) -> Result<Expr, ParseError> {
    let mut p = Parser { src, pos: 0 };
    p.skip_ws();
    if p.at_end() {
        return Err(p.err("empty condition"));
    }
    let e = p.or_expr()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.err(format!("unexpected `{}`", p.peek_token())));
    }
    Ok(e)
}

/// Parses a lone field reference (as used in `exceptions.fields`).
pub fn parse_field(src: &str) -> Result<FieldRef, ParseError> {
    let mut p = Parser { src, pos: 0 };
    p.skip_ws();
    let f = p.field()?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.err(format!("unexpected `{}` after field", p.peek_token())));
    }
    Ok(f)
}

/// Parses a comparison operator word or symbol (as used in `exceptions.comps`).
pub fn parse_op(src: &str) -> Option<Op> {
    let mut p = Parser {
        src: src.trim(),
        pos: 0,
    };
    let op = p.op()?;
    p.at_end().then_some(op)
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-'
}

fn is_bare_value_char(c: char) -> bool {
    !(c.is_whitespace() || c == '(' || c == ')' || c == ',' || c == '"' || c == '\'')
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.src.len()
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn peek_token(&self) -> &'a str {
        let r = self.rest();
        let end = r
            .char_indices()
            .find(|&(i, c)| c.is_whitespace() || (i > 0 && (c == '(' || c == ')')))
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        &r[..end.max(r.chars().next().map_or(0, char::len_utf8))]
    }

    fn skip_ws(&mut self) {
        let r = self.rest();
        let n = r.len() - r.trim_start().len();
        self.pos += n;
    }

    /// Consumes keyword `kw` when it stands alone (not a prefix of a longer identifier).
    fn keyword(&mut self, kw: &str) -> bool {
        let r = self.rest();
        if r.len() >= kw.len() && r[..kw.len()].eq_ignore_ascii_case(kw) {
            let next = r[kw.len()..].chars().next();
            if next.is_none_or(|c| !is_ident_char(c)) {
                self.pos += kw.len();
                return true;
            }
        }
        false
    }

    fn or_expr(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.and_expr()?];
        loop {
            self.skip_ws();
            if self.keyword("or") {
                items.push(self.and_expr()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Expr::Or(items)
        })
    }

    fn and_expr(&mut self) -> Result<Expr, ParseError> {
        let mut items = vec![self.not_expr()?];
        loop {
            self.skip_ws();
            if self.keyword("and") {
                items.push(self.not_expr()?);
            } else {
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap()
        } else {
            Expr::And(items)
        })
    }

    fn not_expr(&mut self) -> Result<Expr, ParseError> {
        self.skip_ws();
        if self.keyword("not") {
            let inner = self.not_expr()?;
            return Ok(Expr::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.skip_ws();
        match self.peek() {
            None => Err(self.err("unexpected end of condition, expected an expression")),
            Some('(') => {
                self.pos += 1;
                let e = self.or_expr()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(if self.at_end() {
                        self.err("missing `)`")
                    } else {
                        self.err(format!("expected `)`, found `{}`", self.peek_token()))
                    });
                }
                self.pos += 1;
                Ok(e)
            }
            Some(c) if is_ident_start(c) => {
                if self.rest().starts_with("and")
                    || self.rest().starts_with("or")
                    || self.rest().starts_with("not")
                {
                    let save = self.pos;
                    if self.keyword("and") || self.keyword("or") {
                        self.pos = save;
                        return Err(self.err(format!(
                            "unexpected `{}`, expected an expression",
                            self.peek_token()
                        )));
                    }
                }
                let field = self.field()?;
                let after_field = self.pos;
                self.skip_ws();
                match self.op() {
                    Some(op) => self.comparison(field, op),
                    None => {
                        self.pos = after_field;
                        if field.arg.is_some() || !field.transforms.is_empty() {
                            return Err(ParseError {
                                offset: after_field,
                                message: format!("expected an operator after `{field}`"),
                            });
                        }
                        if field.name.contains('.') {
                            self.skip_ws();
                            return Err(if self.at_end() {
                                self.err(format!("expected an operator after `{field}`"))
                            } else {
                                self.err(format!(
                                    "expected an operator after `{field}`, found `{}`",
                                    self.peek_token()
                                ))
                            });
                        }
                        Ok(Expr::Macro {
                            name: field.name,
                            span: field.span,
                        })
                    }
                }
            }
            Some(_) => Err(self.err(format!(
                "unexpected `{}`, expected a field, macro or `(`",
                self.peek_token()
            ))),
        }
    }

    /// `ident(` where `ident` is one of `names`: the length of `ident` when it is.
    fn call_of(&self, names: &[&str]) -> Option<usize> {
        let r = self.rest();
        let len = r
            .char_indices()
            .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))
            .map(|(i, _)| i)?;
        (names.contains(&&r[..len]) && r[len..].starts_with('(')).then_some(len)
    }

    fn field(&mut self) -> Result<FieldRef, ParseError> {
        let start = self.pos;
        if let Some(len) = self.call_of(&["tolower", "toupper", "b64", "basename", "len"]) {
            let t = Transform::from_name(&self.rest()[..len]).expect("checked name");
            self.pos += len + 1;
            self.skip_ws();
            let mut inner = self.field()?;
            self.skip_ws();
            if self.peek() != Some(')') {
                return Err(self.err(format!("expected `)` to close `{}(`", t.name())));
            }
            self.pos += 1;
            inner.transforms.push(t);
            inner.span = Span {
                start,
                end: self.pos,
            };
            return Ok(inner);
        }
        match self.peek() {
            Some(c) if is_ident_start(c) => {}
            _ => return Err(self.err("expected a field name")),
        }
        let r = self.rest();
        let len = r
            .char_indices()
            .find(|&(_, c)| !is_ident_char(c))
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        let name = r[..len].to_string();
        self.pos += len;
        let mut arg = None;
        if self.peek() == Some('[') {
            let r = self.rest();
            match r.find(']') {
                Some(close) => {
                    arg = Some(r[1..close].to_string());
                    self.pos += close + 1;
                }
                None => return Err(self.err("missing `]` in field argument")),
            }
        }
        Ok(FieldRef {
            name,
            arg,
            transforms: Vec::new(),
            span: Span {
                start,
                end: self.pos,
            },
        })
    }

    fn op(&mut self) -> Option<Op> {
        let r = self.rest();
        for (sym, op) in [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("=", Op::Eq),
            ("<", Op::Lt),
            (">", Op::Gt),
        ] {
            if r.starts_with(sym) {
                self.pos += sym.len();
                return Some(op);
            }
        }
        let len = r
            .char_indices()
            .find(|&(_, c)| !c.is_ascii_alphabetic())
            .map(|(i, _)| i)
            .unwrap_or(r.len());
        let op = Op::from_word(&r[..len])?;
        self.pos += len;
        Some(op)
    }

    fn comparison(&mut self, field: FieldRef, op: Op) -> Result<Expr, ParseError> {
        if op == Op::Exists {
            return Ok(Expr::Compare {
                field,
                op,
                operand: Operand::None,
            });
        }
        self.skip_ws();
        if self
            .call_of(&["val", "tolower", "toupper", "b64", "basename", "len"])
            .is_some()
        {
            return self.field_operand(field, op);
        }
        let operand = if self.peek() == Some('(') {
            self.pos += 1;
            let mut items = Vec::new();
            loop {
                self.skip_ws();
                match self.peek() {
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    None => return Err(self.err("missing `)` at end of value list")),
                    _ => {}
                }
                items.push(self.literal()?);
                self.skip_ws();
                match self.peek() {
                    Some(',') => self.pos += 1,
                    Some(')') => {}
                    None => return Err(self.err("missing `)` at end of value list")),
                    Some(_) => {
                        return Err(self.err(format!(
                            "expected `,` or `)` in value list, found `{}`",
                            self.peek_token()
                        )))
                    }
                }
            }
            Operand::List(items)
        } else {
            Operand::Single(self.literal()?)
        };
        Ok(Expr::Compare { field, op, operand })
    }

    /// `val(field)`, possibly inside transformers: `tolower(val(ka.user.name))`.
    fn field_operand(&mut self, field: FieldRef, op: Op) -> Result<Expr, ParseError> {
        let start = self.pos;
        let mut wrappers = Vec::new();
        while let Some(len) = self.call_of(&["tolower", "toupper", "b64", "basename", "len"]) {
            wrappers.push(Transform::from_name(&self.rest()[..len]).expect("checked name"));
            self.pos += len + 1;
            self.skip_ws();
        }
        if self.call_of(&["val"]).is_none() {
            return Err(self.err("expected `val(<field>)` on the right-hand side"));
        }
        self.pos += 4;
        self.skip_ws();
        let mut rhs = self.field()?;
        for _ in 0..wrappers.len() + 1 {
            self.skip_ws();
            if self.peek() != Some(')') {
                return Err(self.err("expected `)`"));
            }
            self.pos += 1;
        }
        rhs.transforms.extend(wrappers.into_iter().rev());
        rhs.span = Span {
            start,
            end: self.pos,
        };
        Ok(Expr::Compare {
            field,
            op,
            operand: Operand::Field(rhs),
        })
    }

    fn literal(&mut self) -> Result<Literal, ParseError> {
        let start = self.pos;
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.pos += 1;
                let mut text = String::new();
                let mut chars = self.rest().char_indices();
                loop {
                    match chars.next() {
                        None => {
                            self.pos = start;
                            return Err(self.err("unterminated string"));
                        }
                        Some((i, c)) if c == q => {
                            self.pos += i + 1;
                            break;
                        }
                        Some((_, '\\')) => match chars.next() {
                            Some((_, c)) => text.push(c),
                            None => {
                                self.pos = start;
                                return Err(self.err("unterminated string"));
                            }
                        },
                        Some((_, c)) => text.push(c),
                    }
                }
                Ok(Literal {
                    text,
                    quoted: true,
                    span: Span {
                        start,
                        end: self.pos,
                    },
                })
            }
            Some(c) if is_bare_value_char(c) => {
                let r = self.rest();
                let len = r
                    .char_indices()
                    .find(|&(_, c)| !is_bare_value_char(c))
                    .map(|(i, _)| i)
                    .unwrap_or(r.len());
                self.pos += len;
                Ok(Literal {
                    text: r[..len].to_string(),
                    quoted: false,
                    span: Span {
                        start,
                        end: self.pos,
                    },
                })
            }
            None => Err(self.err("unexpected end of condition, expected a value")),
            Some(_) => Err(self.err(format!("expected a value, found `{}`", self.peek_token()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse_condition(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
    }

    fn show(e: &Expr) -> String {
        match e {
            Expr::And(v) => format!("(and {})", v.iter().map(show).collect::<Vec<_>>().join(" ")),
            Expr::Or(v) => format!("(or {})", v.iter().map(show).collect::<Vec<_>>().join(" ")),
            Expr::Not(e) => format!("(not {})", show(e)),
            Expr::Macro { name, .. } => name.clone(),
            Expr::Compare { field, op, operand } => {
                let rhs = match operand {
                    Operand::None => String::new(),
                    Operand::Single(l) => format!(" {}", l.text),
                    Operand::Field(f) => format!(" val:{f}"),
                    Operand::List(v) => format!(
                        " [{}]",
                        v.iter()
                            .map(|l| l.text.as_str())
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                };
                format!("({field} {op:?}{rhs})")
            }
        }
    }

    #[test]
    fn precedence_not_and_or() {
        assert_eq!(show(&p("a or b and not c")), "(or a (and b (not c)))");
        assert_eq!(show(&p("not a and b")), "(and (not a) b)");
        assert_eq!(show(&p("(a or b) and c")), "(and (or a b) c)");
        assert_eq!(show(&p("not not a")), "(not (not a))");
        assert_eq!(show(&p("not(a)")), "(not a)");
        assert_eq!(show(&p("a and b and c or d")), "(or (and a b c) d)");
    }

    #[test]
    fn comparisons_and_values() {
        assert_eq!(show(&p("ka.verb=get")), "(ka.verb Eq get)");
        assert_eq!(show(&p("ka.verb == get")), "(ka.verb Eq get)");
        assert_eq!(show(&p("ka.verb!=\"get\"")), "(ka.verb Ne get)");
        assert_eq!(
            show(&p("ka.uri startswith /healthz? or ka.uri=/livez")),
            "(or (ka.uri StartsWith /healthz?) (ka.uri Eq /livez))"
        );
        assert_eq!(
            show(&p("ka.verb in (create, 'update',patch)")),
            "(ka.verb In [create,update,patch])"
        );
        assert_eq!(show(&p("x.y in ()")), "(x.y In [])");
        assert_eq!(
            show(&p("jevt.value[/annotations/a.b~1c] exists")),
            "(jevt.value[/annotations/a.b~1c] Exists)"
        );
        assert_eq!(
            show(&p("(ka.target.name startswith \"system:\")")),
            "(ka.target.name StartsWith system:)"
        );
        assert_eq!(
            show(&p("a.b >= 10 and a.b<3")),
            "(and (a.b Ge 10) (a.b Lt 3))"
        );
        assert_eq!(show(&p(r#"a.b = "q\"x""#)), "(a.b Eq q\"x)");
        assert_eq!(show(&p("notice and order")), "(and notice order)");
    }

    #[test]
    fn error_positions() {
        let e = parse_condition("ka.verb = get and").unwrap_err();
        assert_eq!(e.offset, 17);
        let e = parse_condition("ka.verb bogus get").unwrap_err();
        assert_eq!(e.offset, 8);
        assert!(e.message.contains("expected an operator"), "{}", e.message);
        let e = parse_condition("(a and b").unwrap_err();
        assert!(e.message.contains("missing `)`"));
        let e = parse_condition("a.b in (x, y").unwrap_err();
        assert!(e.message.contains("missing `)`"));
        let e = parse_condition("a.b = 'x").unwrap_err();
        assert_eq!(e.offset, 6);
        let e = parse_condition("a and or b").unwrap_err();
        assert_eq!(e.offset, 6);
        let e = parse_condition("").unwrap_err();
        assert_eq!(e.message, "empty condition");
        let e = parse_condition("a b").unwrap_err();
        assert_eq!(e.offset, 2);
    }

    #[test]
    fn transformers_and_field_operands() {
        assert_eq!(
            show(&p("tolower(ka.user.name) = alice")),
            "(tolower(ka.user.name) Eq alice)"
        );
        assert_eq!(
            show(&p(
                "toupper(basename(ka.uri)) startswith X and len(ka.user.groups) > 2"
            )),
            "(and (toupper(basename(ka.uri)) StartsWith X) (len(ka.user.groups) Gt 2))"
        );
        let e = p("ka.target.namespace = val(ka.user.name)");
        assert_eq!(show(&e), "(ka.target.namespace Eq val:ka.user.name)");
        let e = p("ka.target.name != tolower(val(ka.req.binding.role))");
        assert_eq!(
            show(&e),
            "(ka.target.name Ne val:tolower(ka.req.binding.role))"
        );
        let Expr::Compare { field, .. } = p("b64(jevt.value[/x]) bcontains 6869") else {
            panic!()
        };
        assert_eq!(field.transforms, [Transform::B64]);
        assert_eq!(field.arg.as_deref(), Some("/x"));
        assert!(parse_condition("tolower(ka.verb").is_err());
        assert!(parse_condition("tolower(ka.verb)").is_err());
        assert!(parse_condition("ka.verb = val(ka.uri").is_err());
        // A bare word that only looks like a call stays a value.
        assert_eq!(show(&p("a.b = len")), "(a.b Eq len)");
    }

    #[test]
    fn field_and_op_helpers() {
        let f = parse_field("ka.uri.param[command]").unwrap();
        assert_eq!(f.arg.as_deref(), Some("command"));
        assert_eq!(parse_op("in"), Some(Op::In));
        assert_eq!(parse_op("="), Some(Op::Eq));
        assert_eq!(parse_op("nope"), None);
    }
}
