//! `--filter '<jq>'`: a jq program (jaq) applied to each response or each paged item.

use jaq_core::{Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

/// A compiled jq program.
pub struct Filter {
    filter: opskit_monitor::condition::JqFilter,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Filter")
    }
}

impl Filter {
    /// Compiles `code`; the error says where the program is wrong.
    pub fn new(code: &str) -> Result<Self, String> {
        let filter = opskit_monitor::condition::compile_jq(code, "--filter")?;
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
