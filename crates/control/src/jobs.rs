//! Reading jobs back.

use crate::access::Resource;
use crate::{Caller, Control, Result};
use certbind_core::ids::*;
use certbind_core::model::*;
use certbind_core::CoreError;
use certbind_store::JobFilter;

impl Control {
    pub fn get_job(&self, caller: &Caller, id: JobId) -> Result<Job> {
        let mut tx = self.store().read()?;
        let job = tx.get_job(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("job", id))?;
        self.authorize(&mut *tx, caller, "GetJob", &[Resource::Job { id }])?;
        Ok(job)
    }

    pub fn list_jobs(&self, caller: &Caller, filter: &JobFilter) -> Result<(Vec<Job>, u64)> {
        let mut tx = self.store().read()?;
        self.authorize(&mut *tx, caller, "ListJobs", &[Resource::All { kind: "job" }])?;
        Ok(tx.list_jobs(caller.account_id, filter)?)
    }

    pub fn job_targets(&self, caller: &Caller, id: JobId, offset: u64, limit: u64) -> Result<Vec<JobTarget>> {
        let mut tx = self.store().read()?;
        tx.get_job(caller.account_id, id)?.ok_or_else(|| CoreError::not_found("job", id))?;
        self.authorize(&mut *tx, caller, "GetJob", &[Resource::Job { id }])?;
        Ok(tx.job_targets(id, offset, limit)?)
    }
}
