//! Read operations, by feature.
mod account;
mod catalogue;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct Query(catalogue::CatalogueQuery, account::AccountQuery);
