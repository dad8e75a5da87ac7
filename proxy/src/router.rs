//! Route lookup within one stage, built once per table.
//!
//! Two radix trees (matchit): one for routes without a greedy segment, one for greedy
//! `{name+}` routes, tried in that order. matchit already prefers a literal segment over a
//! parameter, so the most specific route wins: literal over parameter over greedy. Parameter
//! names are rewritten by position (`{p1}`) before insertion, so routes that name the same
//! position differently (`/pets/{id}` and `/pets/{petId}/toys`) share the tree; each route keeps
//! its own names. Lookup cost depends on the path's length, not on the number of routes.

use std::sync::{Arc, OnceLock};

use http::Method;
use tokio::sync::Semaphore;

use crate::integration::templates::Templates;
use crate::lambda::concurrency::ConcurrencyLimits;
use tollgate_crds::compile::{PathTemplate, Segment};
use tollgate_crds::table::HttpMethod;
use tollgate_crds::table::{IntegrationTable, RouteTable};

use crate::metrics::RouteMetrics;

/// A route ready to serve.
#[derive(Debug)]
pub struct ServedRoute {
    pub table: RouteTable,
    /// The route's own parameter names, in path order.
    pub param_names: Vec<String>,
    /// For a Lambda integration with `maxConcurrency`: the permits, shared by every route of
    /// the gateway that invokes the same function.
    pub concurrency: Option<Arc<Semaphore>>,
    /// The name of the route's throttle bucket (see [`crate::throttle`]), made once.
    pub bucket: Arc<str>,
    /// The route key (`GET /pets/{petId}`), shared by the access log and the metrics.
    pub key: Arc<str>,
    /// The route's metrics, resolved on its first request.
    pub metrics: OnceLock<Arc<RouteMetrics>>,
    /// For an HTTP integration, each backend's URL parsed once when it has nothing to
    /// substitute and the request path is not appended (`None` otherwise): most requests then
    /// need no URL built.
    pub fixed_urls: Vec<Option<http::Uri>>,
    /// A non-proxy integration's mapping templates and integration responses, parsed.
    pub templates: Option<Templates>,
}

impl ServedRoute {
    fn new(
        route: &RouteTable,
        param_names: Vec<String>,
        limits: &ConcurrencyLimits,
        bucket_of: impl Fn(&str) -> Arc<str>,
    ) -> Result<Self, RouterError> {
        let concurrency = match &route.integration {
            IntegrationTable::Lambda { invoke_url, .. } => limits.get(invoke_url).cloned(),
            _ => None,
        };
        let templates = match &route.integration {
            IntegrationTable::Http { templates, .. }
            | IntegrationTable::Lambda { templates, .. } => templates.as_deref(),
            IntegrationTable::Mock { .. } => None,
        }
        .map(Templates::build)
        .transpose()
        .map_err(|e| RouterError::Table(format!("route {}: {e}", route.route_key)))?;
        Ok(Self {
            templates,
            table: route.clone(),
            param_names,
            concurrency,
            bucket: bucket_of(&route.route_key),
            key: Arc::from(route.route_key.as_str()),
            metrics: OnceLock::new(),
            fixed_urls: fixed_urls(&route.integration),
        })
    }
}

/// The routes of one stage.
#[derive(Debug)]
pub struct StageRouter {
    exact: matchit::Router<usize>,
    greedy: matchit::Router<usize>,
    slots: Vec<MethodSlot>,
    /// A WebSocket API's routes, by route key.
    by_key: std::collections::HashMap<String, usize>,
    routes: Vec<ServedRoute>,
}

/// The routes sharing one path shape, by method.
#[derive(Debug, Default)]
struct MethodSlot {
    by_method: [Option<usize>; METHODS],
    any: Option<usize>,
}

const METHODS: usize = 7;

fn method_index(m: &Method) -> Option<usize> {
    Some(match *m {
        Method::GET => 0,
        Method::POST => 1,
        Method::PUT => 2,
        Method::PATCH => 3,
        Method::DELETE => 4,
        Method::HEAD => 5,
        Method::OPTIONS => 6,
        _ => return None,
    })
}

fn table_method_index(m: HttpMethod) -> Option<usize> {
    Some(match m {
        HttpMethod::GET => 0,
        HttpMethod::POST => 1,
        HttpMethod::PUT => 2,
        HttpMethod::PATCH => 3,
        HttpMethod::DELETE => 4,
        HttpMethod::HEAD => 5,
        HttpMethod::OPTIONS => 6,
        HttpMethod::ANY => return None,
    })
}

/// A table route the router could not take. The compiler checks the same things, so this
/// means a table from an incompatible writer; the table is refused as a whole.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("route {route}: invalid path: {reason}")]
    InvalidPath { route: String, reason: String },
    #[error("route {route}: {error}")]
    Insert {
        route: String,
        error: matchit::InsertError,
    },
    /// A model or gateway response that does not build.
    #[error("{0}")]
    Table(String),
    #[error("routes {first} and {second} have the same method and path")]
    Duplicate { first: String, second: String },
}

/// A successful lookup: the route and its path parameters (raw, not percent-decoded).
#[derive(Debug)]
pub struct RouteMatch<'a> {
    pub route: &'a ServedRoute,
    pub params: Vec<(String, String)>,
}

impl StageRouter {
    /// `bucket_of` names a route's throttle bucket from its route key.
    pub fn build(
        routes: &[RouteTable],
        limits: &ConcurrencyLimits,
        bucket_of: impl Fn(&str) -> Arc<str>,
    ) -> Result<Self, RouterError> {
        let mut router = Self {
            exact: matchit::Router::new(),
            greedy: matchit::Router::new(),
            slots: Vec::new(),
            by_key: std::collections::HashMap::new(),
            routes: Vec::with_capacity(routes.len()),
        };
        // Slot per tree-path, so routes of one shape but different methods share it.
        let mut slot_of: std::collections::HashMap<String, usize> =
            std::collections::HashMap::new();
        for route in routes {
            let index = router.routes.len();
            let (Some(method), Some(path)) = (route.method, &route.path) else {
                // A WebSocket route: found by its key.
                if router
                    .by_key
                    .insert(route.route_key.clone(), index)
                    .is_some()
                {
                    return Err(RouterError::Duplicate {
                        first: route.route_key.clone(),
                        second: route.route_key.clone(),
                    });
                }
                router
                    .routes
                    .push(ServedRoute::new(route, Vec::new(), limits, &bucket_of)?);
                continue;
            };
            let template =
                PathTemplate::parse(path).map_err(|reason| RouterError::InvalidPath {
                    route: route.route_key.clone(),
                    reason,
                })?;
            let (tree_path, is_greedy) = tree_path(&template);
            let slot = match slot_of.get(&tree_path) {
                Some(&slot) => slot,
                None => {
                    let slot = router.slots.len();
                    let tree = if is_greedy {
                        &mut router.greedy
                    } else {
                        &mut router.exact
                    };
                    tree.insert(tree_path.clone(), slot)
                        .map_err(|error| RouterError::Insert {
                            route: route.route_key.clone(),
                            error,
                        })?;
                    router.slots.push(MethodSlot::default());
                    slot_of.insert(tree_path, slot);
                    slot
                }
            };
            let entry = match table_method_index(method) {
                Some(i) => &mut router.slots[slot].by_method[i],
                None => &mut router.slots[slot].any,
            };
            if let Some(existing) = entry.replace(index) {
                return Err(RouterError::Duplicate {
                    first: router.routes[existing].table.route_key.clone(),
                    second: route.route_key.clone(),
                });
            }
            let param_names = template.param_names().map(str::to_string).collect();
            router
                .routes
                .push(ServedRoute::new(route, param_names, limits, &bucket_of)?);
        }
        Ok(router)
    }

    /// A WebSocket API's route by its key (`$connect`, `sendmessage`).
    pub fn by_key(&self, route_key: &str) -> Option<&ServedRoute> {
        self.by_key.get(route_key).map(|&i| &self.routes[i])
    }

    /// The route for a method and a path relative to the stage (`/pets/42`). `None` when no
    /// route has the path, or the path's routes have neither this method nor `ANY`.
    pub fn find(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        let found = self.exact.at(path).or_else(|_| self.greedy.at(path)).ok()?;
        let slot = &self.slots[*found.value];
        let index = method_index(method)
            .and_then(|i| slot.by_method[i])
            .or(slot.any)?;
        let route = &self.routes[index];
        let params = route
            .param_names
            .iter()
            .zip(found.params.iter())
            .map(|(name, (_, value))| (name.clone(), value.to_string()))
            .collect();
        Some(RouteMatch { route, params })
    }
}

fn fixed_urls(integration: &IntegrationTable) -> Vec<Option<http::Uri>> {
    let IntegrationTable::Http { backends, .. } = integration else {
        return Vec::new();
    };
    backends
        .iter()
        .map(|b| {
            let fixed = !b.forward_request_path && !b.url.contains('{');
            fixed.then(|| b.url.parse().ok()).flatten()
        })
        .collect()
}

/// The matchit path of a template, with parameters named by position, and whether it ends in
/// a greedy segment.
fn tree_path(template: &PathTemplate) -> (String, bool) {
    if template.segments.is_empty() {
        return ("/".to_string(), false);
    }
    let mut path = String::new();
    let mut greedy = false;
    for (i, segment) in template.segments.iter().enumerate() {
        path.push('/');
        match segment {
            Segment::Literal(l) => path.push_str(l),
            Segment::Param(_) => path.push_str(&format!("{{p{i}}}")),
            Segment::Greedy(_) => {
                path.push_str(&format!("{{*p{i}}}"));
                greedy = true;
            }
        }
    }
    (path, greedy)
}

#[cfg(test)]
mod tests {
    use tollgate_crds::table::ObjectKey;
    use tollgate_crds::table::ThrottleSettings;

    use super::*;

    fn route(method: HttpMethod, path: &str) -> RouteTable {
        RouteTable {
            route_key: format!("{method} {path}"),
            method: Some(method),
            path: Some(path.to_string()),
            two_way: false,
            source: ObjectKey::new("default", path),
            api_key_required: false,
            authorizer: None,
            authorization_scopes: Vec::new(),
            service_accounts: Vec::new(),
            throttle: ThrottleSettings {
                rate_limit: 1.0,
                burst_limit: 1,
            },
            validation: None,
            cache: None,
            integration: IntegrationTable::Mock {
                status_code: 200,
                headers: Default::default(),
                body: String::new(),
            },
        }
    }

    impl StageRouter {
        fn build_plain(routes: &[RouteTable]) -> Result<Self, RouterError> {
            Self::build(routes, &ConcurrencyLimits::new(), |key: &str| {
                Arc::from(key)
            })
        }
    }

    fn key(r: &StageRouter, method: Method, path: &str) -> Option<(String, Vec<(String, String)>)> {
        r.find(&method, path)
            .map(|m| (m.route.table.route_key.clone(), m.params))
    }

    #[test]
    fn the_most_specific_route_wins() {
        use HttpMethod::*;
        let r = StageRouter::build_plain(&[
            route(GET, "/"),
            route(GET, "/pets/mine"),
            route(GET, "/pets/{petId}"),
            route(GET, "/pets/{petId}/toys/{toyId}"),
            route(ANY, "/{proxy+}"),
            route(GET, "/files/{path+}"),
        ])
        .unwrap();
        assert_eq!(key(&r, Method::GET, "/").unwrap().0, "GET /");
        assert_eq!(
            key(&r, Method::GET, "/pets/mine").unwrap().0,
            "GET /pets/mine"
        );
        assert_eq!(
            key(&r, Method::GET, "/pets/42").unwrap(),
            (
                "GET /pets/{petId}".into(),
                vec![("petId".into(), "42".into())]
            )
        );
        assert_eq!(
            key(&r, Method::GET, "/pets/42/toys/7").unwrap().1,
            vec![("petId".into(), "42".into()), ("toyId".into(), "7".into())]
        );
        assert_eq!(
            key(&r, Method::GET, "/files/a/b.txt").unwrap(),
            (
                "GET /files/{path+}".into(),
                vec![("path".into(), "a/b.txt".into())]
            )
        );
        assert_eq!(
            key(&r, Method::DELETE, "/anything/at/all").unwrap(),
            (
                "ANY /{proxy+}".into(),
                vec![("proxy".into(), "anything/at/all".into())]
            )
        );
    }

    #[test]
    fn a_path_without_the_method_is_not_found() {
        use HttpMethod::*;
        let r = StageRouter::build_plain(&[route(GET, "/pets"), route(ANY, "/orders")]).unwrap();
        assert!(key(&r, Method::POST, "/pets").is_none());
        assert!(key(&r, Method::GET, "/nothing").is_none());
        assert_eq!(key(&r, Method::PATCH, "/orders").unwrap().0, "ANY /orders");
        assert_eq!(
            key(&r, Method::from_bytes(b"PURGE").unwrap(), "/orders")
                .unwrap()
                .0,
            "ANY /orders"
        );
    }

    #[test]
    fn a_method_route_beats_any_on_the_same_path() {
        use HttpMethod::*;
        let r = StageRouter::build_plain(&[route(ANY, "/pets"), route(GET, "/pets")]).unwrap();
        assert_eq!(key(&r, Method::GET, "/pets").unwrap().0, "GET /pets");
        assert_eq!(key(&r, Method::PUT, "/pets").unwrap().0, "ANY /pets");
    }

    #[test]
    fn routes_naming_a_position_differently_coexist() {
        use HttpMethod::*;
        let r = StageRouter::build_plain(&[
            route(GET, "/pets/{id}"),
            route(POST, "/pets/{petId}"),
            route(GET, "/pets/{owner}/toys"),
        ])
        .unwrap();
        assert_eq!(
            key(&r, Method::POST, "/pets/9").unwrap().1,
            vec![("petId".into(), "9".into())]
        );
        assert_eq!(
            key(&r, Method::GET, "/pets/ann/toys").unwrap().1,
            vec![("owner".into(), "ann".into())]
        );
    }

    #[test]
    fn a_table_with_a_duplicate_route_is_refused() {
        use HttpMethod::*;
        let err =
            StageRouter::build_plain(&[route(GET, "/pets/{id}"), route(GET, "/pets/{petId}")])
                .unwrap_err();
        assert!(matches!(err, RouterError::Duplicate { .. }), "{err}");
    }
}
