//! Conversions between the store's types and etcd-client's, and the etcd errors the store
//! tells apart (by gRPC code and etcd's message, as etcd's own clients do).

use etcd_client::{
    Compare as EtcdCompare, CompareOp as EtcdCompareOp, DeleteOptions, GetOptions, PutOptions,
    TxnOp, TxnOpResponse,
};
use tonic::Code;

use crate::error::{Error, Result};
use crate::metadata::store::{
    Compare, CompareOp, CompareTarget, KeyValue, Op, OpResult, Revision, Txn,
};

/// The end of the key range holding every key that starts with `prefix`: the prefix with
/// its last byte below 0xff incremented (etcd's `GetPrefixRangeEnd`).
pub(super) fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): to the end of the key space.
    vec![0]
}

/// A stored key-value from etcd's. Keys are written by this crate as UTF-8; anything else
/// under our prefix is shown lossily rather than refused.
pub(super) fn key_value(kv: &etcd_client::KeyValue) -> KeyValue {
    KeyValue {
        key: String::from_utf8_lossy(kv.key()).into_owned(),
        value: kv.value().to_vec(),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    }
}

/// The revision in a response header; etcd always sends one.
pub(super) fn header_revision(
    header: Option<&etcd_client::ResponseHeader>,
    operation: &'static str,
) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| Error::EtcdRequest {
            operation,
            source: etcd_client::Error::Internal("response without a header".into()),
        })
}

fn compare(c: &Compare) -> EtcdCompare {
    let op = match c.op {
        CompareOp::Equal => EtcdCompareOp::Equal,
        CompareOp::NotEqual => EtcdCompareOp::NotEqual,
        CompareOp::Greater => EtcdCompareOp::Greater,
        CompareOp::Less => EtcdCompareOp::Less,
    };
    let key = c.key.as_bytes();
    match &c.target {
        CompareTarget::CreateRevision(r) => EtcdCompare::create_revision(key, op, *r),
        CompareTarget::ModRevision(r) => EtcdCompare::mod_revision(key, op, *r),
        CompareTarget::Version(v) => EtcdCompare::version(key, op, *v),
        CompareTarget::Value(v) => EtcdCompare::value(key, op, v.as_slice()),
    }
}

fn op(op: &Op) -> TxnOp {
    match op {
        Op::Put { key, value, lease } => TxnOp::put(
            key.as_bytes(),
            value.as_slice(),
            lease.map(|l| PutOptions::new().with_lease(l)),
        ),
        Op::Delete { key } => TxnOp::delete(key.as_bytes(), None),
        Op::DeletePrefix { prefix } => TxnOp::delete(
            prefix.as_bytes(),
            Some(DeleteOptions::new().with_range(prefix_end(prefix))),
        ),
        Op::Get { key } => TxnOp::get(key.as_bytes(), None),
        Op::GetPrefix { prefix } => TxnOp::get(
            prefix.as_bytes(),
            Some(GetOptions::new().with_range(prefix_end(prefix))),
        ),
    }
}

/// etcd's transaction for ours (limits are checked before, by the caller).
pub(super) fn txn(t: &Txn) -> etcd_client::Txn {
    etcd_client::Txn::new()
        .when(t.compares.iter().map(compare).collect::<Vec<_>>())
        .and_then(t.success.iter().map(op).collect::<Vec<_>>())
        .or_else(t.failure.iter().map(op).collect::<Vec<_>>())
}

/// Our result of one transaction op.
pub(super) fn op_result(response: &TxnOpResponse) -> OpResult {
    match response {
        TxnOpResponse::Put(_) => OpResult::Put,
        TxnOpResponse::Delete(d) => OpResult::Deleted(d.deleted()),
        TxnOpResponse::Get(g) => OpResult::Got(g.kvs().iter().map(key_value).collect()),
        // We never send nested transactions.
        TxnOpResponse::Txn(_) => OpResult::Got(Vec::new()),
    }
}

/// The lease a transaction writes under, for naming it when etcd says it is gone.
pub(super) fn txn_lease(t: &Txn) -> Option<i64> {
    t.success.iter().chain(&t.failure).find_map(|op| match op {
        Op::Put {
            lease: Some(lease), ..
        } => Some(*lease),
        _ => None,
    })
}

fn status(err: &etcd_client::Error) -> Option<&tonic::Status> {
    match err {
        etcd_client::Error::GRpcStatus(status) => Some(status),
        _ => None,
    }
}

fn is_status(err: &etcd_client::Error, code: Code, message: &str) -> bool {
    status(err).is_some_and(|s| s.code() == code && s.message().contains(message))
}

/// etcd's `ErrGRPCLeaseNotFound` ("etcdserver: requested lease not found").
pub(super) fn is_lease_not_found(err: &etcd_client::Error) -> bool {
    is_status(err, Code::NotFound, "lease not found")
}

/// etcd's `ErrGRPCCompacted` ("etcdserver: mvcc: required revision has been compacted").
pub(super) fn is_compacted(err: &etcd_client::Error) -> bool {
    is_status(
        err,
        Code::OutOfRange,
        "required revision has been compacted",
    )
}

/// etcd's `ErrGRPCFutureRev` ("etcdserver: mvcc: required revision is a future revision").
pub(super) fn is_future_revision(err: &etcd_client::Error) -> bool {
    is_status(err, Code::OutOfRange, "future revision")
}

/// tonic refusing a response over its decode limit (4 MiB by default).
pub(super) fn is_too_large_to_decode(err: &etcd_client::Error) -> bool {
    is_status(err, Code::OutOfRange, "decoded message length too large")
}

/// A static label for the metrics: the gRPC status name, else the kind of failure.
pub(super) fn error_label(err: &etcd_client::Error) -> &'static str {
    let Some(status) = status(err) else {
        return match err {
            etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => "transport",
            _ => "client",
        };
    };
    match status.code() {
        Code::Ok => "ok",
        Code::Cancelled => "cancelled",
        Code::Unknown => "unknown",
        Code::InvalidArgument => "invalid_argument",
        Code::DeadlineExceeded => "deadline_exceeded",
        Code::NotFound => "not_found",
        Code::AlreadyExists => "already_exists",
        Code::PermissionDenied => "permission_denied",
        Code::ResourceExhausted => "resource_exhausted",
        Code::FailedPrecondition => "failed_precondition",
        Code::Aborted => "aborted",
        Code::OutOfRange => "out_of_range",
        Code::Unimplemented => "unimplemented",
        Code::Internal => "internal",
        Code::Unavailable => "unavailable",
        Code::DataLoss => "data_loss",
        Code::Unauthenticated => "unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_after_its_last_key() {
        assert_eq!(prefix_end("/runnel/"), b"/runnel0".to_vec());
        assert_eq!(prefix_end("a"), b"b".to_vec());
        assert_eq!(prefix_end(""), vec![0]);
    }

    #[test]
    fn a_transaction_names_the_lease_it_writes_under() {
        let t = Txn::when(vec![]).and_then(vec![
            Op::put("/a", b"1".to_vec()),
            Op::Put {
                key: "/b".into(),
                value: vec![],
                lease: Some(7),
            },
        ]);
        assert_eq!(txn_lease(&t), Some(7));
        assert_eq!(txn_lease(&Txn::default()), None);
    }

    #[test]
    fn etcd_errors_are_told_apart_by_code_and_message() {
        let compacted = etcd_client::Error::GRpcStatus(tonic::Status::out_of_range(
            "etcdserver: mvcc: required revision has been compacted",
        ));
        assert!(is_compacted(&compacted));
        assert!(!is_future_revision(&compacted));
        assert_eq!(error_label(&compacted), "out_of_range");
        let lease = etcd_client::Error::GRpcStatus(tonic::Status::not_found(
            "etcdserver: requested lease not found",
        ));
        assert!(is_lease_not_found(&lease));
        assert!(!is_too_large_to_decode(&lease));
    }
}
