//! A position in the template source: the characters, the index, the line and column.

use crate::ast::Pos;
use crate::error::ParseError;

#[derive(Clone, Copy)]
pub(super) struct Mark {
    index: usize,
    pos: Pos,
}

pub(super) struct Cursor {
    chars: Vec<char>,
    index: usize,
    pos: Pos,
}

impl Cursor {
    pub(super) fn new(source: &str) -> Self {
        Cursor {
            chars: source.chars().collect(),
            index: 0,
            pos: Pos { line: 1, column: 1 },
        }
    }

    pub(super) fn peek(&self) -> Option<char> {
        self.chars.get(self.index).copied()
    }

    pub(super) fn peek_at(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.index + ahead).copied()
    }

    pub(super) fn starts_with(&self, text: &str) -> bool {
        text.chars()
            .enumerate()
            .all(|(i, c)| self.peek_at(i) == Some(c))
    }

    pub(super) fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.index += 1;
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }

    pub(super) fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    pub(super) fn eat_str(&mut self, text: &str) -> bool {
        if self.starts_with(text) {
            text.chars().for_each(|_| {
                self.bump();
            });
            true
        } else {
            false
        }
    }

    pub(super) fn pos(&self) -> Pos {
        self.pos
    }

    pub(super) fn mark(&self) -> Mark {
        Mark {
            index: self.index,
            pos: self.pos,
        }
    }

    pub(super) fn reset(&mut self, mark: Mark) {
        self.index = mark.index;
        self.pos = mark.pos;
    }

    /// The source text from `mark` to here.
    pub(super) fn since(&self, mark: Mark) -> String {
        self.chars[mark.index..self.index].iter().collect()
    }

    pub(super) fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.bump();
        }
    }

    pub(super) fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t')) {
            self.bump();
        }
    }

    /// Velocity 1.7 swallows the rest of a line after a directive when it is blank (spaces,
    /// tabs, then a newline), so that directive lines leave no empty lines in the output.
    pub(super) fn gobble_line_end(&mut self) {
        let mark = self.mark();
        self.skip_blanks();
        if self.eat('\n') || self.eat_str("\r\n") {
            return;
        }
        self.reset(mark);
    }

    pub(super) fn error_at(&self, pos: Pos, message: impl Into<String>) -> ParseError {
        ParseError {
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    pub(super) fn error(&self, message: impl Into<String>) -> ParseError {
        self.error_at(self.pos, message)
    }
}

pub(super) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
