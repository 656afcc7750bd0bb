//! `biblio documents add FILE.json`: registering a client's document set as
//! trusted documents, from either manifest format the client tools write:
//! - Apollo's `generate-persisted-query-manifest`:
//!   `{"format": "apollo-persisted-query-manifest", "version": 1,
//!   "operations": [{"id", "name", "type", "body"}]}`, each id the SHA-256
//!   of its body;
//! - The Guild's (GraphQL Code Generator's client preset, Hive): a flat
//!   object `{"<id>": "<document>"}`, ids by default the SHA-256 too.
//!
//! Every document is checked before any is stored, and all are stored in
//! one transaction: an id that looks like a SHA-256 must be its body's; each
//! body must parse, stay within the default limits and pass the schema's
//! validation. A manifest with one bad document registers nothing.
use super::{looks_like_sha256, sha256_hex, DocumentId};
use crate::db::documents::{Added, NewDocument};
use crate::db::Db;
use crate::graphql::{build_schema, BiblioSchema, Documents, Limits};
use async_graphql::parser::types::DocumentOperations;
use serde::Deserialize;
use std::collections::HashMap;

/// The `format` of Apollo's manifests.
const APOLLO_FORMAT: &str = "apollo-persisted-query-manifest";

/// At most this many bad documents are named in an error.
const ERRORS_SHOWN: usize = 20;

/// Longest operation name stored (the column's width).
const MAX_NAME_LEN: usize = 200;

/// Which tool wrote a manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Apollo's `generate-persisted-query-manifest`.
    Apollo,
    /// The Guild's flat `{id: document}` object.
    Guild,
}

/// A manifest's documents, each id checked, duplicates removed.
#[derive(Debug)]
pub struct Manifest {
    pub format: Format,
    pub documents: Vec<NewDocument>,
}

#[derive(Deserialize)]
struct ApolloManifest {
    format: String,
    version: serde_json::Value,
    operations: Vec<ApolloOperation>,
}

#[derive(Deserialize)]
struct ApolloOperation {
    id: String,
    name: Option<String>,
    body: String,
}

/// Reads a manifest in either format and checks each id against its body.
/// Errors are messages for whoever runs the command.
pub fn parse(json: &str) -> Result<Manifest, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|err| format!("not JSON: {err}"))?;
    let serde_json::Value::Object(fields) = &value else {
        return Err(not_a_manifest());
    };
    let (format, entries) = if fields.contains_key("format") {
        let manifest: ApolloManifest = serde_json::from_value(value)
            .map_err(|err| format!("not an Apollo persisted query manifest: {err}"))?;
        if manifest.format != APOLLO_FORMAT {
            return Err(format!(
                "unknown manifest format {:?}; expected {APOLLO_FORMAT:?}",
                manifest.format.chars().take(60).collect::<String>()
            ));
        }
        if manifest.version != serde_json::json!(1) {
            return Err(format!(
                "Apollo manifest version {} is not supported; only version 1 is",
                manifest.version
            ));
        }
        let entries = manifest
            .operations
            .into_iter()
            .map(|operation| (operation.id, operation.body, operation.name))
            .collect::<Vec<_>>();
        (Format::Apollo, entries)
    } else {
        let map: HashMap<String, String> =
            serde_json::from_value(value).map_err(|_| not_a_manifest())?;
        let mut entries: Vec<_> = map.into_iter().map(|(id, body)| (id, body, None)).collect();
        // In file order would be nicer, but an order that does not depend
        // on the hasher is what matters for messages.
        entries.sort();
        (Format::Guild, entries)
    };

    let mut errors = Vec::new();
    let mut documents: Vec<NewDocument> = Vec::with_capacity(entries.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (id, body, name) in entries {
        let shown = shown(&id);
        let id = match DocumentId::parse(&id) {
            Ok(id) => id,
            Err(message) => {
                errors.push(format!("{shown}: {message}"));
                continue;
            }
        };
        if looks_like_sha256(id.as_str()) && sha256_hex(&body) != id.as_str() {
            errors.push(format!("{shown}: the id is not the SHA-256 of its body"));
            continue;
        }
        if name.as_ref().is_some_and(|name| name.len() > MAX_NAME_LEN) {
            errors.push(format!(
                "{shown}: the operation name is longer than {MAX_NAME_LEN} bytes"
            ));
            continue;
        }
        match seen.get(id.as_str()) {
            Some(&at) if documents[at].body == body => continue,
            Some(_) => {
                errors.push(format!("{shown}: listed twice with different bodies"));
                continue;
            }
            None => {}
        }
        seen.insert(id.as_str().to_owned(), documents.len());
        documents.push(NewDocument {
            hash: id.as_str().to_owned(),
            body,
            name,
        });
    }
    if !errors.is_empty() {
        return Err(listed(errors));
    }
    Ok(Manifest { format, documents })
}

fn not_a_manifest() -> String {
    format!(
        "not a manifest: expected Apollo's ({{\"format\": \"{APOLLO_FORMAT}\", ...}}) \
         or a JSON object of id to document"
    )
}

/// An id as an error message names it: ids are at most 128 characters,
/// but a bad one may be anything.
fn shown(id: &str) -> String {
    let short: String = id.chars().take(70).collect();
    format!("document {short:?}")
}

fn listed(errors: Vec<String>) -> String {
    let more = errors.len().saturating_sub(ERRORS_SHOWN);
    let mut message = errors
        .into_iter()
        .take(ERRORS_SHOWN)
        .collect::<Vec<_>>()
        .join("\n  ");
    if more > 0 {
        message.push_str(&format!("\n  and {more} more"));
    }
    format!("nothing was registered:\n  {message}")
}

/// Whether `body` would run: it parses, stays within `documents`' limits,
/// and each of its operations passes the schema's validation (complexity
/// included). Nothing is executed: the check runs in async-graphql's
/// introspection-only mode, where no resolver of ours is called.
pub async fn validate(
    schema: &BiblioSchema,
    documents: &Documents,
    body: &str,
) -> Result<(), String> {
    let document = documents.get(body).map_err(|error| error.message)?;
    let operations: Vec<Option<String>> = match &document.operations {
        DocumentOperations::Single(_) => vec![None],
        DocumentOperations::Multiple(operations) => operations
            .keys()
            .map(|name| Some(name.to_string()))
            .collect(),
    };
    for operation in operations {
        let mut request = async_graphql::Request::new(body).only_introspection();
        if let Some(name) = &operation {
            request = request.operation_name(name);
        }
        let response = schema.execute(request).await;
        if let Some(error) = response.errors.first() {
            let at = error
                .locations
                .first()
                .map(|pos| format!(" (line {}, column {})", pos.line, pos.column))
                .unwrap_or_default();
            return Err(format!("{}{at}", error.message));
        }
    }
    Ok(())
}

/// What `biblio documents add` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub format: Format,
    pub added: usize,
    pub present: usize,
}

/// Registers the manifest `json` in `db`: parsed, every document checked
/// against the default limits and the schema, then all stored at once.
pub async fn add(db: &Db, json: &str) -> Result<Report, crate::error::BoxError> {
    let manifest = parse(json)?;
    let limits = Limits::default();
    let schema = build_schema(limits);
    let documents = Documents::new(crate::config::budgets::PARSED_DOCUMENTS, limits);
    let mut errors = Vec::new();
    for document in &manifest.documents {
        if let Err(message) = validate(&schema, &documents, &document.body).await {
            errors.push(format!("{}: {message}", shown(&document.hash)));
        }
    }
    if !errors.is_empty() {
        return Err(listed(errors).into());
    }
    let Added { added, present } = crate::db::documents::add(db, &manifest.documents).await?;
    Ok(Report {
        format: manifest.format,
        added,
        present,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKS: &str = "query Books { books(page: 1, pageSize: 5) { totalCount } }";

    #[test]
    fn both_formats_are_read() {
        let apollo = serde_json::json!({
            "format": APOLLO_FORMAT, "version": 1,
            "operations": [{ "id": sha256_hex(BOOKS), "name": "Books", "type": "query", "body": BOOKS }]
        });
        let manifest = parse(&apollo.to_string()).unwrap();
        assert_eq!(manifest.format, Format::Apollo);
        assert_eq!(manifest.documents[0].name.as_deref(), Some("Books"));

        let guild = serde_json::json!({ sha256_hex(BOOKS): BOOKS, "opaque-id-1": "{ me { id } }" });
        let manifest = parse(&guild.to_string()).unwrap();
        assert_eq!(manifest.format, Format::Guild);
        assert_eq!(manifest.documents.len(), 2);
    }

    #[test]
    fn an_id_that_looks_like_a_sha256_must_be_its_bodys() {
        let guild = serde_json::json!({ sha256_hex("{ me { id } }"): BOOKS });
        let error = parse(&guild.to_string()).unwrap_err();
        assert!(error.contains("not the SHA-256"), "{error}");
    }

    #[test]
    fn what_is_not_a_manifest_is_named() {
        for json in [
            "[]",
            "{\"a\": 1}",
            "{\"format\": \"other\", \"version\": 1, \"operations\": []}",
            "{\"format\": \"apollo-persisted-query-manifest\", \"version\": 2, \"operations\": []}",
            "nope",
        ] {
            assert!(parse(json).is_err(), "{json}");
        }
    }

    #[tokio::test]
    async fn validation_runs_no_resolver_and_names_what_the_schema_refuses() {
        let schema = build_schema(Limits::default());
        let documents = Documents::new(1 << 20, Limits::default());
        validate(&schema, &documents, BOOKS).await.unwrap();
        // A mutation with a required variable passes without running.
        validate(
            &schema,
            &documents,
            "mutation Del($id: ID!) { deleteBook(id: $id) }",
        )
        .await
        .unwrap();
        let error = validate(&schema, &documents, "{ nope }").await.unwrap_err();
        assert!(error.contains("nope"), "{error}");
        assert!(validate(&schema, &documents, "{ books").await.is_err());
    }
}
