//! helm's `--set` syntax (`pkg/strvals` in helm 3), so a line that works
//! with `helm --set` means the same with telltale.
//!
//! `a.b=1,c=2` is two assignments; `\` takes the next character literally
//! (`a\.b`, `x\,y`); `name[0]` indexes a list (missing slots become null);
//! `{x,y}` is a list value. Values are typed as helm types them: `true` and
//! `false` (any case), `null` (deletes the key when merged), and integers
//! without a leading zero; everything else is a string. `--set-string`
//! keeps every value a string and `--set-file` reads the value from a file.
//!
//! Differences from helm, each to keep hostile input cheap: an index above
//! [`MAX_INDEX`] is refused (helm: 65536), and at most [`MAX_LIST_SLOTS`] list
//! slots are created in all. A key that is a list in one assignment and a map
//! in another is an error here, where helm panics and reports the panic.

use serde_json::{Map, Value};

/// The highest list index accepted (`a[10000]`).
pub const MAX_INDEX: usize = 10_000;
/// Nested key levels, as helm's `MaxNestedNameLevel`.
pub const MAX_NESTING: usize = 30;
/// List slots one parse may create across all its assignments.
pub const MAX_LIST_SLOTS: usize = 100_000;

/// How values are turned into JSON: helm's `--set`, `--set-string`, `--set-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Typed,
    String,
    File,
}

impl Mode {
    pub fn flag(self) -> &'static str {
        match self {
            Mode::Typed => "--set",
            Mode::String => "--set-string",
            Mode::File => "--set-file",
        }
    }
}

/// What went wrong, naming the key (never the value: it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StrvalsError {
    pub message: String,
    /// The key path reached when it failed (`a.b[0]`), when there is one.
    pub key_path: Option<String>,
}

/// Reads a `--set-file` value: the path as written, to the file's contents.
pub type FileReader<'a> = dyn FnMut(&str) -> Result<String, String> + 'a;

/// Parses `text` into `into` (a map), on top of what earlier flags put there,
/// as helm parses every `--set` into one map.
pub fn parse_into(
    text: &str,
    into: &mut Map<String, Value>,
    mode: Mode,
    reader: &mut FileReader<'_>,
) -> Result<(), StrvalsError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        mode,
        reader,
        slots: 0,
        path: String::new(),
    };
    while !p.at_end() {
        p.path.clear();
        p.key(into, 0)?;
    }
    Ok(())
}

/// Parses one flag on its own (for tests and for checking one flag's keys).
pub fn parse(text: &str, mode: Mode) -> Result<Map<String, Value>, StrvalsError> {
    let mut map = Map::new();
    parse_into(text, &mut map, mode, &mut |_| Err("no files here".into()))?;
    Ok(map)
}

struct Parser<'r, 'a> {
    chars: Vec<char>,
    pos: usize,
    mode: Mode,
    reader: &'r mut FileReader<'a>,
    slots: usize,
    /// The key path so far, for error messages.
    path: String,
}

/// Where `until` stopped: at one of its stop characters, or at the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    At(char),
    End,
}

impl Parser<'_, '_> {
    fn at_end(&self) -> bool {
        self.pos >= self.chars.len()
    }

    fn fail<T>(&self, message: impl Into<String>) -> Result<T, StrvalsError> {
        Err(StrvalsError {
            message: message.into(),
            key_path: (!self.path.is_empty()).then(|| self.path.clone()),
        })
    }

    /// Characters up to one of `stop`, `\` taking the next one literally
    /// (helm's `runesUntil`). The stop character is consumed.
    fn until(&mut self, stop: &[char]) -> (String, Stop) {
        let mut out = String::new();
        while let Some(&c) = self.chars.get(self.pos) {
            self.pos += 1;
            if stop.contains(&c) {
                return (out, Stop::At(c));
            }
            if c == '\\' {
                match self.chars.get(self.pos) {
                    Some(&next) => {
                        out.push(next);
                        self.pos += 1;
                    }
                    None => return (out, Stop::End),
                }
            } else {
                out.push(c);
            }
        }
        (out, Stop::End)
    }

    fn push_path(&mut self, key: &str) {
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(key);
    }

    /// One assignment below `data`: `key=value`, `key.rest`, `key[i]…`.
    fn key(&mut self, data: &mut Map<String, Value>, level: usize) -> Result<(), StrvalsError> {
        let (key, stop) = self.until(&['=', '[', ',', '.']);
        self.push_path(&key);
        match stop {
            Stop::End if key.is_empty() => Ok(()),
            Stop::End => self.fail(format!("key `{}` has no value", self.path)),
            Stop::At(',') => self.fail(format!(
                "key `{}` has no value (cannot end with ,)",
                self.path
            )),
            Stop::At('=') => {
                let value = self.value()?;
                set(data, key, value);
                Ok(())
            }
            Stop::At('.') => {
                if level + 1 > MAX_NESTING {
                    return self.fail(format!(
                        "the key is nested more than {MAX_NESTING} levels deep"
                    ));
                }
                let mut inner = match data.get(&key) {
                    None | Some(Value::Null) => Map::new(),
                    Some(Value::Object(m)) => m.clone(),
                    Some(_) => {
                        return self.fail(format!(
                            "`{}` was given a value before and cannot also hold keys",
                            self.path
                        ));
                    }
                };
                self.key(&mut inner, level + 1)?;
                if inner.is_empty() {
                    return self.fail(format!("key map `{}` has no value", self.path));
                }
                set(data, key, Value::Object(inner));
                Ok(())
            }
            Stop::At('[') => {
                let index = self.index()?;
                let list = match data.get(&key) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(l)) => l.clone(),
                    Some(_) => {
                        return self.fail(format!(
                            "`{}` was given a value before and cannot also be a list",
                            self.path
                        ));
                    }
                };
                let list = self.list_item(list, index, level)?;
                set(data, key, Value::Array(list));
                Ok(())
            }
            Stop::At(c) => self.fail(format!("unexpected `{c}`")),
        }
    }

    /// The number inside `[…]`, the `[` already consumed.
    fn index(&mut self) -> Result<usize, StrvalsError> {
        let (text, stop) = self.until(&[']']);
        if stop == Stop::End {
            return self.fail("a list index has no closing `]`");
        }
        let index: i64 = match text.parse() {
            Ok(i) => i,
            Err(_) => return self.fail(format!("list index `{text}` is not a whole number")),
        };
        if index < 0 {
            return self.fail(format!("negative index {index} not allowed"));
        }
        if index > MAX_INDEX as i64 {
            return self.fail(format!(
                "index {index} is greater than the largest supported index, {MAX_INDEX}"
            ));
        }
        self.path.push_str(&format!("[{index}]"));
        Ok(index as usize)
    }

    /// What follows `name[i]`: `=value`, `[j]…` or `.key…`.
    fn list_item(
        &mut self,
        mut list: Vec<Value>,
        index: usize,
        level: usize,
    ) -> Result<Vec<Value>, StrvalsError> {
        let (rest, stop) = self.until(&['[', '.', '=']);
        if !rest.is_empty() {
            return self.fail(format!("unexpected `{rest}` after a list index"));
        }
        let value = match stop {
            Stop::End => return self.fail(format!("key `{}` has no value", self.path)),
            Stop::At('=') => self.value()?,
            Stop::At('[') => {
                let next = self.index()?;
                let inner = match list.get(index) {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(l)) => l.clone(),
                    Some(_) => {
                        return self.fail(format!(
                            "`{}` was given a value before and cannot also be a list",
                            self.path
                        ));
                    }
                };
                Value::Array(self.list_item(inner, next, level)?)
            }
            Stop::At('.') => {
                if level + 1 > MAX_NESTING {
                    return self.fail(format!(
                        "the key is nested more than {MAX_NESTING} levels deep"
                    ));
                }
                // helm starts afresh when the slot holds something else.
                let mut inner = match list.get(index) {
                    Some(Value::Object(m)) => m.clone(),
                    _ => Map::new(),
                };
                self.key(&mut inner, level + 1)?;
                Value::Object(inner)
            }
            Stop::At(c) => return self.fail(format!("unexpected `{c}`")),
        };
        if list.len() <= index {
            self.slots += index + 1 - list.len();
            if self.slots > MAX_LIST_SLOTS {
                return self.fail(format!(
                    "the lists would have more than {MAX_LIST_SLOTS} entries in all"
                ));
            }
            list.resize(index + 1, Value::Null);
        }
        list[index] = value;
        Ok(list)
    }

    /// The value after `=`: a `{…}` list or one scalar up to an unescaped `,`.
    fn value(&mut self) -> Result<Value, StrvalsError> {
        if self.chars.get(self.pos) == Some(&'{') {
            self.pos += 1;
            let mut items = Vec::new();
            loop {
                let (text, stop) = self.until(&[',', '}']);
                match stop {
                    Stop::End => return self.fail("a list value must end with `}`"),
                    Stop::At('}') => {
                        items.push(self.typed(text)?);
                        // A `,` after the list ends this assignment.
                        if self.chars.get(self.pos) == Some(&',') {
                            self.pos += 1;
                        }
                        return Ok(Value::Array(items));
                    }
                    Stop::At(_) => items.push(self.typed(text)?),
                }
            }
        }
        let (text, _) = self.until(&[',']);
        self.typed(text)
    }

    fn typed(&mut self, text: String) -> Result<Value, StrvalsError> {
        match self.mode {
            Mode::Typed => Ok(typed_value(text)),
            Mode::String => Ok(Value::String(text)),
            Mode::File => match (self.reader)(&text) {
                Ok(contents) => Ok(Value::String(contents)),
                Err(why) => self.fail(why),
            },
        }
    }
}

/// helm's `typedVal`: booleans and null in any case, integers that do not
/// start with `0` (except `0` itself); floats stay strings, as in helm.
pub fn typed_value(text: String) -> Value {
    if text.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    if text.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    if text == "0" {
        return Value::from(0);
    }
    if !text.starts_with('0')
        && let Ok(n) = text.parse::<i64>()
    {
        return Value::from(n);
    }
    Value::String(text)
}

/// helm's `set`: an empty key is dropped.
fn set(data: &mut Map<String, Value>, key: String, value: Value) {
    if !key.is_empty() {
        data.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed(text: &str) -> Value {
        Value::Object(parse(text, Mode::Typed).unwrap())
    }

    fn error(text: &str) -> String {
        parse(text, Mode::Typed).unwrap_err().message
    }

    // The cases below follow helm's own pkg/strvals/parser_test.go.
    #[test]
    fn scalars_are_typed_as_helm_types_them() {
        assert_eq!(typed("name=value"), json!({"name": "value"}));
        assert_eq!(
            typed("long_int_string=1234567890"),
            json!({"long_int_string": 1234567890})
        );
        assert_eq!(typed("boolean=true"), json!({"boolean": true}));
        assert_eq!(typed("b=FALSE"), json!({"b": false}));
        assert_eq!(typed("is_null=null"), json!({"is_null": null}));
        assert_eq!(typed("zero=0"), json!({"zero": 0}));
        assert_eq!(
            typed("leading_zeros=00009"),
            json!({"leading_zeros": "00009"})
        );
        assert_eq!(typed("neg=-5,plus=+5"), json!({"neg": -5, "plus": 5}));
        assert_eq!(typed("f=1.5,e=1e3"), json!({"f": "1.5", "e": "1e3"}));
        assert_eq!(
            typed("big=99999999999999999999"),
            json!({"big": "99999999999999999999"})
        );
        assert_eq!(typed("name="), json!({"name": ""}));
        assert_eq!(typed("name=,b=1"), json!({"name": "", "b": 1}));
        assert_eq!(typed("x=a=b"), json!({"x": "a=b"}));
        assert_eq!(typed(""), json!({}));
    }

    #[test]
    fn commas_separate_and_backslash_escapes() {
        assert_eq!(
            typed("name1=value1,name2=value2"),
            json!({"name1": "value1", "name2": "value2"})
        );
        assert_eq!(
            typed("name1=value1,name2=value2,"),
            json!({"name1": "value1", "name2": "value2"})
        );
        assert_eq!(
            typed(r"name1=one\,two,name2=three"),
            json!({"name1": "one,two", "name2": "three"})
        );
        assert_eq!(typed(r"a\.b=1"), json!({"a.b": 1}));
        assert_eq!(typed(r"a\=b=1"), json!({"a=b": 1}));
        assert_eq!(typed(r"path=C:\\dir"), json!({"path": r"C:\dir"}));
        // An escaped brace is no list: the unescaped comma ends the value.
        assert!(error(r"name=\{x,y\}").contains("`y}` has no value"));
        assert_eq!(typed(r"name=\{x\,y\}"), json!({"name": "{x,y}"}));
    }

    #[test]
    fn dots_nest_and_assignments_merge() {
        assert_eq!(
            typed("outer.inner=value"),
            json!({"outer": {"inner": "value"}})
        );
        assert_eq!(
            typed("outer.middle.inner=value,outer.middle.other=1"),
            json!({"outer": {"middle": {"inner": "value", "other": 1}}})
        );
        assert_eq!(typed("a=1,a=2"), json!({"a": 2}));
    }

    #[test]
    fn lists_by_index_and_by_literal() {
        assert_eq!(typed("list[0]=foo"), json!({"list": ["foo"]}));
        assert_eq!(
            typed("list[0]=foo,list[1]=bar"),
            json!({"list": ["foo", "bar"]})
        );
        assert_eq!(typed("list[1]=bar"), json!({"list": [null, "bar"]}));
        assert_eq!(
            typed("list[0].foo=bar,list[0].hello=world"),
            json!({"list": [{"foo": "bar", "hello": "world"}]})
        );
        assert_eq!(typed("a.b[1].c=y"), json!({"a": {"b": [null, {"c": "y"}]}}));
        assert_eq!(
            typed("nested[0][0]=1,nested[1][1]=2"),
            json!({"nested": [[1], [null, 2]]})
        );
        assert_eq!(typed("name={a,b,c}"), json!({"name": ["a", "b", "c"]}));
        assert_eq!(
            typed("name={1,true,x},b=2"),
            json!({"name": [1, true, "x"], "b": 2})
        );
        assert_eq!(typed("name={}"), json!({"name": [""]}));
        assert_eq!(typed("list[0]={a,b}"), json!({"list": [["a", "b"]]}));
    }

    #[test]
    fn set_string_keeps_strings_and_set_file_reads() {
        let s = parse("a=true,b=1,c=null,d={1,2}", Mode::String).unwrap();
        assert_eq!(
            Value::Object(s),
            json!({"a": "true", "b": "1", "c": "null", "d": ["1", "2"]})
        );
        let mut map = Map::new();
        let mut read = |p: &str| Ok(format!("contents of {p}"));
        parse_into("a.b=x.txt,c=y", &mut map, Mode::File, &mut read).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"a": {"b": "contents of x.txt"}, "c": "contents of y"})
        );
        let mut map = Map::new();
        let e = parse_into("a=x", &mut map, Mode::File, &mut |_| {
            Err("cannot read x".into())
        })
        .unwrap_err();
        assert_eq!(e.message, "cannot read x");
        assert_eq!(e.key_path.as_deref(), Some("a"));
    }

    #[test]
    fn later_flags_build_on_earlier_ones() {
        let mut map = Map::new();
        let mut none = |_: &str| Err(String::new());
        parse_into("list[0]=a", &mut map, Mode::Typed, &mut none).unwrap();
        parse_into("list[1]=b,m.x=1", &mut map, Mode::Typed, &mut none).unwrap();
        parse_into("m.y=2", &mut map, Mode::String, &mut none).unwrap();
        assert_eq!(
            Value::Object(map),
            json!({"list": ["a", "b"], "m": {"x": 1, "y": "2"}})
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        assert!(error("name").contains("has no value"));
        assert!(error("name,b=1").contains("cannot end with ,"));
        assert!(error("a.=1").contains("has no value"));
        assert!(error("a.b").contains("`a.b` has no value"));
        assert!(error("list[x]=1").contains("not a whole number"));
        assert!(error("list[-1]=1").contains("negative"));
        assert!(error("list[1").contains("closing"));
        assert!(error("list[0]x=1").contains("after a list index"));
        assert!(error("list[0]").contains("has no value"));
        assert!(error("name={a,b").contains("must end with"));
        assert!(error("a=1,a.b=2").contains("cannot also hold keys"));
        assert!(error("a=1,a[0]=2").contains("cannot also be a list"));
        let e = error(&format!("list[{}]=1", MAX_INDEX + 1));
        assert!(e.contains("largest supported index"), "{e}");
        assert!(parse(&format!("list[{MAX_INDEX}]=1"), Mode::Typed).is_ok());
        let deep = format!("{}=1", vec!["a"; MAX_NESTING + 2].join("."));
        assert!(error(&deep).contains("nested more than"));
        let many: Vec<String> = (0..20).map(|i| format!("l{i}[{MAX_INDEX}]=1")).collect();
        assert!(error(&many.join(",")).contains("entries in all"));
        assert!(parse(&"[".repeat(10_000), Mode::Typed).is_err());
        assert!(parse(&"\\".repeat(3), Mode::Typed).is_err());
    }

    #[test]
    fn errors_name_the_key_path_but_not_the_value() {
        let e = parse("a.b[2].c", Mode::Typed).unwrap_err();
        assert_eq!(e.key_path.as_deref(), Some("a.b[2].c"));
        let e = parse("a=hunter2,b", Mode::Typed).unwrap_err();
        assert!(!e.message.contains("hunter2"));
    }
}
