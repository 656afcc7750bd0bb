//! Cached pages: a page's ids and total are cached under its list group;
//! its items resolve through the entity loaders. On a cold read the page
//! query already returned the rows, so they are used as they are and put
//! into L1, which keeps a cold page at one statement.
use crate::cache::{Cache, Group, IdPage, Kind, PrimeTicket};
use crate::domain::{Page, PageRequest};
use crate::error::{LoadError, Result};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// Reads a page of `M` through the cache. `load` runs the page query;
/// `resolve` reads the items of a cached page by id.
#[allow(clippy::too_many_arguments)]
pub async fn cached_page<M, F, Fut, R, RFut>(
    cache: &Cache,
    kind: Kind,
    group: Group,
    params: String,
    request: PageRequest,
    item_kind: Kind,
    id_of: fn(&M) -> Uuid,
    load: F,
    resolve: R,
) -> Result<Page<Arc<M>>>
where
    M: serde::Serialize + Send + Sync + 'static,
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Page<M>>>,
    R: FnOnce(Vec<Uuid>) -> RFut,
    RFut: Future<Output = std::result::Result<HashMap<Uuid, Arc<M>>, LoadError>>,
{
    let loaded: Mutex<Option<(Vec<Arc<M>>, PrimeTicket)>> = Mutex::new(None);
    let params = format!("{params}|p{}|s{}", request.page, request.size);
    let ids = cache
        .list(kind, group, &params, || async {
            let ticket = cache.prime_ticket().await;
            let page = load().await.map_err(LoadError::from)?;
            let items: Vec<Arc<M>> = page.items.into_iter().map(Arc::new).collect();
            let ids = items.iter().map(|item| id_of(item)).collect();
            *loaded
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((items, ticket));
            Ok(IdPage {
                ids,
                total: page.total_count,
            })
        })
        .await?;
    let loaded = loaded
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take();
    let items = match loaded {
        Some((items, ticket)) => {
            let primed: Vec<(Uuid, Arc<M>)> = items
                .iter()
                .map(|item| (id_of(item), item.clone()))
                .collect();
            cache.prime(item_kind, ticket, &primed).await;
            items
        }
        None => {
            let mut found = resolve(ids.ids.clone()).await?;
            // An item deleted since the page was cached is left out; the
            // delete moved the group, so the next read has the new page.
            ids.ids.iter().filter_map(|id| found.remove(id)).collect()
        }
    };
    Ok(Page {
        items,
        total_count: ids.total,
        request,
    })
}

/// Keys of pages carry their parameters; free text is hashed so keys stay short.
pub fn params_of(parts: &impl std::fmt::Debug) -> String {
    format!(
        "{:016x}",
        crate::cache::keys::text_hash(&format!("{parts:?}"))
    )
}
