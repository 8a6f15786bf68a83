//! The controller's term: campaigning under the broker's lease, leading while the
//! election key is ours, and the fenced transactions every controller write goes through.

use super::*;

impl Controller {
    /// Campaigns while `lease` holds a lease; leads until fenced or the lease changes.
    pub async fn run(self: Arc<Self>, mut lease: watch::Receiver<Option<LeaseId>>) {
        let mut changes = self.cache.subscribe();
        loop {
            let current = *lease.borrow_and_update();
            let Some(lease_id) = current else {
                if lease.changed().await.is_err() {
                    return;
                }
                continue;
            };
            match self.campaign(lease_id).await {
                Ok(Some(epoch)) => {
                    info!(broker = self.broker_id, epoch, "became controller");
                    self.set_epoch(Some(epoch));
                    self.lead(epoch, &mut lease, &mut changes).await;
                    self.set_epoch(None);
                    info!(broker = self.broker_id, epoch, "stopped being controller");
                }
                Ok(None) => {
                    // Someone else leads: wait for a change (their key may disappear).
                    tokio::select! {
                        r = changes.changed() => if r.is_err() { return },
                        r = lease.changed() => if r.is_err() { return },
                    }
                }
                Err(Error::StoreClosed) => return,
                Err(err) => {
                    warn!(error = %err, "controller campaign failed");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    async fn campaign(&self, lease: LeaseId) -> Result<Option<i64>> {
        let key = self.keys.controller();
        let value = encode("controller", &key, &self.broker_id)?;
        let txn = Txn::when(vec![Compare::absent(key.clone())]).and_then(vec![Op::Put {
            key,
            value,
            lease: Some(lease),
        }]);
        let response = self.store.txn(txn).await?;
        Ok(response.succeeded.then_some(response.revision))
    }

    async fn lead(
        &self,
        epoch: i64,
        lease: &mut watch::Receiver<Option<LeaseId>>,
        changes: &mut watch::Receiver<Revision>,
    ) {
        loop {
            let image = self.cache.image();
            if image.revision >= epoch {
                match self.reconcile_leaders(&image, epoch).await {
                    Err(Error::ControllerFenced { .. }) | Err(Error::StoreClosed) => return,
                    Err(err) => warn!(error = %err, "leader reconciliation failed"),
                    Ok(()) => {}
                }
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                r = lease.changed() => if r.is_err() || lease.borrow().is_none() { return },
            }
            if image.controller.is_some_and(|(_, e)| e != epoch) && image.revision >= epoch {
                return;
            }
        }
    }

    pub(super) fn fence(&self, epoch: i64) -> Compare {
        Compare::create_revision(self.keys.controller(), epoch)
    }

    /// Commits `ops` (each guarded by its compare) in transactions fenced by `epoch`.
    /// Returns the last revision, or `ControllerFenced` if leadership is gone.
    pub(super) async fn commit(
        &self,
        epoch: i64,
        guarded: Vec<(Option<Compare>, Op)>,
    ) -> Result<(bool, Revision)> {
        let mut all_ok = true;
        let mut revision = 0;
        for chunk in guarded.chunks(MAX_TXN_OPS) {
            let mut compares = vec![self.fence(epoch)];
            compares.extend(chunk.iter().filter_map(|(c, _)| c.clone()));
            let ops = chunk.iter().map(|(_, op)| op.clone()).collect();
            let response = self.store.txn(Txn::when(compares).and_then(ops)).await?;
            revision = response.revision;
            if !response.succeeded {
                let ours = self.store.get(&self.keys.controller()).await?;
                if ours.is_none_or(|kv| kv.create_revision != epoch) {
                    return Err(Error::ControllerFenced { epoch });
                }
                all_ok = false;
            }
        }
        Ok((all_ok, revision))
    }

    async fn reconcile_leaders(&self, image: &MetadataImage, epoch: i64) -> Result<()> {
        let live = live_brokers(image);
        let mut guarded = Vec::new();
        for (topic, partitions) in &image.partitions {
            for (partition, current) in partitions {
                let Some(next) = election::elect(&current.value, &live) else {
                    continue;
                };
                let key = self.keys.partition(topic, *partition);
                info!(
                    topic = %topic,
                    partition,
                    leader = next.leader,
                    leader_epoch = next.leader_epoch,
                    isr = ?next.isr_brokers(),
                    "changing partition leadership"
                );
                let value = encode("partition", &key, &next)?;
                guarded.push((
                    Some(Compare::mod_revision(key.clone(), current.mod_revision)),
                    Op::put(key, value),
                ));
            }
        }
        if !guarded.is_empty() {
            self.commit(epoch, guarded).await?;
        }
        Ok(())
    }
}
