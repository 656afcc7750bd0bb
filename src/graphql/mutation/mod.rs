//! Write operations, by feature. Each validates its input completely before
//! it writes, so a rejected mutation changes nothing.
//!
//! The root fields of a mutation run one after another and each commits on
//! its own, so one that fails must not hide those that committed before it.
//! Every root field is therefore nullable, and [`Mutation`] answers a failed
//! one as `null` next to its error (path `["b"]`), as the GraphQL
//! specification asks of a nullable field, rather than leaving it out. A
//! field that panics is answered the same way, as `INTERNAL`: otherwise the
//! panic would replace the whole response, data committed before it too.
mod borrowing;
mod cataloguing;
mod sign_in;

use async_graphql::parser::types::Field;
use async_graphql::registry::Registry;
use async_graphql::{
    ContainerType, Context, ContextSelectionSet, MergedObject, ObjectType, OutputType, Positioned,
    ServerResult, Value,
};
use futures_util::FutureExt;
use std::borrow::Cow;
use std::panic::AssertUnwindSafe;

/// Writes. The fields of one mutation run in order and each commits on its
/// own: one that fails is null, with its error, and those before it stay
/// committed.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct Fields(
    sign_in::SignInMutation,
    cataloguing::CataloguingMutation,
    borrowing::BorrowingMutation,
);

/// The mutation root: [`Fields`], with each failed field answered as `null`
/// beside its error instead of being dropped from `data`.
#[derive(Default)]
pub struct Mutation(Fields);

impl OutputType for Mutation {
    fn type_name() -> Cow<'static, str> {
        Fields::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        Fields::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        _field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        async_graphql::resolver_utils::resolve_container_serial(ctx, self).await
    }
}

impl ContainerType for Mutation {
    async fn resolve_field(&self, ctx: &Context<'_>) -> ServerResult<Option<Value>> {
        match AssertUnwindSafe(self.0.resolve_field(ctx))
            .catch_unwind()
            .await
        {
            Ok(Ok(answered)) => Ok(answered),
            // The error already carries the field's path.
            Ok(Err(error)) => {
                ctx.add_error(error);
                Ok(Some(Value::Null))
            }
            Err(panic) => {
                let error = super::execute::internal_error(&*panic, Some(ctx.item.pos));
                ctx.add_error(ctx.set_error_path(error));
                Ok(Some(Value::Null))
            }
        }
    }
}

impl ObjectType for Mutation {}
