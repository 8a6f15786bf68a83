//! The controller's term: campaigning under the broker's lease, leading while the
//! election key is ours, and the fenced transactions every controller write goes through.

use super::*;

impl Controller {
    /// Campaigns while this broker is registered; leads until fenced, until its key is
    /// gone, or until the registration changes. Each term starts from nothing.
    pub async fn run(self: Arc<Self>, mut lease: watch::Receiver<Option<Incarnation>>) {
        let mut changes = self.cache.subscribe_raw();
        loop {
            let current = *lease.borrow_and_update();
            let Some(incarnation) = current else {
                if lease.changed().await.is_err() {
                    return;
                }
                continue;
            };
            match self.campaign(incarnation.lease).await {
                Ok(Some(epoch)) => {
                    info!(broker = self.broker_id, epoch, "became controller");
                    self.stats
                        .terms
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    // Admin requests plan over an image that shows the election at least.
                    self.saw_revision(epoch);
                    self.set_term(Some((epoch, incarnation.broker_epoch)));
                    self.lead(epoch, &mut lease, &mut changes).await;
                    self.set_term(None);
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
        lease: &mut watch::Receiver<Option<Incarnation>>,
        changes: &mut watch::Receiver<Revision>,
    ) {
        loop {
            let image = self.cache.raw_image();
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
            // Stop at once when the key names another epoch, or is gone (our lease
            // expired): a controller without its key must not act a moment longer.
            let image = self.cache.raw_image();
            if image.revision >= epoch && image.controller.map(|(_, e)| e) != Some(epoch) {
                return;
            }
        }
    }

    /// The guards of every controller write: our election key in this term, and our
    /// broker registration in this incarnation (etcd compares whole keys, not fields).
    pub(super) fn fences(&self, epoch: i64) -> Vec<Compare> {
        let mut fences = vec![Compare::create_revision(self.keys.controller(), epoch)];
        if let Some(broker_epoch) = self.broker_epoch() {
            fences.push(Compare::create_revision(
                self.keys.broker(self.broker_id),
                broker_epoch,
            ));
        }
        fences
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
            let mut compares = self.fences(epoch);
            compares.extend(chunk.iter().filter_map(|(c, _)| c.clone()));
            let ops = chunk.iter().map(|(_, op)| op.clone()).collect();
            let started = std::time::Instant::now();
            let response = self.store.txn(Txn::when(compares).and_then(ops)).await?;
            self.stats
                .transactions
                .observe(started.elapsed().as_secs_f64());
            revision = response.revision;
            if response.succeeded {
                // Only a write that landed under our prefix: a refused one answers etcd's
                // global revision, which the prefix watch may never deliver.
                self.saw_revision(response.revision);
            } else {
                let ours = self.store.get(&self.keys.controller()).await?;
                if ours.is_none_or(|kv| kv.create_revision != epoch) {
                    self.stats
                        .fenced
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Err(Error::ControllerFenced { epoch });
                }
                self.stats
                    .conflicts
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                all_ok = false;
            }
        }
        Ok((all_ok, revision))
    }

    async fn reconcile_leaders(&self, image: &MetadataImage, epoch: i64) -> Result<()> {
        let live = live_brokers(image);
        let draining: BTreeSet<i32> = image
            .brokers
            .iter()
            .filter(|(_, b)| b.registration.shutting_down)
            .map(|(id, _)| *id)
            .collect();
        let mut guarded = Vec::new();
        let mut unclean_elections = 0;
        for (topic, partitions) in &image.partitions {
            for (partition, current) in partitions {
                let unclean = self.unclean_allowed(image, topic);
                let Some(next) =
                    election::elect_avoiding(&current.value, &live, &draining, unclean)
                else {
                    continue;
                };
                let old_isr = current.value.isr_brokers();
                if next.leader >= 0 && !old_isr.contains(&next.leader) {
                    unclean_elections += 1;
                    warn!(topic = %topic, partition, leader = next.leader, "unclean leader election: acknowledged records the new leader lacks are lost");
                }
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
            let count = guarded.len() as u64;
            let (all_ok, _) = self.commit(epoch, guarded).await?;
            if all_ok {
                self.stats
                    .leader_changes
                    .fetch_add(count, std::sync::atomic::Ordering::Relaxed);
                self.stats
                    .unclean_elections
                    .fetch_add(unclean_elections, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
