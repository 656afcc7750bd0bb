//! Input types, and their conversion into validated domain values.
use crate::db::books::{BookChanges, Filter, NewBook};
use crate::domain::{optional_multiline_text, parse_id, required_text, Isbn, Money};
use crate::error::{Error, Result};
use async_graphql::{InputObject, MaybeUndefined, ID};
use rust_decimal::Decimal;

pub const MAX_NAME_CHARS: usize = 200;
pub const MAX_TITLE_CHARS: usize = 500;
pub const MAX_BIO_CHARS: usize = 10_000;
pub const MAX_COPIES: i32 = 10_000;

#[derive(InputObject)]
pub struct RegisterInput {
    pub email: String,
    pub name: String,
    /// At least 8 characters.
    pub password: String,
}

#[derive(InputObject)]
pub struct CreateAuthorInput {
    pub name: String,
    pub bio: Option<String>,
}

/// Omitted fields stay as they are; `bio: null` clears the bio.
#[derive(InputObject)]
pub struct UpdateAuthorInput {
    pub name: Option<String>,
    pub bio: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct CreateCategoryInput {
    pub name: String,
}

#[derive(InputObject)]
pub struct UpdateCategoryInput {
    pub name: Option<String>,
}

#[derive(InputObject)]
pub struct CreateBookInput {
    pub title: String,
    /// ISBN-13; hyphens and spaces are ignored.
    pub isbn: String,
    /// Non-negative, at most two decimal places.
    pub price: Decimal,
    pub published_year: Option<i32>,
    /// Copies the library owns; 1 when omitted.
    pub copies_total: Option<i32>,
    pub author_id: ID,
    pub category_id: ID,
}

/// Every field is optional; omitted fields stay as they are.
/// `publishedYear: null` clears the year.
#[derive(InputObject)]
pub struct UpdateBookInput {
    pub title: Option<String>,
    pub isbn: Option<String>,
    pub price: Option<Decimal>,
    pub published_year: MaybeUndefined<i32>,
    /// Cannot go below the number of copies on loan.
    pub copies_total: Option<i32>,
    pub author_id: Option<ID>,
    pub category_id: Option<ID>,
}

#[derive(InputObject, Default)]
pub struct BookFilter {
    pub author_id: Option<ID>,
    pub category_id: Option<ID>,
    /// Inclusive.
    pub min_price: Option<Decimal>,
    /// Inclusive.
    pub max_price: Option<Decimal>,
    /// Inclusive.
    pub published_from: Option<i32>,
    /// Inclusive.
    pub published_to: Option<i32>,
    /// Only books with (true) or without (false) a free copy.
    pub available: Option<bool>,
}

fn optional_id(id: Option<ID>, field: &str) -> Result<Option<uuid::Uuid>> {
    id.map(|id| parse_id(&id, field)).transpose()
}

fn published_year(year: i32) -> Result<i32> {
    let max = chrono::Datelike::year(&chrono::Utc::now()) + 1;
    if !(0..=max).contains(&year) {
        return Err(Error::bad_input(format!(
            "publishedYear must be between 0 and {max}"
        )));
    }
    Ok(year)
}

fn copies(copies: i32) -> Result<i32> {
    if !(0..=MAX_COPIES).contains(&copies) {
        return Err(Error::bad_input(format!(
            "copiesTotal must be between 0 and {MAX_COPIES}"
        )));
    }
    Ok(copies)
}

impl CreateAuthorInput {
    pub fn validate(self) -> Result<(String, Option<String>)> {
        Ok((
            required_text(&self.name, "name", MAX_NAME_CHARS)?,
            optional_multiline_text(self.bio.as_deref(), "bio", MAX_BIO_CHARS)?,
        ))
    }
}

impl UpdateAuthorInput {
    pub fn validate(self) -> Result<(Option<String>, Option<Option<String>>)> {
        let name = self
            .name
            .map(|name| required_text(&name, "name", MAX_NAME_CHARS))
            .transpose()?;
        let bio = match self.bio {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(bio) => {
                Some(optional_multiline_text(Some(&bio), "bio", MAX_BIO_CHARS)?)
            }
        };
        Ok((name, bio))
    }
}

impl CreateBookInput {
    pub fn validate(self) -> Result<NewBook> {
        Ok(NewBook {
            title: required_text(&self.title, "title", MAX_TITLE_CHARS)?,
            isbn: Isbn::parse(&self.isbn)?,
            price: Money::parse(self.price, "price")?,
            published_year: self.published_year.map(published_year).transpose()?,
            copies_total: copies(self.copies_total.unwrap_or(1))?,
            author_id: parse_id(&self.author_id, "authorId")?,
            category_id: parse_id(&self.category_id, "categoryId")?,
        })
    }
}

impl UpdateBookInput {
    pub fn validate(self) -> Result<BookChanges> {
        Ok(BookChanges {
            title: self
                .title
                .map(|title| required_text(&title, "title", MAX_TITLE_CHARS))
                .transpose()?,
            isbn: self.isbn.as_deref().map(Isbn::parse).transpose()?,
            price: self
                .price
                .map(|price| Money::parse(price, "price"))
                .transpose()?,
            published_year: match self.published_year {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(year) => Some(Some(published_year(year)?)),
            },
            copies_total: self.copies_total.map(copies).transpose()?,
            author_id: optional_id(self.author_id, "authorId")?,
            category_id: optional_id(self.category_id, "categoryId")?,
        })
    }
}

impl BookFilter {
    pub fn validate(self) -> Result<Filter> {
        let filter = Filter {
            author_id: optional_id(self.author_id, "authorId")?,
            category_id: optional_id(self.category_id, "categoryId")?,
            min_price: self
                .min_price
                .map(|p| Money::parse(p, "minPrice"))
                .transpose()?,
            max_price: self
                .max_price
                .map(|p| Money::parse(p, "maxPrice"))
                .transpose()?,
            published_from: self.published_from,
            published_to: self.published_to,
            available: self.available,
        };
        if let (Some(min), Some(max)) = (filter.min_price, filter.max_price) {
            if min > max {
                return Err(Error::bad_input("minPrice must not exceed maxPrice"));
            }
        }
        Ok(filter)
    }
}
