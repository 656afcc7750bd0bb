//! Write operations, by feature. Each validates its input completely before
//! it writes, so a rejected mutation changes nothing.
mod account;
mod borrowing;
mod catalogue;

use async_graphql::MergedObject;

#[derive(MergedObject, Default)]
pub struct Mutation(
    account::AccountMutation,
    catalogue::CatalogueMutation,
    borrowing::BorrowingMutation,
);
