//! The OpenAPI 3.1 document, generated from [`crate::routes::ROUTES`] — the same table the
//! router is built from — so every served route is documented and nothing undocumented is
//! served.

use serde_json::{json, Map, Value};

use crate::routes::{In, ROUTES};

/// Statuses any route may answer, whatever it does.
const EVERY_ROUTE: [u16; 4] = [400, 405, 500, 503];

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        207 => "Some events were rejected; see each result",
        400 => "Invalid request: a parameter, header or body is malformed",
        401 => "No valid bearer token",
        403 => "The token lacks the route's scope",
        404 => "Not found",
        405 => "Method not allowed",
        413 => "Body or batch too large",
        415 => "Unsupported content type",
        422 => "Nothing accepted",
        500 => "Internal error (details in the server log under the request id)",
        503 => "Not ready, or the request timed out",
        504 => "A strict consistency wait ran out",
        _ => "Error",
    }
}

pub fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let mut responses = Map::new();
        for status in route.ok {
            responses.insert(
                status.to_string(),
                json!({"description": reason(*status), "content": {"application/json": {"schema": {"type": "object"}}}}),
            );
        }
        let mut errors: Vec<u16> = route.errors.to_vec();
        errors.extend(EVERY_ROUTE);
        if route.scope.is_some() {
            errors.extend([401, 403]);
        }
        errors.sort_unstable();
        errors.dedup();
        for status in errors {
            responses.insert(
                status.to_string(),
                json!({"description": reason(status), "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}),
            );
        }
        let parameters: Vec<Value> = route
            .params
            .iter()
            .map(|p| {
                json!({
                    "name": p.name,
                    "in": match p.location { In::Path => "path", In::Query => "query", In::Header => "header" },
                    "required": p.location == In::Path,
                    "description": p.description,
                    "schema": {"type": p.schema},
                })
            })
            .collect();
        let mut operation = json!({
            "summary": route.summary,
            "operationId": format!("{}{}", route.method, route.path.replace(['/', '{', '}', '.'], "_")),
            "parameters": parameters,
            "responses": responses,
        });
        if !route.body.is_empty() {
            let content: Map<String, Value> = route
                .body
                .iter()
                .map(|m| (m.to_string(), json!({"schema": {}})))
                .collect();
            operation["requestBody"] = json!({"required": true, "content": content});
        }
        operation["security"] = match route.scope {
            Some(scope) => json!([{"bearer": [scope.as_str()]}]),
            None => json!([]),
        };
        paths
            .entry(route.path.to_string())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .map(|o| o.insert(route.method.to_string(), operation));
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "clientlog",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Event-sourced customer ledger: append events; read grades, lifecycle \
                stages and churn risk folded from them. Bearer tokens carry scopes (append, read, \
                audit, analyze, admin; admin implies all). Every error has the body \
                {error:{code,message,details:[{path,problem}]},request_id}.",
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "request_id"],
                    "properties": {
                        "error": {
                            "type": "object",
                            "required": ["code", "message", "details"],
                            "properties": {
                                "code": {"type": "string", "examples": ["invalid_request", "not_found", "unauthenticated"]},
                                "message": {"type": "string"},
                                "details": {"type": "array", "items": {
                                    "type": "object",
                                    "required": ["path", "problem"],
                                    "properties": {"path": {"type": "string"}, "problem": {"type": "string"}},
                                }},
                            },
                        },
                        "request_id": {"type": "string"},
                    },
                },
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_with_its_errors_and_scope() {
        let doc = document();
        for route in ROUTES {
            let op = &doc["paths"][route.path][route.method];
            assert!(op.is_object(), "{} {} missing", route.method, route.path);
            assert!(op["responses"]["400"].is_object());
            if route.scope.is_some() {
                assert!(op["responses"]["401"].is_object());
                assert!(op["responses"]["403"].is_object());
            }
            for p in route.params.iter().filter(|p| p.location == In::Path) {
                assert!(route.path.contains(&format!("{{{}}}", p.name)));
            }
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, ROUTES.len());
    }
}
