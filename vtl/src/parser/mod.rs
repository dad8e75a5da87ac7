//! Template source → [`Node`]s. A hand-written recursive-descent parser that follows Velocity
//! 1.7's lexical rules: a `$` or `#` that does not start a reference or a directive is text.

mod cursor;
mod expr;

use crate::ast::{Expr, Node, Part, Pos, Reference};
use crate::error::ParseError;
use cursor::{Cursor, is_ident_char, is_ident_start};

/// Blocks, parentheses, lists and strings nested deeper than this are refused, so that no
/// template can exhaust the stack of the parser or of the renderer.
pub(crate) const MAX_NESTING: usize = 64;

pub(crate) fn parse(source: &str) -> Result<Vec<Node>, ParseError> {
    let mut parser = Parser {
        cur: Cursor::new(source),
        depth: 0,
    };
    let (nodes, end) = parser.block(Mode::Template)?;
    match end {
        Closer::Eof => Ok(nodes),
        Closer::Else(pos) | Closer::ElseIf(_, pos) => {
            Err(parser.cur.error_at(pos, "#else without #if"))
        }
        Closer::End(pos) => Err(parser.cur.error_at(pos, "#end without #if or #foreach")),
        Closer::Quote => unreachable!("a closing quote ends only a string"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Template,
    /// Inside a double-quoted string literal: `"` ends the block, `""` is a quote.
    DoubleQuoted,
}

/// What ended a block of nodes.
enum Closer {
    Eof,
    Quote,
    Else(Pos),
    ElseIf(Expr, Pos),
    End(Pos),
}

struct Parser {
    cur: Cursor,
    depth: usize,
}

const UNSUPPORTED: [&str; 5] = ["macro", "define", "parse", "include", "evaluate"];

impl Parser {
    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(self
                .cur
                .error(format!("nesting deeper than {MAX_NESTING} levels")));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    /// Nodes up to the end of the source, a closing quote (in a string), or a directive that
    /// closes a block (`#else`, `#elseif`, `#end`).
    fn block(&mut self, mode: Mode) -> Result<(Vec<Node>, Closer), ParseError> {
        self.enter()?;
        let result = self.block_inner(mode);
        self.leave();
        result
    }

    fn block_inner(&mut self, mode: Mode) -> Result<(Vec<Node>, Closer), ParseError> {
        let mut nodes = Vec::new();
        let mut text = String::new();
        loop {
            let Some(c) = self.cur.peek() else {
                flush(&mut text, &mut nodes);
                return Ok((nodes, Closer::Eof));
            };
            match c {
                '"' if mode == Mode::DoubleQuoted => {
                    self.cur.bump();
                    if self.cur.eat('"') {
                        text.push('"');
                    } else {
                        flush(&mut text, &mut nodes);
                        return Ok((nodes, Closer::Quote));
                    }
                }
                '\\' => self.backslashes(mode, &mut text)?,
                '$' => match self.reference()? {
                    Some(reference) => {
                        flush(&mut text, &mut nodes);
                        nodes.push(Node::Ref(reference));
                    }
                    None => {
                        self.cur.bump();
                        text.push('$');
                    }
                },
                '#' => {
                    if let Some(end) = self.hash(mode, &mut text, &mut nodes)? {
                        flush(&mut text, &mut nodes);
                        return Ok((nodes, end));
                    }
                }
                _ => {
                    self.cur.bump();
                    text.push(c);
                }
            }
        }
    }

    /// A run of backslashes. Before a reference or a directive, each pair renders one
    /// backslash, and an odd one out makes the reference or directive literal text.
    fn backslashes(&mut self, mode: Mode, text: &mut String) -> Result<(), ParseError> {
        let mut count = 0;
        while self.cur.eat('\\') {
            count += 1;
        }
        match self.cur.peek() {
            Some('"') if mode == Mode::DoubleQuoted => {
                // Velocity 1.7 keeps escapes in string literals as written.
                text.extend(std::iter::repeat_n('\\', count));
                self.cur.bump();
                text.push('"');
            }
            Some('$') => {
                let start = self.cur.mark();
                let reference = self.reference()?;
                let escapes_something = reference.is_some();
                self.cur.reset(start);
                if !escapes_something {
                    text.extend(std::iter::repeat_n('\\', count));
                    return Ok(());
                }
                text.extend(std::iter::repeat_n('\\', count / 2));
                if count % 2 == 1 {
                    let _ = self.reference()?;
                    text.push_str(&self.cur.since(start));
                }
            }
            Some('#') if self.directive_name_ahead().is_some() => {
                text.extend(std::iter::repeat_n('\\', count / 2));
                if count % 2 == 1 {
                    self.cur.bump();
                    text.push('#');
                }
            }
            _ => text.extend(std::iter::repeat_n('\\', count)),
        }
        Ok(())
    }

    /// The name of the directive at `#`, if a known one starts here.
    fn directive_name_ahead(&mut self) -> Option<String> {
        let start = self.cur.mark();
        self.cur.bump();
        let braced = self.cur.eat('{');
        let name = self.directive_word();
        let known = is_directive(&name) && (!braced || self.cur.peek() == Some('}'));
        self.cur.reset(start);
        known.then_some(name)
    }

    fn directive_word(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.cur.peek().filter(char::is_ascii_alphabetic) {
            self.cur.bump();
            name.push(c);
        }
        name
    }

    /// At `#`: a comment, a directive, or text. Returns the end of the block when the
    /// directive closes one.
    fn hash(
        &mut self,
        mode: Mode,
        text: &mut String,
        nodes: &mut Vec<Node>,
    ) -> Result<Option<Closer>, ParseError> {
        let start = self.cur.mark();
        let pos = self.cur.pos();
        if self.cur.eat_str("##") {
            while self.cur.peek().is_some_and(|c| c != '\n') {
                self.cur.bump();
            }
            self.cur.eat('\n');
            return Ok(None);
        }
        if self.cur.eat_str("#*") {
            return self.block_comment(pos).map(|()| None);
        }
        if self.cur.eat_str("#[[") {
            return self.unparsed(pos, text).map(|()| None);
        }
        self.cur.bump();
        let braced = self.cur.eat('{');
        let name = self.directive_word();
        if braced && !(is_directive(&name) && self.cur.eat('}')) {
            self.cur.reset(start);
            self.cur.bump();
            text.push('#');
            return Ok(None);
        }
        match name.as_str() {
            "set" => {
                trim_blanks_end(text);
                flush(text, nodes);
                nodes.push(self.set_directive()?);
            }
            "if" => {
                flush(text, nodes);
                nodes.push(self.if_directive(mode, pos)?);
            }
            "foreach" => {
                flush(text, nodes);
                nodes.push(self.foreach_directive(mode, pos)?);
            }
            "elseif" => {
                let condition = self.condition("#elseif")?;
                return Ok(Some(Closer::ElseIf(condition, pos)));
            }
            "else" => {
                self.cur.gobble_line_end();
                return Ok(Some(Closer::Else(pos)));
            }
            "end" => {
                self.cur.gobble_line_end();
                return Ok(Some(Closer::End(pos)));
            }
            "break" | "stop" => {
                flush(text, nodes);
                nodes.push(if name == "break" {
                    Node::Break
                } else {
                    Node::Stop
                });
                self.cur.gobble_line_end();
            }
            _ if UNSUPPORTED.contains(&name.as_str()) => {
                return Err(self
                    .cur
                    .error_at(pos, format!("unsupported directive #{name}")));
            }
            _ if !name.is_empty() && self.cur.peek() == Some('(') => {
                return Err(self.cur.error_at(pos, format!("unknown directive #{name}")));
            }
            _ => {
                self.cur.reset(start);
                self.cur.bump();
                text.push('#');
            }
        }
        Ok(None)
    }

    fn block_comment(&mut self, pos: Pos) -> Result<(), ParseError> {
        while !self.cur.eat_str("*#") {
            if self.cur.bump().is_none() {
                return Err(self.cur.error_at(pos, "#* comment without *#"));
            }
        }
        Ok(())
    }

    fn unparsed(&mut self, pos: Pos, text: &mut String) -> Result<(), ParseError> {
        while !self.cur.eat_str("]]#") {
            match self.cur.bump() {
                Some(c) => text.push(c),
                None => return Err(self.cur.error_at(pos, "#[[ without ]]#")),
            }
        }
        Ok(())
    }

    fn open_paren(&mut self, directive: &str) -> Result<(), ParseError> {
        self.cur.skip_blanks();
        if !self.cur.eat('(') {
            return Err(self.cur.error(format!("expected ( after {directive}")));
        }
        self.cur.skip_whitespace();
        Ok(())
    }

    fn close_paren(&mut self, directive: &str) -> Result<(), ParseError> {
        self.cur.skip_whitespace();
        if !self.cur.eat(')') {
            return Err(self.cur.error(format!("expected ) to close {directive}")));
        }
        self.cur.gobble_line_end();
        Ok(())
    }

    fn condition(&mut self, directive: &str) -> Result<Expr, ParseError> {
        self.open_paren(directive)?;
        let condition = self.expr()?;
        self.close_paren(directive)?;
        Ok(condition)
    }

    fn set_directive(&mut self) -> Result<Node, ParseError> {
        self.open_paren("#set")?;
        let target = match self.reference()? {
            Some(target) if !target.parts.iter().any(|p| matches!(p, Part::Method(..))) => target,
            _ => return Err(self.cur.error("#set needs a reference to assign to")),
        };
        self.cur.skip_whitespace();
        if !self.cur.eat('=') {
            return Err(self.cur.error("expected = in #set"));
        }
        let value = self.expr()?;
        self.close_paren("#set")?;
        Ok(Node::Set { target, value })
    }

    fn if_directive(&mut self, mode: Mode, pos: Pos) -> Result<Node, ParseError> {
        let mut condition = self.condition("#if")?;
        let mut branches = Vec::new();
        loop {
            let (body, end) = self.block(mode)?;
            branches.push((condition, body));
            match end {
                Closer::ElseIf(next, _) => condition = next,
                Closer::Else(_) => {
                    let (otherwise, end) = self.block(mode)?;
                    return match end {
                        Closer::End(_) => Ok(Node::If {
                            branches,
                            otherwise: Some(otherwise),
                        }),
                        Closer::Else(at) | Closer::ElseIf(_, at) => {
                            Err(self.cur.error_at(at, "#else after #else"))
                        }
                        Closer::Eof | Closer::Quote => {
                            Err(self.cur.error_at(pos, "#if without #end"))
                        }
                    };
                }
                Closer::End(_) => {
                    return Ok(Node::If {
                        branches,
                        otherwise: None,
                    });
                }
                Closer::Eof | Closer::Quote => {
                    return Err(self.cur.error_at(pos, "#if without #end"));
                }
            }
        }
    }

    fn foreach_directive(&mut self, mode: Mode, pos: Pos) -> Result<Node, ParseError> {
        self.open_paren("#foreach")?;
        let var = match self.reference()? {
            Some(r) if r.parts.is_empty() => r.root,
            _ => {
                return Err(self
                    .cur
                    .error("#foreach needs a variable: #foreach($item in ...)"));
            }
        };
        self.cur.skip_whitespace();
        if !(self.cur.eat_str("in") && self.cur.peek().is_some_and(|c| !is_ident_char(c))) {
            return Err(self.cur.error("expected `in` in #foreach"));
        }
        let iterable = self.expr()?;
        self.close_paren("#foreach")?;
        let (body, end) = self.block(mode)?;
        match end {
            Closer::End(_) => Ok(Node::Foreach {
                var,
                iterable,
                body,
                pos,
            }),
            Closer::Else(at) | Closer::ElseIf(_, at) => {
                Err(self.cur.error_at(at, "#else without #if"))
            }
            Closer::Eof | Closer::Quote => Err(self.cur.error_at(pos, "#foreach without #end")),
        }
    }

    /// At `$`: a reference, or `None` (the cursor unmoved) when the `$` is text.
    fn reference(&mut self) -> Result<Option<Reference>, ParseError> {
        let start = self.cur.mark();
        let pos = self.cur.pos();
        self.cur.bump();
        let quiet = self.cur.eat('!');
        let braced = self.cur.eat('{');
        let Some(root) = self.identifier() else {
            self.cur.reset(start);
            return Ok(None);
        };
        let parts = self.reference_parts()?;
        if braced && !self.cur.eat('}') {
            self.cur.reset(start);
            return Ok(None);
        }
        Ok(Some(Reference {
            root,
            parts,
            quiet,
            source: self.cur.since(start),
            pos,
        }))
    }

    /// Velocity 1.7 identifiers: a letter or `_`, then letters, digits, `_` and `-` (a `-`
    /// only when more of the name follows, so `$a-` is `$a` and a dash).
    fn identifier(&mut self) -> Option<String> {
        if !self.cur.peek().is_some_and(is_ident_start) {
            return None;
        }
        let mut name = String::new();
        while let Some(c) = self.cur.peek() {
            let continues =
                is_ident_char(c) || (c == '-' && self.cur.peek_at(1).is_some_and(is_ident_char));
            if !continues {
                break;
            }
            self.cur.bump();
            name.push(c);
        }
        Some(name)
    }

    fn reference_parts(&mut self) -> Result<Vec<Part>, ParseError> {
        let mut parts = Vec::new();
        loop {
            if self.cur.peek() == Some('.') && self.cur.peek_at(1).is_some_and(is_ident_start) {
                self.cur.bump();
                let name = self.identifier().unwrap_or_default();
                if self.cur.peek() == Some('(') {
                    let args = self.arguments()?;
                    parts.push(Part::Method(name, args));
                } else {
                    parts.push(Part::Property(name));
                }
            } else if self.cur.peek() == Some('[') {
                let before = self.cur.mark();
                match self.index() {
                    Some(index) => parts.push(Part::Index(index)),
                    None => {
                        self.cur.reset(before);
                        break;
                    }
                }
            } else {
                return Ok(parts);
            }
        }
        Ok(parts)
    }

    fn index(&mut self) -> Option<Expr> {
        self.cur.bump();
        let depth = self.depth;
        let index = self.expr().ok();
        self.depth = depth;
        self.cur.skip_whitespace();
        index.filter(|_| self.cur.eat(']'))
    }

    fn arguments(&mut self) -> Result<Vec<Expr>, ParseError> {
        let open = self.cur.pos();
        self.cur.bump();
        let mut args = Vec::new();
        self.cur.skip_whitespace();
        if self.cur.eat(')') {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            self.cur.skip_whitespace();
            if self.cur.eat(')') {
                return Ok(args);
            }
            if !self.cur.eat(',') {
                return Err(self.cur.error_at(open, "method call without closing )"));
            }
        }
    }
}

fn is_directive(name: &str) -> bool {
    matches!(
        name,
        "set" | "if" | "elseif" | "else" | "end" | "foreach" | "break" | "stop"
    )
}

fn flush(text: &mut String, nodes: &mut Vec<Node>) {
    if !text.is_empty() {
        nodes.push(Node::Text(std::mem::take(text)));
    }
}

/// Velocity 1.7's `#set` takes the spaces and tabs before it.
fn trim_blanks_end(text: &mut String) {
    let kept = text.trim_end_matches([' ', '\t']).len();
    text.truncate(kept);
}
