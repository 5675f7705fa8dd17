//! The flow record: one classified TCP flow, what the pipeline names,
//! judges and counts. The kernel's ring reader (kernel/events.rs) produces
//! it from verdict events; `replay` converts its capture-side record
//! (`replay::FlowRecord`: socket addresses and the capture time) into it.
//! `FlowId` is not a record but a connection's endpoints, the key that
//! joins a flow's TLS hello records to its verdict.

use super::tls_hello::TlsMeta;
use agent_common::wire::Hook;
use std::net::IpAddr;

/// One classified flow, as the kernel's verdict event (or replay) tells it.
#[derive(Debug, Clone)]
pub struct Flow {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
    pub hook: Option<Hook>,
    pub verdict: agent_common::Verdict,
    pub midstream: bool,
    /// What the flow's TLS hellos said (empty if none was seen).
    pub tls: TlsMeta,
}

/// A connection's endpoints, client first: how hello records find their
/// flow's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FlowId {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
}

impl Flow {
    pub fn id(&self) -> FlowId {
        FlowId {
            client: self.client,
            client_port: self.client_port,
            server: self.server,
            server_port: self.server_port,
        }
    }
}
