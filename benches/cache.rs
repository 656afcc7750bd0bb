//! Criterion benchmarks of the cache's hot pieces: an L1 hit, key building,
//! the L2 value encoding (postcard against the alternatives it was chosen
//! over), and one warm loader batch. `cargo bench --bench cache`
use biblio::cache::codec::{self, Slot};
use biblio::cache::keys::Group;
use biblio::cache::{Cache, Kind, List, Mode, Settings};
use biblio::db::books::{Filter, SortOrder};
use biblio::domain::PageRequest;
use biblio::redis::Keys;
use chrono::Utc;
use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use entity::book;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

fn book() -> book::Model {
    book::Model {
        id: Uuid::now_v7(),
        title: "The Left Hand of Darkness".into(),
        isbn: "9780441478125".into(),
        price_cents: 1299,
        published_year: Some(1969),
        copies_total: 4,
        copies_available: 2,
        author_id: Uuid::now_v7(),
        category_id: Uuid::now_v7(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

fn l1_cache(runtime: &tokio::runtime::Runtime) -> Cache {
    let _guard = runtime.enter();
    Cache::new(
        &Settings {
            mode: Mode::L1,
            // Without Redis, L1 is "untrusted" and entries live at most this
            // long; a benchmark of hits needs them to outlive it.
            untrusted_cap: std::time::Duration::from_secs(3600),
            ..Settings::default()
        },
        "bench",
        None,
    )
    .expect("an L1-only cache needs no Redis")
}

/// Fills L1 with `books` through the read path (the loader runs once).
fn warm(runtime: &tokio::runtime::Runtime, cache: &Cache, books: &[book::Model]) -> Vec<Uuid> {
    let ids: Vec<Uuid> = books.iter().map(|b| b.id).collect();
    let by_id: HashMap<Uuid, book::Model> = books.iter().map(|b| (b.id, b.clone())).collect();
    runtime
        .block_on(cache.entities(biblio::cache::BOOK, &ids, |wanted| {
            let found = wanted
                .iter()
                .filter_map(|id| by_id.get(id).map(|b| (*id, b.clone())))
                .collect();
            async move { Ok(found) }
        }))
        .unwrap();
    ids
}

fn l1_hit(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cache = l1_cache(&runtime);
    let ids = warm(&runtime, &cache, &[book()]);
    c.bench_function("l1_hit (peek, key built)", |b| {
        b.iter(|| {
            cache
                .peek(biblio::cache::BOOK, black_box(ids[0]))
                .unwrap()
                .unwrap()
        })
    });
}

fn key_building(c: &mut Criterion) {
    let keys = Keys::new("biblio");
    let id = Uuid::now_v7();
    let filter = Filter {
        author_id: Some(id),
        ..Filter::default()
    };
    let page = PageRequest::parse(3, 20).expect("a valid page");
    c.bench_function("key: entity", |b| {
        b.iter(|| keys.entity(Kind::Book, black_box(id)))
    });
    c.bench_function("key: list", |b| {
        b.iter(|| {
            keys.list(
                black_box(&List::Books {
                    filter: &filter,
                    order: SortOrder::TitleAsc,
                    page,
                }),
                black_box(42),
            )
        })
    });
    c.bench_function("key: generation", |b| {
        b.iter(|| keys.generation(black_box(&Group::AuthorBooks(id))))
    });
}

fn encoding(c: &mut Criterion) {
    let value = book();
    let postcard = codec::encode(&Slot::Present(&value)).unwrap();
    let bincode = bincode::serialize(&value).unwrap();
    let json = serde_json::to_vec(&value).unwrap();
    println!(
        "encoded sizes: postcard {} B, bincode {} B, json {} B",
        postcard.len(),
        bincode.len(),
        json.len()
    );
    let mut group = c.benchmark_group("codec");
    group.bench_function("postcard encode", |b| {
        b.iter(|| codec::encode(&Slot::Present(black_box(&value))).unwrap())
    });
    group.bench_function("postcard decode", |b| {
        b.iter(|| codec::decode::<book::Model>(black_box(&postcard)).unwrap())
    });
    group.bench_function("bincode encode", |b| {
        b.iter(|| bincode::serialize(black_box(&value)).unwrap())
    });
    group.bench_function("bincode decode", |b| {
        b.iter(|| bincode::deserialize::<book::Model>(black_box(&bincode)).unwrap())
    });
    group.bench_function("json encode", |b| {
        b.iter(|| serde_json::to_vec(black_box(&value)).unwrap())
    });
    group.bench_function("json decode", |b| {
        b.iter(|| serde_json::from_slice::<book::Model>(black_box(&json)).unwrap())
    });
    group.finish();
}

fn warm_batch(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cache = l1_cache(&runtime);
    let books: Vec<book::Model> = (0..20).map(|_| book()).collect();
    let ids = warm(&runtime, &cache, &books);
    c.bench_function("warm loader batch of 20 (all L1)", |b| {
        b.iter_batched(
            || ids.clone(),
            |ids| {
                runtime
                    .block_on(cache.entities(biblio::cache::BOOK, &ids, |_| async {
                        unreachable!("a warm batch never loads")
                    }))
                    .unwrap()
            },
            BatchSize::SmallInput,
        )
    });
    let _: Arc<book::Model> = cache.peek(biblio::cache::BOOK, ids[0]).unwrap().unwrap();
}

criterion_group!(benches, l1_hit, key_building, encoding, warm_batch);
criterion_main!(benches);
