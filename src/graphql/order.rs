//! Response fields in the order the query selected them, as the GraphQL
//! specification requires (CollectFields; "Serialized Map Ordering").
//!
//! async-graphql 7.1 and later collect an object's fields in the order
//! they *finish* (`do_resolve_container` drains a `FuturesUnordered`;
//! upstream #1746, reverted only in 8.0.0-rc.3 by #1806). A field that
//! waits on a DataLoader, as `author` and `category` do on a cold cache,
//! therefore lands after fields that were ready at once, and which of two
//! waiting fields comes first depends on which batch returns first. This
//! puts each object's keys back in selection order after execution.
//!
//! The walk visits each response value once and collects each selection
//! set once per level (a list's items share it); an object whose keys are
//! already in order is left as it is. Fragment type conditions are not
//! checked: the schema has no interfaces or unions, so validation only
//! admits fragments on the object's own type.
use async_graphql::parser::types::{
    Directive, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, Value, Variables};
use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};

/// Reorders every object in `data` as the operation selected its fields.
pub fn restore(
    data: &mut Value,
    document: &ExecutableDocument,
    operation_name: Option<&str>,
    variables: &Variables,
) {
    let Some(operation) = super::operation::selected_operation(document, operation_name) else {
        return;
    };
    let operation = &operation.node;
    let walk = Walk {
        document,
        operation,
        variables,
    };
    walk.plain_or_collected(data, &operation.selection_set.node);
}

/// A selection set of fields only, with no fragments and no directives:
/// its response keys are its fields' in order (a repeated key merges into
/// its first place), so an object can be checked against it in one pass
/// with no allocation. This is what almost every request selects.
fn is_plain(set: &SelectionSet) -> bool {
    set.items.iter().all(|selection| match &selection.node {
        Selection::Field(field) => field.node.directives.is_empty(),
        _ => false,
    })
}

struct Walk<'a> {
    document: &'a ExecutableDocument,
    operation: &'a OperationDefinition,
    variables: &'a Variables,
}

/// The response keys of a selection, in order, each with the selection
/// sets of every field that answers to it (fields with the same key
/// merge). Indexed, so that a wide selection costs no more per object than
/// a narrow one; a key's own selection is collected once, on first use,
/// and shared by every object of a list.
#[derive(Default)]
struct Collected<'a> {
    keys: Vec<Key<'a>>,
    position: HashMap<&'a Name, usize, foldhash::fast::RandomState>,
}

struct Key<'a> {
    name: &'a Name,
    selection_sets: Vec<&'a SelectionSet>,
    collected: OnceCell<Collected<'a>>,
}

impl<'a> Collected<'a> {
    fn add(&mut self, name: &'a Name, children: Option<&'a SelectionSet>) {
        match self.position.get(name) {
            Some(&at) => self.keys[at].selection_sets.extend(children),
            None => {
                self.position.insert(name, self.keys.len());
                self.keys.push(Key {
                    name,
                    selection_sets: children.into_iter().collect(),
                    collected: OnceCell::new(),
                });
            }
        }
    }

    /// Where `name` goes; a key the selection does not name goes last.
    fn position(&self, name: &Name) -> usize {
        self.position.get(name).copied().unwrap_or(usize::MAX)
    }

    /// Whether `names` come in selection order: one pass in step with the
    /// selection, comparing names, which is all an object already in order
    /// (the common case) costs.
    fn in_order<'n>(&self, names: impl Iterator<Item = &'n Name>) -> bool {
        let mut keys = self.keys.iter();
        names
            .into_iter()
            .all(|name| keys.any(|key| key.name == name))
    }
}

impl<'a> Walk<'a> {
    /// One value of `set`: on the fast path while the selections are plain
    /// and the objects already in order (the common case, a warm cache), on
    /// [`Self::item`] otherwise.
    fn plain_or_collected(&self, value: &mut Value, set: &'a SelectionSet) {
        if !is_plain(set) || !self.plain_item(value, set) {
            let fields = self.collect(&[set]);
            self.item(value, &fields);
        }
    }

    /// Checks one value against a plain `set` and descends; `false` as soon
    /// as an object is out of order (nothing has been changed up to there,
    /// and the caller starts again on the slow path).
    fn plain_item(&self, value: &mut Value, set: &'a SelectionSet) -> bool {
        match value {
            Value::List(items) => items.iter_mut().all(|item| self.plain_item(item, set)),
            Value::Object(object) => {
                let mut fields = set
                    .items
                    .iter()
                    .filter_map(|selection| match &selection.node {
                        Selection::Field(field) => Some(&field.node),
                        _ => None,
                    });
                // In step with the selection; a child already walked when a
                // later key turns out of order is walked again on the slow
                // path, which is idempotent.
                object.iter_mut().all(|(name, child)| {
                    let Some(field) = fields.find(|field| field.response_key().node == *name)
                    else {
                        return false;
                    };
                    let children = &field.selection_set.node;
                    if children.items.is_empty()
                        || !matches!(child, Value::List(_) | Value::Object(_))
                    {
                        true
                    } else if is_plain(children) {
                        self.plain_item(child, children)
                    } else {
                        self.plain_or_collected(child, children);
                        true
                    }
                })
            }
            _ => true,
        }
    }

    /// One value (an object, or a list of them at any depth) of a
    /// selection whose fields are collected.
    fn item(&self, value: &mut Value, fields: &Collected<'a>) {
        match value {
            Value::List(items) => {
                for item in items {
                    self.item(item, fields);
                }
            }
            Value::Object(object) => {
                if !fields.in_order(object.keys()) {
                    object.sort_by_cached_key(|key, _| fields.position(key));
                }
                // Now in step with the selection: each key is found from
                // where the one before it was.
                let mut keys = fields.keys.iter();
                for (name, child) in object.iter_mut() {
                    let Some(key) = keys.find(|key| key.name == name) else {
                        break;
                    };
                    if !key.selection_sets.is_empty()
                        && matches!(child, Value::List(_) | Value::Object(_))
                    {
                        let collected = key
                            .collected
                            .get_or_init(|| self.collect(&key.selection_sets));
                        self.item(child, collected);
                    }
                }
            }
            _ => {}
        }
    }

    /// CollectFields: the response keys in the order they are first
    /// selected, each fragment spread once, skipped selections left out.
    fn collect(&self, selection_sets: &[&'a SelectionSet]) -> Collected<'a> {
        let mut fields = Collected::default();
        let mut visited = HashSet::new();
        for set in selection_sets {
            self.collect_into(set, &mut fields, &mut visited);
        }
        fields
    }

    fn collect_into(
        &self,
        set: &'a SelectionSet,
        fields: &mut Collected<'a>,
        visited: &mut HashSet<&'a Name>,
    ) {
        for selection in &set.items {
            if !self.included(selection.node.directives()) {
                continue;
            }
            match &selection.node {
                Selection::Field(field) => {
                    let field = &field.node;
                    let key = &field.response_key().node;
                    let children = &field.selection_set.node;
                    fields.add(key, (!children.items.is_empty()).then_some(children));
                }
                Selection::FragmentSpread(spread) => {
                    let name = &spread.node.fragment_name.node;
                    if visited.insert(name) {
                        if let Some(fragment) = self.document.fragments.get(name) {
                            self.collect_into(&fragment.node.selection_set.node, fields, visited);
                        }
                    }
                }
                Selection::InlineFragment(inline) => {
                    self.collect_into(&inline.node.selection_set.node, fields, visited);
                }
            }
        }
    }

    /// `@skip(if:)` and `@include(if:)`, with the request's variables and
    /// the operation's defaults.
    fn included(&self, directives: &[Positioned<Directive>]) -> bool {
        directives.iter().all(|directive| {
            let directive = &directive.node;
            let condition = || {
                let argument = &directive.get_argument("if")?.node;
                let value = match argument
                    .clone()
                    .into_const_with(|name| self.variable(&name).ok_or(()))
                {
                    Ok(value) => value,
                    Err(()) => return None,
                };
                match value {
                    Value::Boolean(condition) => Some(condition),
                    _ => None,
                }
            };
            match directive.name.node.as_str() {
                "skip" => condition() != Some(true),
                "include" => condition() != Some(false),
                _ => true,
            }
        })
    }

    fn variable(&self, name: &Name) -> Option<Value> {
        self.variables.get(name).cloned().or_else(|| {
            self.operation
                .variable_definitions
                .iter()
                .find(|definition| definition.node.name.node == *name)
                .and_then(|definition| definition.node.default_value().cloned())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;

    fn keys(value: &Value) -> Vec<String> {
        match value {
            Value::Object(object) => object.keys().map(|key| key.to_string()).collect(),
            _ => panic!("not an object: {value}"),
        }
    }

    /// `data` is JSON text, so that its keys keep the order written here.
    fn restored(query: &str, data: &str, variables: serde_json::Value) -> Value {
        let document = parse_query(query).unwrap();
        let mut data: Value = serde_json::from_str(data).unwrap();
        let variables = Variables::from_json(variables);
        restore(&mut data, &document, None, &variables);
        data
    }

    fn field<'v>(value: &'v Value, key: &str) -> &'v Value {
        match value {
            Value::Object(object) => &object[key],
            _ => panic!("not an object: {value}"),
        }
    }

    #[test]
    fn a_single_named_operation_is_restored_without_its_name() {
        let document = parse_query("query Q { b a }").unwrap();
        let mut data: Value = serde_json::from_str(r#"{ "a": 1, "b": 2 }"#).unwrap();
        restore(&mut data, &document, None, &Variables::default());
        assert_eq!(keys(&data), ["b", "a"]);
    }

    #[test]
    fn objects_and_list_items_follow_the_selection_set() {
        let data = restored(
            "{ books { items { id author { name id } title } } stats: statistics { total } }",
            r#"{
                "stats": { "total": 1 },
                "books": { "items": [
                    { "title": "A", "author": { "id": "1", "name": "N" }, "id": "x" },
                    { "author": { "name": "N", "id": "1" }, "id": "y", "title": "B" }
                ] }
            }"#,
            serde_json::json!({}),
        );
        assert_eq!(keys(&data), ["books", "stats"]);
        let Value::List(items) = field(field(&data, "books"), "items") else {
            panic!("items is a list")
        };
        for item in items {
            assert_eq!(keys(item), ["id", "author", "title"]);
            assert_eq!(keys(field(item, "author")), ["name", "id"]);
        }
    }

    #[test]
    fn fragments_merged_fields_and_skipped_fields_take_their_first_included_place() {
        let data = restored(
            "query($no: Boolean = true, $yes: Boolean!) {
                a @skip(if: $no) ...F b c: a @include(if: $yes) ... { d a }
            }
            fragment F on Query { e b }",
            r#"{ "d": 4, "c": 3, "a": 1, "b": 2, "e": 5 }"#,
            serde_json::json!({ "yes": true }),
        );
        assert_eq!(keys(&data), ["e", "b", "c", "d", "a"]);
    }
}
