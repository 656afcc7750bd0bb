use super::*;

const PRIMARY: &str = "postgres://biblio@db:5432/biblio";

#[test]
fn read_urls_are_refused_with_a_sqlite_primary() {
    let err = check_urls(
        "sqlite://biblio.db?mode=rwc",
        &["postgres://biblio@standby/biblio".into()],
    )
    .unwrap_err();
    assert!(err.contains("needs a PostgreSQL --database-url"), "{err}");
}

#[test]
fn a_read_url_of_another_backend_is_refused_and_named_without_its_password() {
    let err = check_urls(
        PRIMARY,
        &[
            "postgres://biblio@standby/biblio".into(),
            "mysql://root:hunter2@other/biblio".into(),
        ],
    )
    .unwrap_err();
    assert!(err.contains("is not a PostgreSQL URL"), "{err}");
    assert!(err.contains("mysql://"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn positions_published_together_are_the_highest_or_unknown_if_any_is() {
    use Position::{At, Unknown};
    assert_eq!(At(5).merge(At(9)), At(9));
    assert_eq!(At(9).merge(At(5)), At(9));
    assert_eq!(At(9).merge(Unknown(7)), Unknown(7));
    assert_eq!(Unknown(7).merge(At(9)), Unknown(7));
    assert!(matches!(Position::unknown(), Unknown(token) if token != 0));
}

#[test]
fn postgres_read_urls_and_none_at_all_are_accepted() {
    assert_eq!(check_urls("sqlite://biblio.db", &[]), Ok(()));
    assert_eq!(
        check_urls(PRIMARY, &["postgresql://biblio@standby:5433/biblio".into()]),
        Ok(())
    );
}
