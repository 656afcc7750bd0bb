//! The ceiling for the load test: a bare axum server that answers
//! `POST /graphql` with fixed bytes (a real `book` response, read from the
//! file named by the first argument). It does no GraphQL and no cache work,
//! so biblio's figures divided by its figures measure what the service
//! costs on this machine, whatever the machine.
//!
//! `cargo run --release --example baseline -- RESPONSE_FILE [ADDR]`
use axum::http::header;
use axum::routing::post;
use axum::Router;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: baseline RESPONSE_FILE [ADDR]");
    let address = args.next().unwrap_or_else(|| "127.0.0.1:8081".into());
    let body: &'static [u8] = Box::leak(std::fs::read(file)?.into_boxed_slice());
    let app = Router::new().route(
        "/graphql",
        post(move || async move {
            (
                [(header::CONTENT_TYPE, "application/graphql-response+json")],
                body,
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind(&address).await?;
    axum::serve(listener, app).await
}
