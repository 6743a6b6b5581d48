//! `GET /stats/summary`: the sampler's latest usage summary as JSON. Cheap by design: it reads no
//! cgroup, it serialises what the last sampling pass published.

use super::AgentState;
use crate::metrics::LatestSummary;
use axum::extract::State;
use axum::http::StatusCode;

/// `GET /stats/summary`.
pub(super) async fn summary(State(state): State<AgentState>) -> axum::response::Response {
    render(&state.summary)
}

fn render(latest: &LatestSummary) -> axum::response::Response {
    let s = latest.get();
    match serde_json::to_string(&*s) {
        Ok(body) => axum::response::IntoResponse::into_response((
            [("content-type", "application/json")],
            body,
        )),
        // Unreachable for plain structs of strings and integers, but a request must not panic.
        Err(e) => super::text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apimachinery::stats::{MemoryStats, Summary};
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn serves_the_latest_summary_as_kubelet_json() {
        let latest = LatestSummary::new("n1");
        let mut s = Summary::default();
        s.node.node_name = "n1".into();
        s.node.memory = Some(MemoryStats {
            time: "2027-01-15T08:00:00Z".into(),
            working_set_bytes: 5,
            usage_bytes: 9,
        });
        latest.set(s.clone());
        let resp = render(&latest);
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["node"]["nodeName"], "n1");
        assert_eq!(v["node"]["memory"]["workingSetBytes"], 5);
        assert_eq!(v["pods"], serde_json::json!([]));
        assert_eq!(serde_json::from_slice::<Summary>(&body).unwrap(), s);
    }
}
