//! The catalogue, its members and their borrows, with the indexes the API's
//! queries use (each index names the query it serves).
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The tables `up` creates, in order.
pub const TABLES: &[&str] = &[
    "authors",
    "categories",
    "books",
    "users",
    "borrow_records",
    "settings",
];

#[derive(DeriveIden)]
enum Authors {
    Table,
    Id,
    Name,
    Bio,
}

#[derive(DeriveIden)]
enum Categories {
    Table,
    Id,
    Name,
}

#[derive(DeriveIden)]
enum Books {
    Table,
    Id,
    Title,
    Isbn,
    PriceCents,
    PublishedYear,
    CopiesTotal,
    CopiesAvailable,
    AuthorId,
    CategoryId,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    PasswordHash,
    Role,
}

#[derive(DeriveIden)]
enum BorrowRecords {
    Table,
    Id,
    UserId,
    BookId,
    BorrowedAt,
    DueAt,
    ReturnedAt,
}

#[derive(DeriveIden)]
enum Settings {
    Table,
    Key,
    Value,
}

fn timestamps(table: &mut TableCreateStatement) -> &mut TableCreateStatement {
    table
        .col(
            ColumnDef::new(Alias::new("created_at"))
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(Alias::new("updated_at"))
                .timestamp_with_time_zone()
                .not_null(),
        )
}

fn index(table: impl IntoIden, name: &str, columns: &[&str]) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table.into_iden());
    for column in columns {
        index.col(Alias::new(*column));
    }
    index
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(Authors::Table)
                        .col(ColumnDef::new(Authors::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(Authors::Name).string().not_null())
                        .col(ColumnDef::new(Authors::Bio).text()),
                )
                .to_owned(),
            )
            .await?;
        // `authors` lists order by name.
        manager
            .create_index(index(Authors::Table, "idx_authors_name", &["name", "id"]))
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(Categories::Table)
                        .col(
                            ColumnDef::new(Categories::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(
                            ColumnDef::new(Categories::Name)
                                .string()
                                .not_null()
                                .unique_key(),
                        ),
                )
                .to_owned(),
            )
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(Books::Table)
                        .col(ColumnDef::new(Books::Id).uuid().not_null().primary_key())
                        .col(ColumnDef::new(Books::Title).string_len(500).not_null())
                        .col(
                            ColumnDef::new(Books::Isbn)
                                .string_len(13)
                                .not_null()
                                .unique_key(),
                        )
                        .col(ColumnDef::new(Books::PriceCents).big_integer().not_null())
                        .col(ColumnDef::new(Books::PublishedYear).integer())
                        .col(ColumnDef::new(Books::CopiesTotal).integer().not_null())
                        .col(ColumnDef::new(Books::CopiesAvailable).integer().not_null())
                        .col(ColumnDef::new(Books::AuthorId).uuid().not_null())
                        .col(ColumnDef::new(Books::CategoryId).uuid().not_null())
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_books_author")
                                .from(Books::Table, Books::AuthorId)
                                .to(Authors::Table, Authors::Id)
                                .on_delete(ForeignKeyAction::Restrict),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_books_category")
                                .from(Books::Table, Books::CategoryId)
                                .to(Categories::Table, Categories::Id)
                                .on_delete(ForeignKeyAction::Restrict),
                        ),
                )
                .to_owned(),
            )
            .await?;
        // Author.books, Author.bookCount and the authorId filter.
        manager
            .create_index(index(
                Books::Table,
                "idx_books_author",
                &["author_id", "title"],
            ))
            .await?;
        // Category.bookCount and the categoryId filter.
        manager
            .create_index(index(
                Books::Table,
                "idx_books_category",
                &["category_id", "title"],
            ))
            .await?;
        // The orders of `books`: TITLE_*, PRICE_*, PUBLISHED_DESC, NEWEST.
        for (name, columns) in [
            ("idx_books_title", &["title", "id"][..]),
            ("idx_books_price", &["price_cents", "id"][..]),
            ("idx_books_published", &["published_year", "title"][..]),
            ("idx_books_created", &["created_at", "id"][..]),
        ] {
            manager
                .create_index(index(Books::Table, name, columns))
                .await?;
        }

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(Users::Table)
                        .col(ColumnDef::new(Users::Id).uuid().not_null().primary_key())
                        .col(
                            ColumnDef::new(Users::Email)
                                .string_len(254)
                                .not_null()
                                .unique_key(),
                        )
                        .col(ColumnDef::new(Users::Name).string().not_null())
                        .col(ColumnDef::new(Users::PasswordHash).string().not_null())
                        .col(ColumnDef::new(Users::Role).string_len(16).not_null()),
                )
                .to_owned(),
            )
            .await?;
        // statistics.totalMembers counts by role.
        manager
            .create_index(index(Users::Table, "idx_users_role", &["role"]))
            .await?;

        manager
            .create_table(
                timestamps(
                    Table::create()
                        .table(BorrowRecords::Table)
                        .col(
                            ColumnDef::new(BorrowRecords::Id)
                                .uuid()
                                .not_null()
                                .primary_key(),
                        )
                        .col(ColumnDef::new(BorrowRecords::UserId).uuid().not_null())
                        .col(ColumnDef::new(BorrowRecords::BookId).uuid().not_null())
                        .col(
                            ColumnDef::new(BorrowRecords::BorrowedAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .col(
                            ColumnDef::new(BorrowRecords::DueAt)
                                .timestamp_with_time_zone()
                                .not_null(),
                        )
                        .col(ColumnDef::new(BorrowRecords::ReturnedAt).timestamp_with_time_zone())
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_borrow_records_user")
                                .from(BorrowRecords::Table, BorrowRecords::UserId)
                                .to(Users::Table, Users::Id)
                                .on_delete(ForeignKeyAction::Restrict),
                        )
                        .foreign_key(
                            // A deleted book takes its (returned) borrow history with it;
                            // deleting a book on loan is refused before it gets here.
                            ForeignKey::create()
                                .name("fk_borrow_records_book")
                                .from(BorrowRecords::Table, BorrowRecords::BookId)
                                .to(Books::Table, Books::Id)
                                .on_delete(ForeignKeyAction::Cascade),
                        ),
                )
                .to_owned(),
            )
            .await?;
        // myBorrows: a user's records, newest first.
        manager
            .create_index(index(
                BorrowRecords::Table,
                "idx_borrow_records_user",
                &["user_id", "borrowed_at"],
            ))
            .await?;
        // The cascade from books, and statistics.activeBorrows.
        manager
            .create_index(index(
                BorrowRecords::Table,
                "idx_borrow_records_book",
                &["book_id", "returned_at"],
            ))
            .await?;
        // One active loan of a given book per member. A partial index, which
        // sea-query cannot express; the SQL is the same on SQLite and PostgreSQL.
        manager
            .get_connection()
            .execute_unprepared(
                "CREATE UNIQUE INDEX uq_borrow_records_active \
                 ON borrow_records (user_id, book_id) WHERE returned_at IS NULL",
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Settings::Table)
                    .col(
                        ColumnDef::new(Settings::Key)
                            .string()
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Settings::Value).text().not_null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Settings::Table.into_iden(),
            BorrowRecords::Table.into_iden(),
            Users::Table.into_iden(),
            Books::Table.into_iden(),
            Categories::Table.into_iden(),
            Authors::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
