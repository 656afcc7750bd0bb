//! The key of a kept answer: a query told apart from others by everything
//! that makes its answer differ (the text, the operation name, the
//! variables in a canonical form). Who asks is added by the store, for
//! answers that depend on it.
use async_graphql::{Name, Value, Variables};
use std::fmt::Write as _;
use std::sync::Arc;

/// A query as the tier tells it apart from others.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    query: Box<str>,
    name: Option<Box<str>>,
    /// Canonical JSON: object keys sorted at every depth.
    variables: Box<str>,
}

impl Operation {
    pub fn new(query: &str, name: Option<&str>, variables: &Variables) -> Arc<Self> {
        let mut canonical = String::new();
        write_object(&mut canonical, variables.iter());
        Arc::new(Self {
            query: query.into(),
            name: name.map(Into::into),
            variables: canonical.into_boxed_str(),
        })
    }

    pub(super) fn weight(&self) -> usize {
        self.query.len() + self.name.as_ref().map_or(0, |name| name.len()) + self.variables.len()
    }
}

fn write_object<'a>(out: &mut String, fields: impl Iterator<Item = (&'a Name, &'a Value)>) {
    let mut fields: Vec<_> = fields.collect();
    fields.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    out.push('{');
    for (i, (name, value)) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{:?}:", name.as_str());
        write_value(out, value);
    }
    out.push('}');
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Object(fields) => write_object(out, fields.iter()),
        Value::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item);
            }
            out.push(']');
        }
        // Scalars and enums: their JSON is already one canonical form.
        other => out.push_str(&serde_json::to_string(other).unwrap_or_default()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn variables(json: serde_json::Value) -> Variables {
        Variables::from_json(json)
    }

    #[test]
    fn variables_in_any_key_order_name_one_operation() {
        let a = Operation::new(
            "q",
            None,
            &variables(serde_json::json!({"b": {"y": 1, "x": [2, {"d": 3, "c": 4}]}, "a": "s"})),
        );
        let b = Operation::new(
            "q",
            None,
            &variables(serde_json::json!({"a": "s", "b": {"x": [2, {"c": 4, "d": 3}], "y": 1}})),
        );
        assert_eq!(a, b);
        assert_eq!(
            &*a.variables,
            r#"{"a":"s","b":{"x":[2,{"c":4,"d":3}],"y":1}}"#
        );
    }

    #[test]
    fn every_part_of_an_operation_tells_it_apart() {
        let base = || Operation::new("q", Some("A"), &variables(serde_json::json!({"id": "1"})));
        let others = [
            Operation::new("q2", Some("A"), &variables(serde_json::json!({"id": "1"}))),
            Operation::new("q", Some("B"), &variables(serde_json::json!({"id": "1"}))),
            Operation::new("q", None, &variables(serde_json::json!({"id": "1"}))),
            Operation::new("q", Some("A"), &variables(serde_json::json!({"id": "2"}))),
            Operation::new("q", Some("A"), &variables(serde_json::json!({"id": 1}))),
            Operation::new("q", Some("A"), &variables(serde_json::json!({}))),
        ];
        for other in others {
            assert_ne!(base(), other);
        }
        assert_eq!(base(), base());
    }
}
