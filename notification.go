package pushd

import (
	"encoding/json"
	"time"
)

// PushType names a push provider, spelled as in config.ini's push_type
// (which matches it case-insensitively).
type PushType string

// The supported providers.
const (
	APNs PushType = "APNs"
	FCM  PushType = "FCM"
)

// Notification is what one campaign run sends. It is built from the
// campaign row when the run starts and frozen into pushd_runs.notification
// as JSON (the tags are that snapshot's format), so that every instance
// sends the same thing even if staff edit the row mid-run. It is the same
// for every recipient; only the device token varies, so a provider renders
// it once per run with Prepare.
type Notification struct {
	Title string `json:"title"`
	Body  string `json:"body"`
	// Data holds the campaign's custom key/values, each value raw JSON.
	// APNs carries them as top-level payload keys with their JSON types; FCM
	// needs strings and converts scalars (see fcm.Prepare).
	Data  map[string]json.RawMessage `json:"data,omitempty"`
	Badge *int                       `json:"badge,omitempty"` // nil leaves the badge alone
	Sound string                     `json:"sound,omitempty"` // empty plays no sound
	// CollapseID makes a resent copy replace the first notification on the
	// device instead of showing twice (apns-collapse-id, android tag).
	CollapseID string `json:"collapse_id,omitempty"`
	// Expiration is the absolute deadline after which the provider must not
	// deliver. The zero time means no deadline. It is the run's deadline,
	// which the run row keeps, so it is not part of the snapshot.
	Expiration time.Time `json:"-"`
}
