//! The edge page (`GET /` on the API listener, `api.page`): one HTML file,
//! its script and its style sheet, compiled into the binary. The page holds
//! no data: its script reads `/api/v1/edges` like any client, with the
//! bearer token the user gives it, so the page needs no access control of
//! its own. No CDN, no external fetch: the Content-Security-Policy allows
//! this origin only.

use axum::{
    Router,
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};

const INDEX: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/page.js");
const STYLE: &str = include_str!("page/page.css");

/// Same origin only; no inline script, so data that reaches the DOM as
/// text can never run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The page's routes, merged into the API listener's router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/page/page.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/page/page.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Everything the page loads comes from this origin: no absolute URL
    /// in any asset (a CDN link would break air-gapped nodes and leak the
    /// viewer).
    #[test]
    fn assets_reference_nothing_outside() {
        for (name, text) in [
            ("index.html", INDEX),
            ("page.js", SCRIPT),
            ("page.css", STYLE),
        ] {
            for scheme in ["http://", "https://", "//cdn", "@import"] {
                let hits: Vec<_> = text
                    .lines()
                    .filter(|l| l.contains(scheme) && !l.contains("http://www.w3.org/2000/svg"))
                    .collect();
                assert!(hits.is_empty(), "{name} references {scheme}: {hits:?}");
            }
        }
        assert!(INDEX.contains(r#"src="page/page.js""#));
        assert!(!INDEX.contains("<script>"), "no inline script (CSP)");
    }
}
