//! connections under the harness: the workload connects and disconnects on-demand clients,
//! publishes through them and through the sensor's telemetry, and makes the broker drop
//! links, go away for a while and stop answering; the harness's faults crash and kill the
//! connections, the telemetry and the supervisors.

use super::{
    is_connected, publish, start_both, Connections, SimBroker, TelemetryCall, SENSOR, TELEMETRY,
};
use crate::process::Process;
use crate::rt::Duration;
use crate::server::ServerRef;
use crate::sim::harness::{faults_within, gave_up, Domain, Target, Workload};
use crate::sim::invariants::Violation;
use crate::term::Pid;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The `connections` target.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnectionsTarget;

/// The sensor's client id.
const SENSOR_CLIENT: &str = "sensor";

fn device(n: u8) -> String {
    format!("dev{}", n % 3)
}

/// One workload operation; `n` picks a client: `dev0`..`dev2`, or the sensor for 3.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionsOp {
    /// Get (start if needed) an on-demand connection.
    Connect(u8),
    /// Stop an on-demand connection.
    Disconnect(u8),
    /// Publish through an on-demand connection.
    Publish(u8),
    /// Publish through the sensor's telemetry.
    Report,
    /// The broker drops a client's links (`n % 4 == 3`: the sensor's).
    DropLinks(u8),
    /// The broker refuses connections and drops every link for this many milliseconds.
    Outage(u16),
    /// A client's sessions stop answering for this many milliseconds.
    Stall(u8, u16),
}

fn client(n: u8) -> String {
    if n % 4 == 3 {
        SENSOR_CLIENT.into()
    } else {
        device(n)
    }
}

/// The broker, the on-demand connections, and the ids the workload connected (since the
/// connection supervisor it connected them on started).
pub struct ConnectionsModel {
    broker: SimBroker,
    connections: Connections,
    wanted: BTreeSet<String>,
    supervisor: Option<Pid>,
}

impl ConnectionsModel {
    /// A new connection supervisor started empty: the workload's connections went with the
    /// old one.
    fn meet_supervisor(&mut self, p: &Process) {
        let now = p.whereis(super::CONNECTIONS);
        if now != self.supervisor {
            self.supervisor = now;
            self.wanted.clear();
        }
    }

    /// No two live connections share a client id (the broker saw every connect).
    fn one_connection_per_client(&self, p: &Process) -> Result<(), Violation> {
        match self.broker.duplicates(p).first() {
            Some(what) => Err(Violation::app("one_connection_per_client", what.clone())),
            None => Ok(()),
        }
    }

    /// At rest, `client`'s connection `pid` is connected, through exactly one session.
    async fn connected_once(&self, p: &Process, client: &str, pid: Pid) -> Result<(), Violation> {
        let sessions = self.broker.sessions(client);
        let connected = is_connected(p, pid).await.unwrap_or(false);
        if !connected || sessions.len() != 1 || sessions[0].0 != pid {
            return Err(Violation::app(
                "one_connection_per_client",
                format!(
                    "at rest, {client}'s connection {pid} is {}connected, with sessions {sessions:?}",
                    if connected { "" } else { "not " }
                ),
            ));
        }
        Ok(())
    }
}

impl Target for ConnectionsTarget {
    type Setup = ();
    type Op = ConnectionsOp;
    type State = ConnectionsModel;

    fn name(&self) -> String {
        "connections".into()
    }

    fn setups(&self) -> BoxedStrategy<()> {
        Just(()).boxed()
    }

    /// Clients from the case's domain.
    fn workload(&self, domain: Domain) -> Workload<ConnectionsOp> {
        let pick = || domain.pick();
        Workload::new()
            .kind("connect", 3, pick().prop_map(ConnectionsOp::Connect))
            .kind("disconnect", 1, pick().prop_map(ConnectionsOp::Disconnect))
            .kind("publish", 3, pick().prop_map(ConnectionsOp::Publish))
            .kind("report", 2, Just(ConnectionsOp::Report))
            .kind("drop_links", 2, pick().prop_map(ConnectionsOp::DropLinks))
            .kind("outage", 1, (0u16..3000).prop_map(ConnectionsOp::Outage))
            .kind(
                "stall",
                1,
                (pick(), 0u16..2000).prop_map(|(n, ms)| ConnectionsOp::Stall(n, ms)),
            )
    }

    async fn start(&self, _: &(), p: &Process) -> Result<(Pid, ConnectionsModel), String> {
        // The broker is the network: outside the tree, out of the faults' reach.
        let broker = SimBroker::start_link(p).await.map_err(|e| e.to_string())?;
        let (sup, connections) = start_both(p, Arc::new(broker.clone()))
            .await
            .map_err(|e| e.to_string())?;
        let model = ConnectionsModel {
            broker,
            connections,
            wanted: BTreeSet::new(),
            supervisor: p.whereis(super::CONNECTIONS),
        };
        Ok((sup.pid(), model))
    }

    async fn apply(
        &self,
        model: &mut ConnectionsModel,
        op: &ConnectionsOp,
        p: &Process,
    ) -> Result<(), Violation> {
        model.meet_supervisor(p);
        match *op {
            ConnectionsOp::Connect(n) => {
                // Right after the connection supervisor restarted, the name may still
                // lead to a connection of the old one, its exit signal on the way: a
                // leftover about to die, that no supervisor will bring back.
                let found = model.connections.connect(p, &device(n)).await;
                if found.is_ok_and(|pid| p.node().parent_of(pid) == model.supervisor) {
                    model.wanted.insert(device(n));
                }
            }
            ConnectionsOp::Disconnect(n) => {
                if model.connections.disconnect(p, &device(n)).await {
                    model.wanted.remove(&device(n));
                }
            }
            ConnectionsOp::Publish(n) => {
                if let Some(pid) = model.connections.whereis(&device(n)) {
                    let _ = publish(p, pid, "reading").await;
                }
            }
            ConnectionsOp::Report => {
                if let Some(telemetry) = p.whereis(TELEMETRY) {
                    let telemetry = ServerRef::<super::Telemetry>::from_pid(telemetry);
                    let _ = telemetry
                        .call(p, TelemetryCall::Report("reading".into()))
                        .await;
                }
            }
            ConnectionsOp::DropLinks(n) => model.broker.drop_links(p, &client(n)),
            ConnectionsOp::Outage(ms) => {
                model.broker.outage(p, Duration::from_millis(u64::from(ms)));
            }
            ConnectionsOp::Stall(n, ms) => {
                let duration = Duration::from_millis(u64::from(ms));
                model.broker.stall(p, &client(n), duration);
            }
        }
        Ok(())
    }

    /// At rest: each wanted connection, and the sensor's, is connected through exactly one
    /// session, and the telemetry holds the sensor's live connection.
    async fn check(&self, model: &mut ConnectionsModel, p: &Process) -> Result<(), Violation> {
        model.one_connection_per_client(p)?;
        model.meet_supervisor(p);
        for client in model.wanted.clone() {
            if let Some(pid) = model.connections.whereis(&client) {
                model.connected_once(p, &client, pid).await?;
            } else if model.supervisor.is_some() {
                return Err(Violation::app(
                    "one_connection_per_client",
                    format!("at rest, {client} has no connection"),
                ));
            }
        }
        // Each fault costs the sensor one restart, whatever the network does: it gives up
        // only after more faults than its intensity (3), never for an outage.
        let hits = faults_within(p, "root/sensor");
        if gave_up(p, "root/sensor") && hits <= 3 {
            return Err(Violation::app(
                "survives_network_trouble",
                format!("the sensor gave up after {hits} fault(s): the network cost it restarts"),
            ));
        }
        let (Some(sensor), Some(telemetry)) = (p.whereis(SENSOR), p.whereis(TELEMETRY)) else {
            return Ok(()); // the sensor gave up: the harness's liveness has its say
        };
        model.connected_once(p, SENSOR_CLIENT, sensor).await?;
        let telemetry = ServerRef::<super::Telemetry>::from_pid(telemetry);
        match telemetry.call(p, TelemetryCall::Connection).await {
            Ok(Ok(held)) if held == sensor => Ok(()),
            Ok(held) => Err(Violation::app(
                "dependents_hold_the_live_connection",
                format!("the telemetry holds {held:?}, the sensor's connection is {sensor}"),
            )),
            Err(_) => Ok(()),
        }
    }
}
