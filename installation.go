package pushd

import "time"

// Installation is one install of an app on a device, as the device API
// registers it: a users row keyed by (App, InstallationID).
type Installation struct {
	App            string
	InstallationID string
	Token          string
	// ExternalID is the company's own id of the person; empty for none.
	ExternalID string
	// Timezone (IANA) and Locale (BCP 47, canonical) are empty when the app
	// did not say.
	Timezone, Locale string
	// Attributes is a JSON object, or nil.
	Attributes []byte
	// At is when the app registered it: users.registered_at.
	At time.Time
}
