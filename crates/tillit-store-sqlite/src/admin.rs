//! What the tenant admin's pages read and change beyond the other modules: every account's
//! status, every role assignment and every access rule of one kind in a tenant, and ending a
//! role assignment.

use crate::access::{RULE_COLS, row_rule};
use crate::conn::{SqliteStore, driver};
use crate::queries::{
    ROLE_COLS, bad, cipher_err, collect, expect_changed, opt_ts, person_id, row_role, ts,
};
use rusqlite::{OptionalExtension, params};
use tillit_core::{AccessKind, TenantId, Username};
use tillit_store::*;
use time::OffsetDateTime;

impl SqliteStore {
    pub(crate) async fn account_statuses_impl(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<AccountStatus>> {
        let (tenant, cipher) = (tenant.clone(), self.cipher());
        self.read(move |c| {
            let mut s = c
                .prepare(
                    "SELECT id, person_id, username, totp_secret IS NOT NULL, failed_logins, locked_until, disabled
                     FROM users WHERE tenant_id = ?1 ORDER BY created_at, id",
                )
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str()], |r| {
                    let id = UserId(r.get(0)?);
                    let username = cipher
                        .open(None, &format!("username/{}", id.0), &r.get::<_, Vec<u8>>(2)?)
                        .map_err(cipher_err)?;
                    Ok(AccountStatus {
                        person: person_id(r, 1)?,
                        username: Username::parse(&username).map_err(bad)?,
                        totp_enrolled: r.get(3)?,
                        failed_logins: r.get(4)?,
                        locked_until: opt_ts(r.get(5)?)?,
                        disabled: r.get(6)?,
                        id,
                    })
                })
                .map_err(driver)?,
            )
        })
        .await
    }

    pub(crate) async fn tenant_role_assignments_impl(
        &self,
        tenant: &TenantId,
    ) -> StoreResult<Vec<(RoleAssignment, String)>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {ROLE_COLS}, source FROM role_assignments WHERE tenant_id = ?1 ORDER BY person_id, valid_from, id"
                ))
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str()], |r| Ok((row_role(r)?, r.get(7)?)))
                    .map_err(driver)?,
            )
        })
        .await
    }

    pub(crate) async fn end_role_assignment_impl(
        &self,
        tenant: &TenantId,
        id: &str,
        at: OffsetDateTime,
    ) -> StoreResult<()> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.write(move |tx| {
            let source: Option<String> = tx
                .query_row(
                    "SELECT source FROM role_assignments WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(driver)?;
            match source.as_deref() {
                None => return Err(StoreError::NotFound("role assignment")),
                Some("admin") => {}
                Some(other) => {
                    return Err(StoreError::Invalid(format!(
                        "this role comes from {other}; change or end that resource instead"
                    )));
                }
            }
            // As with access rules: only shortens, and one not begun yet ends now too.
            let n = tx
                .execute(
                    "UPDATE role_assignments SET
                       valid_from = CASE WHEN valid_to IS NULL OR valid_to > ?3 THEN MIN(valid_from, ?3 - 1) ELSE valid_from END,
                       valid_to = CASE WHEN valid_to IS NULL OR valid_to > ?3 THEN ?3 ELSE valid_to END
                     WHERE tenant_id = ?1 AND id = ?2",
                    params![tenant, id, ts(at)],
                )
                .map_err(driver)?;
            expect_changed(n, "role assignment")
        })
        .await
    }

    pub(crate) async fn access_rules_of_kind_impl(
        &self,
        tenant: &TenantId,
        kind: AccessKind,
    ) -> StoreResult<Vec<AccessRule>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {RULE_COLS} FROM access_rules WHERE tenant_id = ?1 AND kind = ?2 ORDER BY valid_from, id"
                ))
                .map_err(driver)?;
            collect(
                s.query_map(params![tenant.as_str(), kind.code()], row_rule)
                    .map_err(driver)?,
            )
        })
        .await
    }
}
