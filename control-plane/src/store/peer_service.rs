//! Peer service over gRPC (port 6444), server side: the `RaftPeer` service (Step, Propose, Join,
//! Status) a member serves for its peers, admitting members only.

use std::sync::Arc;

use proto::raftpb::raft_peer_server::{RaftPeer, RaftPeerServer};
use proto::raftpb::{
    JoinRequest, JoinResponse, ProposeRequest, ProposeResponse, StatusRequest, StatusResponse,
    StepRequest, StepResponse,
};
use protobuf::Message as _;
use raft::eraftpb::Message;
use tonic::service::interceptor::{InterceptedService, Interceptor};
use tonic::{Request, Response, Status};

use super::driver::Msg;
use super::object_store::{Batch, Committed, Error, Result};
use super::raft_store::RaftStore;
use super::snapshot::MAX_MESSAGE;

impl RaftStore {
    /// The gRPC peer service for this member (Step, Propose, Join, Status), to serve on the peer port.
    pub fn peer_service(self: &Arc<Self>) -> PeerServer {
        PeerService::server(self.clone())
    }
}

/// Server side of the peer transport.
pub struct PeerService {
    store: Arc<RaftStore>,
}

/// The peer service as served: member check first, then decoding.
pub type PeerServer = InterceptedService<RaftPeerServer<PeerService>, MembersOnly>;

impl PeerService {
    /// The tonic service for `store`, with message limits large enough for snapshots. Those limits
    /// are for members: [`MembersOnly`] turns anyone else away before a byte of the body is decoded,
    /// so a stranger cannot make a member buffer a snapshot-sized message.
    pub fn server(store: Arc<RaftStore>) -> PeerServer {
        let check = MembersOnly {
            required: store.requires_member_certs(),
        };
        let server = RaftPeerServer::new(PeerService { store })
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        InterceptedService::new(server, check)
    }
}

/// Refuses callers without a member certificate on the request's headers, before the body is read.
#[derive(Clone, Copy)]
pub struct MembersOnly {
    required: bool,
}

impl Interceptor for MembersOnly {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        if self.required
            && !crate::security::is_member(crate::security::peer_identity(&request).as_ref())
        {
            return Err(members_only());
        }
        Ok(request)
    }
}

fn members_only() -> Status {
    Status::permission_denied("the peer port's Raft service is for control-plane members only")
}

fn to_status(e: &Error) -> Status {
    match e {
        Error::NoLeader | Error::Timeout | Error::Dropped(_) | Error::Unavailable(_) => {
            Status::unavailable(e.to_string())
        }
        Error::Invalid(_) => Status::invalid_argument(e.to_string()),
        Error::PreconditionFailed { .. } => Status::failed_precondition(e.to_string()),
        Error::Gone { .. } => Status::out_of_range(e.to_string()),
    }
}

impl PeerService {
    /// Only members (by their certificate) may step, propose, join or ask for status: anyone else who
    /// reaches 6444 could otherwise vote, write raw batches or add itself. Without TLS (the store's own
    /// tests) there is no certificate to check.
    fn check_member<T>(&self, request: &Request<T>) -> Result<Option<String>, Status> {
        if !self.store.requires_member_certs() {
            return Ok(None);
        }
        let id = crate::security::peer_identity(request);
        if !crate::security::is_member(id.as_ref()) {
            return Err(members_only());
        }
        Ok(id.and_then(|i| {
            i.user
                .strip_prefix(pki::MEMBER_USER_PREFIX)
                .map(str::to_string)
        }))
    }
}

#[tonic::async_trait]
impl RaftPeer for PeerService {
    async fn step(&self, request: Request<StepRequest>) -> Result<Response<StepResponse>, Status> {
        self.check_member(&request)?;
        for bytes in request.into_inner().messages {
            let m = Message::parse_from_bytes(&bytes)
                .map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))?;
            self.store
                .send_to_driver(Msg::Raft(Box::new(m)))
                .map_err(|e| to_status(&e))?;
        }
        Ok(Response::new(StepResponse {}))
    }

    async fn propose(
        &self,
        request: Request<ProposeRequest>,
    ) -> Result<Response<ProposeResponse>, Status> {
        self.check_member(&request)?;
        let data = request.into_inner().batch;
        // Decoded only to reject what the state machine could not apply; the bytes go into the log as sent.
        let batch: Batch = serde_json::from_slice(&data)
            .map_err(|e| Status::invalid_argument(format!("bad batch: {e}")))?;
        if let Some(key) = batch.invalid_key() {
            return Err(Status::invalid_argument(format!("invalid key {key:?}")));
        }
        let result: Result<Committed> = self.store.propose_data(data).await;
        let bytes = serde_json::to_vec(&result).expect("result encodes");
        Ok(Response::new(ProposeResponse { result: bytes }))
    }

    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<JoinResponse>, Status> {
        let caller = self.check_member(&request)?;
        // A certificate for a name the cluster does not know (a member still joining) admits exactly
        // the member it names: re-joining under another name would remove that member. Current
        // members may add others: followers forward joins to the leader.
        if let Some(name) = caller {
            let known = self.store.members().by_name(&name).is_some();
            if !known && name != request.get_ref().name {
                return Err(Status::permission_denied(format!(
                    "member {name} may not add a member named {}",
                    request.get_ref().name
                )));
            }
        }
        let api_addr = request
            .metadata()
            .get("x-berth-api-addr")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let req = request.into_inner();
        let (id, members) = self
            .store
            .add_member(&req.name, &req.peer_addr, &api_addr)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(JoinResponse {
            id,
            members: members.iter().map(proto::raftpb::Member::from).collect(),
        }))
    }

    async fn status(
        &self,
        request: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        self.check_member(&request)?;
        let s = self.store.status().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(StatusResponse {
            id: s.id,
            leader_id: s.leader_id,
            term: s.term,
            commit: s.commit,
            applied: s.applied,
            members: s.members.iter().map(proto::raftpb::Member::from).collect(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_are_refused_before_their_body_is_read() {
        let mut check = MembersOnly { required: true };
        let err = check.call(Request::new(())).unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        let mut open = MembersOnly { required: false };
        assert!(
            open.call(Request::new(())).is_ok(),
            "plain stores (tests) check nothing"
        );
    }
}
