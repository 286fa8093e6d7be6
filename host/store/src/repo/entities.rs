//! Repositories of the routing entities: trunks, inbound numbers, voicemail boxes and messages,
//! ring groups, IVR menus, time switches, conference bridges, prompts, recordings.

use sqlx::types::Json;

use super::{delete_by_id, paged};
use super::{ConferenceBridges, InboundNumbers, IvrMenus, Prompts, Recordings, RingGroups, TimeSwitches, Trunks, VoicemailBoxes, VoicemailMessages};
use crate::secrets::{hash_password, verify_password};
use crate::*;

/// How a write-only secret changes on update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUpdate<'s> {
    /// keep what is stored
    Keep,
    /// replace it
    Set(&'s str),
    /// remove it
    Clear,
}

macro_rules! trunk_cols {
    () => {
        "id, name, type, enabled, host, port, transport, username, auth_username, register_expiry, remote_hosts, \
         local_host, codecs, max_channels, caller_id_name, caller_id_num, prefix_strip, prefix_add, priority, \
         outbound_proxy, options_interval, country_code, national_prefix, international_prefix, tls_verify, srtp, record_inbound, record_outbound, \
         created_at, updated_at, password_enc IS NOT NULL AS password_set"
    };
}

const COL_TRUNK_PASSWORD: &str = "trunks.password";

impl Trunks<'_> {
    /// Trunks in outbound preference order (priority, then id).
    pub async fn list(self, page: Page) -> Result<Paged<Trunk>> {
        let mut c = self.db.acquire().await?;
        paged(&mut c, concat!("SELECT ", trunk_cols!(), " FROM trunks ORDER BY priority, id LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM trunks", page).await
    }

    /// The enabled trunks in outbound preference order.
    pub async fn list_enabled(self) -> Result<Vec<Trunk>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", trunk_cols!(), " FROM trunks WHERE enabled = 1 ORDER BY priority, id")).fetch_all(&mut *c).await?)
    }

    pub async fn get(self, id: i64) -> Result<Option<Trunk>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", trunk_cols!(), " FROM trunks WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, f: &TrunkFields, password: Option<&str>) -> Result<Trunk> {
        let sealed = password.map(|p| self.inner.cipher.seal_str(COL_TRUNK_PASSWORD, p));
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO trunks (name, type, enabled, host, port, transport, username, password_enc, auth_username, \
             register_expiry, remote_hosts, local_host, codecs, max_channels, caller_id_name, caller_id_num, \
             prefix_strip, prefix_add, priority, outbound_proxy, options_interval, country_code, national_prefix, \
             international_prefix, tls_verify, srtp, record_inbound, record_outbound, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            trunk_cols!()
        ))
        .bind(&f.name)
        .bind(f.trunk_type)
        .bind(f.enabled)
        .bind(&f.host)
        .bind(f.port)
        .bind(f.transport)
        .bind(&f.username)
        .bind(sealed)
        .bind(&f.auth_username)
        .bind(f.register_expiry)
        .bind(Json(&f.remote_hosts))
        .bind(&f.local_host)
        .bind(Json(&f.codecs))
        .bind(f.max_channels)
        .bind(&f.caller_id_name)
        .bind(&f.caller_id_num)
        .bind(f.prefix_strip)
        .bind(&f.prefix_add)
        .bind(f.priority)
        .bind(&f.outbound_proxy)
        .bind(f.options_interval)
        .bind(&f.country_code)
        .bind(&f.national_prefix)
        .bind(&f.international_prefix)
        .bind(f.tls_verify)
        .bind(f.srtp)
        .bind(f.record_inbound)
        .bind(f.record_outbound)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn update(self, id: i64, f: &TrunkFields, password: SecretUpdate<'_>) -> Result<Trunk> {
        let (keep, sealed) = match password {
            SecretUpdate::Keep => (true, None),
            SecretUpdate::Set(p) => (false, Some(self.inner.cipher.seal_str(COL_TRUNK_PASSWORD, p))),
            SecretUpdate::Clear => (false, None),
        };
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!(
            "UPDATE trunks SET name = ?, type = ?, enabled = ?, host = ?, port = ?, transport = ?, username = ?, \
             password_enc = CASE WHEN ? THEN password_enc ELSE ? END, auth_username = ?, register_expiry = ?, \
             remote_hosts = ?, local_host = ?, codecs = ?, max_channels = ?, caller_id_name = ?, caller_id_num = ?, \
             prefix_strip = ?, prefix_add = ?, priority = ?, outbound_proxy = ?, options_interval = ?, country_code = ?, \
             national_prefix = ?, international_prefix = ?, tls_verify = ?, srtp = ?, record_inbound = ?, record_outbound = ?, updated_at = ? WHERE id = ? RETURNING ",
            trunk_cols!()
        ))
        .bind(&f.name)
        .bind(f.trunk_type)
        .bind(f.enabled)
        .bind(&f.host)
        .bind(f.port)
        .bind(f.transport)
        .bind(&f.username)
        .bind(keep)
        .bind(sealed)
        .bind(&f.auth_username)
        .bind(f.register_expiry)
        .bind(Json(&f.remote_hosts))
        .bind(&f.local_host)
        .bind(Json(&f.codecs))
        .bind(f.max_channels)
        .bind(&f.caller_id_name)
        .bind(&f.caller_id_num)
        .bind(f.prefix_strip)
        .bind(&f.prefix_add)
        .bind(f.priority)
        .bind(&f.outbound_proxy)
        .bind(f.options_interval)
        .bind(&f.country_code)
        .bind(&f.national_prefix)
        .bind(&f.international_prefix)
        .bind(f.tls_verify)
        .bind(f.srtp)
        .bind(f.record_inbound)
        .bind(f.record_outbound)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM trunks WHERE id = ?", id).await
    }

    /// The trunk's password, decrypted (for registering with the provider).
    pub async fn password(self, id: i64) -> Result<Option<String>> {
        let inner = self.inner;
        let mut c = self.db.acquire().await?;
        let row: Option<(Option<Vec<u8>>,)> = sqlx::query_as("SELECT password_enc FROM trunks WHERE id = ?").bind(id).fetch_optional(&mut *c).await?;
        match row {
            Some((Some(sealed),)) => Ok(Some(inner.cipher.open_string(COL_TRUNK_PASSWORD, &sealed)?)),
            _ => Ok(None),
        }
    }
}

macro_rules! number_cols {
    () => {
        "id, number, name, trunk_id, flow_id, flow_entry_node, enabled, created_at, updated_at"
    };
}

impl InboundNumbers<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<InboundNumber>> {
        let mut c = self.db.acquire().await?;
        paged(
            &mut c,
            concat!("SELECT ", number_cols!(), " FROM inbound_numbers ORDER BY number LIMIT ? OFFSET ?"),
            "SELECT COUNT(*) FROM inbound_numbers",
            page,
        )
        .await
    }

    pub async fn get(self, id: i64) -> Result<Option<InboundNumber>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", number_cols!(), " FROM inbound_numbers WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The DID `number` (E.164, "+61299990000").
    pub async fn get_by_number(self, number: &str) -> Result<Option<InboundNumber>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", number_cols!(), " FROM inbound_numbers WHERE number = ?")).bind(number).fetch_optional(&mut *c).await?)
    }

    /// The numbers that enter `flow_id`.
    pub async fn list_for_flow(self, flow_id: i64) -> Result<Vec<InboundNumber>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", number_cols!(), " FROM inbound_numbers WHERE flow_id = ? ORDER BY number"))
            .bind(flow_id)
            .fetch_all(&mut *c)
            .await?)
    }

    pub async fn insert(self, f: &InboundNumberFields) -> Result<InboundNumber> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO inbound_numbers (number, name, trunk_id, flow_id, flow_entry_node, enabled, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            number_cols!()
        ))
        .bind(&f.number)
        .bind(&f.name)
        .bind(f.trunk_id)
        .bind(f.flow_id)
        .bind(&f.flow_entry_node)
        .bind(f.enabled)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn update(self, id: i64, f: &InboundNumberFields) -> Result<InboundNumber> {
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!(
            "UPDATE inbound_numbers SET number = ?, name = ?, trunk_id = ?, flow_id = ?, flow_entry_node = ?, enabled = ?, \
             updated_at = ? WHERE id = ? RETURNING ",
            number_cols!()
        ))
        .bind(&f.number)
        .bind(&f.name)
        .bind(f.trunk_id)
        .bind(f.flow_id)
        .bind(&f.flow_entry_node)
        .bind(f.enabled)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM inbound_numbers WHERE id = ?", id).await
    }
}

macro_rules! vm_cols {
    () => {
        "id, name, mailbox_number, greeting_file, greeting_type, email_notify, email_address, email_attach_audio, \
         max_message_duration, max_messages, retention_days, notify_extension_id, created_at, updated_at, \
         pin_hash IS NOT NULL AS pin_set"
    };
}

async fn hash_secret_update(u: SecretUpdate<'_>) -> Result<(bool, Option<String>)> {
    Ok(match u {
        SecretUpdate::Keep => (true, None),
        SecretUpdate::Set(p) => (false, Some(hash_password(p).await?)),
        SecretUpdate::Clear => (false, None),
    })
}

impl VoicemailBoxes<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<VoicemailBox>> {
        let mut c = self.db.acquire().await?;
        paged(&mut c, concat!("SELECT ", vm_cols!(), " FROM voicemail_boxes ORDER BY name, id LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM voicemail_boxes", page)
            .await
    }

    pub async fn get(self, id: i64) -> Result<Option<VoicemailBox>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", vm_cols!(), " FROM voicemail_boxes WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The box dialled as `number` for message retrieval.
    pub async fn get_by_mailbox_number(self, number: &str) -> Result<Option<VoicemailBox>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", vm_cols!(), " FROM voicemail_boxes WHERE mailbox_number = ?")).bind(number).fetch_optional(&mut *c).await?)
    }

    /// The boxes whose message-waiting lamp is on `extension_id` (the app's voicemail list).
    pub async fn list_for_extension(self, extension_id: i64) -> Result<Vec<VoicemailBox>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", vm_cols!(), " FROM voicemail_boxes WHERE notify_extension_id = ? ORDER BY id"))
            .bind(extension_id)
            .fetch_all(&mut *c)
            .await?)
    }

    /// Inserts a box; the PIN (if any) is stored as an argon2id hash.
    pub async fn insert(self, f: &VoicemailBoxFields, pin: Option<&str>) -> Result<VoicemailBox> {
        let pin_hash = match pin {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO voicemail_boxes (name, mailbox_number, pin_hash, greeting_file, greeting_type, email_notify, \
             email_address, email_attach_audio, max_message_duration, max_messages, retention_days, notify_extension_id, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            vm_cols!()
        ))
        .bind(&f.name)
        .bind(&f.mailbox_number)
        .bind(pin_hash)
        .bind(&f.greeting_file)
        .bind(f.greeting_type)
        .bind(f.email_notify)
        .bind(&f.email_address)
        .bind(f.email_attach_audio)
        .bind(f.max_message_duration)
        .bind(f.max_messages)
        .bind(f.retention_days)
        .bind(f.notify_extension_id)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn update(self, id: i64, f: &VoicemailBoxFields, pin: SecretUpdate<'_>) -> Result<VoicemailBox> {
        let (keep, pin_hash) = hash_secret_update(pin).await?;
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!(
            "UPDATE voicemail_boxes SET name = ?, mailbox_number = ?, pin_hash = CASE WHEN ? THEN pin_hash ELSE ? END, \
             greeting_file = ?, greeting_type = ?, email_notify = ?, email_address = ?, email_attach_audio = ?, \
             max_message_duration = ?, max_messages = ?, retention_days = ?, notify_extension_id = ?, updated_at = ? \
             WHERE id = ? RETURNING ",
            vm_cols!()
        ))
        .bind(&f.name)
        .bind(&f.mailbox_number)
        .bind(keep)
        .bind(pin_hash)
        .bind(&f.greeting_file)
        .bind(f.greeting_type)
        .bind(f.email_notify)
        .bind(&f.email_address)
        .bind(f.email_attach_audio)
        .bind(f.max_message_duration)
        .bind(f.max_messages)
        .bind(f.retention_days)
        .bind(f.notify_extension_id)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM voicemail_boxes WHERE id = ?", id).await
    }

    /// Checks a caller's PIN for the box; false when the box has no PIN or it does not match.
    pub async fn verify_pin(self, id: i64, pin: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let row: Option<(Option<String>,)> = sqlx::query_as("SELECT pin_hash FROM voicemail_boxes WHERE id = ?").bind(id).fetch_optional(&mut *c).await?;
        drop(c);
        match row {
            Some((Some(h),)) => Ok(verify_password(pin, &h).await),
            _ => Ok(false),
        }
    }
}

macro_rules! msg_cols {
    () => {
        "id, mailbox_id, caller_id_name, caller_id_num, timestamp, duration, file_path, read, read_at, transcription, created_at"
    };
}

impl VoicemailMessages<'_> {
    /// A box's messages, newest first.
    pub async fn list(self, mailbox_id: i64, page: Page) -> Result<Paged<VoicemailMessage>> {
        let mut c = self.db.acquire().await?;
        let items =
            sqlx::query_as(concat!("SELECT ", msg_cols!(), " FROM voicemail_messages WHERE mailbox_id = ? ORDER BY timestamp DESC, id DESC LIMIT ? OFFSET ?"))
                .bind(mailbox_id)
                .bind(page.limit)
                .bind(page.offset)
                .fetch_all(&mut *c)
                .await?;
        let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM voicemail_messages WHERE mailbox_id = ?").bind(mailbox_id).fetch_one(&mut *c).await?;
        Ok(Paged { items, total })
    }

    pub async fn get(self, id: i64) -> Result<Option<VoicemailMessage>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", msg_cols!(), " FROM voicemail_messages WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, m: &NewVoicemailMessage) -> Result<VoicemailMessage> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO voicemail_messages (mailbox_id, caller_id_name, caller_id_num, timestamp, duration, file_path, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ",
            msg_cols!()
        ))
        .bind(m.mailbox_id)
        .bind(&m.caller_id_name)
        .bind(&m.caller_id_num)
        .bind(m.timestamp)
        .bind(m.duration)
        .bind(&m.file_path)
        .bind(Timestamp::now())
        .fetch_one(&mut *c)
        .await?)
    }

    /// Marks a message read (or unread again).
    pub async fn set_read(self, id: i64, read: bool) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let r = sqlx::query("UPDATE voicemail_messages SET read = ?, read_at = CASE WHEN ? THEN ? ELSE NULL END WHERE id = ?")
            .bind(read)
            .bind(read)
            .bind(Timestamp::now())
            .bind(id)
            .execute(&mut *c)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Deletes a message row and returns it (the caller removes the file).
    pub async fn delete(self, id: i64) -> Result<Option<VoicemailMessage>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("DELETE FROM voicemail_messages WHERE id = ? RETURNING ", msg_cols!())).bind(id).fetch_optional(&mut *c).await?)
    }

    /// (total, unread) messages of a box: what the message-waiting indicator shows.
    pub async fn counts(self, mailbox_id: i64) -> Result<(i64, i64)> {
        let mut c = self.db.acquire().await?;
        let (total, unread): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), SUM(read = 0) FROM voicemail_messages WHERE mailbox_id = ?").bind(mailbox_id).fetch_one(&mut *c).await?;
        Ok((total, unread.unwrap_or(0)))
    }

    /// (total, unread) messages of each box that has any, in one query (the boxes' list).
    pub async fn counts_by_box(self) -> Result<std::collections::HashMap<i64, (i64, i64)>> {
        let mut c = self.db.acquire().await?;
        let rows: Vec<(i64, i64, Option<i64>)> =
            sqlx::query_as("SELECT mailbox_id, COUNT(*), SUM(read = 0) FROM voicemail_messages GROUP BY mailbox_id").fetch_all(&mut *c).await?;
        Ok(rows.into_iter().map(|(id, total, unread)| (id, (total, unread.unwrap_or(0)))).collect())
    }

    /// (unread, read) messages per extension, over every box whose message-waiting lamp is
    /// on it (`notify_extension_id`): what its phones' MWI shows. Extensions without such a
    /// box are absent.
    pub async fn mwi_counts(self) -> Result<std::collections::HashMap<i64, (i64, i64)>> {
        let mut c = self.db.acquire().await?;
        let rows: Vec<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
            "SELECT b.notify_extension_id, SUM(m.read = 0), SUM(m.read = 1) FROM voicemail_boxes b \
             LEFT JOIN voicemail_messages m ON m.mailbox_id = b.id WHERE b.notify_extension_id IS NOT NULL \
             GROUP BY b.notify_extension_id",
        )
        .fetch_all(&mut *c)
        .await?;
        Ok(rows.into_iter().map(|(id, new, old)| (id, (new.unwrap_or(0), old.unwrap_or(0)))).collect())
    }

    /// Unread messages of all boxes together (the dashboard).
    pub async fn unread_total(self) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM voicemail_messages WHERE read = 0").fetch_one(&mut *c).await?;
        Ok(n)
    }

    /// Messages older than their box's retention at `now` (retention 0 keeps forever).
    pub async fn list_expired(self, now: Timestamp) -> Result<Vec<VoicemailMessage>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(
            "SELECT m.id, m.mailbox_id, m.caller_id_name, m.caller_id_num, m.timestamp, m.duration, m.file_path, m.read, \
             m.read_at, m.transcription, m.created_at FROM voicemail_messages m JOIN voicemail_boxes b ON b.id = m.mailbox_id \
             WHERE b.retention_days > 0 AND m.timestamp < strftime('%Y-%m-%dT%H:%M:%fZ', ?, '-' || b.retention_days || ' days')",
        )
        .bind(now)
        .fetch_all(&mut *c)
        .await?)
    }
}

macro_rules! rg_cols {
    () => {
        "id, name, strategy, ring_timeout, members, caller_id_mode, caller_id_value, created_at, updated_at"
    };
}

impl RingGroups<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<RingGroup>> {
        let mut c = self.db.acquire().await?;
        paged(&mut c, concat!("SELECT ", rg_cols!(), " FROM ring_groups ORDER BY name, id LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM ring_groups", page).await
    }

    pub async fn get(self, id: i64) -> Result<Option<RingGroup>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", rg_cols!(), " FROM ring_groups WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, f: &RingGroupFields) -> Result<RingGroup> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO ring_groups (name, strategy, ring_timeout, members, caller_id_mode, caller_id_value, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            rg_cols!()
        ))
        .bind(&f.name)
        .bind(f.strategy)
        .bind(f.ring_timeout)
        .bind(Json(&f.members))
        .bind(f.caller_id_mode)
        .bind(&f.caller_id_value)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn update(self, id: i64, f: &RingGroupFields) -> Result<RingGroup> {
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!(
            "UPDATE ring_groups SET name = ?, strategy = ?, ring_timeout = ?, members = ?, caller_id_mode = ?, \
             caller_id_value = ?, updated_at = ? WHERE id = ? RETURNING ",
            rg_cols!()
        ))
        .bind(&f.name)
        .bind(f.strategy)
        .bind(f.ring_timeout)
        .bind(Json(&f.members))
        .bind(f.caller_id_mode)
        .bind(&f.caller_id_value)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM ring_groups WHERE id = ?", id).await
    }
}

macro_rules! ivr_cols {
    () => {
        "id, name, greeting_file, greeting_tts, timeout, max_retries, digit_timeout, options, created_at, updated_at"
    };
}

impl IvrMenus<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<IvrMenu>> {
        let mut c = self.db.acquire().await?;
        paged(&mut c, concat!("SELECT ", ivr_cols!(), " FROM ivr_menus ORDER BY name, id LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM ivr_menus", page).await
    }

    pub async fn get(self, id: i64) -> Result<Option<IvrMenu>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", ivr_cols!(), " FROM ivr_menus WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, f: &IvrMenuFields) -> Result<IvrMenu> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO ivr_menus (name, greeting_file, greeting_tts, timeout, max_retries, digit_timeout, options, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            ivr_cols!()
        ))
        .bind(&f.name)
        .bind(&f.greeting_file)
        .bind(&f.greeting_tts)
        .bind(f.timeout)
        .bind(f.max_retries)
        .bind(f.digit_timeout)
        .bind(Json(&f.options))
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn update(self, id: i64, f: &IvrMenuFields) -> Result<IvrMenu> {
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!(
            "UPDATE ivr_menus SET name = ?, greeting_file = ?, greeting_tts = ?, timeout = ?, max_retries = ?, \
             digit_timeout = ?, options = ?, updated_at = ? WHERE id = ? RETURNING ",
            ivr_cols!()
        ))
        .bind(&f.name)
        .bind(&f.greeting_file)
        .bind(&f.greeting_tts)
        .bind(f.timeout)
        .bind(f.max_retries)
        .bind(f.digit_timeout)
        .bind(Json(&f.options))
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM ivr_menus WHERE id = ?", id).await
    }
}

macro_rules! ts_cols {
    () => {
        "id, name, timezone, rules, overrides, default_dest, created_at, updated_at"
    };
}

impl TimeSwitches<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<TimeSwitch>> {
        let mut c = self.db.acquire().await?;
        paged(&mut c, concat!("SELECT ", ts_cols!(), " FROM time_switches ORDER BY name, id LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM time_switches", page)
            .await
    }

    pub async fn get(self, id: i64) -> Result<Option<TimeSwitch>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", ts_cols!(), " FROM time_switches WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, f: &TimeSwitchFields) -> Result<TimeSwitch> {
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO time_switches (name, timezone, rules, overrides, default_dest, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING ",
            ts_cols!()
        ))
        .bind(&f.name)
        .bind(&f.timezone)
        .bind(Json(&f.rules))
        .bind(Json(&f.overrides))
        .bind(&f.default_dest)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn update(self, id: i64, f: &TimeSwitchFields) -> Result<TimeSwitch> {
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!(
            "UPDATE time_switches SET name = ?, timezone = ?, rules = ?, overrides = ?, default_dest = ?, updated_at = ? \
             WHERE id = ? RETURNING ",
            ts_cols!()
        ))
        .bind(&f.name)
        .bind(&f.timezone)
        .bind(Json(&f.rules))
        .bind(Json(&f.overrides))
        .bind(&f.default_dest)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM time_switches WHERE id = ?", id).await
    }
}

macro_rules! conf_cols {
    () => {
        "id, name, extension, max_members, record, mute_on_join, announce_joins, created_at, updated_at, \
         pin_hash IS NOT NULL AS pin_set"
    };
}

impl ConferenceBridges<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<ConferenceBridge>> {
        let mut c = self.db.acquire().await?;
        paged(
            &mut c,
            concat!("SELECT ", conf_cols!(), " FROM conference_bridges ORDER BY name, id LIMIT ? OFFSET ?"),
            "SELECT COUNT(*) FROM conference_bridges",
            page,
        )
        .await
    }

    pub async fn get(self, id: i64) -> Result<Option<ConferenceBridge>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", conf_cols!(), " FROM conference_bridges WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    /// The bridge dialled as `number`.
    pub async fn get_by_extension(self, number: &str) -> Result<Option<ConferenceBridge>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", conf_cols!(), " FROM conference_bridges WHERE extension = ?")).bind(number).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, f: &ConferenceBridgeFields, pin: Option<&str>) -> Result<ConferenceBridge> {
        let pin_hash = match pin {
            Some(p) => Some(hash_password(p).await?),
            None => None,
        };
        let now = Timestamp::now();
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO conference_bridges (name, extension, pin_hash, max_members, record, mute_on_join, announce_joins, \
             created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            conf_cols!()
        ))
        .bind(&f.name)
        .bind(&f.extension)
        .bind(pin_hash)
        .bind(f.max_members)
        .bind(f.record)
        .bind(f.mute_on_join)
        .bind(f.announce_joins)
        .bind(now)
        .bind(now)
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn update(self, id: i64, f: &ConferenceBridgeFields, pin: SecretUpdate<'_>) -> Result<ConferenceBridge> {
        let (keep, pin_hash) = hash_secret_update(pin).await?;
        let mut c = self.db.acquire().await?;
        sqlx::query_as(concat!(
            "UPDATE conference_bridges SET name = ?, extension = ?, pin_hash = CASE WHEN ? THEN pin_hash ELSE ? END, \
             max_members = ?, record = ?, mute_on_join = ?, announce_joins = ?, updated_at = ? WHERE id = ? RETURNING ",
            conf_cols!()
        ))
        .bind(&f.name)
        .bind(&f.extension)
        .bind(keep)
        .bind(pin_hash)
        .bind(f.max_members)
        .bind(f.record)
        .bind(f.mute_on_join)
        .bind(f.announce_joins)
        .bind(Timestamp::now())
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .ok_or(StoreError::NotFound)
    }

    pub async fn delete(self, id: i64) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        delete_by_id(&mut c, "DELETE FROM conference_bridges WHERE id = ?", id).await
    }

    /// Checks a caller's PIN; true when the bridge has no PIN at all.
    pub async fn verify_pin(self, id: i64, pin: &str) -> Result<bool> {
        let mut c = self.db.acquire().await?;
        let row: Option<(Option<String>,)> = sqlx::query_as("SELECT pin_hash FROM conference_bridges WHERE id = ?").bind(id).fetch_optional(&mut *c).await?;
        drop(c);
        match row {
            Some((Some(h),)) => Ok(verify_password(pin, &h).await),
            Some((None,)) => Ok(true),
            None => Ok(false),
        }
    }
}

macro_rules! prompt_cols {
    () => {
        "id, name, file_path, original_name, sample_rate, channels, bits_per_sample, duration_ms, size_bytes, created_at"
    };
}

impl Prompts<'_> {
    pub async fn list(self, page: Page) -> Result<Paged<Prompt>> {
        let mut c = self.db.acquire().await?;
        paged(&mut c, concat!("SELECT ", prompt_cols!(), " FROM prompts ORDER BY name LIMIT ? OFFSET ?"), "SELECT COUNT(*) FROM prompts", page).await
    }

    pub async fn get(self, id: i64) -> Result<Option<Prompt>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", prompt_cols!(), " FROM prompts WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn get_by_name(self, name: &str) -> Result<Option<Prompt>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", prompt_cols!(), " FROM prompts WHERE name = ?")).bind(name).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, p: &NewPrompt) -> Result<Prompt> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO prompts (name, file_path, original_name, sample_rate, channels, bits_per_sample, duration_ms, \
             size_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ",
            prompt_cols!()
        ))
        .bind(&p.name)
        .bind(&p.file_path)
        .bind(&p.original_name)
        .bind(p.sample_rate)
        .bind(p.channels)
        .bind(p.bits_per_sample)
        .bind(p.duration_ms)
        .bind(p.size_bytes)
        .bind(Timestamp::now())
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn delete(self, id: i64) -> Result<Option<Prompt>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("DELETE FROM prompts WHERE id = ? RETURNING ", prompt_cols!())).bind(id).fetch_optional(&mut *c).await?)
    }
}

macro_rules! rec_cols {
    () => {
        "id, cdr_id, call_id, file_path, duration, size_bytes, created_at"
    };
}

impl Recordings<'_> {
    /// Recordings, newest first.
    pub async fn list(self, page: Page) -> Result<Paged<Recording>> {
        let mut c = self.db.acquire().await?;
        paged(
            &mut c,
            concat!("SELECT ", rec_cols!(), " FROM recordings ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"),
            "SELECT COUNT(*) FROM recordings",
            page,
        )
        .await
    }

    pub async fn get(self, id: i64) -> Result<Option<Recording>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", rec_cols!(), " FROM recordings WHERE id = ?")).bind(id).fetch_optional(&mut *c).await?)
    }

    pub async fn insert(self, r: &NewRecording) -> Result<Recording> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!(
            "INSERT INTO recordings (cdr_id, call_id, file_path, duration, size_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?) RETURNING ",
            rec_cols!()
        ))
        .bind(r.cdr_id)
        .bind(&r.call_id)
        .bind(&r.file_path)
        .bind(r.duration)
        .bind(r.size_bytes)
        .bind(Timestamp::now())
        .fetch_one(&mut *c)
        .await?)
    }

    pub async fn delete(self, id: i64) -> Result<Option<Recording>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("DELETE FROM recordings WHERE id = ? RETURNING ", rec_cols!())).bind(id).fetch_optional(&mut *c).await?)
    }

    /// Recordings with their CDR's parties, newest first; a non-empty `filter` keeps those
    /// whose CDR matches it (the call log's filters).
    pub async fn list_filtered(self, filter: &CdrFilter, page: Page) -> Result<Paged<RecordingItem>> {
        let mut c = self.db.acquire().await?;
        let cond = |q: &mut sqlx::QueryBuilder<super::Db>| {
            if *filter != CdrFilter::default() {
                q.push(" WHERE r.cdr_id IN (SELECT id FROM cdrs");
                super::cdrs::push_filter(q, filter);
                q.push(")");
            }
        };
        let mut q = sqlx::QueryBuilder::new(
            "SELECT r.id, r.cdr_id, r.call_id, r.file_path, r.duration, r.size_bytes, r.created_at, c.caller_id_name, c.caller_id_num, \
             c.callee, c.direction, c.disposition, c.start_time FROM recordings r LEFT JOIN cdrs c ON c.id = r.cdr_id",
        );
        cond(&mut q);
        q.push(" ORDER BY r.created_at DESC, r.id DESC LIMIT ").push_bind(page.limit).push(" OFFSET ").push_bind(page.offset);
        let items = q.build_query_as().fetch_all(&mut *c).await?;
        let mut q = sqlx::QueryBuilder::new("SELECT COUNT(*) FROM recordings r");
        cond(&mut q);
        let (total,): (i64,) = q.build_query_as().fetch_one(&mut *c).await?;
        Ok(Paged { items, total })
    }

    /// Recordings made before `cutoff`, oldest first, at most `limit` (retention).
    pub async fn created_before(self, cutoff: Timestamp, limit: i64) -> Result<Vec<Recording>> {
        let mut c = self.db.acquire().await?;
        Ok(sqlx::query_as(concat!("SELECT ", rec_cols!(), " FROM recordings WHERE created_at < ? ORDER BY created_at, id LIMIT ?"))
            .bind(cutoff)
            .bind(limit)
            .fetch_all(&mut *c)
            .await?)
    }

    /// Bytes used by all recordings.
    pub async fn total_size(self) -> Result<i64> {
        let mut c = self.db.acquire().await?;
        let (n,): (Option<i64>,) = sqlx::query_as("SELECT SUM(size_bytes) FROM recordings").fetch_one(&mut *c).await?;
        Ok(n.unwrap_or(0))
    }
}
