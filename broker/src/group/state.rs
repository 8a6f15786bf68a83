//! One consumer group under the classic protocol: its members, generation and committed
//! offsets, and the state machine Kafka's GroupCoordinator runs (Empty →
//! PreparingRebalance → CompletingRebalance → Stable, Dead once deleted).
//!
//! Nothing here does I/O. Requests that must wait (a JoinGroup until the rebalance
//! completes, a SyncGroup until the leader's assignment is stored) leave a oneshot sender
//! with their member; the coordinator resolves it. A dropped sender means the group went
//! away (the coordinator unloaded it), which the handler answers as NOT_COORDINATOR.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use proto_kafka::error::ResponseError;
use tokio::sync::oneshot;

use super::codec::{GroupValue, MemberValue, OffsetValue};
use crate::protocol::error_code::code;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka's DescribeGroups and ListGroups use.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The broker's group settings.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: i32,
    pub max_size: usize,
    /// The most bytes of protocol metadata one member may send.
    pub max_protocol_metadata_bytes: usize,
}

/// What a JoinGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata) — for the leader only.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

impl JoinOutcome {
    pub fn error(error: ResponseError, member_id: &str) -> JoinOutcome {
        JoinOutcome {
            error: code(error),
            generation: -1,
            member_id: member_id.to_string(),
            ..JoinOutcome::default()
        }
    }
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncOutcome {
    pub fn error(error: ResponseError) -> SyncOutcome {
        SyncOutcome {
            error: code(error),
            ..SyncOutcome::default()
        }
    }
}

/// A JoinGroup's fields.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a first join gets MEMBER_ID_REQUIRED and its id (KIP-394).
    pub require_known_member_id: bool,
}

/// A JoinGroup's result: answered now, or later through the receiver.
#[derive(Debug)]
pub enum Joined {
    Now(JoinOutcome),
    Later(oneshot::Receiver<JoinOutcome>),
}

/// A SyncGroup's result; `Store` asks the coordinator to persist the group first.
#[derive(Debug)]
pub enum Synced {
    Now(SyncOutcome),
    Later(oneshot::Receiver<SyncOutcome>),
    Store(GroupValue, oneshot::Receiver<SyncOutcome>),
}

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    heartbeat_deadline: Instant,
    join: Option<oneshot::Sender<JoinOutcome>>,
    sync: Option<oneshot::Sender<SyncOutcome>>,
    /// Joined since the last generation (an initial delayed join waits for more).
    synced: bool,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    fn alive(&self, now: Instant) -> bool {
        self.join.is_some() || self.sync.is_some() || now < self.heartbeat_deadline
    }

    fn touch(&mut self, now: Instant) {
        self.heartbeat_deadline = now + ms(self.session_timeout_ms);
    }

    /// Takes a rejoining member's settings; returns whether its protocols are unchanged.
    fn rejoin(&mut self, request: JoinRequest, now: Instant) -> bool {
        let unchanged = self.protocols == request.protocols;
        self.protocols = request.protocols;
        self.session_timeout_ms = request.session_timeout_ms;
        self.rebalance_timeout_ms = request.rebalance_timeout_ms;
        self.client_id = request.client_id;
        self.client_host = request.client_host;
        self.touch(now);
        unchanged
    }

    /// Answers a JoinGroup or SyncGroup this member is waiting in with `error`.
    fn release(&mut self, error: ResponseError) {
        if let Some(tx) = self.join.take() {
            let _ = tx.send(JoinOutcome::error(error, &self.id));
        }
        if let Some(tx) = self.sync.take() {
            let _ = tx.send(SyncOutcome::error(error));
        }
    }
}

/// KIP-134 as Kafka schedules it: the join phase of a group that was empty runs in windows
/// of `group.initial.rebalance.delay.ms` counted from the first join. A window in which a
/// member joined is followed by another (no longer than what is left of the first member's
/// rebalance timeout); a window without one ends the phase. Kept exact because the moment
/// the phase ends decides whose poll the JoinGroup answers meet, and kafka-python joins
/// again when an answer arrives between two of its polls.
#[derive(Debug, Clone, Copy)]
struct InitialJoin {
    /// `group.initial.rebalance.delay.ms`.
    delay: Duration,
    /// The length of the window now running.
    window: Duration,
    /// What is left of the rebalance timeout after this window.
    remaining: Duration,
    /// A member joined during this window.
    member_added: bool,
}

/// A committed offset and where its record sits in `__consumer_offsets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    pub value: OffsetValue,
    pub log_offset: i64,
}

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Static membership: instance id → member id.
    statics: HashMap<String, String>,
    /// KIP-394: member ids handed out and not yet used, with their expiry.
    pending: HashMap<String, Instant>,
    pub offsets: BTreeMap<(String, i32), Committed>,
    /// When the join phase (or the current window of an initial join) ends.
    join_deadline: Option<Instant>,
    /// Set while the join phase of a group that was empty waits for more members.
    initial_join: Option<InitialJoin>,
    /// When members that have not synced are removed.
    sync_deadline: Option<Instant>,
    /// The leader's assignment is being stored.
    storing: bool,
    /// The group emptied and should be stored so that a reload sees its generation.
    store_due: bool,
    /// When the group entered its state (KIP-211 expires offsets from here).
    pub state_since_ms: i64,
    /// Rebalances started, for metrics.
    pub rebalances: u64,
    /// Offset commits written and not yet applied: a group created by a standalone
    /// commit holds nothing until its offsets are applied, and must not be dropped as
    /// vacant meanwhile (the acknowledged offsets would be missing until a reload).
    pub pending_commits: usize,
}

fn ms(v: i32) -> Duration {
    Duration::from_millis(v.max(0) as u64)
}

impl Group {
    pub fn new(id: &str, now_ms: i64) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            statics: HashMap::new(),
            pending: HashMap::new(),
            offsets: BTreeMap::new(),
            join_deadline: None,
            initial_join: None,
            sync_deadline: None,
            storing: false,
            store_due: false,
            state_since_ms: now_ms,
            rebalances: 0,
            pending_commits: 0,
        }
    }

    /// Whether the group holds nothing worth keeping: never formed, no offsets, nobody
    /// waiting to join.
    pub fn is_vacant(&self) -> bool {
        self.members.is_empty()
            && self.pending.is_empty()
            && self.pending_commits == 0
            && self.offsets.is_empty()
            && self.state == GroupState::Empty
            && self.generation == 0
            && self.protocol_type.is_none()
    }

    /// A group as stored; members get a full session to heartbeat again.
    pub fn restore(&mut self, value: GroupValue, now: Instant) {
        self.protocol_type = Some(value.protocol_type).filter(|t| !t.is_empty());
        self.generation = value.generation;
        self.protocol = value.protocol;
        self.leader = value.leader;
        self.state_since_ms = value.state_timestamp;
        self.members.clear();
        self.statics.clear();
        for m in value.members {
            if let Some(instance) = &m.instance_id {
                self.statics.insert(instance.clone(), m.member_id.clone());
            }
            let protocols = match &self.protocol {
                Some(p) => vec![(p.clone(), m.subscription.clone())],
                None => Vec::new(),
            };
            let mut member = Member {
                id: m.member_id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                protocols,
                assignment: m.assignment,
                heartbeat_deadline: now,
                join: None,
                sync: None,
                synced: true,
            };
            member.touch(now);
            self.members.insert(m.member_id, member);
        }
        self.state = if self.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
    }

    /// The group as stored now.
    pub fn value(&self) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp: self.state_since_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    fn set_state(&mut self, state: GroupState, now_ms: i64) {
        if self.state != state {
            self.state = state;
            self.state_since_ms = now_ms;
        }
    }

    /// Protocols every member (and `extra`) supports.
    fn common_protocols(&self, extra: Option<&[(String, Bytes)]>) -> BTreeSet<String> {
        let mut lists: Vec<BTreeSet<String>> = self
            .members
            .values()
            .map(|m| m.protocols.iter().map(|(n, _)| n.clone()).collect())
            .collect();
        if let Some(extra) = extra {
            lists.push(extra.iter().map(|(n, _)| n.clone()).collect());
        }
        let mut iter = lists.into_iter();
        let Some(first) = iter.next() else {
            return BTreeSet::new();
        };
        iter.fold(first, |acc, l| acc.intersection(&l).cloned().collect())
    }

    /// Each member votes for its most preferred protocol that all support.
    fn select_protocol(&self) -> Option<String> {
        let common = self.common_protocols(None);
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| common.contains(n)) {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|(_, v)| *v)
            .map(|(n, _)| n.to_string())
    }

    fn new_member_id(client_id: &str) -> String {
        format!("{client_id}-{}", uuid::Uuid::new_v4())
    }

    /// Handles a JoinGroup.
    pub fn join(
        &mut self,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Joined {
        let member_id = request.member_id.clone();
        if request.session_timeout_ms < limits.min_session_timeout_ms
            || request.session_timeout_ms > limits.max_session_timeout_ms
        {
            return Joined::Now(JoinOutcome::error(
                ResponseError::InvalidSessionTimeout,
                &member_id,
            ));
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() {
            return Joined::Now(JoinOutcome::error(
                ResponseError::InconsistentGroupProtocol,
                &member_id,
            ));
        }
        if request
            .protocols
            .iter()
            .map(|(_, m)| m.len())
            .sum::<usize>()
            > limits.max_protocol_metadata_bytes
        {
            return Joined::Now(JoinOutcome::error(
                ResponseError::InvalidRequest,
                &member_id,
            ));
        }
        if self.state == GroupState::Dead {
            return Joined::Now(JoinOutcome::error(
                ResponseError::CoordinatorNotAvailable,
                &member_id,
            ));
        }
        if !self.members.is_empty() {
            let type_differs = self.protocol_type.as_deref() != Some(&request.protocol_type);
            if type_differs || self.common_protocols(Some(&request.protocols)).is_empty() {
                return Joined::Now(JoinOutcome::error(
                    ResponseError::InconsistentGroupProtocol,
                    &member_id,
                ));
            }
        }
        if member_id.is_empty() {
            self.join_unknown(request, limits, now, now_ms)
        } else {
            self.join_known(request, limits, now, now_ms)
        }
    }

    fn join_unknown(
        &mut self,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Joined {
        let new_id = Self::new_member_id(&request.client_id);
        if let Some(instance) = request.instance_id.clone() {
            if let Some(old_id) = self.statics.get(&instance).cloned() {
                return self.replace_static(old_id, new_id, request, limits, now, now_ms);
            }
        } else if request.require_known_member_id {
            if self.members.len() + self.pending.len() >= limits.max_size {
                return Joined::Now(JoinOutcome::error(ResponseError::GroupMaxSizeReached, ""));
            }
            self.pending
                .insert(new_id.clone(), now + ms(request.session_timeout_ms));
            return Joined::Now(JoinOutcome::error(ResponseError::MemberIdRequired, &new_id));
        }
        if self.members.len() >= limits.max_size {
            return Joined::Now(JoinOutcome::error(ResponseError::GroupMaxSizeReached, ""));
        }
        self.add_member(new_id, request, limits, now, now_ms)
    }

    fn join_known(
        &mut self,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Joined {
        let member_id = request.member_id.clone();
        if self.pending.remove(&member_id).is_some() {
            if self.members.len() >= limits.max_size {
                return Joined::Now(JoinOutcome::error(
                    ResponseError::GroupMaxSizeReached,
                    &member_id,
                ));
            }
            return self.add_member(member_id, request, limits, now, now_ms);
        }
        if let Err(e) = self.check_member(&member_id, request.instance_id.as_deref()) {
            return Joined::Now(JoinOutcome::error(e, &member_id));
        }
        let Some(member) = self.members.get_mut(&member_id) else {
            return Joined::Now(JoinOutcome::error(
                ResponseError::UnknownMemberId,
                &member_id,
            ));
        };
        let unchanged = member.rejoin(request, now);
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => self.wait_for_join(&member_id, now, now_ms),
            GroupState::CompletingRebalance | GroupState::Stable if unchanged && !is_leader => {
                // Nothing changed: a follower retrying its join gets the current generation.
                Joined::Now(self.join_outcome(&member_id, false))
            }
            GroupState::CompletingRebalance if unchanged => {
                Joined::Now(self.join_outcome(&member_id, true))
            }
            _ => {
                self.prepare_rebalance(now, now_ms);
                self.wait_for_join(&member_id, now, now_ms)
            }
        }
    }

    fn replace_static(
        &mut self,
        old_id: String,
        new_id: String,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Joined {
        let Some(mut member) = self.members.remove(&old_id) else {
            self.statics
                .remove(request.instance_id.as_deref().unwrap_or_default());
            return self.add_member(new_id, request, limits, now, now_ms);
        };
        member.release(ResponseError::FencedInstanceId);
        member.id = new_id.clone();
        if let Some(instance) = &request.instance_id {
            self.statics.insert(instance.clone(), new_id.clone());
        }
        let unchanged = member.rejoin(request, now);
        self.members.insert(new_id.clone(), member);
        let was_leader = self.leader.as_deref() == Some(old_id.as_str());
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        if self.state == GroupState::Stable && unchanged && !was_leader {
            // A restarted static member takes its old place without a rebalance.
            return Joined::Now(self.join_outcome(&new_id, false));
        }
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now, now_ms);
        }
        self.wait_for_join(&new_id, now, now_ms)
    }

    fn add_member(
        &mut self,
        id: String,
        request: JoinRequest,
        limits: &GroupLimits,
        now: Instant,
        now_ms: i64,
    ) -> Joined {
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance) = &request.instance_id {
            self.statics.insert(instance.clone(), id.clone());
        }
        let mut member = Member {
            id: id.clone(),
            instance_id: request.instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocol_type: request.protocol_type,
            protocols: request.protocols,
            assignment: Bytes::new(),
            heartbeat_deadline: now,
            join: None,
            sync: None,
            synced: false,
        };
        member.touch(now);
        let rebalance_timeout = ms(member.rebalance_timeout_ms);
        self.members.insert(id.clone(), member);
        // Kafka's rule: the first member to join a group that has no leader leads it. Picking
        // the smallest member id instead made the leader the range assignor's owner of the
        // first partition too, so every extra JoinGroup of the leader held up delivery.
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        match self.state {
            GroupState::Empty => {
                // KIP-134: wait a moment for the rest of a starting group.
                self.prepare_rebalance(now, now_ms);
                let delay = ms(limits.initial_rebalance_delay_ms);
                self.initial_join = Some(InitialJoin {
                    delay,
                    window: delay,
                    remaining: rebalance_timeout.saturating_sub(delay),
                    member_added: false,
                });
                self.join_deadline = Some(now + delay);
            }
            GroupState::PreparingRebalance => {
                if let Some(initial) = &mut self.initial_join {
                    initial.member_added = true;
                }
            }
            _ => self.prepare_rebalance(now, now_ms),
        }
        self.wait_for_join(&id, now, now_ms)
    }

    fn wait_for_join(&mut self, member_id: &str, now: Instant, now_ms: i64) -> Joined {
        let (tx, rx) = oneshot::channel();
        if let Some(member) = self.members.get_mut(member_id) {
            if let Some(old) = member.join.replace(tx) {
                let _ = old.send(JoinOutcome::error(
                    ResponseError::RebalanceInProgress,
                    member_id,
                ));
            }
        }
        self.maybe_complete_join(now, now_ms);
        Joined::Later(rx)
    }

    fn prepare_rebalance(&mut self, now: Instant, now_ms: i64) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.sync.take() {
                    let _ = tx.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                }
            }
        }
        self.storing = false;
        self.sync_deadline = None;
        self.initial_join = None;
        self.rebalances += 1;
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.join_deadline = Some(now + ms(timeout));
        self.set_state(GroupState::PreparingRebalance, now_ms);
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(|m| m.join.is_some())
    }

    fn maybe_complete_join(&mut self, now: Instant, now_ms: i64) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let delayed = self.initial_join.is_some();
        if self.join_phase_due(now) || (!delayed && self.all_joined()) {
            self.complete_join(now, now_ms);
        }
    }

    /// Whether the join phase is over at `now`. An initial join's window that saw a new
    /// member is followed by the next window instead (KIP-134).
    fn join_phase_due(&mut self, now: Instant) -> bool {
        let Some(deadline) = self.join_deadline.filter(|d| now >= *d) else {
            return false;
        };
        let Some(initial) = &mut self.initial_join else {
            return true;
        };
        if !initial.member_added || initial.remaining.is_zero() {
            return true;
        }
        let window = initial.delay.min(initial.remaining);
        initial.remaining = initial.remaining.saturating_sub(initial.window);
        initial.window = window;
        initial.member_added = false;
        // From the window's end, not from `now`: the timer loop may run late, and the windows
        // stay whole multiples of the delay after the first join, as in Kafka.
        self.join_deadline = Some(deadline + window);
        // Only a tick later than a whole window finds the next one over already.
        now >= deadline + window
    }

    /// Ends the join phase: members that did not rejoin leave, the generation advances.
    fn complete_join(&mut self, now: Instant, now_ms: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.join_deadline = None;
        self.initial_join = None;
        self.generation = self.generation.wrapping_add(1);
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty, now_ms);
            self.store_due = true;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now_ms);
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0);
        self.sync_deadline = Some(now + ms(timeout));
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let outcome = self.join_outcome(&id, is_leader);
            if let Some(m) = self.members.get_mut(&id) {
                m.synced = false;
                m.assignment = Bytes::new();
                m.touch(now);
                if let Some(tx) = m.join.take() {
                    let _ = tx.send(outcome);
                }
            }
        }
    }

    /// Whether the group emptied since last asked (the coordinator then stores it).
    pub fn take_store_due(&mut self) -> bool {
        std::mem::take(&mut self.store_due)
    }

    fn join_outcome(&self, member_id: &str, with_members: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        JoinOutcome {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .values()
                    .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn remove_member(&mut self, id: &str) -> bool {
        let Some(mut member) = self.members.remove(id) else {
            return false;
        };
        if let Some(instance) = &member.instance_id {
            if self.statics.get(instance).map(String::as_str) == Some(id) {
                self.statics.remove(instance);
            }
        }
        member.release(ResponseError::UnknownMemberId);
        if self.leader.as_deref() == Some(id) {
            // As Kafka does: another member leads, one waiting to join if there is one.
            self.leader = self
                .members
                .values()
                .find(|m| m.join.is_some())
                .or_else(|| self.members.values().next())
                .map(|m| m.id.clone());
        }
        true
    }

    /// Checks that `member_id` belongs to the group and, for a static member, that its
    /// instance id maps to this very member.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        if let Some(instance) = instance_id {
            match self.statics.get(instance) {
                Some(current) if current != member_id => {
                    return Err(ResponseError::FencedInstanceId)
                }
                None if self.members.contains_key(member_id) => {
                    return Err(ResponseError::FencedInstanceId)
                }
                _ => {}
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        Ok(())
    }

    /// Handles a SyncGroup.
    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: Instant,
    ) -> Synced {
        if matches!(self.state, GroupState::Dead | GroupState::Empty) {
            return Synced::Now(SyncOutcome::error(ResponseError::UnknownMemberId));
        }
        if let Err(e) = self.check_member(member_id, instance_id) {
            return Synced::Now(SyncOutcome::error(e));
        }
        if generation != self.generation {
            return Synced::Now(SyncOutcome::error(ResponseError::IllegalGeneration));
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return Synced::Now(SyncOutcome::error(ResponseError::InconsistentGroupProtocol));
        }
        match self.state {
            GroupState::PreparingRebalance => {
                Synced::Now(SyncOutcome::error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let assignment = self
                    .members
                    .get(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                if let Some(m) = self.members.get_mut(member_id) {
                    m.touch(now);
                }
                Synced::Now(self.sync_outcome(assignment))
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                let is_leader = self.leader.as_deref() == Some(member_id);
                if let Some(m) = self.members.get_mut(member_id) {
                    m.synced = true;
                    m.touch(now);
                    if let Some(old) = m.sync.replace(tx) {
                        let _ = old.send(SyncOutcome::error(ResponseError::RebalanceInProgress));
                    }
                }
                if !is_leader || self.storing {
                    return Synced::Later(rx);
                }
                for (id, assignment) in assignments {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.assignment = assignment;
                    }
                }
                self.storing = true;
                Synced::Store(self.value(), rx)
            }
        }
    }

    fn sync_outcome(&self, assignment: Bytes) -> SyncOutcome {
        SyncOutcome {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }

    /// The leader's assignment of `generation` was stored (or failed to be): members
    /// waiting in SyncGroup get their assignments, or the group rebalances again.
    pub fn assignment_stored(
        &mut self,
        generation: i32,
        error: Option<i16>,
        now: Instant,
        now_ms: i64,
    ) {
        if generation != self.generation
            || self.state != GroupState::CompletingRebalance
            || !self.storing
        {
            return;
        }
        self.storing = false;
        if let Some(error) = error {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(tx) = m.sync.take() {
                    let _ = tx.send(SyncOutcome {
                        error,
                        ..SyncOutcome::default()
                    });
                }
            }
            self.prepare_rebalance(now, now_ms);
            return;
        }
        self.sync_deadline = None;
        self.set_state(GroupState::Stable, now_ms);
        let outcomes: Vec<(String, SyncOutcome)> = self
            .members
            .values()
            .map(|m| (m.id.clone(), self.sync_outcome(m.assignment.clone())))
            .collect();
        for (id, outcome) in outcomes {
            if let Some(m) = self.members.get_mut(&id) {
                m.touch(now);
                if let Some(tx) = m.sync.take() {
                    let _ = tx.send(outcome);
                }
            }
        }
    }

    /// Handles a Heartbeat; the error code to answer.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> i16 {
        if matches!(self.state, GroupState::Dead | GroupState::Empty) {
            return code(ResponseError::UnknownMemberId);
        }
        if let Err(e) = self.check_member(member_id, instance_id) {
            return code(e);
        }
        if generation != self.generation {
            return code(ResponseError::IllegalGeneration);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.touch(now);
        }
        match self.state {
            GroupState::PreparingRebalance => code(ResponseError::RebalanceInProgress),
            _ => 0,
        }
    }

    /// Handles one member of a LeaveGroup; the error code for it.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: Instant,
        now_ms: i64,
    ) -> i16 {
        if self.pending.remove(member_id).is_some() {
            return 0;
        }
        let id = match instance_id {
            Some(instance) => match self.statics.get(instance) {
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return code(ResponseError::FencedInstanceId)
                }
                Some(current) => current.clone(),
                None => return code(ResponseError::UnknownMemberId),
            },
            None => member_id.to_string(),
        };
        if !self.remove_member(&id) {
            return code(ResponseError::UnknownMemberId);
        }
        self.after_removal(now, now_ms);
        0
    }

    fn after_removal(&mut self, now: Instant, now_ms: i64) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, now_ms);
                self.maybe_complete_join(now, now_ms);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(now, now_ms),
            _ => {}
        }
    }

    /// Advances timers: expired sessions leave, a due join phase completes, members that
    /// never synced leave. Returns true when the group should be stored (it emptied).
    pub fn tick(&mut self, now: Instant, now_ms: i64) -> bool {
        let pending = self.pending.len();
        self.pending.retain(|_, deadline| now < *deadline);
        if self.pending.len() < pending {
            // A member id handed out (KIP-394) that never came back no longer holds up
            // the join phase, as in Kafka.
            self.maybe_complete_join(now, now_ms);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.alive(now))
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member's session expired");
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.after_removal(now, now_ms);
        }
        if self.state == GroupState::CompletingRebalance
            && !self.storing
            && self.sync_deadline.is_some_and(|d| now >= d)
        {
            let unsynced: Vec<String> = self
                .members
                .values()
                .filter(|m| !m.synced)
                .map(|m| m.id.clone())
                .collect();
            for id in &unsynced {
                self.remove_member(id);
            }
            self.prepare_rebalance(now, now_ms);
        }
        if self.state == GroupState::PreparingRebalance && self.join_phase_due(now) {
            self.complete_join(now, now_ms);
        }
        self.take_store_due()
    }

    /// Whether a commit from `member_id` in `generation` may be applied.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: Instant,
    ) -> Result<(), ResponseError> {
        if self.state == GroupState::Dead {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        if generation < 0 && member_id.is_empty() {
            // Admin and standalone commits, only while nobody consumes.
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        self.check_member(member_id, instance_id)?;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if let Some(m) = self.members.get_mut(member_id) {
            m.touch(now);
        }
        Ok(())
    }

    /// Applies a stored commit unless a later record already set the offset.
    pub fn apply_offset(&mut self, topic: &str, partition: i32, committed: Committed) {
        let key = (topic.to_string(), partition);
        match self.offsets.get(&key) {
            Some(c) if c.log_offset > committed.log_offset => {}
            _ => {
                self.offsets.insert(key, committed);
            }
        }
    }

    /// Offsets due to expire (KIP-211): a consumer group's once it has been empty for
    /// `retention_ms`, a standalone committer's by each commit's own age.
    pub fn expired_offsets(&self, now_ms: i64, retention_ms: i64) -> Vec<(String, i32)> {
        if self.state != GroupState::Empty {
            return Vec::new();
        }
        let managed = self.protocol_type.is_some();
        self.offsets
            .iter()
            .filter(|(_, c)| {
                let since = if managed {
                    self.state_since_ms
                } else {
                    c.value.commit_timestamp
                };
                now_ms.saturating_sub(since) >= retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Marks the group deleted; anyone waiting is told to find the coordinator again.
    pub fn kill(&mut self) {
        for m in std::mem::take(&mut self.members).values_mut() {
            m.release(ResponseError::CoordinatorNotAvailable);
        }
        self.state = GroupState::Dead;
    }

    /// Topics the members subscribe to, when the members speak the consumer protocol
    /// (`None`: unknown, so every topic counts as subscribed).
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        use proto_kafka::messages::ConsumerProtocolSubscription;
        use proto_kafka::protocol::Decodable;
        if self.members.is_empty() {
            return Some(BTreeSet::new());
        }
        if self.protocol_type.as_deref() != Some("consumer") {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut topics = BTreeSet::new();
        for m in self.members.values() {
            let mut raw = m.metadata(&protocol);
            if raw.len() < 2 {
                return None;
            }
            let version = i16::from_be_bytes([raw[0], raw[1]]);
            let _ = bytes::Buf::get_i16(&mut raw);
            let sub = ConsumerProtocolSubscription::decode(&mut raw, version.clamp(0, 3)).ok()?;
            topics.extend(sub.topics.into_iter().map(|t| t.to_string()));
        }
        Some(topics)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> GroupLimits {
        GroupLimits {
            min_session_timeout_ms: 10,
            max_session_timeout_ms: 100_000,
            initial_rebalance_delay_ms: 0,
            max_size: 10,
            max_protocol_metadata_bytes: 1024,
        }
    }

    fn request(member: &str) -> JoinRequest {
        JoinRequest {
            member_id: member.to_string(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 1000,
            rebalance_timeout_ms: 1000,
            protocol_type: "consumer".into(),
            protocols: vec![("range".into(), Bytes::from_static(b"m"))],
            require_known_member_id: true,
        }
    }

    fn now_join(g: &mut Group, r: JoinRequest, now: Instant) -> Joined {
        g.join(r, &limits(), now, 0)
    }

    #[test]
    fn a_first_join_needs_a_member_id_then_completes_a_generation() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let Joined::Now(first) = now_join(&mut g, request(""), now) else {
            panic!("expected MEMBER_ID_REQUIRED at once");
        };
        assert_eq!(first.error, code(ResponseError::MemberIdRequired));
        let Joined::Later(mut rx) = now_join(&mut g, request(&first.member_id), now) else {
            panic!("a join waits for the rebalance");
        };
        // Initial delay 0: the deadline is now, so a tick completes the join.
        g.tick(now, 0);
        let joined = rx.try_recv().unwrap();
        assert_eq!(joined.error, 0);
        assert_eq!(joined.generation, 1);
        assert_eq!(joined.leader, first.member_id);
        assert_eq!(joined.members.len(), 1);
        assert_eq!(g.state, GroupState::CompletingRebalance);
        let Synced::Store(value, mut sync) = g.sync(
            &first.member_id,
            None,
            1,
            None,
            None,
            vec![(first.member_id.clone(), Bytes::from_static(b"a"))],
            now,
        ) else {
            panic!("the leader's sync stores the group");
        };
        assert_eq!(value.members[0].assignment.as_ref(), b"a");
        g.assignment_stored(1, None, now, 0);
        assert_eq!(sync.try_recv().unwrap().assignment.as_ref(), b"a");
        assert_eq!(g.state, GroupState::Stable);
        assert_eq!(g.heartbeat(&first.member_id, None, 1, now), 0);
        assert_eq!(
            g.heartbeat(&first.member_id, None, 0, now),
            code(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.heartbeat("nobody", None, 1, now),
            code(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn an_expired_session_rebalances_and_an_empty_group_is_stored() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut r = request("");
        r.require_known_member_id = false;
        let Joined::Later(mut rx) = now_join(&mut g, r, now) else {
            panic!()
        };
        g.tick(now, 0);
        let joined = rx.try_recv().unwrap();
        let _ = g.sync(&joined.member_id, None, 1, None, None, vec![], now);
        g.assignment_stored(1, None, now, 0);
        assert!(!g.tick(now + Duration::from_millis(500), 0));
        assert!(g.tick(now + Duration::from_millis(1500), 0), "emptied");
        assert_eq!(g.state, GroupState::Empty);
        assert_eq!(g.generation, 2);
    }

    #[test]
    fn commits_are_fenced_by_generation_and_admin_commits_need_an_empty_group() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        assert!(g.check_commit("", None, -1, now).is_ok());
        let mut r = request("");
        r.require_known_member_id = false;
        let Joined::Later(mut rx) = now_join(&mut g, r, now) else {
            panic!()
        };
        g.tick(now, 0);
        let id = rx.try_recv().unwrap().member_id;
        assert_eq!(
            g.check_commit(&id, None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        let _ = g.sync(&id, None, 1, None, None, vec![], now);
        g.assignment_stored(1, None, now, 0);
        assert!(g.check_commit(&id, None, 1, now).is_ok());
        assert_eq!(
            g.check_commit(&id, None, 0, now),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            g.check_commit("", None, -1, now),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn a_static_member_that_restarts_takes_its_place_and_fences_the_old_id() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut r = request("");
        r.instance_id = Some("i-1".into());
        let Joined::Later(mut rx) = now_join(&mut g, r.clone(), now) else {
            panic!("static members skip MEMBER_ID_REQUIRED")
        };
        g.tick(now, 0);
        let old = rx.try_recv().unwrap().member_id;
        let _ = g.sync(
            &old,
            Some("i-1"),
            1,
            None,
            None,
            vec![(old.clone(), Bytes::from_static(b"x"))],
            now,
        );
        g.assignment_stored(1, None, now, 0);
        // A second static member so that the restarted one is not the leader.
        let mut r2 = request("");
        r2.instance_id = Some("i-2".into());
        let Joined::Later(mut rx2) = now_join(&mut g, r2, now) else {
            panic!()
        };
        let Joined::Later(mut rx1) = now_join(&mut g, request(&old), now) else {
            panic!()
        };
        let leader = rx1.try_recv().unwrap();
        let follower = rx2.try_recv().unwrap();
        assert_eq!(leader.generation, 2);
        let _ = g.sync(&leader.member_id, None, 2, None, None, vec![], now);
        let _ = g.sync(&follower.member_id, None, 2, None, None, vec![], now);
        g.assignment_stored(2, None, now, 0);
        assert_eq!(g.state, GroupState::Stable);
        let mut restart = request("");
        restart.instance_id = Some("i-2".into());
        let Joined::Now(again) = now_join(&mut g, restart, now) else {
            panic!("no rebalance for a restarted static follower")
        };
        assert_eq!(again.generation, 2);
        assert_ne!(again.member_id, follower.member_id);
        assert_eq!(
            g.heartbeat(&follower.member_id, Some("i-2"), 2, now),
            code(ResponseError::FencedInstanceId)
        );
        assert_eq!(g.heartbeat(&again.member_id, Some("i-2"), 2, now), 0);
    }

    #[test]
    fn offsets_expire_only_after_the_group_has_been_empty_for_the_retention() {
        let committed = |offset, at| Committed {
            value: OffsetValue {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: at,
            },
            log_offset: offset,
        };
        // A standalone committer: each offset by its own commit time.
        let mut solo = Group::new("s", 0);
        solo.apply_offset("t", 0, committed(1, 1_000));
        solo.apply_offset("t", 1, committed(2, 5_000));
        assert_eq!(
            solo.expired_offsets(7_000, 3_000),
            vec![("t".to_string(), 0)]
        );
        // A consumer group: nothing while members are there, everything once it has been
        // empty for the retention, however old the commits.
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut r = request("");
        r.require_known_member_id = false;
        let Joined::Later(mut rx) = now_join(&mut g, r, now) else {
            panic!()
        };
        g.tick(now, 0);
        let id = rx.try_recv().unwrap().member_id;
        g.apply_offset("t", 0, committed(1, 0));
        assert!(g.expired_offsets(1_000_000, 10).is_empty());
        assert_eq!(g.leave(&id, None, now, 50_000), 0);
        assert_eq!(g.state, GroupState::Empty);
        assert!(g.expired_offsets(55_000, 10_000).is_empty());
        assert_eq!(g.expired_offsets(60_000, 10_000).len(), 1);
    }

    /// Two kafka-python consumers with default settings (session 45 s, rebalance 300 s) and
    /// `group.initial.rebalance.delay.ms=3000`, the second joining 100 ms after the first,
    /// as traced for the issue. Kafka ends the join phase two whole windows after the first
    /// join (the first window saw a newcomer) and the first member leads. Ending it 3 s after
    /// the second join, led by the smallest member id, put the leader's answers into the
    /// other consumer's poll; kafka-python drops a join that completes between its polls
    /// and joins again, and a leader's JoinGroup rebalances a stable group.
    #[test]
    fn a_delayed_initial_join_runs_in_whole_windows_from_the_first_join_led_by_the_first_member() {
        let limits = GroupLimits {
            initial_rebalance_delay_ms: 3000,
            ..limits()
        };
        let consumer = |client: &str, member: &str| JoinRequest {
            client_id: client.into(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            ..request(member)
        };
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut g = Group::new("g", 0);
        // Client ids chosen so that the second member's id sorts first.
        let join = |g: &mut Group, client: &str, now: Instant| {
            let Joined::Now(first) = g.join(consumer(client, ""), &limits, now, 0) else {
                panic!("a first join gets MEMBER_ID_REQUIRED");
            };
            assert_eq!(first.error, code(ResponseError::MemberIdRequired));
            let Joined::Later(rx) = g.join(consumer(client, &first.member_id), &limits, now, 0)
            else {
                panic!("the join waits for the initial delay");
            };
            (first.member_id, rx)
        };
        let (a, mut rx_a) = join(&mut g, "z", at(0));
        let (b, mut rx_b) = join(&mut g, "a", at(100));
        assert!(b < a);
        for ms in [2999, 3000, 3100, 3199, 5999] {
            g.tick(at(ms), 0);
            assert!(rx_a.try_recv().is_err(), "A answered at {ms} ms");
            assert!(rx_b.try_recv().is_err(), "B answered at {ms} ms");
            assert_eq!(g.state, GroupState::PreparingRebalance);
        }
        g.tick(at(6000), 0);
        let joined_a = rx_a
            .try_recv()
            .expect("A is answered when the second window ends");
        let joined_b = rx_b.try_recv().expect("B is answered with A");
        assert_eq!((joined_a.error, joined_b.error), (0, 0));
        assert_eq!((joined_a.generation, joined_b.generation), (1, 1));
        assert_eq!(joined_a.leader, a, "the first member to join leads");
        assert_eq!(joined_b.leader, a);
        assert_eq!(joined_a.members.len(), 2);
        assert!(joined_b.members.is_empty());

        // Without a newcomer the phase ends with its first window.
        let mut alone = Group::new("alone", 0);
        let (_, mut rx) = join(&mut alone, "z", at(0));
        alone.tick(at(2999), 0);
        assert!(rx.try_recv().is_err());
        alone.tick(at(3000), 0);
        assert_eq!(
            rx.try_recv().expect("answered after one window").generation,
            1
        );

        // The windows stop at the first member's rebalance timeout, newcomers or not.
        let mut capped = Group::new("capped", 0);
        let short = |client: &str, member: &str| JoinRequest {
            rebalance_timeout_ms: 5000,
            ..consumer(client, member)
        };
        let Joined::Now(first) = capped.join(short("z", ""), &limits, at(0), 0) else {
            panic!()
        };
        let Joined::Later(mut rx) = capped.join(short("z", &first.member_id), &limits, at(0), 0)
        else {
            panic!()
        };
        let newcomer = |g: &mut Group, ms| {
            let Joined::Now(n) = g.join(short("y", ""), &limits, at(ms), 0) else {
                panic!()
            };
            let _ = g.join(short("y", &n.member_id), &limits, at(ms), 0);
        };
        newcomer(&mut capped, 100);
        capped.tick(at(3000), 0);
        newcomer(&mut capped, 4000);
        capped.tick(at(4999), 0);
        assert!(rx.try_recv().is_err());
        capped.tick(at(5000), 0);
        assert_eq!(rx.try_recv().expect("answered at the cap").generation, 1);
    }

    #[test]
    fn the_first_member_to_join_leads_whatever_its_member_id() {
        let limits = GroupLimits {
            initial_rebalance_delay_ms: 3000,
            ..limits()
        };
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut waiting = Vec::new();
        for client in ["z", "a", "m"] {
            let Joined::Later(rx) = g.join(
                JoinRequest {
                    client_id: client.into(),
                    require_known_member_id: false,
                    ..request("")
                },
                &limits,
                now,
                0,
            ) else {
                panic!("the join waits for the initial delay");
            };
            waiting.push(rx);
        }
        g.tick(now + Duration::from_secs(10), 0);
        let joined: Vec<JoinOutcome> = waiting
            .iter_mut()
            .map(|rx| rx.try_recv().expect("answered"))
            .collect();
        assert!(joined[1].member_id < joined[0].member_id);
        assert!(joined.iter().all(|j| j.leader == joined[0].member_id));
        assert_eq!(joined[0].members.len(), 3);
        // When the leader leaves, a member that is there takes over.
        assert_eq!(g.leave(&joined[0].member_id, None, now, 0), 0);
        assert!(g
            .leader
            .as_ref()
            .is_some_and(|l| *l != joined[0].member_id && g.members.contains_key(l)));
    }

    #[test]
    fn oversized_metadata_and_bad_timeouts_are_refused() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut big = request("");
        big.protocols = vec![("range".into(), Bytes::from(vec![0u8; 2048]))];
        let Joined::Now(o) = now_join(&mut g, big, now) else {
            panic!()
        };
        assert_eq!(o.error, code(ResponseError::InvalidRequest));
        let mut short = request("");
        short.session_timeout_ms = 1;
        let Joined::Now(o) = now_join(&mut g, short, now) else {
            panic!()
        };
        assert_eq!(o.error, code(ResponseError::InvalidSessionTimeout));
    }

    #[test]
    fn a_member_id_that_never_comes_back_stops_holding_the_join_phase() {
        let now = Instant::now();
        let mut g = Group::new("g", 0);
        let mut a = request("");
        a.require_known_member_id = false;
        // Without the fix only this timeout would end the phase.
        a.rebalance_timeout_ms = 100_000;
        a.session_timeout_ms = 100_000;
        let Joined::Later(mut rx) = now_join(&mut g, a.clone(), now) else {
            panic!()
        };
        g.tick(now, 0);
        let first = rx.try_recv().unwrap();
        let _ = g.sync(&first.member_id, None, 1, None, None, vec![], now);
        g.assignment_stored(1, None, now, 0);
        // B gets a member id and never uses it.
        let mut b = request("");
        b.session_timeout_ms = 1_000;
        let Joined::Now(required) = now_join(&mut g, b, now) else {
            panic!()
        };
        assert_eq!(required.error, code(ResponseError::MemberIdRequired));
        // A rejoins with new metadata: a rebalance that waits for everyone, B included.
        let mut again = a;
        again.member_id = first.member_id.clone();
        again.protocols = vec![("range".into(), Bytes::from_static(b"changed"))];
        let Joined::Later(mut rx) = now_join(&mut g, again, now) else {
            panic!("the rejoin waits")
        };
        g.tick(now + Duration::from_millis(500), 0);
        assert!(rx.try_recv().is_err(), "B's id is still pending");
        g.tick(now + Duration::from_millis(1_100), 0);
        let joined = rx.try_recv().expect("B's id expired: the phase ends");
        assert_eq!(joined.generation, 2);
    }
}
