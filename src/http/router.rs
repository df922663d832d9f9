//! Routing: a request's method and path to a [`Route`], with the label its
//! metrics carry (the path template, never the raw path).

use crate::sale::SaleAction;
use http::Method;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    SaleGet(&'a str),
    SaleEvents(&'a str),
    OrderCreate,
    OrderGet(&'a str),
    OrderCancel(&'a str),
    OrderPay(&'a str),
    PaymentNotify,
    AdminSaleCreate,
    AdminSaleList,
    AdminSession,
    AdminSaleAction(&'a str, SaleAction),
    AdminRestock(&'a str, &'a str),
    AdminStats(&'a str),
    AdminStatsEvents(&'a str),
    AdminOrderGet(&'a str),
    AdminRefund(&'a str),
    /// `/console`: redirected to `/console/`.
    ConsoleRedirect,
    /// `/console/{name}`: an embedded asset, the page for the empty name.
    ConsoleAsset(&'a str),
    Metrics,
    Healthz,
    Readyz,
    /// The path exists but not with this method; carries the allowed one.
    MethodNotAllowed(&'static str, &'static str),
    NotFound,
}

impl Route<'_> {
    /// The path template, for metric labels and logs.
    pub fn label(&self) -> &'static str {
        match self {
            Route::SaleGet(_) => "/v1/sales/{sale_id}",
            Route::SaleEvents(_) => "/v1/sales/{sale_id}/events",
            Route::OrderCreate => "/v1/orders",
            Route::OrderGet(_) => "/v1/orders/{order_id}",
            Route::OrderCancel(_) => "/v1/orders/{order_id}/cancel",
            Route::OrderPay(_) => "/v1/orders/{order_id}/pay",
            Route::PaymentNotify => "/v1/payments/wechat/notify",
            Route::AdminSaleCreate | Route::AdminSaleList => "/admin/v1/sales",
            Route::AdminSession => "/admin/v1/session",
            Route::AdminSaleAction(_, SaleAction::Start) => "/admin/v1/sales/{id}/start",
            Route::AdminSaleAction(_, SaleAction::Pause) => "/admin/v1/sales/{id}/pause",
            Route::AdminSaleAction(_, SaleAction::End) => "/admin/v1/sales/{id}/end",
            Route::AdminRestock(..) => "/admin/v1/sales/{id}/items/{sku_id}/restock",
            Route::AdminStats(_) => "/admin/v1/sales/{id}/stats",
            Route::AdminStatsEvents(_) => "/admin/v1/sales/{id}/stats/events",
            Route::AdminOrderGet(_) => "/admin/v1/orders/{order_id}",
            Route::AdminRefund(_) => "/admin/v1/orders/{order_id}/refund",
            Route::ConsoleRedirect => "/console",
            Route::ConsoleAsset(_) => "/console/{asset}",
            Route::Metrics => "/metrics",
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::MethodNotAllowed(label, _) => label,
            Route::NotFound => "unmatched",
        }
    }
}

pub fn resolve<'a>(method: &Method, path: &'a str) -> Route<'a> {
    let get = *method == Method::GET;
    // The console's asset names are not ids: matched before the segments.
    let console = match path.strip_prefix("/console") {
        Some("") => Some(get.then_some(Route::ConsoleRedirect)),
        Some(rest) => rest
            .strip_prefix('/')
            .map(|name| get.then_some(Route::ConsoleAsset(name))),
        None => None,
    };
    if let Some(route) = console {
        return route.unwrap_or_else(|| method_not_allowed(method, path));
    }
    let mut segments = [""; 7];
    let mut count = 0;
    for segment in path.trim_start_matches('/').split('/') {
        if count == segments.len() || segment.is_empty() {
            return Route::NotFound;
        }
        segments[count] = segment;
        count += 1;
    }
    let post = *method == Method::POST;
    let route = match &segments[..count] {
        ["v1", "sales", id] => get.then_some(Route::SaleGet(id)),
        ["v1", "sales", id, "events"] => get.then_some(Route::SaleEvents(id)),
        ["v1", "orders"] => post.then_some(Route::OrderCreate),
        ["v1", "orders", id] => get.then_some(Route::OrderGet(id)),
        ["v1", "orders", id, "cancel"] => post.then_some(Route::OrderCancel(id)),
        ["v1", "orders", id, "pay"] => post.then_some(Route::OrderPay(id)),
        ["v1", "payments", "wechat", "notify"] => post.then_some(Route::PaymentNotify),
        ["admin", "v1", "sales"] if get => Some(Route::AdminSaleList),
        ["admin", "v1", "sales"] => post.then_some(Route::AdminSaleCreate),
        ["admin", "v1", "session"] => get.then_some(Route::AdminSession),
        ["admin", "v1", "sales", id, "start"] => {
            post.then_some(Route::AdminSaleAction(id, SaleAction::Start))
        }
        ["admin", "v1", "sales", id, "pause"] => {
            post.then_some(Route::AdminSaleAction(id, SaleAction::Pause))
        }
        ["admin", "v1", "sales", id, "end"] => {
            post.then_some(Route::AdminSaleAction(id, SaleAction::End))
        }
        ["admin", "v1", "sales", id, "items", sku, "restock"] => {
            post.then_some(Route::AdminRestock(id, sku))
        }
        ["admin", "v1", "sales", id, "stats"] => get.then_some(Route::AdminStats(id)),
        ["admin", "v1", "sales", id, "stats", "events"] => {
            get.then_some(Route::AdminStatsEvents(id))
        }
        ["admin", "v1", "orders", id] => get.then_some(Route::AdminOrderGet(id)),
        ["admin", "v1", "orders", id, "refund"] => post.then_some(Route::AdminRefund(id)),
        ["metrics"] => get.then_some(Route::Metrics),
        ["healthz"] => get.then_some(Route::Healthz),
        ["readyz"] => get.then_some(Route::Readyz),
        _ => return Route::NotFound,
    };
    // The path matched a template; only the method was wrong.
    route.unwrap_or_else(|| method_not_allowed(method, path))
}

/// A known path asked with a method it does not take: 405 naming the
/// methods it does take (`/admin/v1/sales` takes both), or 404.
fn method_not_allowed(method: &Method, path: &str) -> Route<'static> {
    let accepts = |probe: Method| {
        (probe != *method)
            .then(|| resolve(&probe, path))
            .filter(|found| !matches!(found, Route::MethodNotAllowed(..) | Route::NotFound))
            .map(|found| found.label())
    };
    match (accepts(Method::GET), accepts(Method::POST)) {
        (Some(label), Some(_)) => Route::MethodNotAllowed(label, "GET, POST"),
        (Some(label), None) => Route::MethodNotAllowed(label, "GET"),
        (None, Some(label)) => Route::MethodNotAllowed(label, "POST"),
        (None, None) => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_every_route_and_refuses_the_rest() {
        assert_eq!(resolve(&Method::GET, "/v1/sales/s1"), Route::SaleGet("s1"));
        assert_eq!(resolve(&Method::POST, "/v1/orders"), Route::OrderCreate);
        assert_eq!(
            resolve(&Method::POST, "/admin/v1/sales/s1/items/k1/restock"),
            Route::AdminRestock("s1", "k1")
        );
        assert_eq!(
            resolve(&Method::POST, "/admin/v1/sales/s1/pause"),
            Route::AdminSaleAction("s1", SaleAction::Pause)
        );
        assert_eq!(
            resolve(&Method::GET, "/v1/orders"),
            Route::MethodNotAllowed("/v1/orders", "POST")
        );
        assert_eq!(
            resolve(&Method::PUT, "/v1/sales/s1"),
            Route::MethodNotAllowed("/v1/sales/{sale_id}", "GET")
        );
        assert_eq!(
            resolve(&Method::POST, "/v1/orders/o1/pay"),
            Route::OrderPay("o1")
        );
        assert_eq!(
            resolve(&Method::POST, "/v1/payments/wechat/notify"),
            Route::PaymentNotify
        );
        assert_eq!(
            resolve(&Method::POST, "/admin/v1/orders/o1/refund"),
            Route::AdminRefund("o1")
        );
        assert_eq!(resolve(&Method::GET, "/v1/nothing"), Route::NotFound);
        assert_eq!(
            resolve(&Method::PUT, "/admin/v1/sales"),
            Route::MethodNotAllowed("/admin/v1/sales", "GET, POST")
        );
        assert_eq!(resolve(&Method::POST, "/v1/orders/"), Route::NotFound);
        assert_eq!(resolve(&Method::GET, "/a/b/c/d/e/f/g/h"), Route::NotFound);
    }

    #[test]
    fn resolves_the_console_and_admin_read_routes() {
        assert_eq!(
            resolve(&Method::GET, "/admin/v1/sales"),
            Route::AdminSaleList
        );
        assert_eq!(
            resolve(&Method::POST, "/admin/v1/sales"),
            Route::AdminSaleCreate
        );
        assert_eq!(
            resolve(&Method::GET, "/admin/v1/session"),
            Route::AdminSession
        );
        assert_eq!(
            resolve(&Method::POST, "/admin/v1/session"),
            Route::MethodNotAllowed("/admin/v1/session", "GET")
        );
        assert_eq!(
            resolve(&Method::GET, "/admin/v1/sales/s1/stats/events"),
            Route::AdminStatsEvents("s1")
        );
        assert_eq!(resolve(&Method::GET, "/console"), Route::ConsoleRedirect);
        assert_eq!(resolve(&Method::GET, "/console/"), Route::ConsoleAsset(""));
        assert_eq!(
            resolve(&Method::GET, "/console/app.js"),
            Route::ConsoleAsset("app.js")
        );
        assert_eq!(
            resolve(&Method::POST, "/console/app.js"),
            Route::MethodNotAllowed("/console/{asset}", "GET")
        );
        assert_eq!(
            resolve(&Method::DELETE, "/console"),
            Route::MethodNotAllowed("/console", "GET")
        );
        assert_eq!(resolve(&Method::GET, "/consoles"), Route::NotFound);
    }

    #[test]
    fn every_route_has_a_template_label() {
        let routes = [
            Route::AdminSaleList,
            Route::AdminSession,
            Route::AdminStatsEvents("s1"),
            Route::ConsoleRedirect,
            Route::ConsoleAsset("app.js"),
        ];
        let labels: Vec<_> = routes.iter().map(Route::label).collect();
        assert_eq!(
            labels,
            [
                "/admin/v1/sales",
                "/admin/v1/session",
                "/admin/v1/sales/{id}/stats/events",
                "/console",
                "/console/{asset}",
            ]
        );
    }
}
