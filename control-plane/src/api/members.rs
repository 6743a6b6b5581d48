//! `GET /berth/v1/members`: the control-plane members and the leader as the answering member knows
//! them (a follower answers from its own view), read-only, for the web view and operators. A
//! non-resource URL, so RBAC grants it through `nonResourceURLs`: the default ClusterRole
//! `system:berth-members-viewer`, bound to every authenticated user.

use axum::response::Response;
use http::{Method, StatusCode};
use serde_json::{json, Value};

use super::status::{json_response, ApiError, Result};
use crate::store::{Health, Membership};

/// The path it is served at.
pub const PATH: &str = "/berth/v1/members";

/// Answers the members request from `membership` (`None`: a store that is no Raft member, answered
/// as an empty list) and this member's `health`.
///
/// # Errors
/// 405 for anything but GET and HEAD.
pub fn serve(method: &Method, membership: Option<Membership>, health: &Health) -> Result<Response> {
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::method_not_allowed(method.as_str(), None));
    }
    Ok(json_response(
        StatusCode::OK,
        &render(&membership.unwrap_or_default(), health),
    ))
}

/// The JSON: `{"leader", "self", "ready", "members": [{"name", "id", "peerAddress", "apiAddress",
/// "role", "self"}]}`. `leader` and `self` are names (`null` when unknown); `role` is `leader` or
/// `follower` as this member sees it (learners are not told apart: berth adds voters only).
pub fn render(m: &Membership, health: &Health) -> Value {
    let name_of = |id: u64| {
        m.members
            .iter()
            .find(|x| x.id == id && id != 0)
            .map(|x| x.name.clone())
    };
    let members: Vec<Value> = m
        .members
        .iter()
        .map(|x| {
            json!({
                "name": x.name,
                "id": x.id,
                "peerAddress": x.peer_addr,
                "apiAddress": x.api_addr,
                "role": if x.id == m.leader_id { "leader" } else { "follower" },
                "self": x.id == m.self_id,
            })
        })
        .collect();
    json!({
        "leader": name_of(m.leader_id),
        "self": name_of(m.self_id),
        // What `/readyz` says of the answering member: a follower cut off from the leader still
        // answers, and the page shows its view as possibly stale.
        "ready": !health.driver_stopped && !health.no_leader && health.storage.is_none(),
        "members": members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Member;

    fn member(id: u64, name: &str) -> Member {
        Member {
            id,
            name: name.into(),
            peer_addr: format!("10.0.0.{id}:6444"),
            api_addr: format!("10.0.0.{id}:6443"),
        }
    }

    #[test]
    fn a_follower_names_the_leader_and_itself() {
        let m = Membership {
            self_id: 2,
            leader_id: 1,
            members: vec![member(1, "s1"), member(2, "s2"), member(3, "s3")],
        };
        let v = render(&m, &Health::default());
        assert_eq!(v["leader"], "s1");
        assert_eq!(v["self"], "s2");
        assert_eq!(v["ready"], true);
        assert_eq!(v["members"][0]["role"], "leader");
        assert_eq!(v["members"][1]["role"], "follower");
        assert_eq!(v["members"][1]["self"], true);
        assert_eq!(v["members"][2]["apiAddress"], "10.0.0.3:6443");
    }

    #[test]
    fn no_leader_is_null_and_not_ready() {
        let m = Membership {
            self_id: 1,
            leader_id: 0,
            members: vec![member(1, "s1")],
        };
        let h = Health {
            no_leader: true,
            ..Health::default()
        };
        let v = render(&m, &h);
        assert_eq!(v["leader"], Value::Null);
        assert_eq!(v["ready"], false);
        assert_eq!(v["members"][0]["role"], "follower");
    }
}
