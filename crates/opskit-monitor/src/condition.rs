//! Conditions: jq expressions (jaq) over a check's result object; a condition holds when its
//! first output is `true`.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

/// A compiled condition.
pub struct Condition {
    text: String,
    filter: Arc<JqFilter>,
}

/// Compiled conditions by their text, shared while some monitor uses them: compiling carries
/// jaq's whole standard library, so 10,000 monitors that all say `.status == 200` compile it
/// once and hold one copy (a reload reuses what the old configuration compiled).
static COMPILED: Mutex<Option<HashMap<String, Weak<JqFilter>>>> = Mutex::new(None);

fn compile_shared(code: &str) -> Result<Arc<JqFilter>, String> {
    let cached = |map: &HashMap<String, Weak<JqFilter>>| map.get(code).and_then(Weak::upgrade);
    if let Ok(guard) = COMPILED.lock()
        && let Some(f) = guard.as_ref().and_then(cached)
    {
        return Ok(f);
    }
    let filter = Arc::new(compile_jq(code, "condition")?);
    if let Ok(mut guard) = COMPILED.lock() {
        let map = guard.get_or_insert_with(HashMap::new);
        // forget the texts no configuration uses any more, now and then
        if map.len() >= 1024 && map.len().is_power_of_two() {
            map.retain(|_, f| f.strong_count() > 0);
        }
        map.insert(code.to_string(), Arc::downgrade(&filter));
    }
    Ok(filter)
}

impl std::fmt::Debug for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Condition({:?})", self.text)
    }
}

/// Why a condition did not hold.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    Holds,
    /// It yielded something other than `true` (shown).
    False(Value),
    /// It failed to run (e.g. `.body.status` on a string body).
    Error(String),
}

impl Condition {
    /// Compiles `code`; the error says where it is wrong.
    ///
    /// ```
    /// use opskit_monitor::condition::{Condition, Verdict};
    /// let c = Condition::new(".status == 200 and .response_time_ms < 300").unwrap();
    /// assert_eq!(c.eval(&serde_json::json!({"status": 200, "response_time_ms": 12})), Verdict::Holds);
    /// assert!(Condition::new(".status ==").is_err());
    /// ```
    pub fn new(code: &str) -> Result<Self, String> {
        if code.trim().is_empty() {
            return Err("the condition is empty".into());
        }
        let filter = compile_shared(code)?;
        Ok(Self {
            text: code.to_string(),
            filter,
        })
    }

    /// The condition as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Evaluates against a result object.
    pub fn eval(&self, input: &Value) -> Verdict {
        let text = input.to_string();
        let val = match jaq_json::read::parse_single(text.as_bytes()) {
            Ok(v) => v,
            Err(e) => return Verdict::Error(format!("cannot read the result: {e}")),
        };
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let first = self.filter.id.run((ctx, val)).map(unwrap_valr).next();
        match first {
            None => Verdict::False(Value::Null),
            Some(Err(e)) => Verdict::Error(e.to_string()),
            Some(Ok(v)) => {
                let text = v.to_string();
                let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
                if v == Value::Bool(true) {
                    Verdict::Holds
                } else {
                    Verdict::False(v)
                }
            }
        }
    }
}

/// A compiled jq program (jaq) over JSON values.
pub type JqFilter = jaq_core::Filter<data::JustLut<Val>>;

/// Compiles a jq program with jaq's core, std and JSON definitions; an error names `what` the
/// program is (`condition`, `--filter`), where it is wrong, or the undefined names it uses. The
/// one jq compiler of opskit: monitor conditions and `opskit http --filter` both use it.
pub fn compile_jq(code: &str, what: &str) -> Result<JqFilter, String> {
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File { code, path: () };
    let modules = loader.load(&arena, program).map_err(|errs| {
        let mut msgs = Vec::new();
        for (_, e) in errs {
            match e {
                jaq_core::load::Error::Io(v) => msgs.extend(v.into_iter().map(|(_, m)| m)),
                jaq_core::load::Error::Lex(v) => msgs.extend(
                    v.into_iter()
                        .map(|(exp, at)| format!("expected {} at `{}`", exp.as_str(), cut(at))),
                ),
                jaq_core::load::Error::Parse(v) => msgs.extend(
                    v.into_iter()
                        .map(|(exp, at)| format!("expected {} at `{}`", exp.as_str(), cut(at))),
                ),
            }
        }
        format!("bad {what} `{code}`: {}", msgs.join("; "))
    })?;
    Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errs| {
            let names: Vec<String> = errs
                .into_iter()
                .flat_map(|(_, v)| v.into_iter().map(|(name, _)| format!("`{name}`")))
                .collect();
            format!("bad {what} `{code}`: undefined {}", names.join(", "))
        })
}

fn cut(s: &str) -> String {
    s.chars().take(20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_hold_fail_and_error() {
        let r = json!({"status": 503, "body": {"status": "DOWN"}, "response_time_ms": 40.5});
        assert_eq!(
            Condition::new(".status == 200").unwrap().eval(&r),
            Verdict::False(json!(false))
        );
        assert_eq!(
            Condition::new(".response_time_ms < 300").unwrap().eval(&r),
            Verdict::Holds
        );
        assert_eq!(
            Condition::new(".body.status == \"UP\"").unwrap().eval(&r),
            Verdict::False(json!(false))
        );
        assert!(matches!(
            Condition::new(".body.x.y + 1")
                .unwrap()
                .eval(&json!({"body": "text"})),
            Verdict::Error(_)
        ));
        assert_eq!(
            Condition::new(".status").unwrap().eval(&r),
            Verdict::False(json!(503))
        );
        assert!(
            Condition::new(".a | nosuch")
                .unwrap_err()
                .contains("nosuch")
        );
    }

    #[test]
    fn is_send_and_sync() {
        fn both<T: Send + Sync>() {}
        both::<Condition>();
    }
}
