//! The parsed template: a tree of nodes and expressions. Immutable, `Send + Sync`.

/// A place in the template source, 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    Text(String),
    Ref(Reference),
    Set {
        target: Reference,
        value: Expr,
    },
    If {
        branches: Vec<(Expr, Vec<Node>)>,
        otherwise: Option<Vec<Node>>,
    },
    Foreach {
        var: String,
        iterable: Expr,
        body: Vec<Node>,
        pos: Pos,
    },
    Break,
    Stop,
}

/// `$name.prop.method(args)[index]`, with `$!` (quiet) or not.
#[derive(Debug, Clone)]
pub(crate) struct Reference {
    pub root: String,
    pub parts: Vec<Part>,
    pub quiet: bool,
    /// The reference as written, rendered in place of a null value by strict Velocity.
    pub source: String,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub(crate) enum Part {
    Property(String),
    Index(Expr),
    Method(String, Vec<Expr>),
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    /// A single-quoted string, or a double-quoted one without references or directives.
    Str(String),
    /// A double-quoted string with references or directives, rendered when evaluated.
    Interpolated(Vec<Node>),
    Ref(Box<Reference>),
    List(Vec<Expr>),
    Range(Box<Expr>, Box<Expr>),
    Map(Vec<(Expr, Expr)>),
    Not(Box<Expr>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}
