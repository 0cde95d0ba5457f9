-- pushd schema, version 6 (2 added pushd_provider_tokens and pushd_instances;
-- 3 added segments, several apps per campaign and the frequency cap; 4 added
-- local-time delivery, quiet hours and pacing; 5 added templates,
-- translations and rich and silent pushes; 6 added the device API).
--
-- `pushd migrate` applies exactly this file (it is embedded in the binary),
-- and every statement is idempotent. Runs on MySQL 8 and MariaDB >= 10.6.
--
-- All DATETIME columns hold wall-clock time in the zone set by [Server]
-- timezone in config.ini (UTC by default).

-- users: your app's users. pushd only reads this table, unless its device
-- API ([API] listen) registers the apps' installations in it. If you already
-- have one, drop this table and create a VIEW named users with these
-- columns instead (see README, "Using your own users table"); the device
-- API then cannot be used.
CREATE TABLE IF NOT EXISTS users (
  id            BIGINT        NOT NULL AUTO_INCREMENT,
  app           VARCHAR(64)   NOT NULL COMMENT 'section name of the app in config.ini',
  push_token    VARCHAR(1024) CHARACTER SET ascii NOT NULL COMMENT 'APNs device token (hex) or FCM registration token',
  timezone      VARCHAR(64)   NULL COMMENT 'IANA zone, e.g. Europe/Paris',
  locale        VARCHAR(35)   NULL COMMENT 'optional: BCP 47 locale, e.g. fr-CA, for campaign_translations',
  attributes    JSON          NULL COMMENT 'optional: JSON object that templates read, e.g. {"first_name":"Anna"}',
  installation_id VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NULL COMMENT 'device API: the app install, unique per app (case matters)',
  external_id   VARCHAR(255)  NULL COMMENT 'device API: the company''s own id of the person (several installs may share it)',
  registered_at DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
                              COMMENT 'when the app last registered this token; a token re-registered after it was invalidated is used again',
  PRIMARY KEY (id),
  -- Audience reads walk this index in id order and need nothing else.
  KEY users_audience (app, id, registered_at, push_token),
  -- The device API upserts by installation and moves a token between
  -- installations; an empty push_token is an unregistered installation.
  UNIQUE KEY users_installation (app, installation_id),
  KEY users_token (app, push_token(128)),
  KEY users_external (app, external_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- campaigns: marketing staff INSERT one row per campaign and watch it.
CREATE TABLE IF NOT EXISTS campaigns (
  id             BIGINT        NOT NULL AUTO_INCREMENT,
  app            VARCHAR(255)  NOT NULL COMMENT 'section name of the app in config.ini; several separated by commas',
  segment        VARCHAR(56)   NULL COMMENT 'send only to users in the table or view segment_<segment>; NULL: every user of the app',
  exclude_segment VARCHAR(56)  NULL COMMENT 'leave out the users in segment_<exclude_segment>',
  ignore_frequency_cap TINYINT(1) NOT NULL DEFAULT 0 COMMENT '1: send even to users who reached the app frequency_cap',
  local_time     TINYINT(1)    NOT NULL DEFAULT 0 COMMENT '1: scheduled_at and expires_at are wall-clock times in each user''s zone',
  late_policy    VARCHAR(16)   NULL COMMENT 'local_time: skip (default), send or next_day for users whose local time has passed at the start',
  ignore_quiet_hours TINYINT(1) NOT NULL DEFAULT 0 COMMENT '1: send even inside the app quiet_hours',
  max_per_minute INT UNSIGNED  NULL COMMENT 'send at most this many pushes per minute, evenly spread; NULL: as fast as the app allows',
  title          VARCHAR(255)  NOT NULL DEFAULT '',
  body           TEXT          NOT NULL,
  subtitle       VARCHAR(255)  NULL COMMENT 'a second line under the title (iPhone only)',
  image_url      VARCHAR(1024) NULL COMMENT 'https URL of an image shown with the notification',
  link           VARCHAR(1024) NULL COMMENT 'deep link the app opens on a tap, e.g. myapp://sale',
  category       VARCHAR(64)   NULL COMMENT 'APNs category / Android click_action: which buttons show',
  thread_id      VARCHAR(64)   NULL COMMENT 'iPhone: notifications with the same thread_id are grouped',
  channel_id     VARCHAR(64)   NULL COMMENT 'Android notification channel the app created',
  interruption_level VARCHAR(16) NULL COMMENT 'iPhone: passive, active, time-sensitive or critical',
  relevance_score DOUBLE       NULL COMMENT 'iPhone: 0 to 1, how high it ranks in the notification summary',
  priority       VARCHAR(8)    NULL COMMENT 'high or normal; NULL: high, or normal for a silent push',
  silent         TINYINT(1)    NOT NULL DEFAULT 0 COMMENT '1: shows nothing, only wakes the app to refresh',
  overrides      TEXT          NULL COMMENT 'JSON {"apns": {...}, "fcm": {...}} merged into the provider payload last',
  data           TEXT          NULL COMMENT 'JSON object of custom key/values, e.g. {"screen":"sale"}',
  badge          INT           NULL COMMENT 'app icon badge number; NULL leaves it alone',
  sound          VARCHAR(64)   NULL COMMENT 'sound name, e.g. default; NULL is silent',
  collapse_id    VARCHAR(64)   NULL COMMENT 'NULL: pushd derives one per run so a resent copy replaces the first',
  scheduled_at   DATETIME      NOT NULL COMMENT 'when to start sending',
  expires_at     DATETIME      NULL COMMENT 'deadline: nothing is sent after it; NULL: the app default_expiry after the start',
  batch_size     INT           NULL COMMENT 'users per batch; NULL: the app batch_size',
  cron           VARCHAR(255)  NULL COMMENT 'repeat on this schedule, e.g. 0 9 * * MON; NULL: send once',
  repeat_until   DATETIME      NULL COMMENT 'with cron: no occurrence starts after this; NULL: until cancelled',
  status         VARCHAR(16)   NOT NULL DEFAULT 'scheduled'
                               COMMENT 'scheduled, running, paused, cancelled, done, failed, expired',
  status_reason  VARCHAR(1024) NOT NULL DEFAULT '' COMMENT 'why it failed, expired or stopped, and what to do',
  targeted       INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'users in the audience of the current run; an estimate until it starts',
  sent           INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'accepted by Apple or Google',
  failed         INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'rejected or undeliverable after retries',
  invalid_tokens INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'tokens found dead; they are skipped from now on',
  expired        INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'not reached before expires_at',
  capped         INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'not sent: the user reached the app frequency_cap',
  skipped        INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'not sent on purpose: their local time had passed (late_policy skip)',
  opened         INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'users who opened the push, as the apps report through the device API',
  holdout_percent TINYINT UNSIGNED NOT NULL DEFAULT 0 COMMENT '0 to 50: this share of the audience gets nothing (held_out), to compare',
  held_out       INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'users in the holdout group: not sent on purpose',
  run_count      INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'runs started; more than 1 only with cron',
  next_run_at    DATETIME      NULL COMMENT 'set by pushd: when the next run starts',
  current_run_id BIGINT        NULL COMMENT 'set by pushd: the run the counts belong to',
  started_at     DATETIME      NULL,
  finished_at    DATETIME      NULL,
  created_at     DATETIME      NOT NULL DEFAULT CURRENT_TIMESTAMP,
  updated_at     DATETIME      NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (id),
  KEY campaigns_status (status, scheduled_at),
  CONSTRAINT campaigns_status_known CHECK (status IN
    ('scheduled', 'running', 'paused', 'cancelled', 'done', 'failed', 'expired'))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_runs: one row per occurrence of a campaign. The notification is
-- frozen here when the run starts so every instance sends the same text.
CREATE TABLE IF NOT EXISTS pushd_runs (
  id             BIGINT        NOT NULL AUTO_INCREMENT,
  campaign_id    BIGINT        NOT NULL,
  occurrence     INT UNSIGNED  NOT NULL COMMENT '1 for the first run of a campaign',
  app            VARCHAR(64)   NOT NULL,
  part           SMALLINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'local time and quiet hours: the send time''s number within the app; else 0',
  status         VARCHAR(16)   NOT NULL COMMENT 'running, paused, cancelled, done, failed, expired',
  status_reason  VARCHAR(1024) NOT NULL DEFAULT '',
  notification   MEDIUMTEXT    NOT NULL COMMENT 'JSON snapshot of what is sent, with its translations',
  user_data      TINYINT(1)    NOT NULL DEFAULT 0 COMMENT '1: batches read users.locale and attributes for templates and translations',
  scheduled_for  DATETIME(3)   NOT NULL,
  deadline       DATETIME(3)   NOT NULL,
  batch_size     INT UNSIGNED  NOT NULL,
  max_user_id    BIGINT        NOT NULL COMMENT 'audience frozen at start: users.id <= this',
  segment        VARCHAR(56)   NULL COMMENT 'the campaign segment when the run started',
  exclude_segment VARCHAR(56)  NULL,
  members        TINYINT(1)    NOT NULL DEFAULT 0 COMMENT '1: the audience is the run''s rows in pushd_run_members',
  cap_count      INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'frequency cap checked by this run: at most this many sends; 0: not checked',
  cap_window_s   INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'frequency cap window in seconds; 0: the app has no cap, sends are not tracked',
  zone           VARCHAR(64)   NULL COMMENT 'local-time or quiet-hours runs: the zone whose clock the run keeps',
  zones          TEXT          NULL COMMENT 'the users.timezone values of the run''s users, comma-separated',
  unknown_zones  INT UNSIGNED  NOT NULL DEFAULT 0 COMMENT 'users of the run whose timezone is no zone: they get the default zone''s time',
  quiet_hours    VARCHAR(11)   NULL COMMENT 'the app quiet_hours the run keeps, HH:MM-HH:MM',
  max_per_minute INT UNSIGNED  NULL COMMENT 'the campaign pace when the run started',
  cursor_user_id BIGINT        NOT NULL COMMENT 'batches cover users.id <= this',
  drained        TINYINT(1)    NOT NULL DEFAULT 0 COMMENT 'every audience user is in a batch',
  targeted       INT UNSIGNED  NOT NULL DEFAULT 0,
  sent           INT UNSIGNED  NOT NULL DEFAULT 0,
  failed         INT UNSIGNED  NOT NULL DEFAULT 0,
  invalid_tokens INT UNSIGNED  NOT NULL DEFAULT 0,
  expired        INT UNSIGNED  NOT NULL DEFAULT 0,
  capped         INT UNSIGNED  NOT NULL DEFAULT 0,
  skipped        INT UNSIGNED  NOT NULL DEFAULT 0,
  opened         INT UNSIGNED  NOT NULL DEFAULT 0,
  held_out       INT UNSIGNED  NOT NULL DEFAULT 0,
  started_at     DATETIME(3)   NOT NULL,
  finished_at    DATETIME(3)   NULL,
  PRIMARY KEY (id),
  UNIQUE KEY pushd_runs_part (campaign_id, occurrence, app, part),
  KEY pushd_runs_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_batches: the unit of work. An instance claims a batch with a lease
-- (owner, epoch, lease_expires_at on the database clock in UTC); every write
-- of progress checks the epoch, so an instance that lost its lease cannot
-- overwrite a newer owner's progress.
CREATE TABLE IF NOT EXISTS pushd_batches (
  id               BIGINT       NOT NULL AUTO_INCREMENT,
  run_id           BIGINT       NOT NULL,
  after_user_id    BIGINT       NOT NULL COMMENT 'the batch covers after_user_id < users.id <= last_user_id',
  last_user_id     BIGINT       NOT NULL,
  size             INT UNSIGNED NOT NULL,
  status           VARCHAR(16)  NOT NULL COMMENT 'claimed, pending (released), done',
  owner            VARCHAR(128) NULL,
  epoch            INT UNSIGNED NOT NULL DEFAULT 1,
  lease_expires_at DATETIME(3)  NULL,
  PRIMARY KEY (id),
  KEY pushd_batches_open (run_id, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_deliveries: the ledger, exactly one outcome per (run, user).
CREATE TABLE IF NOT EXISTS pushd_deliveries (
  run_id      BIGINT           NOT NULL,
  user_id     BIGINT           NOT NULL,
  outcome     VARCHAR(8)       NOT NULL COMMENT 'sent, failed, invalid, expired, capped, skipped, held_out',
  reason      VARCHAR(64)      NOT NULL DEFAULT '' COMMENT 'provider reason, e.g. BadDeviceToken',
  attempts    TINYINT UNSIGNED NOT NULL DEFAULT 1,
  recorded_at DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  variant     VARCHAR(32)      NOT NULL DEFAULT '' COMMENT 'the campaign variant the user was given',
  PRIMARY KEY (run_id, user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_invalid_tokens: tokens a provider declared dead. A user is skipped
-- while this row names the user's current token and the token was not
-- registered again after invalid_since.
CREATE TABLE IF NOT EXISTS pushd_invalid_tokens (
  user_id       BIGINT        NOT NULL,
  app           VARCHAR(64)   NOT NULL,
  push_token    VARCHAR(1024) CHARACTER SET ascii NOT NULL,
  invalid_since DATETIME(3)   NOT NULL COMMENT 'the provider''s time (APNs 410 timestamp), else when pushd learned it',
  reason        VARCHAR(64)   NOT NULL,
  run_id        BIGINT        NULL,
  recorded_at   DATETIME(3)   NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (user_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_provider_tokens: the one APNs provider token per team and key that
-- every pushd process sends (Apple counts token updates per team and key;
-- more than one in 20 minutes is refused). A signed token is a credential
-- for up to an hour: grant this table to pushd only.
CREATE TABLE IF NOT EXISTS pushd_provider_tokens (
  team_id    VARCHAR(64)   NOT NULL,
  key_id     VARCHAR(64)   NOT NULL,
  jwt        VARCHAR(1024) CHARACTER SET ascii NOT NULL DEFAULT '',
  issued_at  DATETIME(3)   NOT NULL DEFAULT '1970-01-02 00:00:00',
  issued_by  VARCHAR(128)  NOT NULL DEFAULT '' COMMENT 'host and pid of the process that signed it',
  PRIMARY KEY (team_id, key_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_instances: one row per running pushd process, refreshed every few
-- seconds, so that `pushd status` shows who is sending and notices a
-- campaign nobody works on. Rows of processes gone for a day are removed.
CREATE TABLE IF NOT EXISTS pushd_instances (
  owner       VARCHAR(300)  NOT NULL COMMENT 'the name in batch leases: instance_id#suffix',
  instance_id VARCHAR(255)  NOT NULL,
  host        VARCHAR(255)  NOT NULL,
  pid         INT           NOT NULL,
  version     VARCHAR(255)  NOT NULL,
  started_at  DATETIME(3)   NOT NULL,
  seen_at     DATETIME(3)   NOT NULL COMMENT 'last heartbeat, database clock',
  runs        TEXT          NOT NULL COMMENT 'JSON: the runs it works on and their recent pace',
  PRIMARY KEY (owner)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_run_members: the audience of a segment run (or of a local-time or
-- quiet-hours run), with each user's token, evaluated once when the run
-- starts, so that changes to the segment during the run (or between a
-- crash and the restart) neither add nor drop anyone.
CREATE TABLE IF NOT EXISTS pushd_run_members (
  run_id        BIGINT        NOT NULL,
  user_id       BIGINT        NOT NULL,
  push_token    VARCHAR(1024) CHARACTER SET ascii NOT NULL DEFAULT '' COMMENT 'the user''s token when the run started',
  registered_at DATETIME(3)   NOT NULL DEFAULT '1970-01-02 00:00:00',
  PRIMARY KEY (run_id, user_id)
) ENGINE=InnoDB;

-- pushd_sends: the pushes sent to users of apps with a frequency_cap, for
-- the cap's rolling window. A row is written when a batch is claimed (under
-- the app's lock in pushd_locks) and deleted if the push ends other than
-- sent. Rows older than the longest cap window are purged.
CREATE TABLE IF NOT EXISTS pushd_sends (
  user_id BIGINT      NOT NULL,
  run_id  BIGINT      NOT NULL,
  sent_at DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, run_id),
  KEY pushd_sends_age (sent_at)
) ENGINE=InnoDB;

-- pushd_locks: rows locked FOR UPDATE to serialise work across instances,
-- such as the frequency-cap check of one app's claims.
CREATE TABLE IF NOT EXISTS pushd_locks (
  name VARCHAR(128) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB;

-- campaign_translations: staff INSERT a row per language of a campaign. A
-- user gets the row of their users.locale (fr-CA, else fr), else the
-- campaign's own title and body. Placeholders work here too.
CREATE TABLE IF NOT EXISTS campaign_translations (
  campaign_id BIGINT       NOT NULL,
  locale      VARCHAR(35)  NOT NULL COMMENT 'BCP 47: a language (fr) or a language and region (fr-CA)',
  title       VARCHAR(255) NOT NULL DEFAULT '',
  body        TEXT         NOT NULL,
  subtitle    VARCHAR(255) NULL,
  PRIMARY KEY (campaign_id, locale)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- campaign_variants: staff INSERT rows to test texts against each other.
-- Each user gets one variant, by a stable hash of (campaign, user), in
-- proportion to weight; empty image_url and link keep the campaign's.
CREATE TABLE IF NOT EXISTS campaign_variants (
  campaign_id BIGINT        NOT NULL,
  name        VARCHAR(32)   NOT NULL COMMENT 'e.g. A, B or short-title',
  weight      INT UNSIGNED  NOT NULL DEFAULT 1,
  title       VARCHAR(255)  NOT NULL DEFAULT '',
  body        TEXT          NOT NULL,
  subtitle    VARCHAR(255)  NULL,
  image_url   VARCHAR(1024) NULL,
  link        VARCHAR(1024) NULL,
  PRIMARY KEY (campaign_id, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_run_locales: for runs with translations, how many users were sent
-- each translation ('' is the campaign's own text). Written with the
-- ledger, so the counts are exact; kept like pushd_runs.
CREATE TABLE IF NOT EXISTS pushd_run_locales (
  run_id BIGINT       NOT NULL,
  locale VARCHAR(35)  NOT NULL,
  sent   INT UNSIGNED NOT NULL DEFAULT 0,
  PRIMARY KEY (run_id, locale)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- pushd_opens: the pushes the apps reported opened (device API), once per
-- run and user.
CREATE TABLE IF NOT EXISTS pushd_opens (
  run_id    BIGINT      NOT NULL,
  user_id   BIGINT      NOT NULL,
  opened_at DATETIME(3) NOT NULL,
  PRIMARY KEY (run_id, user_id)
) ENGINE=InnoDB;

-- pushd_settings: values every instance shares, such as the secret that
-- signs push ids when [API] secret is not set.
CREATE TABLE IF NOT EXISTS pushd_settings (
  name  VARCHAR(64)   NOT NULL,
  value VARCHAR(1024) NOT NULL,
  PRIMARY KEY (name)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS pushd_schema (
  version    INT      NOT NULL,
  applied_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
  PRIMARY KEY (version)
) ENGINE=InnoDB;

INSERT IGNORE INTO pushd_schema (version) VALUES (1);
INSERT IGNORE INTO pushd_schema (version) VALUES (2);
INSERT IGNORE INTO pushd_schema (version) VALUES (3);
INSERT IGNORE INTO pushd_schema (version) VALUES (4);
INSERT IGNORE INTO pushd_schema (version) VALUES (5);
INSERT IGNORE INTO pushd_schema (version) VALUES (6);
