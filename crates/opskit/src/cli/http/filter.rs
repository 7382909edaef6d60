//! `--filter '<jq>'`: a jq program (jaq) applied to each response or each paged item.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

/// A compiled jq program.
pub struct Filter {
    filter: jaq_core::Filter<data::JustLut<Val>>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter")
    }
}

impl Filter {
    /// Compiles `code`; the error says where the program is wrong.
    pub fn new(code: &str) -> Result<Self, String> {
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
                    jaq_core::load::Error::Io(v) => {
                        msgs.extend(v.into_iter().map(|(_, m)| m));
                    }
                    jaq_core::load::Error::Lex(v) => msgs
                        .extend(v.into_iter().map(|(exp, at)| {
                            format!("expected {} at `{}`", exp.as_str(), cut(at))
                        })),
                    jaq_core::load::Error::Parse(v) => msgs
                        .extend(v.into_iter().map(|(exp, at)| {
                            format!("expected {} at `{}`", exp.as_str(), cut(at))
                        })),
                }
            }
            format!("bad --filter `{code}`: {}", msgs.join("; "))
        })?;
        let filter = Compiler::default()
            .with_funs(funs)
            .compile(modules)
            .map_err(|errs| {
                let names: Vec<String> = errs
                    .into_iter()
                    .flat_map(|(_, v)| v.into_iter().map(|(name, _)| format!("`{name}`")))
                    .collect();
                format!("bad --filter `{code}`: undefined {}", names.join(", "))
            })?;
        Ok(Filter { filter })
    }

    /// Runs the program on one value; a program may yield any number of values.
    pub fn run(&self, input: &Value) -> Result<Vec<Value>, String> {
        let text = input.to_string();
        let val = jaq_json::read::parse_single(text.as_bytes())
            .map_err(|e| format!("cannot hand the response to the filter: {e}"))?;
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new([]));
        let mut out = Vec::new();
        for v in self.filter.id.run((ctx, val)).map(unwrap_valr) {
            let v = v.map_err(|e| format!("--filter failed: {e}"))?;
            let text = v.to_string();
            out.push(serde_json::from_str(&text).unwrap_or(Value::String(text)));
        }
        Ok(out)
    }
}

fn cut(s: &str) -> String {
    s.chars().take(20).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_and_builds() {
        let f = Filter::new(".items[] | select(.up) | {name, port: .net.port}").unwrap();
        let input = json!({"items": [
            {"name": "a", "up": true, "net": {"port": 22}},
            {"name": "b", "up": false, "net": {"port": 80}}
        ]});
        assert_eq!(
            f.run(&input).unwrap(),
            vec![json!({"name": "a", "port": 22})]
        );
        let f = Filter::new("[.[] | .x] | length").unwrap();
        assert_eq!(f.run(&json!([{"x": 1}, {"x": 2}])).unwrap(), vec![json!(2)]);
    }

    #[test]
    fn bad_programs_are_explained() {
        let e = Filter::new(".a | nosuchfn").unwrap_err();
        assert!(e.contains("nosuchfn"), "{e}");
        assert!(Filter::new(".a[").unwrap_err().contains("bad --filter"));
        let f = Filter::new(".a + 1").unwrap();
        assert!(f.run(&json!({"a": "x"})).is_err());
    }
}
