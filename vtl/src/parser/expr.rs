//! Expressions: inside directive parentheses, method arguments and indexes.
//!
//! Precedence, loosest first: `||`, `&&`, `== !=`, `< <= > >=`, `+ -`, `* / %`, unary `! -`.

use super::cursor::{is_ident_char, is_ident_start};
use super::{Closer, Mode, Parser};
use crate::ast::{BinOp, Expr, Node};
use crate::error::ParseError;

impl Parser {
    pub(super) fn expr(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        let result = self.or();
        self.leave();
        result
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.operator(&["||"], "or") {
            let right = self.and()?;
            left = Expr::Binary(BinOp::Or, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.equality()?;
        while self.operator(&["&&"], "and") {
            let right = self.equality()?;
            left = Expr::Binary(BinOp::And, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn equality(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.relational()?;
        loop {
            let op = if self.operator(&["=="], "eq") {
                BinOp::Eq
            } else if self.operator(&["!="], "ne") {
                BinOp::Ne
            } else {
                return Ok(left);
            };
            let right = self.relational()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn relational(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.additive()?;
        loop {
            let op = if self.operator(&["<="], "le") {
                BinOp::Le
            } else if self.operator(&[">="], "ge") {
                BinOp::Ge
            } else if self.operator(&["<"], "lt") {
                BinOp::Lt
            } else if self.operator(&[">"], "gt") {
                BinOp::Gt
            } else {
                return Ok(left);
            };
            let right = self.additive()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn additive(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.operator(&["+"], "") {
                BinOp::Add
            } else if self.operator(&["-"], "") {
                BinOp::Sub
            } else {
                return Ok(left);
            };
            let right = self.multiplicative()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn multiplicative(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.unary()?;
        loop {
            let op = if self.operator(&["*"], "") {
                BinOp::Mul
            } else if self.operator(&["/"], "") {
                BinOp::Div
            } else if self.operator(&["%"], "") {
                BinOp::Rem
            } else {
                return Ok(left);
            };
            let right = self.unary()?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        self.cur.skip_whitespace();
        let negation = if self.cur.peek() == Some('!') && self.cur.peek_at(1) != Some('=') {
            self.cur.bump();
            Some(true)
        } else if self.word("not") {
            Some(true)
        } else if self.cur.peek() == Some('-') {
            self.cur.bump();
            Some(false)
        } else {
            None
        };
        let Some(is_not) = negation else {
            return self.primary();
        };
        self.enter()?;
        let operand = self.unary();
        self.leave();
        let operand = Box::new(operand?);
        Ok(if is_not {
            Expr::Not(operand)
        } else {
            Expr::Neg(operand)
        })
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        self.cur.skip_whitespace();
        let pos = self.cur.pos();
        match self.cur.peek() {
            Some('$') => match self.reference()? {
                Some(reference) => Ok(Expr::Ref(Box::new(reference))),
                None => Err(self.cur.error("expected a reference after $")),
            },
            Some('\'') => self.single_quoted(),
            Some('"') => self.double_quoted(),
            Some(c) if c.is_ascii_digit() => self.number(),
            Some('[') => self.list(),
            Some('{') => self.map(),
            Some('(') => {
                self.cur.bump();
                let inner = self.expr()?;
                self.cur.skip_whitespace();
                if !self.cur.eat(')') {
                    return Err(self.cur.error_at(pos, "( without closing )"));
                }
                Ok(inner)
            }
            Some(c) if is_ident_start(c) => {
                if self.word("true") {
                    Ok(Expr::Bool(true))
                } else if self.word("false") {
                    Ok(Expr::Bool(false))
                } else if self.word("null") {
                    Ok(Expr::Null)
                } else {
                    Err(self
                        .cur
                        .error("expected an expression (a reference needs a $)"))
                }
            }
            None => Err(self
                .cur
                .error("unexpected end of template in an expression")),
            Some(c) => Err(self.cur.error(format!("unexpected {c:?} in an expression"))),
        }
    }

    /// `'...'`: no interpolation; `''` is a quote.
    fn single_quoted(&mut self) -> Result<Expr, ParseError> {
        let pos = self.cur.pos();
        self.cur.bump();
        let mut value = String::new();
        loop {
            match self.cur.bump() {
                Some('\'') if self.cur.eat('\'') => value.push('\''),
                Some('\'') => return Ok(Expr::Str(value)),
                Some(c) => value.push(c),
                None => return Err(self.cur.error_at(pos, "unclosed string")),
            }
        }
    }

    /// `"..."`: references and directives inside are rendered when evaluated.
    fn double_quoted(&mut self) -> Result<Expr, ParseError> {
        let pos = self.cur.pos();
        self.cur.bump();
        let (nodes, end) = self.block(Mode::DoubleQuoted)?;
        match end {
            Closer::Quote => {}
            Closer::Eof => return Err(self.cur.error_at(pos, "unclosed string")),
            Closer::Else(at) | Closer::ElseIf(_, at) => {
                return Err(self.cur.error_at(at, "#else without #if"));
            }
            Closer::End(at) => return Err(self.cur.error_at(at, "#end without #if or #foreach")),
        }
        let text_only = nodes.iter().all(|n| matches!(n, Node::Text(_)));
        if !text_only {
            return Ok(Expr::Interpolated(nodes));
        }
        let text = nodes
            .into_iter()
            .map(|n| match n {
                Node::Text(t) => t,
                _ => String::new(),
            })
            .collect();
        Ok(Expr::Str(text))
    }

    fn number(&mut self) -> Result<Expr, ParseError> {
        let pos = self.cur.pos();
        let mut digits = String::new();
        while let Some(c) = self.cur.peek().filter(char::is_ascii_digit) {
            self.cur.bump();
            digits.push(c);
        }
        let fraction =
            self.cur.peek() == Some('.') && self.cur.peek_at(1).is_some_and(|c| c.is_ascii_digit());
        if !fraction {
            return digits.parse().map(Expr::Int).map_err(|_| {
                self.cur
                    .error_at(pos, format!("integer {digits} is too large"))
            });
        }
        self.cur.bump();
        digits.push('.');
        while let Some(c) = self.cur.peek().filter(char::is_ascii_digit) {
            self.cur.bump();
            digits.push(c);
        }
        digits
            .parse()
            .map(Expr::Float)
            .map_err(|_| self.cur.error_at(pos, format!("bad number {digits}")))
    }

    /// `[a, b]` or the range `[1..3]`.
    fn list(&mut self) -> Result<Expr, ParseError> {
        let pos = self.cur.pos();
        self.cur.bump();
        self.cur.skip_whitespace();
        if self.cur.eat(']') {
            return Ok(Expr::List(Vec::new()));
        }
        let first = self.expr()?;
        self.cur.skip_whitespace();
        if self.cur.eat_str("..") {
            let last = self.expr()?;
            self.cur.skip_whitespace();
            if !self.cur.eat(']') {
                return Err(self.cur.error_at(pos, "[ without closing ]"));
            }
            return Ok(Expr::Range(Box::new(first), Box::new(last)));
        }
        let mut items = vec![first];
        loop {
            self.cur.skip_whitespace();
            if self.cur.eat(']') {
                return Ok(Expr::List(items));
            }
            if !self.cur.eat(',') {
                return Err(self.cur.error_at(pos, "[ without closing ]"));
            }
            items.push(self.expr()?);
        }
    }

    /// `{"key": value, ...}`.
    fn map(&mut self) -> Result<Expr, ParseError> {
        let pos = self.cur.pos();
        self.cur.bump();
        let mut entries = Vec::new();
        self.cur.skip_whitespace();
        if self.cur.eat('}') {
            return Ok(Expr::Map(entries));
        }
        loop {
            let key = self.expr()?;
            self.cur.skip_whitespace();
            if !self.cur.eat(':') {
                return Err(self.cur.error("expected : in a map"));
            }
            let value = self.expr()?;
            entries.push((key, value));
            self.cur.skip_whitespace();
            if self.cur.eat('}') {
                return Ok(Expr::Map(entries));
            }
            if !self.cur.eat(',') {
                return Err(self.cur.error_at(pos, "{ without closing }"));
            }
        }
    }

    /// One of the symbolic operators, or the word form (`and`, `eq`, ...) when given.
    fn operator(&mut self, symbols: &[&str], word: &str) -> bool {
        self.cur.skip_whitespace();
        for symbol in symbols {
            // `<` is not the start of `<=` (nor `>` of `>=`): those are tried first.
            let clash = matches!(*symbol, "<" | ">") && self.cur.peek_at(1) == Some('=');
            if !clash && self.cur.eat_str(symbol) {
                return true;
            }
        }
        !word.is_empty() && self.word(word)
    }

    /// The keyword `word`, not followed by more identifier characters.
    fn word(&mut self, word: &str) -> bool {
        let boundary = !self
            .cur
            .peek_at(word.chars().count())
            .is_some_and(is_ident_char);
        boundary && self.cur.eat_str(word)
    }
}
